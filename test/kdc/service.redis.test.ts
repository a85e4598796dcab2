// KDC service resilience on a real redis-server: the store dies (SIGKILL) or hangs (SIGSTOP)
// and comes back; two KDC instances share one Redis and see a disable or rotation within the
// cache's staleness bound; SIGTERM-style drain finishes requests in flight.
import { type ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import { KDC_ERROR_NAMES, KdcType, type KdcMessage } from '../../common/protocol/kdc-messages';
import type { KeyFile } from '../../kdc/key-file';
import { type RedisStandalone, redisAvailable, redisCli, startRedisStandalone, waitFor } from '../helpers/redis';
import { type Lab, RawConn, ask, decodeAnswer, endpointOf, httpGet, makeLab, request, sleep, within } from './service.fixture';

const d = redisAvailable() ? describe : describe.skip;
if (!redisAvailable()) console.warn('redis-server not found: KDC service Redis resilience tests skipped');

const code = (m: KdcMessage): string => (m.type === KdcType.IssueError ? KDC_ERROR_NAMES[m.code] : 'ok');

/** Asks and measures. */
async function timedAsk(ep: string, frame: Uint8Array): Promise<[string, number]> {
  const t0 = Date.now();
  const m = await ask(ep, frame);
  return [code(m), Date.now() - t0];
}

d('KDC service with Redis: outages and two instances', () => {
  let redis: RedisStandalone;
  let restarted: ChildProcess | null = null;
  /** The redis-server process now (the first one, or the one restarted on its port). */
  const redisPid = (): number => (restarted?.pid ?? redis.server.child.pid) as number;
  let lab: Lab;
  let gw1: KeyFile;

  beforeAll(async () => {
    redis = await startRedisStandalone();
    lab = await makeLab({ kind: 'redis', redis });
    gw1 = await lab.key('gw1');
  });
  afterAll(async () => {
    await lab?.cleanup();
    if (restarted && restarted.exitCode === null) {
      restarted.kill('SIGKILL');
      await new Promise((r) => restarted?.once('exit', r));
    }
    await redis?.stop();
  });

  test('store hangs (SIGSTOP): fast store-unavailable and /readyz 503; SIGCONT: recovers by itself', async () => {
    const kdc = await lab.start();
    const ep = endpointOf(kdc);
    expect(code(await ask(ep, request(gw1, 'alice')))).toBe('ok');
    process.kill(redisPid(), 'SIGSTOP');
    try {
      // The first request meets the dead store and waits at most the store deadline (100 ms).
      const [first, firstMs] = await timedAsk(ep, request(gw1, 'alice'));
      expect(first).toBe('store-unavailable');
      expect(firstMs).toBeLessThan(2000);
      await within('readyz 503', 5000, async () => (await httpGet(kdc, '/readyz')).status === 503);
      expect(JSON.parse((await httpGet(kdc, '/readyz')).body).problems[0]).toMatch(/^store unavailable/);
      // Known down: every answer is immediate.
      const times: number[] = [];
      for (let i = 0; i < 10; i++) {
        const [c, ms] = await timedAsk(ep, request(gw1, 'alice'));
        expect(c).toBe('store-unavailable');
        times.push(ms);
      }
      expect(Math.max(...times)).toBeLessThan(1000); // typically ~1 ms; generous for slow machines
    } finally {
      process.kill(redisPid(), 'SIGCONT');
    }
    await within('readyz 200 after SIGCONT', 10_000, async () => (await httpGet(kdc, '/readyz')).status === 200);
    expect(code(await ask(ep, request(gw1, 'alice')))).toBe('ok');
    const metrics = (await httpGet(kdc, '/metrics')).body;
    expect(metrics).toMatch(/ciphergate_kdc_requests_total\{result="store-unavailable"\} ([1-9]\d+)/);
    expect(metrics).toMatch(/ciphergate_kdc_store_errors_total\{operation="[a-zA-Z]+"\} [1-9]/);
    await kdc.close();
  });

  test('store dies (SIGKILL) and restarts on the same port: store-unavailable meanwhile, then issuing again', async () => {
    const kdc = await lab.start();
    const ep = endpointOf(kdc);
    expect(code(await ask(ep, request(gw1, 'alice')))).toBe('ok');
    await redisCli(redis.port, 'SAVE'); // the restarted server loads this snapshot
    await redis.server.kill('SIGKILL');
    const [first, firstMs] = await timedAsk(ep, request(gw1, 'alice'));
    expect(first).toBe('store-unavailable');
    expect(firstMs).toBeLessThan(2000);
    await within('readyz 503', 5000, async () => (await httpGet(kdc, '/readyz')).status === 503);
    const [c, ms] = await timedAsk(ep, request(gw1, 'alice'));
    expect([c, ms < 1000]).toEqual(['store-unavailable', true]);

    const conf = path.join(path.dirname(redis.server.logFile), 'standalone.conf');
    restarted = spawn('redis-server', [conf], { stdio: 'ignore' });
    await waitFor('restarted redis', async () => (await redisCli(redis.port, 'PING')).trim() === 'PONG');
    await within('readyz 200 after restart', 15_000, async () => (await httpGet(kdc, '/readyz')).status === 200);
    await within('issuing after restart', 5000, async () => code(await ask(ep, request(gw1, 'alice'))) === 'ok');
    await kdc.close();
  });

  test('a stored key that does not unseal (tampered) is internal, not a store outage', async () => {
    const kdc = await lab.start();
    const ep = endpointOf(kdc);
    expect(code(await ask(ep, request(gw1, 'dave')))).toBe('ok');
    const prefix = (lab.config.store as { keyPrefix: string }).keyPrefix;
    const json = JSON.parse(await redisCli(redis.port, 'HGET', `{${prefix}}:principals`, 'dave')) as { keys: { sealed: string }[] };
    const s = json.keys[0]!.sealed;
    json.keys[0]!.sealed = (s[0] === '0' ? '1' : '0') + s.slice(1);
    await redisCli(redis.port, 'HSET', `{${prefix}}:principals`, 'dave', JSON.stringify(json));
    await redisCli(redis.port, 'INCR', `{${prefix}}:version`);
    await within('tampered key refused as internal', 3000, async () => code(await ask(ep, request(gw1, 'dave'))) === 'internal');
    expect((await httpGet(kdc, '/readyz')).status).toBe(200);
    expect(code(await ask(ep, request(gw1, 'alice')))).toBe('ok');
    await kdc.close();
  });

  test('disable, enable and rotate take effect on both of two KDC instances within the staleness bound', async () => {
    const a = await lab.start();
    const b = await lab.start();
    const eps = [endpointOf(a), endpointOf(b)];
    const all = async (frame: () => Uint8Array, want: string) => {
      for (const ep of eps) if (code(await ask(ep, frame())) !== want) return false;
      return true;
    };
    // Warm both caches.
    expect(await all(() => request(gw1, 'alice'), 'ok')).toBe(true);

    await lab.admin('principal', 'disable', 'alice');
    const disableMs = await within('alice disabled on both', 3000, () => all(() => request(gw1, 'alice'), 'principal-disabled'));
    await lab.admin('principal', 'enable', 'alice');
    await within('alice enabled on both', 3000, () => all(() => request(gw1, 'alice'), 'ok'));

    // Rotation without grace: the old gateway key stops working, the new one works, everywhere.
    await lab.admin('principal', 'rotate', 'gw1', '--grace-ms', '0');
    const rotated = await lab.key('gw1');
    expect(rotated.kvno).toBe(gw1.kvno + 1);
    const rotateMs = await within('old kvno refused on both', 3000, () => all(() => request(gw1, 'alice'), 'bad-authenticator'));
    expect(await all(() => request(rotated, 'alice'), 'ok')).toBe(true);

    // Policy changes too.
    await lab.admin('policy', 'remove', 'main');
    await within('policy removal on both', 3000, () => all(() => request(rotated, 'alice'), 'policy-denied'));
    // The bound is maxStalenessMs (500 ms here, 1 s by default) plus a poll; generous for slow machines.
    expect(disableMs).toBeLessThan(3000);
    expect(rotateMs).toBeLessThan(3000);
    await a.close();
    await b.close();
  });

  test('drain (SIGTERM) answers requests in flight before closing', async () => {
    const slow = await makeLab({ kind: 'redis', redis }, { config: { storeDeadlineMs: 5000 } });
    try {
      const g = await slow.key('gw1');
      const kdc = await slow.start();
      const c = await RawConn.open(endpointOf(kdc));
      c.send(request(g, 'alice'));
      await c.read(1); // caches warm
      process.kill(redisPid(), 'SIGSTOP');
      let stopped = true;
      try {
        c.send(...Array.from({ length: 5 }, () => request(g, 'alice')));
        await within('5 requests in flight', 3000, async () => kdc.service.working === 5);
        const drained = kdc.drain(10_000);
        await sleep(200);
        process.kill(redisPid(), 'SIGCONT');
        stopped = false;
        await drained;
      } finally {
        if (stopped) process.kill(redisPid(), 'SIGCONT');
      }
      expect((await c.read(5)).map((a) => code(decodeAnswer(a)))).toEqual(Array(5).fill('ok'));
      await c.closedByPeer();
    } finally {
      await slow.cleanup();
    }
  });
});
