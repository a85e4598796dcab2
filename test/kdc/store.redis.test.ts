// Redis failure behaviour: a dead or demoted Redis gives StoreUnavailableError within a bound,
// never a hang; waiting is bounded; a Sentinel failover (graceful, then SIGKILL of the master)
// is survived without help; a Cluster with a dead master fails fast.
import { randomBytes } from 'node:crypto';
import { RedisKdcStore } from '../../kdc/store/redis';
import { type PrincipalRecord, StoreUnavailableError } from '../../kdc/store/store';
import {
  type RedisCluster,
  type RedisSentinelSet,
  type RedisStandalone,
  freePort,
  redisAvailable,
  redisCli,
  startRedisCluster,
  startRedisSentinel,
  startRedisStandalone,
  waitFor,
} from '../helpers/redis';

const d = redisAvailable() ? describe : describe.skip;
if (!redisAvailable()) console.warn('redis-server/redis-cli not found: Redis failure tests skipped');

function principal(name: string, kvno = 1): PrincipalRecord {
  return {
    name,
    kvno,
    keys: [{ kvno, masterKeyId: 'mk', nonce: '00', sealed: 'ab', createdAt: 1, validUntil: null }],
    disabled: false,
    allowedNets: [],
    groups: [],
    createdAt: 1,
    updatedAt: 1,
  };
}

/** Resolves with [elapsed ms, rejection]; fails the test if the promise resolves. */
async function timedFailure(p: Promise<unknown>): Promise<[number, Error]> {
  const t0 = Date.now();
  try {
    await p;
  } catch (e) {
    return [Date.now() - t0, e as Error];
  }
  throw new Error('expected a failure');
}

const stores: RedisKdcStore[] = [];
const track = (s: RedisKdcStore) => (stores.push(s), s);
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

