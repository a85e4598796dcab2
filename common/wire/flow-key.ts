// Flow keys for Map lookups on the per-packet path. A key is a short string of 16-bit code units
// (protocol, source address words, destination address words, ports): built straight from the
// packet bytes with one String.fromCharCode call, no hex formatting, no intermediate arrays.
// v4 keys are 7 code units and v6 keys 19, so the two families cannot collide.
// Keys are opaque: compare them, never display them (use ipAddressToString for that).
import type { IpView } from './ip';

function w(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

function build(
  protocol: number,
  a: Uint8Array,
  ao: number,
  b: Uint8Array,
  bo: number,
  addrLen: number,
  aPort: number,
  bPort: number,
): string {
  if (addrLen === 4) {
    return String.fromCharCode(protocol, w(a, ao), w(a, ao + 2), w(b, bo), w(b, bo + 2), aPort & 0xffff, bPort & 0xffff);
  }
  return String.fromCharCode(
    protocol,
    w(a, ao), w(a, ao + 2), w(a, ao + 4), w(a, ao + 6), w(a, ao + 8), w(a, ao + 10), w(a, ao + 12), w(a, ao + 14),
    w(b, bo), w(b, bo + 2), w(b, bo + 4), w(b, bo + 6), w(b, bo + 8), w(b, bo + 10), w(b, bo + 12), w(b, bo + 14),
    aPort & 0xffff, bPort & 0xffff,
  );
}

/** True when (a, aPort) sorts before or equal to (b, bPort): addresses bytewise, then ports. */
function firstIsLower(a: Uint8Array, ao: number, b: Uint8Array, bo: number, addrLen: number, aPort: number, bPort: number): boolean {
  for (let i = 0; i < addrLen; i++) {
    const x = a[ao + i]!;
    const y = b[bo + i]!;
    if (x !== y) return x < y;
  }
  return aPort <= bPort;
}

/** Directional key: (protocol, src, dst, srcPort, dstPort). */
export function flowKey(ip: IpView, srcPort: number, dstPort: number): string {
  return build(ip.protocol, ip.bytes, ip.srcOffset, ip.bytes, ip.dstOffset, ip.addressLength, srcPort, dstPort);
}

/**
 * True when this packet's source endpoint is the "first" side of the canonical key, i.e. the
 * packet travels in the canonical direction. Both directions of a flow give opposite answers
 * (except a flow from an endpoint to itself, where both are true).
 */
export function srcIsFirst(ip: IpView, srcPort: number, dstPort: number): boolean {
  return firstIsLower(ip.bytes, ip.srcOffset, ip.bytes, ip.dstOffset, ip.addressLength, srcPort, dstPort);
}

/** Direction-free key: both directions of a flow give the same string. Pair with srcIsFirst. */
export function canonicalFlowKey(ip: IpView, srcPort: number, dstPort: number): string {
  const b = ip.bytes;
  const n = ip.addressLength;
  return firstIsLower(b, ip.srcOffset, b, ip.dstOffset, n, srcPort, dstPort)
    ? build(ip.protocol, b, ip.srcOffset, b, ip.dstOffset, n, srcPort, dstPort)
    : build(ip.protocol, b, ip.dstOffset, b, ip.srcOffset, n, dstPort, srcPort);
}

/**
 * The same keys from addresses held elsewhere (config, a key-delivery HELLO): equals
 * flowKey / canonicalFlowKey of a packet with these fields. Addresses must both be 4 or 16 bytes.
 */
export function flowKeyFromTuple(
  src: Uint8Array,
  dst: Uint8Array,
  srcPort: number,
  dstPort: number,
  options: { protocol?: number; canonical?: boolean } = {},
): string {
  const protocol = options.protocol ?? 6;
  const n = src.length;
  if (n !== dst.length || (n !== 4 && n !== 16)) {
    throw new RangeError(`flow key addresses must both be 4 or 16 bytes (got ${src.length} and ${dst.length})`);
  }
  if (options.canonical === true && !firstIsLower(src, 0, dst, 0, n, srcPort, dstPort)) {
    return build(protocol, dst, 0, src, 0, n, dstPort, srcPort);
  }
  return build(protocol, src, 0, dst, 0, n, srcPort, dstPort);
}
