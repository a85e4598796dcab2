// Whole IP+TCP packets: a small Repr parsed from and emitted to bytes (for packets we originate
// and for tests), and the rewrite the engines apply on the per-packet path (new options and/or
// payload, everything else in the IP header kept byte-for-byte).
import type { Result } from '../result';
import { ok, err } from '../result';
import { read16, write16, write32 } from './bytes';
import {
  checksumAdjust,
  checksumAdjustAt,
  ipv4HeaderChecksum,
  tcpChecksum,
  tcpChecksumWithPayloadSum,
  verifyIpv4HeaderChecksum,
  verifyTcpChecksum,
} from './checksum';
import type { WireError } from './errors';
import { wireError } from './errors';
import type { IpView } from './ip';
import { IP_PROTOCOL, parseIp } from './ip';
import type { TcpView } from './tcp';
import { TCP_HEADER_MIN, TCP_OPTIONS_MAX, parseTcp } from './tcp';
import type { TcpOption } from './tcp-options';
import { TCP_OPTION, emitTcpOptions, findOption, parseTcpOptions, tcpOptionsLength } from './tcp-options';

export interface IpRepr {
  readonly version: 4 | 6;
  /** 4 or 16 bytes, matching version. */
  readonly src: Uint8Array;
  readonly dst: Uint8Array;
  /** TTL / hop limit. */
  readonly ttl: number;
  /** v4 TOS / v6 traffic class, ECN bits included (DSCP << 2 | ECN). */
  readonly tos: number;
  /** v4 identification (0 for v6). */
  readonly id: number;
  /** v4 DF (false for v6). */
  readonly dontFragment: boolean;
  /** v6 flow label (0 for v4). */
  readonly flowLabel: number;
}

export interface TcpRepr {
  readonly srcPort: number;
  readonly dstPort: number;
  readonly seq: number;
  readonly ack: number;
  /** Byte 13 flags (TCP_FLAGS). */
  readonly flags: number;
  readonly window: number;
  readonly urgent: number;
  /** In wire order, NOP/EOL included; emit pads with EOL to a multiple of 4. */
  readonly options: readonly TcpOption[];
  readonly payload: Uint8Array;
}

export interface IpTcpRepr {
  readonly ip: IpRepr;
  readonly tcp: TcpRepr;
}

const IPV4_HEADER = 20;
const IPV6_HEADER = 40;
const MAX_LENGTH = 0xffff;

/**
 * Parses a bare IP packet carrying a complete (unfragmented) TCP segment. Addresses, option data
 * and payload are views into `bytes`. IPv4 options and IPv6 extension headers are skipped, not
 * represented; bytes past the IP total length are ignored. Checksums are verified unless
 * `verifyChecksums` is false (captures taken with checksum offload carry wrong ones).
 */
export function parseIpTcp(bytes: Uint8Array, options: { verifyChecksums?: boolean } = {}): Result<IpTcpRepr, WireError> {
  const ipr = parseIp(bytes, 0);
  if (!ipr.ok) return ipr;
  const ip = ipr.value;
  const layer = ip.version === 4 ? 'ipv4' : 'ipv6';
  if (ip.isFragment) return err(wireError(layer, 'fragment', `fragment at offset ${ip.fragmentOffset}`));
  if (ip.protocol !== IP_PROTOCOL.TCP) return err(wireError(layer, 'not-tcp', `protocol ${ip.protocol}`));
  const tcpr = parseTcp(bytes, ip.payloadOffset, ip.payloadLength);
  if (!tcpr.ok) return tcpr;
  const tcp = tcpr.value;
  const opts = parseTcpOptions(bytes, tcp.optionsStart, tcp.optionsEnd);
  if (!opts.ok) return opts;
  if (options.verifyChecksums !== false) {
    if (ip.version === 4 && !verifyIpv4HeaderChecksum(bytes, 0, ip.headerLength)) {
      return err(wireError('ipv4', 'bad-checksum', 'IPv4 header checksum', { offset: 10 }));
    }
    if (!verifyTcpChecksum(ip, bytes, tcp.offset, tcp.length)) {
      return err(wireError('tcp', 'bad-checksum', 'TCP checksum', { offset: tcp.offset + 16 }));
    }
  }
  return ok({
    ip: {
      version: ip.version,
      src: ip.src,
      dst: ip.dst,
      ttl: ip.ttl,
      tos: ip.tos,
      id: ip.version === 4 ? ip.id : 0,
      dontFragment: ip.dontFragment,
      flowLabel: ip.flowLabel,
    },
    tcp: {
      srcPort: tcp.srcPort,
      dstPort: tcp.dstPort,
      seq: tcp.seq,
      ack: tcp.ack,
      flags: tcp.flags,
      window: tcp.window,
      urgent: tcp.urgent,
      options: opts.value,
      payload: tcp.payload,
    },
  });
}

