// node:crypto and @noble must agree byte for byte on random inputs, including the edges the RFC
// vectors do not reach: block counter 2^32-1, empty inputs, long HMAC keys, info > 1024 bytes.
import fc from 'fast-check';
import { keystreamXor } from '../../common/crypto/keystream';
import { nobleBackend } from '../../common/crypto/noble-backend';
import { nodeBackend } from '../../common/crypto/node-backend';
import { toHex } from './hex';

const COUNTERS = 2 ** 32;
const key = fc.uint8Array({ minLength: 32, maxLength: 32 });
const nonce = fc.uint8Array({ minLength: 12, maxLength: 12 });
const bytes = (maxLength: number) => fc.uint8Array({ minLength: 0, maxLength });
const parts = fc.array(bytes(300), { maxLength: 5 });
// Counters anywhere, and crowded against the 2^32 limit where noble needs its fallback block.
const counter = fc.oneof(fc.integer({ min: 0, max: COUNTERS - 1 }), fc.integer({ min: COUNTERS - 20, max: COUNTERS - 1 }));

test('chacha20Xor agrees, up to and including block counter 2^32-1', () => {
  fc.assert(
    fc.property(key, nonce, counter, bytes(700), (k, n, c, input) => {
      const blocks = Math.ceil(input.length / 64);
      const start = Math.min(c, COUNTERS - blocks); // stay within the 2^32 limit
      const a = nodeBackend.chacha20Xor(k, n, start, input);
      const b = nobleBackend.chacha20Xor(k, n, start, input);
      expect(toHex(b)).toBe(toHex(a));
    }),
    { numRuns: 300 },
  );
});

test('chacha20Xor agrees on the single last block (counter 2^32-1) at every length', () => {
  const k = new Uint8Array(32).map((_, i) => i * 7 + 1);
  const n = new Uint8Array(12).map((_, i) => 0xf0 - i);
  for (let len = 0; len <= 64; len++) {
    const input = new Uint8Array(len).map((_, i) => i);
    expect(toHex(nobleBackend.chacha20Xor(k, n, COUNTERS - 1, input))).toBe(toHex(nodeBackend.chacha20Xor(k, n, COUNTERS - 1, input)));
  }
});

test('AEAD: seal agrees and each backend opens what the other sealed', () => {
  fc.assert(
    fc.property(key, nonce, bytes(400), bytes(100), (k, n, plaintext, aad) => {
      const a = nodeBackend.aeadSeal(k, n, plaintext, aad);
      const b = nobleBackend.aeadSeal(k, n, plaintext, aad);
      expect(toHex(b)).toBe(toHex(a));
      expect(toHex(nobleBackend.aeadOpen(k, n, a, aad)!)).toBe(toHex(plaintext));
      expect(toHex(nodeBackend.aeadOpen(k, n, b, aad)!)).toBe(toHex(plaintext));
    }),
    { numRuns: 200 },
  );
});

test('hmacSha256 agrees for any key length (empty, short, longer than the 64-byte block)', () => {
  fc.assert(
    fc.property(bytes(200), parts, (k, ps) => {
      expect(toHex(nobleBackend.hmacSha256(k, ...ps))).toBe(toHex(nodeBackend.hmacSha256(k, ...ps)));
      // parts are MACed as their concatenation
      expect(toHex(nodeBackend.hmacSha256(k, Buffer.concat(ps)))).toBe(toHex(nodeBackend.hmacSha256(k, ...ps)));
    }),
    { numRuns: 200 },
  );
});