d('Redis store failures', () => {
  test('nothing listening: StoreUnavailableError naming host:port in under 1 s', async () => {
    const port = await freePort();
    const store = track(new RedisKdcStore({ mode: 'standalone', host: '127.0.0.1', port, timeoutMs: 500 }));
    const [ms, e] = await timedFailure(store.getPrincipal('alice'));
    expect(e).toBeInstanceOf(StoreUnavailableError);
    expect(e.message).toContain(`redis 127.0.0.1:${port}`);
    expect(e.message).toMatch(/getPrincipal: not connected within 500 ms/);
    expect(ms).toBeLessThan(1000);
  });

  test('waiting for a connection is bounded: excess operations are refused at once', async () => {
    const port = await freePort();
    const store = track(new RedisKdcStore({ mode: 'standalone', host: '127.0.0.1', port, timeoutMs: 300, maxPending: 5 }));
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => store.changeVersion()));
    const reasons = results.map((r) => (r.status === 'rejected' ? (r.reason as Error).message : 'ok'));
    expect(reasons.filter((m) => /already waiting for a connection/.test(m))).toHaveLength(3);
    expect(reasons.filter((m) => /not connected within/.test(m))).toHaveLength(5);
  });

  describe('standalone', () => {
    let redis: RedisStandalone;
    let other: RedisStandalone;
    beforeAll(async () => {
      [redis, other] = await Promise.all([startRedisStandalone(), startRedisStandalone()]);
    }, 30_000);
    afterAll(async () => {
      await Promise.all([redis?.stop(), other?.stop()]);
    });

    test('READONLY (master demoted): typed error within the deadline, then recovers by itself', async () => {
      const store = track(new RedisKdcStore({ mode: 'standalone', host: redis.host, port: redis.port, keyPrefix: 'ro', timeoutMs: 500 }));
      expect((await store.putPrincipal(principal('a'), null)).ok).toBe(true);
      await redisCli(redis.port, 'REPLICAOF', other.host, String(other.port));
      const [ms, e] = await timedFailure(store.putPrincipal(principal('b'), null));
      expect(e).toBeInstanceOf(StoreUnavailableError);
      expect(e.message).toMatch(/READONLY/);
      expect(ms).toBeLessThan(1000);
      await redisCli(redis.port, 'REPLICAOF', 'NO', 'ONE');
      await waitFor('writes after promotion', async () => (await store.putPrincipal(principal('b'), null)).ok, 5000);
    });

    test('if ioredis gives up on the connection (status end), the store reconnects by itself', async () => {
      const store = track(new RedisKdcStore({ mode: 'standalone', host: redis.host, port: redis.port, keyPrefix: 'end', timeoutMs: 500 }));
      await store.ping();
      const client = (store as unknown as { client: { status: string; disconnect(): void } }).client;
      client.disconnect(); // what a failover race inside ioredis can do
      await waitFor('status end', async () => client.status === 'end', 2000, 5);
      await waitFor('the store to answer again', async () => (await store.changeVersion(), true), 3000, 50);
    });

    test('waitForReplicas: a write no replica acknowledged is reported, not silently trusted', async () => {
      await redisCli(other.port, 'REPLICAOF', redis.host, String(redis.port));
      await waitFor('replica link up', async () => /master_link_status:up/.test(await redisCli(other.port, 'INFO', 'replication')));
      const store = track(new RedisKdcStore({ mode: 'standalone', host: redis.host, port: redis.port, keyPrefix: 'wr', timeoutMs: 500, waitForReplicas: 1 }));
      expect((await store.putPrincipal(principal('a'), null)).ok).toBe(true);
      expect((await redisCli(other.port, 'HEXISTS', '{wr}:principals', 'a')).trim()).toBe('1');
      await redisCli(other.port, 'REPLICAOF', 'NO', 'ONE');
      await waitFor('replica gone', async () => /connected_slaves:0/.test(await redisCli(redis.port, 'INFO', 'replication')));
      const [ms, e] = await timedFailure(store.putPrincipal(principal('b'), null));
      expect(e.message).toMatch(/putPrincipal: written to the master but acknowledged by 0\/1 replicas/);
      expect(ms).toBeLessThan(1000);
    });

    test('server killed under a connected store: fails fast, no hang', async () => {
      const store = track(new RedisKdcStore({ mode: 'standalone', host: other.host, port: other.port, timeoutMs: 500 }));
      await store.ping();
      await other.server.kill('SIGKILL');
      for (const op of [() => store.changeVersion(), () => store.putPrincipal(principal('x'), null), () => store.putIssuedIfAbsent(randomBytes(16), new Uint8Array([1]), 1000)]) {
        const [ms, e] = await timedFailure(op());
        expect(e).toBeInstanceOf(StoreUnavailableError);
        expect(ms).toBeLessThan(1000);
      }
    });
  });

  describe('sentinel', () => {
    let s: RedisSentinelSet;
    beforeAll(async () => {
      s = await startRedisSentinel({ downAfterMs: 1000 });
    }, 60_000);
    afterAll(async () => {
      await s?.stop();
    });

    test('graceful failover, then SIGKILL of the new master: the store follows each promotion by itself', async () => {
      const store = track(new RedisKdcStore({ mode: 'sentinel', sentinels: s.sentinelEndpoints, masterName: s.masterName, timeoutMs: 500 }));
      let rev = 0;
      // A write that timed out may still have run: on a conflict, re-read (as principals.ts does).
      const put = async (kvno: number) => {
        const r = await store.putPrincipal(principal('ctr', kvno), rev === 0 ? null : rev);
        if (r.ok) rev = r.value.revision;
        else {
          const cur = await store.getPrincipal('ctr');
          if (cur?.value.kvno !== kvno) throw new Error(`conflict at ${kvno}`);
          rev = cur.revision;
        }
      };
      await put(1);
      const first = await s.currentMaster();

      await redisCli(s.sentinels[0]!.port, 'SENTINEL', 'FAILOVER', s.masterName);
      await waitFor('sentinels to name a new master', async () => (await s.currentMaster()).port !== first.port, 15_000);
      // A write that reaches the old master before the store hears +switch-master is lost by
      // Redis's design (asynchronous replication; waitForReplicas would report it). So first
      // prove the store now talks to the new master, then write.
      const promoted = await s.currentMaster();
      let probe = 0;
      await waitFor(
        'the store to write to the new master',
        async () => {
          const name = `probe${probe++}`;
          await store.putPrincipal(principal(name), null);
          return (await redisCli(promoted.port, 'HEXISTS', '{ciphergate}:principals', name)).trim() === '1';
        },
        15_000,
        100,
      );
      await put(2);
      expect((await store.getPrincipal('ctr'))!.value.kvno).toBe(2);

      // Sentinel re-points the old master at the new one on its next INFO round (about 10 s);
      // then make sure the write reached it before the crash.
      const master = promoted;
      const victim = [s.master, s.replica].find((p) => p.port === master.port)!;
      await waitFor('the old master to replicate the write', async () => (await redisCli(first.port, 'HGET', '{ciphergate}:principals', 'ctr')).includes('"kvno":2'), 25_000, 100);
      await victim.kill('SIGKILL');
      const t0 = Date.now();
      const failed = await timedFailure(store.changeVersion());
      expect(failed[1]).toBeInstanceOf(StoreUnavailableError);
      expect(failed[0]).toBeLessThan(1000);
      await waitFor('a write after the master was killed', async () => (await put(3), true), 25_000, 100);
      expect((await store.getPrincipal('ctr'))!.value.kvno).toBe(3);
      // A sentinel may hear of the failover late (from the others, every 2 s): wait for it.
      await waitFor('sentinels to agree on the new master', async () => (await s.currentMaster()).port !== master.port, 10_000, 100);
      console.log(`sentinel failover after SIGKILL: store writable again after ${Date.now() - t0} ms`);
    }, 60_000);
  });

  describe('cluster', () => {
    let c: RedisCluster;
    beforeAll(async () => {
      c = await startRedisCluster(3);
    }, 60_000);
    afterAll(async () => {
      await c?.stop();
    });

    test('a dead master (no replica): operations fail fast with StoreUnavailableError', async () => {
      const store = track(new RedisKdcStore({ mode: 'cluster', nodes: c.nodes, keyPrefix: 'dead', timeoutMs: 500 }));
      expect((await store.putPrincipal(principal('a'), null)).ok).toBe(true);
      // Kill the master that owns the `{dead}` hash tag, so the principal ops lose their slot.
      const slot = Number((await redisCli(c.nodes[0]!.port, 'CLUSTER', 'KEYSLOT', '{dead}')).trim());
      const ownerPort = await slotOwner(c.nodes[0]!.port, slot);
      const victim = c.servers.find((srv) => srv.port === ownerPort)!;
      await victim.kill('SIGKILL');
      const [ms, e] = await timedFailure(store.getPrincipal('a'));
      expect(e).toBeInstanceOf(StoreUnavailableError);
      expect(ms).toBeLessThan(1000);
    }, 30_000);
  });
});

/** The port of the node serving `slot`, from CLUSTER NODES (`... connected 0-5460 ...`). */
async function slotOwner(port: number, slot: number): Promise<number> {
  for (const line of (await redisCli(port, 'CLUSTER', 'NODES')).trim().split('\n')) {
    const f = line.split(' ');
    const owner = Number(/:(\d+)@/.exec(f[1] ?? '')?.[1]);
    for (const range of f.slice(8)) {
      const [a, b] = range.split('-').map(Number);
      if (a !== undefined && slot >= a && slot <= (b ?? a)) return owner;
    }
  }
  throw new Error(`no owner for slot ${slot}`);
}
