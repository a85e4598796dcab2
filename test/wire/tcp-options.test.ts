import fc from 'fast-check';
import type { TcpOption } from '../../common/wire/tcp-options';
import {
  OPTION_ABSENT,
  OPTION_MALFORMED,
  TCP_OPTION,
  decodeMss,
  decodeSackBlocks,
  decodeTimestamps,
  decodeWindowScale,
  emitTcpOptions,
  experimentId,
  experimentalOption,
  findMss,
  findOption,
  mssOption,
  parseTcpOptions,
  sackOption,
  sackPermittedOption,
  tcpOptionsLength,
  timestampsOption,
  windowScaleOption,
} from '../../common/wire/tcp-options';
import { ETH_IPV4_SYN, VLAN_IPV4_SYN, hex } from './fixtures';
import { expectedAfterRoundTrip, optionListArb, tcpOptionArb } from './arbitraries';
import { errorOf, unwrap } from './helpers';

const kinds = (opts: readonly TcpOption[]) => opts.map((o) => o.kind);

describe('parseTcpOptions', () => {
  test('real Linux SYN: mss, sackOK, timestamps, nop, wscale', () => {
    const opts = unwrap(parseTcpOptions(ETH_IPV4_SYN, 54, 74));
    expect(kinds(opts)).toEqual([2, 4, 8, 1, 3]);
    expect(decodeMss(opts[0]!)).toBe(1460);
    expect(decodeTimestamps(opts[2]!)).toEqual({ tsval: 4294923497, tsecr: 0 });
    expect(decodeWindowScale(opts[4]!)).toBe(6);
    expect(opts[0]!.data.buffer).toBe(ETH_IPV4_SYN.buffer); // views, no copies
  });

  test('real macOS-style SYN ending in EOL: EOL recorded, padding after it ignored', () => {
    const opts = unwrap(parseTcpOptions(VLAN_IPV4_SYN, 58, 82));
    expect(kinds(opts)).toEqual([2, 1, 3, 1, 1, 8, 4, 0]);
    expect(emitTcpOptions(opts)).toEqual(VLAN_IPV4_SYN.subarray(58, 82));
  });

  test('unknown options are kept verbatim, in order', () => {
    const raw = hex('fe06 4347 abcd 0101 1e04 0102 2a02 0101');
    const opts = unwrap(parseTcpOptions(raw, 0, raw.length));
    expect(opts.map((o) => [o.kind, [...o.data]])).toEqual([
      [254, [0x43, 0x47, 0xab, 0xcd]],
      [1, []],
      [1, []],
      [30, [1, 2]],
      [42, []],
      [1, []],
      [1, []],
    ]);
    expect(emitTcpOptions(opts)).toEqual(raw);
  });

  test('bad lengths: < 2, overrun, missing length byte', () => {
    expect(errorOf(parseTcpOptions(hex('0201 0000'), 0, 4))).toMatchObject({ layer: 'tcp-options', kind: 'bad-option', offset: 0 });
    expect(errorOf(parseTcpOptions(hex('0101 0800 0000'), 0, 6))).toMatchObject({ kind: 'bad-option', offset: 2 });
    expect(errorOf(parseTcpOptions(hex('0101 080a 0000'), 0, 6))).toMatchObject({ kind: 'bad-option', offset: 2 });
    expect(errorOf(parseTcpOptions(hex('0101 0102'), 0, 4))).toMatchObject({ kind: 'bad-option', offset: 3 });
    expect(errorOf(parseTcpOptions(hex('0204 05b4'), 0, 5))).toMatchObject({ kind: 'truncated' });
    expect(unwrap(parseTcpOptions(hex('0204 05b4'), 4, 4))).toEqual([]);
  });
});