/** Emits an IP packet (no IPv4 options, no IPv6 extension headers) with lengths and checksums set. */
export function emitIpTcp(repr: IpTcpRepr): Result<Uint8Array, WireError> {
  const { ip, tcp } = repr;
  const addrLen = ip.version === 4 ? 4 : 16;
  const layer = ip.version === 4 ? 'ipv4' : 'ipv6';
  if (ip.src.length !== addrLen || ip.dst.length !== addrLen) {
    return err(wireError(layer, 'bad-address', `IPv${ip.version} addresses must be ${addrLen} bytes`));
  }
  const rawOptions = tcpOptionsLength(tcp.options);
  if (rawOptions > TCP_OPTIONS_MAX) {
    return err(wireError('tcp-options', 'bad-option', `${rawOptions} option bytes > ${TCP_OPTIONS_MAX}`));
  }
  const optionBytes = emitTcpOptions(tcp.options);
  const ipHeader = ip.version === 4 ? IPV4_HEADER : IPV6_HEADER;
  const tcpLength = TCP_HEADER_MIN + optionBytes.length + tcp.payload.length;
  const total = ipHeader + tcpLength;
  if ((ip.version === 4 ? total : tcpLength) > MAX_LENGTH) {
    return err(wireError(layer, 'bad-length', `packet of ${total} bytes is too long`));
  }
  const out = new Uint8Array(total);
  if (ip.version === 4) {
    out[0] = 0x45;
    out[1] = ip.tos;
    write16(out, 2, total);
    write16(out, 4, ip.id);
    write16(out, 6, ip.dontFragment ? 0x4000 : 0);
    out[8] = ip.ttl;
    out[9] = IP_PROTOCOL.TCP;
    out.set(ip.src, 12);
    out.set(ip.dst, 16);
    write16(out, 10, ipv4HeaderChecksum(out, 0, IPV4_HEADER));
  } else {
    write32(out, 0, ((6 << 28) | ((ip.tos & 0xff) << 20) | (ip.flowLabel & 0xfffff)) >>> 0);
    write16(out, 4, tcpLength);
    out[6] = IP_PROTOCOL.TCP;
    out[7] = ip.ttl;
    out.set(ip.src, 8);
    out.set(ip.dst, 24);
  }
  const t = ipHeader;
  write16(out, t, tcp.srcPort);
  write16(out, t + 2, tcp.dstPort);
  write32(out, t + 4, tcp.seq);
  write32(out, t + 8, tcp.ack);
  out[t + 12] = ((TCP_HEADER_MIN + optionBytes.length) / 4) << 4;
  out[t + 13] = tcp.flags;
  write16(out, t + 14, tcp.window);
  write16(out, t + 18, tcp.urgent);
  out.set(optionBytes, t + TCP_HEADER_MIN);
  out.set(tcp.payload, t + TCP_HEADER_MIN + optionBytes.length);
  writeTcpChecksum(out, ip.version, t, tcpLength);
  return ok(out);
}

/** Checksum for a freshly emitted packet whose IP header starts at 0 (addresses at fixed offsets). */
function writeTcpChecksum(out: Uint8Array, version: 4 | 6, tcpOffset: number, tcpLength: number): void {
  const pseudo = version === 4
    ? { bytes: out, version, srcOffset: 12, pseudoDstOffset: 16 }
    : { bytes: out, version, srcOffset: 8, pseudoDstOffset: 24 };
  write16(out, tcpOffset + 16, tcpChecksum(pseudo, out, tcpOffset, tcpLength));
}

export interface TcpChange {
  /** New option bytes, already padded to a multiple of 4 (emitTcpOptions does that); <= 40. */
  readonly options?: Uint8Array;
  /** New payload. */
  readonly payload?: Uint8Array;
}

/**
 * Builds a new IP packet from `packet` (which `ip` and `tcp` view; it may be a whole frame): the
 * IP header, IPv4 options and IPv6 extension headers copied byte-for-byte except the length
 * field; the TCP header with the new options (data offset updated) and payload; the TCP checksum
 * recomputed and the IPv4 header checksum updated incrementally (RFC 1624, so a header that
 * arrived with a bad checksum still has one). Link padding is dropped. Errors for fragments,
 * IPv6 AH (its ICV would no longer verify), options not a multiple of 4 or over 40 bytes, and
 * results over 65535 bytes.
 */
export function rewriteTcp(packet: Uint8Array, ip: IpView, tcp: TcpView, change: TcpChange): Result<Uint8Array, WireError> {
  const options = change.options ?? packet.subarray(tcp.optionsStart, tcp.optionsEnd);
  const payload = change.payload ?? packet.subarray(tcp.payloadStart, tcp.payloadEnd);
  const begun = beginTcpRewrite(packet, ip, tcp, options.length, payload.length);
  if (!begun.ok) return begun;
  const out = begun.value;
  const optionsAt = ip.headerLength + TCP_HEADER_MIN;
  out.set(options, optionsAt);
  out.set(payload, optionsAt + options.length);
  finishTcpRewrite(out, ip);
  return ok(out);
}

/**
 * The first half of a rewrite, for callers that write the new options and payload straight into
 * place: a new packet of the right size (from `alloc`) holding the IP header as rewriteTcp
 * leaves it and the TCP fixed header with the data offset set for `optionsLength` option bytes
 * and a zero checksum, followed by the first `keptOptions` bytes of the old options (copied with
 * the headers in one go). The caller fills the rest of the options and the payload right after
 * them, then calls finishTcpRewrite. Errors as rewriteTcp.
 */
