import fc from 'fast-check';
import {
  DEFAULT_OPTION_CONFIG,
  Suite,
  TAG_OPTION_LEN,
  encodeRequestOption,
  encodeTagOption,
  findRequestOption,
  findTagOption,
  scanOptions,
  suiteBit,
} from '../../common/protocol/options';
import { connId, u8 } from './arbitraries';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const cat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(Buffer.concat(parts));
const NOP = Uint8Array.of(1);
const TIMESTAMPS = Uint8Array.of(8, 10, 0, 0, 0, 1, 0, 0, 0, 2);

describe('encryption-request option', () => {
  it('has the 14-byte layout kind|len|exid|verType|suites|connId', () => {
    const b = encodeRequestOption({ version: 1, suites: suiteBit(Suite.CG1), connId: 0x0102030405060708n });
    expect(hex(b)).toBe('fd0e4347' + '11' + '01' + '0102030405060708');
  });

  it('round-trips among other options, with the configured kind and ExID', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 15 }),
        u8,
        connId,
        fc.record({ kind: fc.integer({ min: 2, max: 255 }).filter((k) => k !== 8), exid: fc.integer({ min: 0, max: 0xffff }) }),
        fc.integer({ min: 0, max: 3 }),
        (version, suites, id, cfg, nops) => {
          const opt = encodeRequestOption({ version, suites, connId: id }, cfg);
          const area = cat(TIMESTAMPS, new Uint8Array(nops).fill(1), opt, Uint8Array.of(0, 0));
          const found = findRequestOption(area, cfg);
          expect(found).toEqual({ ok: true, value: { version, suites, connId: id, offset: 10 + nops, length: 14 } });
        },
      ),
    );
  });

  it('ignores kind-253 options with another ExID and options after EOL', () => {
    const foreign = Uint8Array.of(253, 14, 0x12, 0x34, ...new Array<number>(10).fill(0x11));
    const ours = encodeRequestOption({ version: 1, suites: 1, connId: 7n });
    const short = Uint8Array.of(253, 2); // too short to carry an ExID: not ours
    expect(findRequestOption(cat(foreign, short, NOP, ours))).toMatchObject({ ok: true, value: { connId: 7n, offset: 17 } });
    expect(findRequestOption(cat(foreign, Uint8Array.of(0), ours))).toEqual({ ok: true, value: null });
    expect(findRequestOption(ours, { kind: 254, exid: 0x4347 })).toEqual({ ok: true, value: null });
  });

  it.each([
    ['our ExID with length 15', Uint8Array.of(253, 15, 0x43, 0x47, ...new Array<number>(11).fill(0))],
    ['type nibble 2', Uint8Array.of(253, 14, 0x43, 0x47, 0x12, 1, 0, 0, 0, 0, 0, 0, 0, 1)],
    ['two request options', cat(encodeRequestOption({ version: 1, suites: 1, connId: 1n }), encodeRequestOption({ version: 1, suites: 1, connId: 2n }))],
    ['an option overrunning the area', Uint8Array.of(8, 10, 0, 0)],
    ['a length below 2', Uint8Array.of(3, 1, 0)],
    ['a kind without a length byte', Uint8Array.of(1, 3)],
  ])('is an error: %s', (_name, area) => {
    const r = findRequestOption(area);
    expect(r.ok).toBe(false);
  });
});

describe('tag option', () => {
  it('encodes with a zero tag and says where the tag goes', () => {
    const { bytes, tagOffset } = encodeTagOption();
    expect(hex(bytes)).toBe('fd104347' + '00'.repeat(12));
    expect(tagOffset).toBe(4);
    expect(bytes.length).toBe(TAG_OPTION_LEN);
  });

  it('is found with its tag and the offset of the tag bytes', () => {
    const { bytes } = encodeTagOption();
    bytes.set(Uint8Array.from({ length: 12 }, (_, i) => i + 1), 4);
    const area = cat(NOP, NOP, TIMESTAMPS, bytes);
    const r = findTagOption(area);
    expect(r).toEqual({ ok: true, value: { tag: bytes.slice(4), offset: 12, length: 16, tagOffset: 16 } });
  });

  it('request and tag can both be reported by one scan; a second tag is an error', () => {
    const req = encodeRequestOption({ version: 1, suites: 1, connId: 9n });
    const tag = encodeTagOption().bytes;
    const both = scanOptions(cat(req, tag));
    expect(both.ok && both.value.request?.connId).toBe(9n);
    expect(both.ok && both.value.tag?.offset).toBe(14);
    expect(scanOptions(cat(tag, tag)).ok).toBe(false);
  });

  it('defaults are kind 253 and ExID 0x4347', () => {
    expect(DEFAULT_OPTION_CONFIG).toEqual({ kind: 253, exid: 0x4347 });
  });
});

describe('option scanning on hostile bytes', () => {
  it('never throws and returns a Result', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (area) => {
        const r = scanOptions(area);
        expect(typeof r.ok).toBe('boolean');
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on areas built from our options with mutated bytes', () => {
    const base = cat(encodeRequestOption({ version: 1, suites: 1, connId: 5n }), encodeTagOption().bytes, TIMESTAMPS);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: base.length - 1 }), u8, fc.integer({ min: 0, max: base.length }), (i, v, cut) => {
        const area = base.slice(0, cut);
        if (i < area.length) area[i] = v;
        expect(typeof scanOptions(area).ok).toBe('boolean');
      }),
      { numRuns: 2000 },
    );
  });
});
