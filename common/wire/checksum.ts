// RFC 1071 internet checksum, the IPv4 header and TCP (pseudo-header) checksums, and RFC 1624
// incremental updates. Sums are carried unfolded in a JS number (exact to 2^53) and folded once.
import type { IpView } from './ip';

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** Below this many bytes a plain byte loop beats creating a Uint32Array view. */
const WIDE_THRESHOLD = 128;
/** Fold the 32-bit accumulator at least this often so it stays below 2^53. */
const WIDE_CHUNK = 1 << 20;

function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return sum;
}

function swap16(x: number): number {
  return ((x & 0xff) << 8) | (x >>> 8);
}

/**
 * One's-complement sum of [start, end) as 16-bit big-endian words (odd tail byte padded with
 * zero), folded to 16 bits but not complemented. `initial` is added in (chain ranges with it;
 * every range after the first must start an even number of bytes after the first).
 */
export function onesComplementSum(bytes: Uint8Array, start: number, end: number, initial = 0): number {
  const len = end - start;
  let sum = initial;
  if (len < WIDE_THRESHOLD) {
    let i = start;
    for (; i + 1 < end; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
    if (i < end) sum += bytes[i]! << 8;
    return fold(sum);
  }
  // Long ranges: sum aligned 32-bit words in host order. A 32-bit word is congruent to the sum of
  // its two 16-bit halves mod 0xffff, and the one's-complement sum of byte-swapped words is the
  // byte-swapped sum (RFC 1071 section 2), so one swap at the end fixes host order and parity.
  const lead = (4 - ((bytes.byteOffset + start) & 3)) & 3;
  for (let k = 0; k < lead; k++) sum += (k & 1) === 0 ? bytes[start + k]! << 8 : bytes[start + k]!;
  const words = (len - lead) >>> 2;
  const view = new Uint32Array(bytes.buffer, bytes.byteOffset + start + lead, words);
  let wide = 0;
  for (let k = 0; k < words; ) {
    const stop = Math.min(words, k + WIDE_CHUNK);
    // Four independent sums: one long chain of float additions waits on each add's latency.
    let a = 0;
    let b = 0;
    let c = 0;
    let d = 0;
    for (; k + 4 <= stop; k += 4) {
      a += view[k]!;
      b += view[k + 1]!;
      c += view[k + 2]!;
      d += view[k + 3]!;
    }
    for (; k < stop; k++) a += view[k]!;
    wide += fold(a + b + c + d);
  }
  wide = fold(wide);
  sum += LITTLE_ENDIAN !== ((lead & 1) === 1) ? swap16(wide) : wide;
  for (let i = start + lead + words * 4; i < end; i++) sum += ((i - start) & 1) === 0 ? bytes[i]! << 8 : bytes[i]!;
  return fold(sum);
}

/** RFC 1071 checksum of a range: the complement of its one's-complement sum. */
export function internetChecksum(bytes: Uint8Array, start = 0, end = bytes.length, initial = 0): number {
  return ~onesComplementSum(bytes, start, end, initial) & 0xffff;
}

/** The IPv4 header checksum the header should carry (its checksum field is taken as zero). */
export function ipv4HeaderChecksum(bytes: Uint8Array, offset: number, headerLength: number): number {
  const partial = onesComplementSum(bytes, offset, offset + 10);
  return internetChecksum(bytes, offset + 12, offset + headerLength, partial);
}

export function verifyIpv4HeaderChecksum(bytes: Uint8Array, offset: number, headerLength: number): boolean {
  return onesComplementSum(bytes, offset, offset + headerLength) === 0xffff;
}

/** What a pseudo-header needs from an IP header. */
export type PseudoHeaderSource = Pick<IpView, 'bytes' | 'version' | 'srcOffset' | 'pseudoDstOffset'>;

/** Unfolded-then-folded sum of the v4 or v6 pseudo-header for an upper-layer segment. */
export function pseudoHeaderSum(ip: PseudoHeaderSource, protocol: number, upperLength: number): number {
  const n = ip.version === 4 ? 4 : 16;
  let sum = onesComplementSum(ip.bytes, ip.srcOffset, ip.srcOffset + n);
  sum = onesComplementSum(ip.bytes, ip.pseudoDstOffset, ip.pseudoDstOffset + n, sum);
  // v4: zero, protocol, 16-bit length. v6: 32-bit length, 24 zero bits, next header.
  return fold(sum + protocol + (upperLength & 0xffff) + Math.floor(upperLength / 0x10000));
}

const TCP_CHECKSUM_FIELD = 16;

/**
 * XORs `n` bytes of `key` from keyAt into `out` from outAt, in place, and returns the
 * one's-complement sum of the result as 16-bit big-endian words starting at outAt (folded, not
 * complemented): a payload encrypted or decrypted and summed for its checksum in one pass.
 * `outWords` and `keyWords` are 32-bit views over the whole ArrayBuffers of `out` and `key`,
 * and the two regions must start at the same address mod 4 (so both are walked in aligned
 * words); the arrays must not share memory. Ranges must lie inside the arrays.
 */
export function xorWordsWithSum(out: Uint8Array, outWords: Int32Array, outAt: number, key: Uint8Array, keyWords: Int32Array, keyAt: number, n: number): number {
  const outAddress = out.byteOffset + outAt;
  const keyAddress = key.byteOffset + keyAt;
  if (((outAddress ^ keyAddress) & 3) !== 0) throw new RangeError('xorWordsWithSum: regions are not aligned alike');
  if (n <= 0) return 0;
  const lead = Math.min(n, (4 - (outAddress & 3)) & 3);
  const words = (n - lead) >>> 2;
  let sum = 0;
  let i = 0;
  for (; i < lead; i++) sum += xorByte(out, outAt + i, key[keyAt + i]!, i);
  // Each half sum stays below 2^31 for n < 2^17 (segments are below 2^16 bytes).
  let lo = 0;
  let hi = 0;
  const o = (outAddress + lead) >>> 2;
  const k = (keyAddress + lead) >>> 2;
  for (let w = 0; w < words; w++) {
    const x = outWords[o + w]! ^ keyWords[k + w]!;
    outWords[o + w] = x;
    lo += x & 0xffff;
    hi += x >>> 16;
  }
  // Host-order halves of words that start `lead` bytes in: as in onesComplementSum, one swap
  // (or none) puts the sum in network order.
  const wide = fold(lo + hi);
  sum += LITTLE_ENDIAN !== ((lead & 1) === 1) ? swap16(wide) : wide;
  for (i = lead + words * 4; i < n; i++) sum += xorByte(out, outAt + i, key[keyAt + i]!, i);
  return fold(sum);
}

/** out[at] ^= k; its contribution to a big-endian word sum at relative position `rel`. */
function xorByte(out: Uint8Array, at: number, k: number, rel: number): number {
  const x = out[at]! ^ k;
  out[at] = x;
  return (rel & 1) === 0 ? x << 8 : x;
}

/**
 * TCP checksum for the segment [tcpOffset, tcpOffset + tcpLength) of `bytes`, with its checksum
 * field taken as zero. The pseudo-header comes from `ip` (which may view another buffer holding
 * the same addresses, e.g. the packet a rewrite started from).
 */
export function tcpChecksum(ip: PseudoHeaderSource, bytes: Uint8Array, tcpOffset: number, tcpLength: number): number {
  let sum = pseudoHeaderSum(ip, 6, tcpLength);
  sum = onesComplementSum(bytes, tcpOffset, tcpOffset + TCP_CHECKSUM_FIELD, sum);
  return internetChecksum(bytes, tcpOffset + TCP_CHECKSUM_FIELD + 2, tcpOffset + tcpLength, sum);
}

/**
 * tcpChecksum when the payload's one's-complement sum is already known (xorWordsWithSum): only
 * the header [tcpOffset, tcpOffset + headerLength) is read. The header length is a multiple of
 * 4, so the payload's words line up with the segment's.
 */
export function tcpChecksumWithPayloadSum(ip: PseudoHeaderSource, bytes: Uint8Array, tcpOffset: number, headerLength: number, payloadLength: number, payloadSum: number): number {
  let sum = pseudoHeaderSum(ip, 6, headerLength + payloadLength);
  sum = onesComplementSum(bytes, tcpOffset, tcpOffset + TCP_CHECKSUM_FIELD, sum);
  sum = onesComplementSum(bytes, tcpOffset + TCP_CHECKSUM_FIELD + 2, tcpOffset + headerLength, sum);
  return ~fold(sum + payloadSum) & 0xffff;
}

export function verifyTcpChecksum(ip: PseudoHeaderSource, bytes: Uint8Array, tcpOffset: number, tcpLength: number): boolean {
  return onesComplementSum(bytes, tcpOffset, tcpOffset + tcpLength, pseudoHeaderSum(ip, 6, tcpLength)) === 0xffff;
}

/** RFC 1624 eqn. 3: the checksum after one 16-bit word of the covered data changes. */
export function checksumAdjust(oldChecksum: number, oldWord: number, newWord: number): number {
  return ~fold((~oldChecksum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff)) & 0xffff;
}

/** RFC 1624 for a 32-bit field (e.g. a sequence number) at an even offset. */
export function checksumAdjust32(oldChecksum: number, oldValue: number, newValue: number): number {
  const hi = checksumAdjust(oldChecksum, oldValue >>> 16, newValue >>> 16);
  return checksumAdjust(hi, oldValue & 0xffff, newValue & 0xffff);
}

/**
 * RFC 1624 for a 16-bit value that starts `relativeOffset` bytes into the checksummed data: at an
 * odd offset the value straddles two words and contributes byte-swapped.
 */
export function checksumAdjustAt(oldChecksum: number, relativeOffset: number, oldValue: number, newValue: number): number {
  return (relativeOffset & 1) === 0
    ? checksumAdjust(oldChecksum, oldValue, newValue)
    : checksumAdjust(oldChecksum, swap16(oldValue & 0xffff), swap16(newValue & 0xffff));
}
