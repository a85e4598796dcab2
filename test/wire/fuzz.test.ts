// Hostile input is normal input: nothing here may throw, every error is typed, and every view a
// parser hands out keeps its offsets inside the buffer.
import fc from 'fast-check';
import type { Result } from '../../common/result';
import type { WireError } from '../../common/wire/errors';
import type { FrameView } from '../../common/wire/frame';
import { parseFrame } from '../../common/wire/frame';
import { parseIp } from '../../common/wire/ip';
import { LINKTYPE, parseLink } from '../../common/wire/link';
import { emitIpTcp, parseIpTcp, rewriteTcp } from '../../common/wire/packet';
import { parseTcp } from '../../common/wire/tcp';
import { emitTcpOptions, parseTcpOptions, timestampsOption } from '../../common/wire/tcp-options';
import { ipTcpReprArb } from './arbitraries';
import {
  ETH_ARP,
  ETH_IPV4_FIRST_FRAGMENT,
  ETH_IPV4_SYN,
  ETH_IPV6_SYN,
  IPV4_ECN_SYN,
  IPV6_HBH_ATOMIC_FRAGMENT,
  IPV6_HBH_FRAGMENT,
  SLL2_IPV6_ACK,
  SLL_IPV4_SYNACK,
  VLAN_IPV4_SYN,
  hex,
  qinq,
} from './fixtures';

const LAYERS = new Set(['link', 'ipv4', 'ipv6', 'tcp', 'tcp-options', 'pcap']);
const KINDS = new Set([
  'truncated', 'bad-version', 'bad-header-length', 'bad-length', 'bad-option', 'bad-extension', 'bad-address',
  'bad-checksum', 'bad-magic', 'bad-record', 'unsupported', 'not-ip', 'not-tcp', 'fragment',
]);
const LINK_TYPES = Object.values(LINKTYPE);

function expectTyped<T>(r: Result<T, WireError>): void {
  if (r.ok) return;
  expect(LAYERS.has(r.error.layer)).toBe(true);
  expect(KINDS.has(r.error.kind)).toBe(true);
  expect(typeof r.error.detail).toBe('string');
}

/** Every offset of a successful parse lies inside the buffer, in order, and every getter works. */
function expectSane(bytes: Uint8Array, f: FrameView): void {
  const { link, ip, tcp } = f;
  expect(link.ipOffset).toBe(ip.offset);
  expect(ip.headerLength).toBeGreaterThanOrEqual(ip.version === 4 ? 20 : 40);
  expect(ip.end).toBeLessThanOrEqual(bytes.length);
  expect(ip.src).toHaveLength(ip.addressLength);
  expect(ip.dst).toHaveLength(ip.addressLength);
  expect(ip.pseudoDstOffset + ip.addressLength).toBeLessThanOrEqual(ip.end);
  expect(ip.ttl).toBeLessThan(256);
  expect(ip.ecn + 4 * ip.dscp).toBe(ip.tos);
  expect(tcp.offset).toBe(ip.payloadOffset);
  expect(tcp.payloadEnd).toBe(ip.end);
  expect(tcp.optionsStart).toBe(tcp.offset + 20);
  expect(tcp.optionsStart).toBeLessThanOrEqual(tcp.optionsEnd);
  expect(tcp.optionsEnd).toBe(tcp.payloadStart);
  expect(tcp.payloadStart).toBeLessThanOrEqual(tcp.payloadEnd);
  expect(tcp.seq).toBeGreaterThanOrEqual(0);
  expect(tcp.seq).toBeLessThan(2 ** 32);
  expect(tcp.ack).toBeLessThan(2 ** 32);
  expect(tcp.flags).toBeLessThan(256);
  expect(tcp.payload).toHaveLength(tcp.payloadLength);
  expect(tcp.optionBytes).toHaveLength(tcp.headerLength - 20);
  expectTyped(parseTcpOptions(bytes, tcp.optionsStart, tcp.optionsEnd));
}

const FRAMES: [number, Uint8Array][] = [
  [LINKTYPE.ETHERNET, ETH_IPV4_SYN],
  [LINKTYPE.ETHERNET, VLAN_IPV4_SYN],
  [LINKTYPE.ETHERNET, ETH_IPV6_SYN],
  [LINKTYPE.ETHERNET, ETH_IPV4_FIRST_FRAGMENT],
  [LINKTYPE.ETHERNET, ETH_ARP],
  [LINKTYPE.ETHERNET, qinq(IPV6_HBH_ATOMIC_FRAGMENT)],
  [LINKTYPE.LINUX_SLL, SLL_IPV4_SYNACK],
  [LINKTYPE.LINUX_SLL2, SLL2_IPV6_ACK],
  [LINKTYPE.RAW, IPV4_ECN_SYN],
  [LINKTYPE.IPV6, IPV6_HBH_FRAGMENT],
  [LINKTYPE.IPV6, IPV6_HBH_ATOMIC_FRAGMENT],
];

