// One contract, every store: embedded, Redis standalone, a real 3-master Redis Cluster and a real
// Sentinel set-up (master + replica + 3 sentinels), all started on loopback by test/helpers/redis.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { openEmbeddedStore } from '../../kdc/store/embedded';
import { RedisKdcStore, type RedisStoreOptions } from '../../kdc/store/redis';
import { type KdcStore, type PolicyRule, type PrincipalRecord, type StoreMeta, StoreUnavailableError } from '../../kdc/store/store';
import { redisAvailable, startRedisCluster, startRedisSentinel, startRedisStandalone } from '../helpers/redis';

interface Backend {
  name: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** Opens a store on a fresh namespace; a second call with the same ns opens another client on it. */
  open(ns: string, auditMaxLen?: number): Promise<KdcStore>;
  /** The most audit entries a store with this maxLen may keep after many appends. */
  auditBound(maxLen: number): number;
}

function embeddedBackend(): Backend {
  let root = '';
  return {
    name: 'embedded',
    setup: async () => {
      root = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-store-contract-'));
    },
    teardown: async () => fs.rmSync(root, { recursive: true, force: true }),
    open: (ns, auditMaxLen = 1000) => openEmbeddedStore({ dir: path.join(root, ns), auditMaxLen, compactAfterRecords: 20 }),
    auditBound: (n) => 2 * n,
  };
}

function redisBackend(name: string, start: () => Promise<{ opts: Omit<RedisStoreOptions, 'keyPrefix'>; stop(): Promise<void> }>): Backend {
  let handle: { opts: Omit<RedisStoreOptions, 'keyPrefix'>; stop(): Promise<void> } | null = null;
  return {
    name,
    setup: async () => {
      handle = await start();
    },
    teardown: async () => handle?.stop(),
    open: async (ns, auditMaxLen = 1000) => {
      if (!handle) throw new Error(`${name} did not start`);
      const store = new RedisKdcStore({ ...handle.opts, keyPrefix: `t-${ns}`, auditMaxLen, timeoutMs: 2000 } as RedisStoreOptions);
      await store.ping();
      return store;
    },
    // XADD MAXLEN ~ trims whole stream nodes (100 entries by default).
    auditBound: (n) => n + 100,
  };
}

const backends: Backend[] = [embeddedBackend()];
if (redisAvailable()) {
  backends.push(
    redisBackend('redis standalone', async () => {
      const r = await startRedisStandalone();
      return { opts: { mode: 'standalone', host: r.host, port: r.port }, stop: r.stop };
    }),
    redisBackend('redis cluster (3 masters)', async () => {
      const c = await startRedisCluster(3);
      return { opts: { mode: 'cluster', nodes: c.nodes }, stop: c.stop };
    }),
    redisBackend('redis sentinel', async () => {
      const s = await startRedisSentinel();
      return { opts: { mode: 'sentinel', sentinels: s.sentinelEndpoints, masterName: s.masterName }, stop: s.stop };
    }),
  );
} else {
  console.warn('redis-server/redis-cli not found: the Redis cases of the store contract suite are skipped');
}

function principal(name: string, over: Partial<PrincipalRecord> = {}): PrincipalRecord {
  return {
    name,
    kvno: 1,
    keys: [{ kvno: 1, masterKeyId: 'mk1', nonce: '00'.repeat(12), sealed: 'ab'.repeat(48), createdAt: 1000, validUntil: null }],
    disabled: false,
    allowedNets: ['10.0.0.0/8'],
    groups: ['ops'],
    createdAt: 1000,
    updatedAt: 1000,
    ...over,
  };
}

function rule(id: string): PolicyRule {
  return { id, clients: ['alice', 'group:ops'], gateways: ['gw1'], services: ['10.1.2.3:5432'], createdAt: 5 };
}

const meta = (id: string): StoreMeta => ({ format: 1, masterKeyId: id, masterKeyVersion: 1, masterKeyCheck: { nonce: '11', sealed: '22' }, createdAt: 1, updatedAt: 2 });
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const ns = () => randomBytes(6).toString('hex');

