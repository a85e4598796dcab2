// Properties of the CG1 keystream that rule 2 (no nonce reuse) leans on: the ciphertext of a
// stream byte depends only on its offset, so any re-segmentation gives the same bytes.
import fc from 'fast-check';
import type { CryptoBackend } from '../../common/crypto/backend';
import { backendNames, getBackend } from '../../common/crypto';
import { MAX_STREAM_OFFSET, keystreamXor } from '../../common/crypto/keystream';
import { toHex } from './hex';

const BOUNDARY = 2 ** 38; // 2^32 blocks of 64 bytes: where the counter wraps and the nonce steps
const key32 = fc.uint8Array({ minLength: 32, maxLength: 32 });

/** The spec, block by block: counter = b mod 2^32, nonce = 00000000 || u64be(floor(b / 2^32)). */
function referenceKeystream(backend: CryptoBackend, key: Uint8Array, offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let p = offset; p < offset + length; ) {
    const b = Math.floor(p / 64);
    const nonce = new Uint8Array(12);
    new DataView(nonce.buffer).setBigUint64(4, BigInt(Math.floor(b / 2 ** 32)));
    const block = backend.chacha20Xor(key, nonce, b % 2 ** 32, new Uint8Array(64));
    const from = p - b * 64;
    const take = Math.min(64 - from, offset + length - p);
    out.set(block.subarray(from, from + take), p - offset);
    p += take;
  }
  return out;
}

const offsetFor = (len: number) =>
  fc.oneof(
    fc.integer({ min: 0, max: 10_000 }),
    fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: -3000, max: 3000 })).map(([k, d]) => k * BOUNDARY + d),
    fc.integer({ min: 0, max: MAX_STREAM_OFFSET - len }),
    fc.integer({ min: 0, max: 5000 }).map((d) => MAX_STREAM_OFFSET - len - d),
  );
const rangeArb = fc
  .uint8Array({ minLength: 0, maxLength: 3000 })
  .chain((data) => fc.tuple(fc.constant(data), offsetFor(data.length)));

