// The embedded store's off-heap table of answered request ids (kdc/store/request-id-table.ts):
// an id stays known until its expiry, through growth and slot reuse, and a full table says so
// instead of forgetting.
import fc from 'fast-check';
import { RequestIdTable } from '../../kdc/store/request-id-table';

const id = (n: number): Uint8Array => {
  const b = new Uint8Array(16);
  new DataView(b.buffer).setUint32(0, n);
  new DataView(b.buffer).setUint32(12, Math.imul(n, 2654435761) >>> 0);
  return b;
};

test('an id is present until its expiry, then free to be added again', () => {
  const t = new RequestIdTable(1024);
  expect(t.add(id(1), 1000, 0)).toBe('added');
  expect(t.add(id(1), 5000, 10)).toBe('present');
  expect([t.has(id(1), 999), t.has(id(1), 1000), t.has(id(2), 0)]).toEqual([true, false, false]);
  expect(t.add(id(1), 3000, 1000)).toBe('added');
  expect(t.has(id(1), 2999)).toBe(true);
});

test('grows past its first size and keeps every live id; expired ones are dropped on the way', () => {
  const t = new RequestIdTable(1 << 16, 16);
  for (let i = 0; i < 5000; i++) expect(t.add(id(i), i < 1000 ? 50 : 10_000, 0)).toBe('added');
  expect(t.capacity).toBeGreaterThanOrEqual(5000 / 0.75);
  for (let i = 0; i < 5000; i++) expect(t.has(id(i), 0)).toBe(true);
  // At 100 ms the first 1000 have expired: they are gone, the rest stay through more inserts.
  for (let i = 5000; i < 6000; i++) t.add(id(i), 10_000, 100);
  expect(t.live(100)).toBe(5000);
  for (let i = 0; i < 6000; i++) expect(t.has(id(i), 100)).toBe(i >= 1000);
});

test('keeps the value recorded with each id through growth and slot reuse, and only while the id is live', () => {
  const t = new RequestIdTable(1 << 16, 16);
  for (let i = 0; i < 3000; i++) t.add(id(i), i % 2 === 0 ? 50 : 10_000, 0, i * 1000.5);
  expect(t.add(id(1), 20_000, 0, 7)).toBe('present');
  // Past 50 ms the even ids expire; new ids reuse their slots, and the odd ones keep their values.
  for (let i = 3000; i < 4000; i++) t.add(id(i), 10_000, 100, -i);
  for (let i = 0; i < 4000; i++) expect(t.get(id(i), 100)).toBe(i >= 3000 ? -i : i % 2 === 0 ? undefined : i * 1000.5);
});

test('full of live ids: refuses with "full", never forgets one; room again once they expire', () => {
  const t = new RequestIdTable(64, 16);
  let added = 0;
  while (t.add(id(added), 1000, 0) === 'added') added++;
  expect(added).toBe(48); // 0.75 of the 64-slot limit
  expect(t.add(id(999), 1000, 0)).toBe('full');
  for (let i = 0; i < added; i++) expect(t.add(id(i), 1000, 0)).toBe('present');
  expect(t.bytes).toBe(64 * 32);
  expect(t.add(id(999), 2000, 1000)).toBe('added');
  expect(t.has(id(0), 1000)).toBe(false);
});

test('agrees with a Map model over random adds, lookups and time', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 1, max: 500 }), fc.boolean()), { maxLength: 600 }), (ops) => {
      const t = new RequestIdTable(4096, 16, 7);
      const model = new Map<number, number>();
      let now = 0;
      for (const [n, ttl, lookup] of ops) {
        now += 3;
        const live = (model.get(n) ?? 0) > now;
        if (lookup) {
          if (t.has(id(n), now) !== live) return false;
        } else {
          const r = t.add(id(n), now + ttl, now);
          if (r !== (live ? 'present' : 'added')) return false;
          if (!live) model.set(n, now + ttl);
        }
      }
      return true;
    }),
  );
});

test('generations: a steady rate never grows a table; expired generations go whole; older ones still answer', () => {
  const gen = 1000;
  const t = new RequestIdTable(1 << 20, 16, 1, gen);
  const ttl = 5 * gen;
  let n = 0;
  const capacities: number[] = [];
  // 300 ids per generation period for 20 periods.
  for (let now = 0; now < 20 * gen; now += 10) {
    for (let k = 0; k < 3; k++) expect(t.add(id(n++), now + ttl, now)).toBe('added');
    if (now % gen === gen - 10) capacities.push(t.capacity);
  }
  // Live generations: the window over the period, plus the one being filled.
  expect(t.generations).toBeLessThanOrEqual(ttl / gen + 1);
  // After the first window, capacity holds steady: each new table is sized from the last.
  expect(new Set(capacities.slice(6)).size).toBe(1);
  expect(capacities[capacities.length - 1]).toBeLessThanOrEqual(6 * 512);
  // Ids of older, still live generations are found (retries are refused), expired ones are not.
  const now = 20 * gen;
  expect(t.add(id(n - 1400), now + ttl, now)).toBe('present');
  expect(t.has(id(n - 1600), now)).toBe(false);
  expect(t.live(now)).toBe(499 * 3); // added after now - ttl
});

test('the slot bound counts every generation: full, then room again as old generations expire', () => {
  const t = new RequestIdTable(256, 64, 1, 100);
  let added = 0;
  let now = 0;
  for (; now < 1000; now += 10) for (let k = 0; k < 4; k++) if (t.add(id(now * 10 + k), now + 500, now) === 'added') added++;
  expect(t.capacity).toBeLessThanOrEqual(256);
  expect(t.live(now)).toBeLessThanOrEqual(192);
  expect(added).toBeGreaterThan(192); // expiry made room along the way
  expect(t.add(id(1e6), now + 500, now)).toBe('added');
});

test('rejects ids that are not 16 bytes, and a nonsense size', () => {
  const t = new RequestIdTable(64);
  expect(() => t.add(new Uint8Array(15), 1, 0)).toThrow(/16 bytes/);
  expect(() => new RequestIdTable(8)).toThrow(/maxSlots/);
});
