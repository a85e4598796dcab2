import { timingSafeEqual } from 'node:crypto';

/**
 * True when a and b hold the same bytes, in time independent of where they differ (MACs,
 * confirm values). Lengths are not secret: different lengths return false at once.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (!(a instanceof Uint8Array) || !(b instanceof Uint8Array)) {
    throw new TypeError('constantTimeEqual: both arguments must be Uint8Array');
  }
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

/** Overwrites key material with zeros on discard (rule 5: keys are zeroed, not left to GC). */
export function zeroize(...buffers: (Uint8Array | null | undefined)[]): void {
  for (const buffer of buffers) buffer?.fill(0);
}

/**
 * constantTimeEqual for `length` bytes at a[aAt] and b[bAt], without views: the per-segment tag
 * check. Every byte is compared whatever differs (callers ensure the ranges are inside).
 */
export function constantTimeEqualAt(a: Uint8Array, aAt: number, b: Uint8Array, bAt: number, length: number): boolean {
  let diff = 0;
  for (let i = 0; i < length; i++) diff |= a[aAt + i]! ^ b[bAt + i]!;
  return diff === 0;
}