describe.each(backendNames)('%s backend', (name) => {
  const backend = getBackend(name);

  test('matches the block-by-block reference of the spec', () => {
    fc.assert(
      fc.property(key32, rangeArb, (key, [data, offset]) => {
        const keystream = keystreamXor(backend, key, offset, new Uint8Array(data.length));
        expect(toHex(keystream)).toBe(toHex(referenceKeystream(backend, key, offset, data.length)));
      }),
      { numRuns: 150 },
    );
  });

  test('any split of a range into segments gives the bytes of one call over the range', () => {
    const withCuts = rangeArb.chain(([data, offset]) =>
      fc.tuple(fc.constant(data), fc.constant(offset), fc.uniqueArray(fc.integer({ min: 0, max: data.length }), { maxLength: 12 })),
    );
    fc.assert(
      fc.property(key32, withCuts, (key, [data, offset, cuts]) => {
        const whole = keystreamXor(backend, key, offset, data);
        const edges = [0, ...cuts.sort((a, b) => a - b), data.length];
        const pieced = new Uint8Array(data.length);
        for (let i = 0; i + 1 < edges.length; i++) {
          const [from, to] = [edges[i]!, edges[i + 1]!];
          // alternate the output styles: returned array, caller-provided output, in place
          const segment = data.slice(from, to);
          if (i % 3 === 0) pieced.set(keystreamXor(backend, key, offset + from, segment), from);
          else if (i % 3 === 1) keystreamXor(backend, key, offset + from, segment, pieced.subarray(from, to));
          else pieced.set(keystreamXor(backend, key, offset + from, segment, segment), from);
        }
        expect(toHex(pieced)).toBe(toHex(whole));
      }),
      { numRuns: 200 },
    );
  });

  test('XOR twice restores the input', () => {
    fc.assert(
      fc.property(key32, rangeArb, (key, [data, offset]) => {
        const once = keystreamXor(backend, key, offset, data);
        expect(toHex(keystreamXor(backend, key, offset, once))).toBe(toHex(data));
      }),
      { numRuns: 150 },
    );
  });

  test('a segment across the 2^32-block boundary equals the manual two-call computation', () => {
    const key = new Uint8Array(32).map((_, i) => 255 - i);
    const data = new Uint8Array(1460).map((_, i) => (i * 31) & 0xff);
    for (const offset of [BOUNDARY - 1, BOUNDARY - 7, BOUNDARY - 64, BOUNDARY - 100, BOUNDARY - 1459, 5 * BOUNDARY - 33]) {
      const high = Math.floor(offset / BOUNDARY);
      const firstLength = (high + 1) * BOUNDARY - offset;
      const startBlock = Math.floor(offset / 64);
      const skip = offset % 64;
      // call 1: nonce u64be(high), counter from startBlock mod 2^32 up to 2^32-1, skipping `skip` bytes
      const nonceBefore = new Uint8Array(12);
      new DataView(nonceBefore.buffer).setUint32(8, high);
      const padded = new Uint8Array(skip + firstLength);
      padded.set(data.subarray(0, firstLength), skip);
      const first = backend.chacha20Xor(key, nonceBefore, startBlock % 2 ** 32, padded).subarray(skip);
      // call 2: nonce u64be(high + 1), counter 0
      const nonceAfter = new Uint8Array(12);
      new DataView(nonceAfter.buffer).setUint32(8, high + 1);
      const second = backend.chacha20Xor(key, nonceAfter, 0, data.subarray(firstLength));
      const expected = new Uint8Array(data.length);
      expected.set(first, 0);
      expected.set(second, firstLength);
      expect(toHex(keystreamXor(backend, key, offset, data))).toBe(toHex(expected));
    }
  });

  test('the keystream does not repeat across the boundary (the tcpcrypt 4 GiB bug)', () => {
    const key = new Uint8Array(32).fill(3);
    const zeros = new Uint8Array(128);
    const atStart = toHex(keystreamXor(backend, key, 0, zeros));
    expect(toHex(keystreamXor(backend, key, BOUNDARY, zeros))).not.toBe(atStart);
    expect(toHex(keystreamXor(backend, key, 2 ** 32, zeros))).not.toBe(atStart); // 2^32 bytes: seq wrap
  });

  test('offsets at and past 2^53 are rejected, the last valid one works', () => {
    const key = new Uint8Array(32);
    const data = new Uint8Array(100);
    expect(keystreamXor(backend, key, MAX_STREAM_OFFSET - 100, data)).toHaveLength(100);
    expect(keystreamXor(backend, key, MAX_STREAM_OFFSET, new Uint8Array(0))).toHaveLength(0);
    for (const bad of [MAX_STREAM_OFFSET - 99, MAX_STREAM_OFFSET - 1, MAX_STREAM_OFFSET, MAX_STREAM_OFFSET + 2, 2 ** 60]) {
      expect(() => keystreamXor(backend, key, bad, data)).toThrow(RangeError);
    }
    for (const bad of [-1, 0.5, NaN, Infinity, -Infinity]) {
      expect(() => keystreamXor(backend, key, bad, data)).toThrow(RangeError);
    }
  });

  test('output: in place, caller-provided, and longer than the scratch buffer', () => {
    const key = new Uint8Array(32).fill(0x42);
    const data = new Uint8Array(70_000).map((_, i) => i & 0xff);
    for (const offset of [0, 13, BOUNDARY - 40_001]) {
      const expected = toHex(keystreamXor(backend, key, offset, data));
      expect(toHex(referenceKeystream(backend, key, offset, data.length).map((b, i) => b ^ data[i]!))).toBe(expected);
      const out = new Uint8Array(data.length);
      expect(keystreamXor(backend, key, offset, data, out)).toBe(out);
      expect(toHex(out)).toBe(expected);
      const inPlace = data.slice();
      expect(keystreamXor(backend, key, offset, inPlace, inPlace)).toBe(inPlace);
      expect(toHex(inPlace)).toBe(expected);
    }
  });
});
