// The cursor must give exactly the one-shot CG1 keystream for any sequence of segments: in
// order, retransmitted, re-segmented, with gaps, across the 2^32-block boundary.
import fc from 'fast-check';
import { backendNames, getBackend } from '../../common/crypto';
import { keystreamXor } from '../../common/crypto/keystream';
import { KeystreamCursor } from '../../common/crypto/keystream-cursor';

const BOUNDARY = 2 ** 32 * 64;

describe.each(backendNames)('KeystreamCursor (%s)', (name) => {
  const backend = getBackend(name);
  const key = Uint8Array.from({ length: 32 }, (_, i) => i * 7);

  test('any sequence of segments equals the one-shot keystream', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0, 1, 63, BOUNDARY - 3000, 2 ** 50),
        fc.array(fc.record({ back: fc.integer({ min: -3000, max: 6000 }), len: fc.integer({ min: 0, max: 1600 }) }), { minLength: 1, maxLength: 40 }),
        (start, steps) => {
          const cursor = new KeystreamCursor(backend, key);
          let at = start;
          for (const { back, len } of steps) {
            const offset = Math.max(0, at + back);
            const input = Uint8Array.from({ length: len }, (_, i) => (offset + i) & 0xff);
            const got = cursor.xor(offset, input);
            expect(Buffer.from(got)).toEqual(Buffer.from(keystreamXor(backend, key, offset, input)));
            at = Math.max(at, offset + len);
          }
          cursor.close();
        },
      ),
      { numRuns: 60 },
    );
  });

  test('xorInto writes the same bytes inside larger buffers and nothing else', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 1600 }), fc.nat(9), fc.nat(9), (offset, len, srcAt, dstAt) => {
        const cursor = new KeystreamCursor(backend, key);
        const src = Uint8Array.from({ length: srcAt + len + 2 }, (_, i) => i * 3);
        const dst = new Uint8Array(dstAt + len + 2).fill(0xaa);
        cursor.xorInto(offset, src, srcAt, len, dst, dstAt);
        const want = keystreamXor(backend, key, offset, src.subarray(srcAt, srcAt + len));
        expect(Buffer.from(dst.subarray(dstAt, dstAt + len))).toEqual(Buffer.from(want));
        expect([...dst.subarray(0, dstAt), ...dst.subarray(dstAt + len)].every((b) => b === 0xaa)).toBe(true);
        expect(() => cursor.xorInto(offset, src, srcAt + 3, len, dst, dstAt)).toThrow(RangeError);
        cursor.close();
      }),
      { numRuns: 60 },
    );
  });

  test('many flows at once share the bounded prefetch pool and each still gets its own keystream', () => {
    // More cursors than prefetch buffers, interleaved: buffers are taken from flows used less
    // recently, which must then fall back or refetch, never read another flow's keystream.
    const keys = Array.from({ length: 300 }, (_, f) => Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + f) & 0xff));
    const cursors = keys.map((k) => new KeystreamCursor(backend, k));
    const at = keys.map(() => 0);
    for (let round = 0; round < 6; round++) {
      for (let f = 0; f < cursors.length; f += round % 2 === 0 ? 1 : 7) {
        const len = 100 + ((f * 37 + round * 11) % 1400);
        const input = Uint8Array.from({ length: len }, (_, i) => (i + f) & 0xff);
        const back = round === 3 ? Math.min(at[f]!, 50) : 0; // a partial retransmission
        const offset = at[f]! - back;
        expect(Buffer.from(cursors[f]!.xor(offset, input))).toEqual(Buffer.from(keystreamXor(backend, keys[f]!, offset, input)));
        at[f] = offset + len;
      }
    }
    cursors.forEach((c) => c.close());
  });

  test('rejects offsets past 2^53', () => {
    expect(() => new KeystreamCursor(backend, key).xor(2 ** 53, new Uint8Array(1))).toThrow(RangeError);
  });
});