/** A valid frame: a fixture, or a generated packet under a random link header. */
const validFrameArb: fc.Arbitrary<[number, Uint8Array]> = fc.oneof(
  fc.constantFrom(...FRAMES),
  fc.tuple(ipTcpReprArb, fc.constantFrom<number>(LINKTYPE.RAW, LINKTYPE.ETHERNET, LINKTYPE.LINUX_SLL2)).map(([repr, lt]) => {
    const pkt = emitIpTcp(repr);
    if (!pkt.ok) throw new Error('arbitrary repr did not emit');
    const type = repr.ip.version === 4 ? '0800' : '86dd';
    const head = lt === LINKTYPE.ETHERNET ? hex(`020000000001 020000000002 8100 0005 ${type}`)
      : lt === LINKTYPE.LINUX_SLL2 ? hex(`${type} 0000 00000002 0001 00 06 0200000000010000`) : new Uint8Array(0);
    return [lt, new Uint8Array([...head, ...pkt.value])] as [number, Uint8Array];
  }),
);

type Mutation = { kind: 'truncate'; at: number } | { kind: 'flip'; at: number; bit: number } | { kind: 'set'; at: number; value: number }
  | { kind: 'insert'; at: number; value: number } | { kind: 'delete'; at: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant<'truncate'>('truncate'), at: fc.nat() }),
  fc.record({ kind: fc.constant<'flip'>('flip'), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ kind: fc.constant<'set'>('set'), at: fc.nat(), value: fc.constantFrom(0, 1, 0x0f, 0x40, 0x45, 0x60, 0x7f, 0x80, 0xff) }),
  fc.record({ kind: fc.constant<'insert'>('insert'), at: fc.nat(), value: fc.nat(255) }),
  fc.record({ kind: fc.constant<'delete'>('delete'), at: fc.nat() }),
);

function mutate(bytes: Uint8Array, muts: Mutation[]): Uint8Array {
  let b = bytes.slice();
  for (const m of muts) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    if (m.kind === 'truncate') b = b.slice(0, at);
    else if (m.kind === 'flip') b[at]! ^= 1 << m.bit;
    else if (m.kind === 'set') b[at] = m.value;
    else if (m.kind === 'insert') b = new Uint8Array([...b.subarray(0, at), m.value, ...b.subarray(at)]);
    else b = new Uint8Array([...b.subarray(0, at), ...b.subarray(at + 1)]);
  }
  return b;
}

function exerciseAll(linkType: number, bytes: Uint8Array, offset: number, length: number): void {
  for (const lt of [linkType, ...LINK_TYPES]) expectTyped(parseLink(lt, bytes));
  expectTyped(parseIp(bytes, offset, length));
  expectTyped(parseTcp(bytes, offset, length));
  expectTyped(parseTcpOptions(bytes, offset, offset + (length % 44)));
  expectTyped(parseIpTcp(bytes));
  expectTyped(parseIpTcp(bytes, { verifyChecksums: false }));
  const f = parseFrame(linkType, bytes);
  expectTyped(f);
  if (f.ok) {
    expectSane(bytes, f.value);
    const out = rewriteTcp(bytes, f.value.ip, f.value.tcp, { options: emitTcpOptions([timestampsOption(1, 2)]), payload: hex('00ff') });
    expectTyped(out);
    if (out.ok) {
      const again = parseFrame(LINKTYPE.RAW, out.value);
      expectTyped(again);
      if (again.ok) expectSane(out.value, again.value);
    }
  }
}

describe('parsers never throw', () => {
  test('arbitrary bytes, any link type, any offsets', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.constantFrom(...LINK_TYPES, 105), fc.integer({ min: -2, max: 210 }), fc.integer({ min: -2, max: 210 }),
        (bytes, lt, offset, length) => {
          exerciseAll(lt, bytes, offset, length);
        }),
      { numRuns: 1500 },
    );
  });

  test('arbitrary bytes behind a valid IPv4/IPv6 start', () => {
    fc.assert(
      fc.property(fc.constantFrom(0x45, 0x46, 0x4f, 0x60), fc.uint8Array({ minLength: 19, maxLength: 120 }), (first, rest) => {
        const bytes = new Uint8Array([first, ...rest]);
        exerciseAll(LINKTYPE.RAW, bytes, 0, bytes.length);
      }),
      { numRuns: 1500 },
    );
  });

  test('mutated valid frames: truncations, bit flips, byte sets, insertions, deletions', () => {
    fc.assert(
      fc.property(validFrameArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), fc.nat(80), ([lt, frame], muts, offset) => {
        const bytes = mutate(frame, muts);
        exerciseAll(lt, bytes, offset % (bytes.length + 1), bytes.length);
      }),
      { numRuns: 2500 },
    );
  });

  test('unmutated valid frames parse and stay sane', () => {
    fc.assert(
      fc.property(validFrameArb, ([lt, frame]) => {
        exerciseAll(lt, frame, 0, frame.length);
      }),
      { numRuns: 300 },
    );
  });
});
