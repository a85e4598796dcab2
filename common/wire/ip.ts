// IPv4 and IPv6 headers as one checked view. parseIp validates once; after that every field is a
// plain number and no accessor can fail. Addresses are read lazily (src/dst build subarray views
// on access) so the per-packet parse allocates only the view itself.
import type { Result } from '../result';
import { ok, err } from '../result';
import { read16, read32 } from './bytes';
import type { WireError } from './errors';
import { wireError } from './errors';

/** IP protocol / IPv6 next-header numbers we name. */
export const IP_PROTOCOL = {
  HOP_BY_HOP: 0,
  ICMP: 1,
  TCP: 6,
  UDP: 17,
  ROUTING: 43,
  FRAGMENT: 44,
  ESP: 50,
  AH: 51,
  ICMPV6: 58,
  NO_NEXT_HEADER: 59,
  DESTINATION_OPTIONS: 60,
  MOBILITY: 135,
  HIP: 139,
  SHIM6: 140,
  EXPERIMENT_1: 253,
  EXPERIMENT_2: 254,
} as const;

const IPV4_MIN_HEADER = 20;
const IPV6_HEADER = 40;

export class IpView {
  /** @internal Built only by parseIp, after validation. */
  constructor(
    /** The buffer the view reads from (a frame or a bare packet). */
    readonly bytes: Uint8Array,
    /** Offset of the IP header in `bytes`. */
    readonly offset: number,
    readonly version: 4 | 6,
    /** v4: IHL * 4. v6: 40 + every extension header walked (the upper-layer header starts here). */
    readonly headerLength: number,
    /** From the header (v6: 40 + payload length). Bytes past it in the buffer are link padding. */
    readonly totalLength: number,
    /** Final upper-layer protocol. v6: after the extension chain; ESP (50) and No-Next-Header (59) end it. */
    readonly protocol: number,
    /** v4 TOS byte / v6 traffic class: DSCP << 2 | ECN. */
    readonly tos: number,
    /** v4 TTL / v6 hop limit. */
    readonly ttl: number,
    /** v4 identification; v6 fragment-header identification, or 0 without one. */
    readonly id: number,
    /** v4 DF bit; always false for v6. */
    readonly dontFragment: boolean,
    /** v6 flow label; 0 for v4. */
    readonly flowLabel: number,
    /** True for any fragment but an atomic one (offset 0 and no more fragments). */
    readonly isFragment: boolean,
    /** Fragment offset in bytes. */
    readonly fragmentOffset: number,
    readonly moreFragments: boolean,
    readonly srcOffset: number,
    readonly dstOffset: number,
    /**
     * Where the address for the TCP/UDP pseudo-header destination lives: the final destination of
     * an IPv6 routing header with segments left, otherwise dstOffset (RFC 8200 section 8.1).
     */
    readonly pseudoDstOffset: number,
    /** An IPv6 AH header was walked: rewriting the payload would break its ICV. */
    readonly hasAuthHeader: boolean,
  ) {}

  get addressLength(): 4 | 16 {
    return this.version === 4 ? 4 : 16;
  }
  get ecn(): number {
    return this.tos & 3;
  }
  get dscp(): number {
    return this.tos >>> 2;
  }
  get hopLimit(): number {
    return this.ttl;
  }
  /** Offset of the upper-layer (TCP) header. */
  get payloadOffset(): number {
    return this.offset + this.headerLength;
  }
  get payloadLength(): number {
    return this.totalLength - this.headerLength;
  }
  /** Offset one past the last byte of the IP packet. */
  get end(): number {
    return this.offset + this.totalLength;
  }
  get src(): Uint8Array {
    return this.bytes.subarray(this.srcOffset, this.srcOffset + this.addressLength);
  }
  get dst(): Uint8Array {
    return this.bytes.subarray(this.dstOffset, this.dstOffset + this.addressLength);
  }
}

/**
 * Parses the IP header at `offset`. `length` is how many bytes are available from there
 * (default: to the end of `bytes`). Never throws.
 */
export function parseIp(bytes: Uint8Array, offset = 0, length?: number): Result<IpView, WireError> {
  const room = bytes.length - offset;
  const available = length === undefined || length > room ? room : length;
  if (offset < 0 || available < 1) return err(wireError('ipv4', 'truncated', 'no IP header', { offset }));
  const version = bytes[offset]! >>> 4;
  if (version === 4) return parseIpv4(bytes, offset, available);
  if (version === 6) return parseIpv6(bytes, offset, available);
  return err(wireError('ipv4', 'bad-version', `IP version ${version}`, { offset }));
}

function parseIpv4(bytes: Uint8Array, o: number, available: number): Result<IpView, WireError> {
  if (available < IPV4_MIN_HEADER) {
    return err(wireError('ipv4', 'truncated', `${available} bytes, header needs ${IPV4_MIN_HEADER}`, { offset: o }));
  }
  const ihl = (bytes[o]! & 0x0f) * 4;
  if (ihl < IPV4_MIN_HEADER) return err(wireError('ipv4', 'bad-header-length', `IHL ${ihl / 4} < 5`, { offset: o }));
  if (ihl > available) return err(wireError('ipv4', 'truncated', `IHL ${ihl} bytes, ${available} available`, { offset: o }));
  const total = read16(bytes, o + 2);
  if (total < ihl) return err(wireError('ipv4', 'bad-length', `total length ${total} < header length ${ihl}`, { offset: o }));
  if (total > available) {
    return err(wireError('ipv4', 'truncated', `total length ${total}, ${available} bytes available`, { offset: o }));
  }
  const frag = read16(bytes, o + 6);
  const fragmentOffset = (frag & 0x1fff) * 8;
  const moreFragments = (frag & 0x2000) !== 0;
  return ok(
    new IpView(
      bytes, o, 4, ihl, total, bytes[o + 9]!, bytes[o + 1]!, bytes[o + 8]!, read16(bytes, o + 4),
      (frag & 0x4000) !== 0, 0, moreFragments || fragmentOffset !== 0, fragmentOffset, moreFragments,
      o + 12, o + 16, o + 16, false,
    ),
  );
}