describe('findOption (no allocation)', () => {
  const raw = hex('0101 fd06 1111 2222 fd0e 4347 1101 0102 0304 0506 0708 0204 05b4 0000');
  test('by kind, and by kind + ExID', () => {
    expect(findOption(raw, 0, raw.length, TCP_OPTION.EXPERIMENT_1)).toBe(2);
    expect(findOption(raw, 0, raw.length, TCP_OPTION.EXPERIMENT_1, 0x4347)).toBe(8);
    expect(findOption(raw, 0, raw.length, TCP_OPTION.EXPERIMENT_1, 0x1234)).toBe(OPTION_ABSENT);
    expect(findOption(raw, 0, raw.length, TCP_OPTION.MSS)).toBe(22);
    expect(findMss(raw, 0, raw.length)).toBe(1460);
    expect(findOption(raw, 0, raw.length, TCP_OPTION.TIMESTAMPS)).toBe(OPTION_ABSENT);
  });
  test('stops at EOL; reports malformed space', () => {
    const eol = hex('0000 0204 05b4');
    expect(findOption(eol, 0, eol.length, TCP_OPTION.MSS)).toBe(OPTION_ABSENT);
    const bad = hex('0800 0204 05b4');
    expect(findOption(bad, 0, bad.length, TCP_OPTION.MSS)).toBe(OPTION_MALFORMED);
    expect(findMss(bad, 0, bad.length)).toBe(-1);
    expect(findOption(raw, 0, raw.length + 1, 2)).toBe(OPTION_MALFORMED);
    const shortMss = hex('0203 05 00');
    expect(findMss(shortMss, 0, 4)).toBe(-1);
  });
});

describe('emitTcpOptions and helpers', () => {
  test('pads with EOL to a multiple of 4', () => {
    expect(emitTcpOptions([mssOption(1400)])).toEqual(hex('0204 0578'));
    expect(emitTcpOptions([windowScaleOption(7)])).toEqual(hex('0303 0700'));
    expect(emitTcpOptions([sackPermittedOption(), { kind: 1, data: new Uint8Array(0) }])).toEqual(hex('0402 0100'));
    expect(emitTcpOptions([])).toEqual(new Uint8Array(0));
    expect(tcpOptionsLength([sackPermittedOption(), windowScaleOption(1)])).toBe(5);
  });

  test('SACK blocks and timestamps round-trip; malformed ones decode to null', () => {
    const blocks = [{ left: 1, right: 0xffffffff }, { left: 0x80000000, right: 7 }];
    expect(decodeSackBlocks(sackOption(blocks))).toEqual(blocks);
    expect(decodeSackBlocks({ kind: 5, data: new Uint8Array(7) })).toBeNull();
    expect(decodeSackBlocks({ kind: 5, data: new Uint8Array(0) })).toBeNull();
    expect(decodeTimestamps(timestampsOption(0xfffffffe, 3))).toEqual({ tsval: 0xfffffffe, tsecr: 3 });
    expect(decodeTimestamps({ kind: 8, data: new Uint8Array(6) })).toBeNull();
    expect(decodeMss({ kind: 2, data: new Uint8Array(3) })).toBeNull();
    expect(decodeMss(windowScaleOption(2))).toBeNull();
    expect(decodeWindowScale(mssOption(1))).toBeNull();
  });

  test('experimental options carry an ExID', () => {
    const o = experimentalOption(253, 0x4347, hex('11 01 0102030405060708'));
    expect(emitTcpOptions([o])).toEqual(hex('fd0e 4347 1101 0102 0304 0506 0708 0000'));
    expect(experimentId(o)).toBe(0x4347);
    expect(experimentId(mssOption(1))).toBeNull();
  });

  test('options that cannot be encoded at all throw (caller bug)', () => {
    expect(() => emitTcpOptions([{ kind: 9, data: new Uint8Array(254) }])).toThrow(RangeError);
    expect(() => emitTcpOptions([{ kind: 256, data: new Uint8Array(0) }])).toThrow(RangeError);
  });
});

describe('properties', () => {
  test('parse(emit(options)) = options (+ the padding EOL)', () => {
    fc.assert(
      fc.property(fc.oneof(optionListArb, fc.array(tcpOptionArb, { maxLength: 8 })), (opts) => {
        const bytes = emitTcpOptions(opts);
        expect(bytes.length % 4).toBe(0);
        expect(unwrap(parseTcpOptions(bytes, 0, bytes.length))).toEqual(expectedAfterRoundTrip(opts));
      }),
    );
  });

  test('findOption agrees with parseTcpOptions', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 44 }), fc.integer({ min: 2, max: 255 }), (bytes, kind) => {
        const parsed = parseTcpOptions(bytes, 0, bytes.length);
        const at = findOption(bytes, 0, bytes.length, kind);
        if (!parsed.ok) {
          // Malformed space: found only if the option comes before the damage.
          expect(at === OPTION_MALFORMED || at >= 0).toBe(true);
          return;
        }
        const first = parsed.value.find((o) => o.kind === kind);
        if (first === undefined) expect(at).toBe(OPTION_ABSENT);
        else expect(bytes.subarray(at + 2, at + bytes[at + 1]!)).toEqual(first.data);
      }),
    );
  });
});
