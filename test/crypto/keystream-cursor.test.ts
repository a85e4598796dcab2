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

  test('rejects offsets past 2^53', () => {
    expect(() => new KeystreamCursor(backend, key).xor(2 ** 53, new Uint8Array(1))).toThrow(RangeError);
  });
});
