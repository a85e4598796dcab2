// The service's small parts on their own: the token buckets, the bounded audit queue and the
// store health probe (with controllable fake stores; the end-to-end suites use real ones).
import { AuditWriter } from '../../kdc/audit-writer';
import { StoreHealth } from '../../kdc/service';
import { TokenBucketLimiter } from '../../kdc/rate-limit';
import { type AuditEvent, StoreUnavailableError } from '../../kdc/store/store';

test('token bucket: burst, refill at the rate, peek takes nothing, bounded table', () => {
  const l = new TokenBucketLimiter({ ratePerSec: 10, burst: 3, maxKeys: 2 });
  expect([l.take('a', 0), l.take('a', 0), l.take('a', 0), l.take('a', 0)]).toEqual([true, true, true, false]);
  expect(l.allowed('a', 50)).toBe(false); // half a token
  expect(l.allowed('a', 100)).toBe(true); // one token after 100 ms at 10/s
  expect(l.allowed('a', 100)).toBe(true); // peeking twice still leaves it
  expect([l.take('a', 100), l.take('a', 100)]).toEqual([true, false]);
  expect(l.take('b', 100)).toBe(true);
  // Table full of buckets in use: a third name is refused, not added.
  expect(l.take('c', 100)).toBe(false);
  expect(l.overflowRefusals).toBe(1);
  // Once a bucket has refilled it is forgotten to make room.
  expect(l.take('c', 10_000)).toBe(true);
  expect(l.size).toBeLessThanOrEqual(2);
});

test('audit writer: never waits, batches, drops and counts when the queue is full or the store refuses', async () => {
  const written: AuditEvent[][] = [];
  let fail = false;
  let release: (() => void) | null = null;
  const store = {
    appendAudit: async (events: readonly AuditEvent[]) => {
      if (release === null) await new Promise<void>((r) => (release = r));
      if (fail) throw new StoreUnavailableError('fake', 'appendAudit', 'down');
      written.push([...events]);
    },
  };
  const drops: [number, string][] = [];
  const w = new AuditWriter(store, { maxQueue: 5, batchSize: 3, retryDelayMs: 1, onDrop: (n, why) => drops.push([n, why]) });
  const ev = (i: number): AuditEvent => ({ ts: i, type: 'issue' });
  for (let i = 0; i < 5; i++) expect(w.enqueue(ev(i))).toBe(true);
  await new Promise((r) => setImmediate(r));
  // The first batch (3) is being written; 2 queued; room for 3 more, then full.
  for (let i = 5; i < 8; i++) expect(w.enqueue(ev(i))).toBe(true);
  expect(w.enqueue(ev(8))).toBe(false);
  expect(drops).toEqual([[1, 'queue-full']]);
  (release as unknown as () => void)();
  await w.flush();
  expect(written.flat().map((e) => e.ts)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  expect(Math.max(...written.map((b) => b.length))).toBeLessThanOrEqual(3);
  fail = true;
  w.enqueue(ev(9));
  await w.flush();
  expect(drops).toEqual([
    [1, 'queue-full'],
    [1, 'write-failed'],
  ]);
  expect(w.dropped).toBe(2);
  await w.close();
  expect(w.enqueue(ev(10))).toBe(false);
});

test('store health: a failed probe marks the store down, the first good one marks it up', async () => {
  let ok = true;
  let hang = false;
  const store = {
    ping: () => (hang ? new Promise<void>(() => undefined) : ok ? Promise.resolve() : Promise.reject(new StoreUnavailableError('fake', 'ping', 'refused'))),
  };
  const changes: [boolean, string][] = [];
  const h = new StoreHealth(store, 50, 20, (up, reason) => changes.push([up, reason]));
  h.start();
  try {
    ok = false;
    h.suspect('a request failed');
    await h.probe();
    expect(h.up).toBe(false);
    expect(h.lastError).toMatch(/refused/);
    ok = true;
    await new Promise((r) => setTimeout(r, 100)); // probes every 20 ms while down
    expect(h.up).toBe(true);
    hang = true; // a store that never answers is down after the deadline
    h.suspect('slow');
    await h.probe();
    expect(h.up).toBe(false);
    expect(h.lastError).toMatch(/no answer within 50 ms/);
    expect(changes.map((c) => c[0])).toEqual([false, true, false]);
  } finally {
    h.stop();
  }
});