function parseIpv6(bytes: Uint8Array, o: number, available: number): Result<IpView, WireError> {
  if (available < IPV6_HEADER) {
    return err(wireError('ipv6', 'truncated', `${available} bytes, header needs ${IPV6_HEADER}`, { offset: o }));
  }
  const word0 = read32(bytes, o);
  const payloadLength = read16(bytes, o + 4);
  let next = bytes[o + 6]!;
  if (payloadLength === 0 && next === IP_PROTOCOL.HOP_BY_HOP) {
    return err(wireError('ipv6', 'unsupported', 'jumbogram (payload length 0 with hop-by-hop)', { offset: o }));
  }
  const total = IPV6_HEADER + payloadLength;
  if (total > available) {
    return err(wireError('ipv6', 'truncated', `total length ${total}, ${available} bytes available`, { offset: o }));
  }
  const end = o + total;
  let pos = o + IPV6_HEADER;
  let pseudoDst = o + 24;
  let id = 0;
  let fragmentOffset = 0;
  let moreFragments = false;
  let hasFragmentHeader = false;
  let hasAuthHeader = false;
  walk: while (true) {
    switch (next) {
      case IP_PROTOCOL.HOP_BY_HOP:
      case IP_PROTOCOL.ROUTING:
      case IP_PROTOCOL.DESTINATION_OPTIONS:
      case IP_PROTOCOL.MOBILITY:
      case IP_PROTOCOL.HIP:
      case IP_PROTOCOL.SHIM6:
      case IP_PROTOCOL.EXPERIMENT_1:
      case IP_PROTOCOL.EXPERIMENT_2: {
        if (next === IP_PROTOCOL.HOP_BY_HOP && pos !== o + IPV6_HEADER) {
          return err(wireError('ipv6', 'bad-extension', 'hop-by-hop header not first', { offset: pos }));
        }
        if (pos + 8 > end) return err(extOverrun(next, pos, end));
        const len = (bytes[pos + 1]! + 1) * 8;
        if (pos + len > end) return err(extOverrun(next, pos, end));
        if (next === IP_PROTOCOL.ROUTING && bytes[pos + 3]! > 0) {
          const r = finalDestination(bytes, pos, len);
          if (typeof r !== 'number') return err(r);
          pseudoDst = r;
        }
        next = bytes[pos]!;
        pos += len;
        break;
      }
      case IP_PROTOCOL.FRAGMENT: {
        if (pos + 8 > end) return err(extOverrun(next, pos, end));
        const fo = read16(bytes, pos + 2);
        hasFragmentHeader = true;
        fragmentOffset = fo & 0xfff8;
        moreFragments = (fo & 1) !== 0;
        id = read32(bytes, pos + 4);
        next = bytes[pos]!;
        pos += 8;
        // A later fragment holds only the middle of the original payload: nothing more to walk.
        if (fragmentOffset !== 0) break walk;
        break;
      }
      case IP_PROTOCOL.AH: {
        if (pos + 8 > end) return err(extOverrun(next, pos, end));
        const len = (bytes[pos + 1]! + 2) * 4;
        if (pos + len > end) return err(extOverrun(next, pos, end));
        hasAuthHeader = true;
        next = bytes[pos]!;
        pos += len;
        break;
      }
      default:
        break walk;
    }
  }
  const isFragment = hasFragmentHeader && (fragmentOffset !== 0 || moreFragments);
  return ok(
    new IpView(
      bytes, o, 6, pos - o, total, next, (word0 >>> 20) & 0xff, bytes[o + 7]!, id, false, word0 & 0xfffff,
      isFragment, fragmentOffset, moreFragments, o + 8, o + 24, pseudoDst, hasAuthHeader,
    ),
  );
}

function extOverrun(header: number, pos: number, end: number): WireError {
  return wireError('ipv6', 'bad-extension', `extension header ${header} overruns the payload (ends at ${end})`, {
    offset: pos,
  });
}

/** Offset of the final destination named by a routing header with segments left > 0. */
function finalDestination(bytes: Uint8Array, pos: number, len: number): number | WireError {
  const type = bytes[pos + 2]!;
  const addresses = Math.floor((len - 8) / 16);
  switch (type) {
    case 0: // deprecated source route: the last listed address
      if (addresses < 1) break;
      return pos + 8 + 16 * (addresses - 1);
    case 2: // Mobile IPv6: the home address
    case 4: // Segment Routing: segment list[0] is the last segment
      if (addresses < 1) break;
      return pos + 8;
    default:
      return wireError('ipv6', 'unsupported', `routing header type ${type} with segments left`, { offset: pos });
  }
  return wireError('ipv6', 'bad-extension', `routing header type ${type} lists no address`, { offset: pos });
}
