// The embedded store's ring of full answers (kdc/store/answer-ring.ts): an answer reads back
// byte for byte while it is among the newest maxEntries and its bytes have not been written
// over, and never reads back as anything else.
import fc from 'fast-check';
import { AnswerRing } from '../../kdc/store/answer-ring';

const answer = (n: number, len: number): Uint8Array => Uint8Array.from({ length: len }, (_, k) => (n * 31 + k) & 0xff);

test('holds the newest maxEntries answers; older positions read as null', () => {
  const r = new AnswerRing(3);
  const at = [0, 1, 2, 3, 4].map((n) => r.append(answer(n, 100)));
  expect(at.map((p) => r.read(p))).toEqual([null, null, answer(2, 100), answer(3, 100), answer(4, 100)]);
  expect(r.read(at[4]! + 104)).toBeNull(); // where the next answer will go: nothing yet
});

test('wraps the byte ring without splitting an entry; written-over answers read as null', () => {
  const r = new AnswerRing(1000, 10); // the 64 KiB minimum: the bytes bound, not the count, applies
  const at: number[] = [];
  for (let n = 0; n < 300; n++) at.push(r.append(answer(n, 1000)));
  const held = at.filter((p) => r.read(p) !== null).length;
  expect(held).toBeGreaterThan(60);
  expect(held).toBeLessThanOrEqual(65);
  for (let n = 300 - held; n < 300; n++) expect(r.read(at[n]!)).toEqual(answer(n, 1000));
});

test('agrees with a model that keeps every answer, over random sizes', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 50 }), fc.array(fc.integer({ min: 0, max: 3000 }), { maxLength: 400 }), (maxEntries, sizes) => {
      const r = new AnswerRing(maxEntries, 64);
      const all: [number, Uint8Array][] = sizes.map((len, n) => {
        const a = answer(n, len);
        return [r.append(a), a];
      });
      // Whatever reads back is the answer written there; the newest one always reads back.
      for (const [p, a] of all) {
        const got = r.read(p);
        if (got !== null && Buffer.compare(got, a) !== 0) return false;
      }
      const newest = all[all.length - 1];
      return newest === undefined || r.read(newest[0]) !== null;
    }),
  );
});

test('an answer too big for the ring is refused, and a bad size is named', () => {
  expect(() => new AnswerRing(1, 1).append(new Uint8Array(70_000))).toThrow(/does not fit/);
  expect(() => new AnswerRing(0)).toThrow(/maxEntries/);
});