test('a prepared HMAC key gives the same MAC as hmacSha256, truncated anywhere, on both backends', () => {
  // Parts up to 5 KiB cross the node backend's 4 KiB scratch (its streaming fallback).
  const bigParts = fc.array(fc.oneof(bytes(300), fc.integer({ min: 3000, max: 5000 }).map((n) => new Uint8Array(n).fill(n & 0xff))), { maxLength: 3 });
  fc.assert(
    fc.property(bytes(200), bigParts, fc.integer({ min: 1, max: 32 }), fc.nat(20), (k, ps, length, at) => {
      const want = toHex(nodeBackend.hmacSha256(k, ...ps).subarray(0, length));
      for (const backend of [nodeBackend, nobleBackend]) {
        const prepared = backend.hmacKey(k);
        const out = new Uint8Array(at + length + 3).fill(0xaa);
        prepared.macInto(ps, out, at, length);
        prepared.macInto(ps, out, at, length); // reusable
        expect(toHex(out.subarray(at, at + length))).toBe(want);
        expect(toHex(out.subarray(0, at))).toBe('aa'.repeat(at)); // nothing written outside
        expect(toHex(out.subarray(at + length))).toBe('aaaaaa');
        // The same message assembled in the key's scratch.
        const message = Buffer.concat(ps);
        if (message.length <= prepared.maxMessage) {
          prepared.scratch.set(message, prepared.messageStart);
          const inPlace = new Uint8Array(length);
          prepared.finishInto(message.length, inPlace, 0, length);
          expect(toHex(inPlace)).toBe(want);
        } else {
          expect(() => prepared.finishInto(message.length, new Uint8Array(32), 0, length)).toThrow(RangeError);
        }
      }
    }),
    { numRuns: 150 },
  );
});

test('a destroyed HMAC key refuses to MAC; bad output ranges are programming errors', () => {
  for (const backend of [nodeBackend, nobleBackend]) {
    const prepared = backend.hmacKey(new Uint8Array(32).fill(1));
    expect(() => prepared.macInto([], new Uint8Array(12), 1, 12)).toThrow(RangeError);
    expect(() => prepared.macInto([], new Uint8Array(40), 0, 33)).toThrow(RangeError);
    expect(prepared.destroyed).toBe(false);
    prepared.destroy();
    prepared.destroy();
    expect(prepared.destroyed).toBe(true);
    expect(() => prepared.macInto([], new Uint8Array(12), 0, 12)).toThrow(TypeError);
  }
});

test('sha256 agrees over parts', () => {
  fc.assert(
    fc.property(parts, (ps) => {
      expect(toHex(nobleBackend.sha256(...ps))).toBe(toHex(nodeBackend.sha256(...ps)));
      expect(toHex(nodeBackend.sha256(Buffer.concat(ps)))).toBe(toHex(nodeBackend.sha256(...ps)));
    }),
    { numRuns: 200 },
  );
});

test('hkdf agrees, including info longer than 1024 bytes and the maximum length', () => {
  fc.assert(
    fc.property(bytes(100), bytes(100), bytes(1500), fc.integer({ min: 1, max: 600 }), (ikm, salt, info, length) => {
      expect(toHex(nobleBackend.hkdf(ikm, salt, info, length))).toBe(toHex(nodeBackend.hkdf(ikm, salt, info, length)));
    }),
    { numRuns: 100 },
  );
  const ikm = new Uint8Array(32).fill(9);
  expect(toHex(nobleBackend.hkdf(ikm, new Uint8Array(0), new Uint8Array(0), 255 * 32))).toBe(
    toHex(nodeBackend.hkdf(ikm, new Uint8Array(0), new Uint8Array(0), 255 * 32)),
  );
});

// Offsets: small, around each 2^32-block (2^38-byte) boundary, and up against 2^53.
const streamOffset = (len: number) =>
  fc.oneof(
    fc.integer({ min: 0, max: 100_000 }),
    fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: -2000, max: 2000 })).map(([k, d]) => k * 2 ** 38 + d),
    fc.integer({ min: 0, max: 2 ** 53 - len }),
    fc.integer({ min: 0, max: 3000 }).map((d) => 2 ** 53 - len - d),
  );

test('keystreamXor agrees at random offsets', () => {
  fc.assert(
    fc.property(
      key,
      bytes(1600).chain((input) => fc.tuple(fc.constant(input), streamOffset(input.length))),
      (k, [input, offset]) => {
        expect(toHex(keystreamXor(nobleBackend, k, offset, input))).toBe(toHex(keystreamXor(nodeBackend, k, offset, input)));
      },
    ),
    { numRuns: 300 },
  );
});
