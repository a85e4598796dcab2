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
