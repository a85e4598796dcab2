// fast-check generators shared by the wire tests.
import fc from 'fast-check';
import type { IpTcpRepr } from '../../common/wire/packet';
import type { TcpOption } from '../../common/wire/tcp-options';
import { TCP_OPTION, mssOption, sackOption, tcpOptionsLength, timestampsOption } from '../../common/wire/tcp-options';

const u32 = fc.nat(0xffffffff);
const u16 = fc.nat(0xffff);
const u8 = fc.nat(0xff);

/** Options as parse produces them: NOP with empty data, TLVs with short data. */
export const tcpOptionArb: fc.Arbitrary<TcpOption> = fc.oneof(
  fc.constant<TcpOption>({ kind: TCP_OPTION.NOP, data: new Uint8Array(0) }),
  fc.record({ kind: fc.integer({ min: 2, max: 255 }), data: fc.uint8Array({ maxLength: 12 }) }),
  u16.map(mssOption),
  fc.tuple(u32, u32).map(([a, b]) => timestampsOption(a, b)),
  fc.array(fc.record({ left: u32, right: u32 }), { minLength: 1, maxLength: 2 }).map(sackOption),
);

/** An option list that fits in 40 bytes, optionally ending in an explicit EOL. */
export const optionListArb: fc.Arbitrary<TcpOption[]> = fc
  .tuple(fc.array(tcpOptionArb, { maxLength: 6 }), fc.boolean())
  .map(([opts, eol]) => (eol ? [...opts, { kind: TCP_OPTION.EOL, data: new Uint8Array(0) }] : opts))
  .filter((opts) => ((tcpOptionsLength(opts) + 3) & ~3) <= 40);

/** What parse(emit(opts)) must give: opts, plus the EOL that padding introduces. */
export function expectedAfterRoundTrip(opts: readonly TcpOption[]): TcpOption[] {
  const last = opts[opts.length - 1];
  if (tcpOptionsLength(opts) % 4 === 0 || last?.kind === TCP_OPTION.EOL) return [...opts];
  return [...opts, { kind: TCP_OPTION.EOL, data: new Uint8Array(0) }];
}

const ipv4Arb = fc.record({
  version: fc.constant<4>(4),
  src: fc.uint8Array({ minLength: 4, maxLength: 4 }),
  dst: fc.uint8Array({ minLength: 4, maxLength: 4 }),
  ttl: u8,
  tos: u8,
  id: u16,
  dontFragment: fc.boolean(),
  flowLabel: fc.constant(0),
});

const ipv6Arb = fc.record({
  version: fc.constant<6>(6),
  src: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  dst: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  ttl: u8,
  tos: u8,
  id: fc.constant(0),
  dontFragment: fc.constant(false),
  flowLabel: fc.nat(0xfffff),
});

/** Any IP+TCP packet the Repr can describe, options normalised as parse returns them. */
export const ipTcpReprArb: fc.Arbitrary<IpTcpRepr> = fc.record({
  ip: fc.oneof(ipv4Arb, ipv6Arb),
  tcp: fc.record({
    srcPort: u16,
    dstPort: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    urgent: u16,
    options: optionListArb.map(expectedAfterRoundTrip),
    payload: fc.uint8Array({ maxLength: 300 }),
  }),
});