describe.each(backends)('KdcStore contract: $name', (backend) => {
  let store: KdcStore;
  let space: string;
  const extra: KdcStore[] = [];

  beforeAll(() => backend.setup(), 60_000);
  afterAll(() => backend.teardown(), 30_000);
  beforeEach(async () => {
    space = ns();
    store = await backend.open(space);
  });
  afterEach(async () => {
    await store.close();
    await Promise.all(extra.splice(0).map((s) => s.close()));
  });
  const another = async (auditMaxLen?: number) => {
    const s = await backend.open(space, auditMaxLen);
    extra.push(s);
    return s;
  };

  test('principal compare-and-set: create, update, stale revision, delete', async () => {
    expect(await store.getPrincipal('alice')).toBeNull();
    const a = await store.putPrincipal(principal('alice'), null);
    if (!a.ok) throw new Error('create failed');
    const again = await store.putPrincipal(principal('alice'), null);
    expect(again).toEqual({ ok: false, error: { currentRevision: a.value.revision } });

    const b = await store.putPrincipal(principal('alice', { kvno: 2, updatedAt: 2000 }), a.value.revision);
    if (!b.ok) throw new Error('update failed');
    expect(b.value.revision).toBeGreaterThan(a.value.revision);
    const stale = await store.putPrincipal(principal('alice', { kvno: 3 }), a.value.revision);
    expect(stale).toEqual({ ok: false, error: { currentRevision: b.value.revision } });

    const got = await store.getPrincipal('alice');
    expect(got).toEqual({ value: principal('alice', { kvno: 2, updatedAt: 2000 }), revision: b.value.revision });

    expect(await store.deletePrincipal('alice', a.value.revision)).toEqual({ ok: false, error: { currentRevision: b.value.revision } });
    expect((await store.deletePrincipal('alice', b.value.revision)).ok).toBe(true);
    expect(await store.getPrincipal('alice')).toBeNull();
    expect(await store.deletePrincipal('alice')).toEqual({ ok: false, error: { currentRevision: null } });
    // Re-created after delete: a fresh revision, never an old one (no ABA).
    const c = await store.putPrincipal(principal('alice'), null);
    expect(c.ok && c.value.revision > b.value.revision).toBe(true);
    expect((await store.deletePrincipal('alice')).ok).toBe(true);
  });

  test('concurrent writers with the same revision: exactly one wins', async () => {
    const first = await store.putPrincipal(principal('bob'), null);
    if (!first.ok) throw new Error('create failed');
    const other = await another();
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => (i % 2 ? other : store).putPrincipal(principal('bob', { kvno: 10 + i }), first.value.revision)),
    );
    expect(results.filter((r) => r.ok)).toHaveLength(1);
  });

  test('list is sorted by name and round-trips exotic names', async () => {
    for (const n of ['zed', 'host/gw-1.example@CORP', 'alice', 'ünïcode']) {
      expect((await store.putPrincipal(principal(n), null)).ok).toBe(true);
    }
    const list = await store.listPrincipals();
    expect(list.map((p) => p.value.name)).toEqual(['alice', 'host/gw-1.example@CORP', 'zed', 'ünïcode']);
    for (const p of list) expect(p).toEqual(await store.getPrincipal(p.value.name));
  });

  test('policy rules: put, only-if-absent, upsert, list sorted, remove', async () => {
    expect(await store.listPolicyRules()).toEqual([]);
    expect(await store.putPolicyRule(rule('r2'))).toBe(true);
    expect(await store.putPolicyRule(rule('r1'), true)).toBe(true);
    expect(await store.putPolicyRule({ ...rule('r1'), gateways: ['x'] }, true)).toBe(false);
    expect(await store.putPolicyRule({ ...rule('r1'), comment: 'upserted' })).toBe(true);
    expect(await store.listPolicyRules()).toEqual([{ ...rule('r1'), comment: 'upserted' }, rule('r2')]);
    expect(await store.removePolicyRule('r2')).toBe(true);
    expect(await store.removePolicyRule('r2')).toBe(false);
    expect(await store.listPolicyRules()).toEqual([{ ...rule('r1'), comment: 'upserted' }]);
  });

  test('meta compare-and-set', async () => {
    expect(await store.getMeta()).toBeNull();
    const a = await store.putMeta(meta('a'), null);
    if (!a.ok) throw new Error('meta create failed');
    expect((await store.putMeta(meta('b'), null)).ok).toBe(false);
    expect((await store.putMeta(meta('b'), a.value.revision)).ok).toBe(true);
    expect((await store.getMeta())?.value.masterKeyId).toBe('b');
  });

  test('changeVersion bumps on every successful write, and only then; other clients see it', async () => {
    const other = await another();
    let v = await store.changeVersion();
    const bumped = async (what: string, f: () => Promise<unknown>, expectBump: boolean) => {
      await f();
      const now = await other.changeVersion();
      if (expectBump) expect({ what, bumped: now > v }).toEqual({ what, bumped: true });
      else expect({ what, same: now }).toEqual({ what, same: v });
      v = now;
    };
    await bumped('put principal', () => store.putPrincipal(principal('c'), null), true);
    await bumped('failed CAS', () => store.putPrincipal(principal('c'), null), false);
    await bumped('read', () => store.getPrincipal('c'), false);
    await bumped('put rule', () => store.putPolicyRule(rule('x')), true);
    await bumped('rule exists', () => store.putPolicyRule(rule('x'), true), false);
    await bumped('remove rule', () => store.removePolicyRule('x'), true);
    await bumped('remove absent rule', () => store.removePolicyRule('x'), false);
    await bumped('meta', () => store.putMeta(meta('m'), null), true);
    await bumped('audit', () => store.appendAudit([{ ts: 1, type: 'issue' }]), false);
    await bumped('issued', () => store.putIssuedIfAbsent(randomBytes(16), new Uint8Array([1]), 1000), false);
    await bumped('delete principal', () => store.deletePrincipal('c'), true);
    expect(await other.getPrincipal('c')).toBeNull();
  });

  test('issued records: first writer wins, TTL expires', async () => {
    const id = randomBytes(16);
    const first = new Uint8Array([1, 2, 3, 0, 255]);
    expect(await store.putIssuedIfAbsent(id, first, 300)).toEqual({ stored: true, bytes: first });
    expect(await store.putIssuedIfAbsent(id, new Uint8Array([9]), 300)).toEqual({ stored: false, bytes: first });
    expect(await store.getIssued(id)).toEqual(first);
    expect(await store.getIssued(randomBytes(16))).toBeNull();
    await sleep(450);
    expect(await store.getIssued(id)).toBeNull();
    expect(await store.putIssuedIfAbsent(id, new Uint8Array([7]), 300)).toEqual({ stored: true, bytes: new Uint8Array([7]) });
    await expect(store.putIssuedIfAbsent(id, first, 0)).rejects.toThrow(/ttlMs/);
    await expect(store.putIssuedIfAbsent(new Uint8Array(0), first, 10)).rejects.toThrow(/requestId/);
    await expect(store.putIssuedIfAbsent(id, new Uint8Array(0), 10)).rejects.toThrow(/issued bytes/);
  });

  test('audit: append and tail, oldest first; bounded', async () => {
    await store.appendAudit([
      { ts: 1, type: 'issue', client: 'a', gateway: 'g' },
      { ts: 2, type: 'deny', client: 'b', reason: 'policy-denied', groups: ['x', 'y'] },
    ]);
    await store.appendAudit([{ ts: 3, type: 'issue', ok: true, n: null }]);
    const tail = await store.tailAudit(2);
    expect(tail.map((e) => e.event)).toEqual([
      { ts: 2, type: 'deny', client: 'b', reason: 'policy-denied', groups: ['x', 'y'] },
      { ts: 3, type: 'issue', ok: true, n: null },
    ]);
    expect(tail[0]!.id < tail[1]!.id || tail[0]!.id.length < tail[1]!.id.length).toBe(true);
    expect(await store.tailAudit(0)).toEqual([]);

    const small = await another(20);
    for (let i = 0; i < 10; i++) await small.appendAudit(Array.from({ length: 30 }, (_, j) => ({ ts: 100 + i * 30 + j, type: 'issue' })));
    const kept = await small.tailAudit(10_000);
    expect(kept.length).toBeGreaterThanOrEqual(20);
    expect(kept.length).toBeLessThanOrEqual(backend.auditBound(20));
    expect(kept[kept.length - 1]!.event.ts).toBe(100 + 299);
  });

  test('ping, and a closed store refuses with StoreUnavailableError', async () => {
    await store.ping();
    const s = await another();
    await s.close();
    await expect(s.getPrincipal('x')).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(s.changeVersion()).rejects.toThrow(/closed/);
  });
});
