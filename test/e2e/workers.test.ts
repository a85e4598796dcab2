// Both daemons on both cores (DESIGN section 5: processes, never worker threads): with
// nfqueue.workers 2 a primary forks one worker process per queue. Connections still key and
// carry data, flows between one client and one server spread over both workers, the merged
// status counts every flow and lists both workers, and a SIGTERM to the primary leaves guard
// rules that refuse at once (fail closed, rule 7). The agent's primary also relays key
// delivery to the worker holding each flow.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { labBytesSha256 } from '../../lab/http-server';
import type { CiphergateLab } from '../../lab/topology';
import {
  type StatusDoc,
  counter,
  daemonStatus,
  describeE2E,
  downloadSha256,
  eventually,
  expectDaemonsUp,
  timedCurl,
  uniqueSeed,
  useLab,
  uploadSha256,
  url,
  writeSeededFile,
} from './helpers';

type WorkerFigures = { pid: number; packets: number; flows: number; keyedFlows: number };
const byWorker = (s: StatusDoc) => (s as unknown as { byWorker: WorkerFigures[] }).byWorker;

/** n concurrent curls from the client; every one must answer 200. */
async function curlMany(lab: CiphergateLab, n: number): Promise<void> {
  const r = await lab.client$('sh', ['-c', `seq ${n} | xargs -P 20 -I{} curl -s -m 10 -o /dev/null -w '%{http_code}\\n' ${url(lab.server.v4, 80, '/')} | sort | uniq -c`]);
  expect(r.stdout.trim()).toBe(`${n} 200`);
}

/**
 * n concurrent connections between one client and one server; both of the role's workers must
 * have carried them (the balance rules hash the ports, not just the address pair).
 */
async function curlAcrossWorkers(lab: CiphergateLab, role: 'gateway' | 'agent', n: number): Promise<{ before: StatusDoc; after: StatusDoc }> {
  const before = await daemonStatus(lab, role);
  await curlMany(lab, n);
  const after = await daemonStatus(lab, role);
  expect(byWorker(after)).toHaveLength(2);
  for (const [i, w] of byWorker(after).entries()) expect(w.packets - byWorker(before)[i]!.packets).toBeGreaterThanOrEqual(n);
  return { before, after };
}

describeE2E('gateway with two worker processes (router mode)', () => {
  let lab: CiphergateLab;
  useLab('workers', { mode: 'router', gatewayWorkers: 2 }, (l) => {
    lab = l;
  });

  test('concurrent connections all complete; the merged status counts them and lists both workers', async () => {
    const n = 60;
    const { before, after } = await curlAcrossWorkers(lab, 'gateway', n);
    expect((after as unknown as { workers: number[] }).workers).toHaveLength(2);
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

describeE2E('agent and gateway with two worker processes each (host mode)', () => {
  let lab: CiphergateLab;
  useLab('agentworkers', { mode: 'host', gatewayWorkers: 2, agentWorkers: 2, agentTimers: { lingerMs: 1000 }, gatewayTimers: { lingerMs: 1000 } }, (l) => {
    lab = l;
  });

  test('concurrent connections key through the relay, spread over both agent workers, and the keys go when they end', async () => {
    const n = 60;
    const { before, after } = await curlAcrossWorkers(lab, 'agent', n);
    expect(counter(after, 'flows-keyed') - counter(before, 'flows-keyed')).toBe(n);
    expect(counter(after, 'kd-rejected')).toBe(0);
    // One key-delivery connection per gateway worker, both held by the agent's primary.
    expect((after as unknown as { keyDelivery: { connections: number } }).keyDelivery.connections).toBeGreaterThanOrEqual(1);
    const idle = await eventually(() => daemonStatus(lab, 'agent'), (s) => s.keyedFlows === 0, 10_000);
    expect(idle.keyedFlows).toBe(0);
    expectDaemonsUp(lab);
  }, 120_000);

  test('byte-exact both ways: 32 MB down and 32 MB up on parallel connections', async () => {
    const N = 32 << 20;
    const seeds = [uniqueSeed('down-a'), uniqueSeed('down-b')];
    const file = path.join(lab.dir, 'upload.bin');
    const sha = writeSeededFile(file, uniqueSeed('up'), N);
    try {
      const [a, b, up] = await Promise.all([
        ...seeds.map((seed) => downloadSha256(lab, url(lab.server.v4, 80, `/bytes/${N}?seed=${seed}`))),
        uploadSha256(lab, file, url(lab.server.v4, 80, '/sha256')),
      ]);
      expect([a, b]).toEqual(seeds.map((seed) => labBytesSha256(seed, N)));
      expect(up).toEqual({ sha256: sha, length: N });
    } finally {
      fs.rmSync(file, { force: true });
    }
  }, 300_000);

  test('SIGHUP reloads every worker; a killed worker is started again and its slot keys new flows', async () => {
    const log = () => lab.procs.get('agent')!.stdout();
    const reloaded = () => log().split('\n').filter((l) => l.includes('"event":"agent-reloaded"')).length;
    const already = reloaded();
    lab.signal('agent', 'SIGHUP');
    // Each worker reloads its own engine (it logs, with its worker index, through the primary's stdout).
    await eventually(async () => reloaded(), (k) => k === already + 2, 10_000);
    expect(log()).toMatch(/"event":"agent-reloaded"[^\n]*"worker":0/);
    expect(log()).toMatch(/"event":"agent-reloaded"[^\n]*"worker":1/);
    await curlMany(lab, 20);
    const s = await daemonStatus(lab, 'agent');
    const victim = byWorker(s)[1]!.pid;
    process.kill(victim, 'SIGKILL');
    const back = await eventually(
      () => daemonStatus(lab, 'agent'),
      (x) => byWorker(x).length === 2 && !byWorker(x).some((w) => w.pid === victim),
      15_000,
    );
    expect(byWorker(back).map((w) => w.pid)).not.toContain(victim);
    const before = counter(back, 'flows-keyed');
    await curlMany(lab, 40);
    const after = await daemonStatus(lab, 'agent');
    expect(counter(after, 'flows-keyed') - before).toBe(40);
    for (const w of byWorker(after)) expect(w.packets).toBeGreaterThan(0);
  }, 120_000);

  test('SIGTERM to the agent primary: a protected connection is refused within 2 s, no worker left', async () => {
    const workers = byWorker(await daemonStatus(lab, 'agent')).map((w) => w.pid);
    await lab.stop('agent');
    const attempt = await timedCurl(lab, url(lab.server.v4, 80, '/'), [], 8);
    expect([7, 56]).toContain(attempt.code);
    expect(attempt.ms).toBeLessThan(2000);
    for (const pid of workers) expect(() => process.kill(pid, 0)).toThrow();
  }, 60_000);
});
