// Randomness is passed into the pure core as a RandomSource, never drawn there.
import { randomFillSync } from 'node:crypto';
import { keystreamXor } from './keystream';
import { nobleBackend } from './noble-backend';

export type RandomSource = (n: number) => Uint8Array;

function checkCount(op: string, n: number): void {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`${op}: n must be a non-negative integer, got ${n}`);
}

/** The operating system's CSPRNG. Returns a fresh array of n bytes. */
export const systemRandom: RandomSource = (n) => {
  checkCount('systemRandom', n);
  const bytes = new Uint8Array(n);
  if (n > 0) randomFillSync(bytes);
  return bytes;
};

const SEED_DOMAIN = 'ciphergate/1 seeded random:';

/**
 * A deterministic source for tests and simulation: the CG1 keystream of key = SHA-256(domain ||
 * type || seed), read from offset 0 on. The noble backend makes it the same on every platform.
 * Seeds 1 and '1' give different streams. Never use it for real keys.
 */
export function seededRandom(seed: number | string): RandomSource {
  if (typeof seed !== 'number' && typeof seed !== 'string') {
    throw new TypeError(`seededRandom: seed must be a number or string, got ${typeof seed}`);
  }
  const key = nobleBackend.sha256(new TextEncoder().encode(`${SEED_DOMAIN}${typeof seed}:${String(seed)}`));
  let position = 0;
  return (n) => {
    checkCount('seededRandom', n);
    const bytes = keystreamXor(nobleBackend, key, position, new Uint8Array(n));
    position += n;
    return bytes;
  };
}
