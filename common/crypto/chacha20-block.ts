// The RFC 8439 section 2.3 ChaCha20 block function, for the one block @noble/ciphers refuses:
// its chacha20 throws "counter overflow" for block counter 2^32-1, which the CG1 keystream uses
// (stream offsets [(2^32-1)*64, 2^38) and every later 2^38 bytes). Not a general cipher: one
// block, clarity over speed.

const SIGMA = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574];

function quarterRound(s: Uint32Array, a: number, b: number, c: number, d: number): void {
  // Uint32Array stores wrap additions to 32 bits; `>>>` keeps the rolls unsigned.
  s[a] = s[a]! + s[b]!; s[d] = rotl(s[d]! ^ s[a]!, 16);
  s[c] = s[c]! + s[d]!; s[b] = rotl(s[b]! ^ s[c]!, 12);
  s[a] = s[a]! + s[b]!; s[d] = rotl(s[d]! ^ s[a]!, 8);
  s[c] = s[c]! + s[d]!; s[b] = rotl(s[b]! ^ s[c]!, 7);
}

function rotl(x: number, n: number): number {
  return ((x << n) | (x >>> (32 - n))) >>> 0;
}

/**
 * Writes the 64-byte keystream block for (key, counter, nonce) into `out` and returns it.
 * key: 32 bytes, nonce: 12 bytes, counter: integer in [0, 2^32). Callers check sizes.
 */
export function chacha20Block(key: Uint8Array, nonce: Uint8Array, counter: number, out: Uint8Array = new Uint8Array(64)): Uint8Array {
  const kv = new DataView(key.buffer, key.byteOffset, 32);
  const nv = new DataView(nonce.buffer, nonce.byteOffset, 12);
  const initial = new Uint32Array(16);
  initial.set(SIGMA, 0);
  for (let i = 0; i < 8; i++) initial[4 + i] = kv.getUint32(4 * i, true);
  initial[12] = counter;
  for (let i = 0; i < 3; i++) initial[13 + i] = nv.getUint32(4 * i, true);
  const s = initial.slice();
  for (let i = 0; i < 10; i++) {
    quarterRound(s, 0, 4, 8, 12);
    quarterRound(s, 1, 5, 9, 13);
    quarterRound(s, 2, 6, 10, 14);
    quarterRound(s, 3, 7, 11, 15);
    quarterRound(s, 0, 5, 10, 15);
    quarterRound(s, 1, 6, 11, 12);
    quarterRound(s, 2, 7, 8, 13);
    quarterRound(s, 3, 4, 9, 14);
  }
  const ov = new DataView(out.buffer, out.byteOffset, 64);
  for (let i = 0; i < 16; i++) ov.setUint32(4 * i, (s[i]! + initial[i]!) >>> 0, true);
  initial.fill(0);
  s.fill(0);
  return out;
}
