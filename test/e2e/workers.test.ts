// The gateway on both cores (DESIGN section 5: processes, never worker threads): with
// nfqueue.workers 2 a primary forks one worker process per queue. Connections still key and
// carry data, the merged status counts every flow and lists both workers, and a SIGTERM to
// the primary leaves guard rules that refuse at once (fail closed, rule 7).
import type { CiphergateLab } from '../../lab/topology';
import { counter, daemonStatus, describeE2E, expectDaemonsUp, timedCurl, upLab, url } from './helpers';

describeE2E('gateway with two worker processes (router mode)', () => {
  let lab: CiphergateLab;

  beforeAll(async () => {
    lab = await upLab('workers', { mode: 'router', gatewayWorkers: 2 });
  }, 120_000);

  afterAll(async () => {
    await lab?.down();
  }, 60_000);

  test('concurrent connections all complete; the merged status counts them and lists both workers', async () => {
    const before = await daemonStatus(lab, 'gateway');
    const n = 60;
    const r = await lab.client$('sh', ['-c', `seq ${n} | xargs -P 20 -I{} curl -s -m 10 -o /dev/null -w '%{http_code}\\n' ${url(lab.server.v4, 80, '/')} | sort | uniq -c`]);
    expect(r.stdout.trim()).toBe(`${n} 200`);
    const after = await daemonStatus(lab, 'gateway');
    expect((after as unknown as { workers: number[] }).workers).toHaveLength(2);
    // The balance rules hash the ports: one client and one server still use both workers.
    const spread = (after as unknown as { byWorker: { packets: number }[] }).byWorker;
    const before2 = (before as unknown as { byWorker: { packets: number }[] }).byWorker;
    for (const [i, w] of spread.entries()) expect(w.packets - before2[i]!.packets).toBeGreaterThanOrEqual(n);
    expect(counter(after, 'flows-established') - counter(before, 'flows-established')).toBe(n);
    // The kernel's figures, summed over both workers' queues: the 60 SYNs were held, none dropped.
    expect(after.kernelQueue).toMatchObject({ queueFull: 0, socketFull: 0 });
    // Every connection's keying was timed by the worker that keyed it; the primary sums them.
    expect(after.keying!.count - before.keying!.count).toBe(n);
    expect(after.queue!.packets - before.queue!.packets).toBeGreaterThanOrEqual(n * 5);
    expectDaemonsUp(lab);
  }, 120_000);

  test('SIGTERM to the primary: a protected connection is refused within 2 s', async () => {
    await lab.stop('gateway');
    const attempt = await timedCurl(lab, url(lab.server.v4, 80, '/'), [], 8);
    expect([7, 56]).toContain(attempt.code);
    expect(attempt.ms).toBeLessThan(2000);
  }, 60_000);
});