export function beginTcpRewrite(
  packet: Uint8Array,
  ip: IpView,
  tcp: TcpView,
  optionsLength: number,
  payloadLength: number,
  alloc: (length: number) => Uint8Array = (n) => new Uint8Array(n),
  keptOptions = 0,
): Result<Uint8Array, WireError> {
  if (keptOptions < 0 || keptOptions > optionsLength || tcp.optionsStart + keptOptions > tcp.optionsEnd) {
    return err(wireError('tcp-options', 'bad-option', `cannot keep ${keptOptions} of ${tcp.optionsEnd - tcp.optionsStart} option bytes in ${optionsLength}`));
  }
  const layer = ip.version === 4 ? 'ipv4' : 'ipv6';
  if (ip.bytes !== packet || tcp.bytes !== packet || tcp.offset !== ip.payloadOffset) {
    return err(wireError('tcp', 'unsupported', 'ip/tcp views do not view this packet'));
  }
  if (ip.isFragment) return err(wireError(layer, 'fragment', 'cannot rewrite a fragment'));
  if (ip.hasAuthHeader) return err(wireError(layer, 'unsupported', 'cannot rewrite under an AH header'));
  if (optionsLength % 4 !== 0 || optionsLength > TCP_OPTIONS_MAX) {
    return err(wireError('tcp-options', 'bad-option', `${optionsLength} option bytes: must be a multiple of 4 and <= ${TCP_OPTIONS_MAX}`));
  }
  const ipHeader = ip.headerLength;
  const tcpHeader = TCP_HEADER_MIN + optionsLength;
  const total = ipHeader + tcpHeader + payloadLength;
  if ((ip.version === 4 ? total : total - IPV6_HEADER) > MAX_LENGTH) {
    return err(wireError(layer, 'bad-length', `rewritten packet of ${total} bytes is too long`));
  }
  const out = alloc(total);
  // The IP header, the TCP header and the kept options are contiguous in both packets.
  copyBytes(packet, ip.offset, out, 0, ipHeader + TCP_HEADER_MIN + keptOptions);
  out[ipHeader + 12] = ((tcpHeader / 4) << 4) | (packet[tcp.offset + 12]! & 0x0f);
  out[ipHeader + 16] = 0;
  out[ipHeader + 17] = 0;
  if (ip.version === 4) {
    write16(out, 2, total);
    write16(out, 10, checksumAdjust(read16(packet, ip.offset + 10), ip.totalLength, total));
  } else {
    write16(out, 4, total - IPV6_HEADER);
  }
  return ok(out);
}

/**
 * Sets the TCP checksum of a packet begun with beginTcpRewrite from `ip` (the view of the packet
 * it was rewritten from, whose pseudo-header addresses it shares), once everything else is
 * written. With `payloadSum`, the payload's one's-complement sum (xorWithSum) is known and only
 * the header is read.
 */
export function finishTcpRewrite(out: Uint8Array, ip: IpView, payloadSum?: number): void {
  const tcpStart = ip.headerLength;
  const tcpLength = out.length - tcpStart;
  const headerLength = (out[tcpStart + 12]! >>> 4) * 4;
  const checksum = payloadSum === undefined
    ? tcpChecksum(ip, out, tcpStart, tcpLength)
    : tcpChecksumWithPayloadSum(ip, out, tcpStart, headerLength, tcpLength - headerLength, payloadSum);
  write16(out, tcpStart + 16, checksum);
}

/** Copies n bytes; short runs (fixed headers) by hand, which beats creating a view for set(). */
export function copyBytes(src: Uint8Array, from: number, dst: Uint8Array, to: number, n: number): void {
  if (n > 24) {
    dst.set(src.subarray(from, from + n), to);
    return;
  }
  for (let i = 0; i < n; i++) dst[to + i] = src[from + i]!;
}

/**
 * Recomputes the TCP checksum in place (after editing the segment). `tcp.checksum` in the view
 * keeps the old value: views are snapshots.
 */
export function recomputeTcpChecksum(packet: Uint8Array, ip: IpView, tcp: TcpView): void {
  write16(packet, tcp.offset + 16, tcpChecksum(ip, packet, tcp.offset, tcp.length));
}

/**
 * Sets the value of the segment's MSS option in place and fixes the TCP checksum incrementally.
 * Returns false (and changes nothing) when there is no well-formed MSS option.
 */
export function updateMssInPlace(packet: Uint8Array, tcp: TcpView, mss: number): boolean {
  const at = findOption(packet, tcp.optionsStart, tcp.optionsEnd, TCP_OPTION.MSS);
  if (at < 0 || packet[at + 1] !== 4) return false;
  const old = read16(packet, at + 2);
  write16(packet, at + 2, mss);
  const sumAt = tcp.offset + 16;
  write16(packet, sumAt, checksumAdjustAt(read16(packet, sumAt), at + 2 - tcp.offset, old, mss & 0xffff));
  return true;
}
