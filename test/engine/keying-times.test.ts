// The gateway's keying-time histogram (GatewayEngine.keyingTimes, common/engine/latency-histogram):
// the engines run over test/sim's AsyncPath, where every key-delivery and KDC hop takes a fixed
// virtual time, so the time from the SYN to the released SYN reaching the server is known.
import { nodeBackend } from '../../common/crypto/node-backend';
import { seededRandom } from '../../common/crypto/random';
import { parseEndpoint } from '../../common/engine/endpoints';
import { KEYING_BOUNDS_MS, LatencyHistogram, mergeHistograms, quantileBound } from '../../common/engine/latency-histogram';
import { TCP_FLAGS } from '../../common/wire/tcp';
import { createTrio } from '../../pipeline/setup';
import { AsyncPath } from '../sim/async-path';
import { SPORT, SYN_OPTIONS, segment } from './harness';

test('observations land in the first bucket whose bound they do not exceed; sum and count follow', () => {
  const h = new LatencyHistogram([1, 5, 10]);
  for (const ms of [0.4, 1, 1.01, 5, 9.9, 10, 10.5, -3]) h.observe(ms);
  expect(h.snapshot()).toEqual({ boundsMs: [1, 5, 10], counts: [3, 2, 2, 1], count: 8, sumMs: 0.4 + 1 + 1.01 + 5 + 9.9 + 10 + 10.5 });
  expect(() => new LatencyHistogram([5, 5])).toThrow(RangeError);
  expect(() => new LatencyHistogram([])).toThrow(RangeError);
});

test('quantile bounds and merging over workers', () => {
  const a = new LatencyHistogram([1, 5, 10]);
  const b = new LatencyHistogram([1, 5, 10]);
  for (let i = 0; i < 98; i++) a.observe(0.5);
  b.observe(7);
  b.observe(50);
  const m = mergeHistograms([a.snapshot(), b.snapshot()])!;
  expect(m.counts).toEqual([98, 0, 1, 1]);
  expect(m.count).toBe(100);
  expect(quantileBound(m, 0.5)).toBe(1);
  expect(quantileBound(m, 0.99)).toBe(10);
  expect(quantileBound(m, 1)).toBe(Infinity);
  expect(quantileBound(new LatencyHistogram([1]).snapshot(), 0.5)).toBeNull();
  expect(mergeHistograms([])).toBeNull();
  expect(() => mergeHistograms([a.snapshot(), new LatencyHistogram([1, 5]).snapshot()])).toThrow(RangeError);
});

test('a keyed connection: the gateway observes SYN seen to SYN released, one observation per flow', () => {
  const e = parseEndpoint(`10.0.0.2:${SPORT}`);
  if (typeof e === 'string') throw new Error(e);
  const trio = createTrio({ backend: nodeBackend, random: seededRandom('keying-times'), protect: [e] });
  const start = 1_000_000;
  let now = start;
  const events: Array<{ at: number; run: (at: number) => void }> = [];
  const serverSaw: Array<{ at: number; syn: boolean }> = [];
  const path: AsyncPath = new AsyncPath(
    trio.agent,
    trio.gateway,
    trio.kdc,
    {
      client: () => undefined,
      server: (p, at) => serverSaw.push({ at, syn: (p[33]! & TCP_FLAGS.SYN) !== 0 }),
      wire: (p, dir, at) => path.deliver(p, dir, at),
    },
    { later: (delay, run) => events.push({ at: now + delay, run }), hopDelay: () => 3 },
  );
  path.clientSends(segment('client', { seq: 1000, flags: TCP_FLAGS.SYN, options: SYN_OPTIONS() }), now);
  while (events.length > 0) {
    events.sort((x, y) => x.at - y.at);
    const next = events.shift()!;
    now = next.at;
    next.run(now);
  }
  const released = serverSaw.find((s) => s.syn);
  expect(released).toBeDefined();
  // HELLO, HELLO_REPLY, KDC request, KDC answer, TICKET, CONFIRM: six hops of 3 ms.
  expect(released!.at - start).toBe(18);
  const h = trio.gateway.keyingTimes.snapshot();
  expect({ count: h.count, sumMs: h.sumMs }).toEqual({ count: 1, sumMs: 18 });
  expect(h.boundsMs).toEqual(KEYING_BOUNDS_MS);
  expect(h.counts[KEYING_BOUNDS_MS.indexOf(25)]).toBe(1);
});
