// KdcStore on Redis through ioredis: standalone, Sentinel or Cluster from one options shape.
//
// How ioredis is configured, and why:
// - Every operation has one deadline (timeoutMs) covering the wait for a connection and the
//   reply, so a dead Redis gives StoreUnavailableError fast, never a hang.
// - ioredis's offline queue is off. Operations wait here for a ready connection instead, counted
//   and capped (maxPending): that is the bounded offline queue, and a command whose caller already
//   saw it time out can never be written later (no stale CAS landing after an error).
// - maxRetriesPerRequest 1, commandTimeout = timeoutMs, short capped reconnect back-off, and no
//   automatic resend of commands that were in flight when a link dropped (they may have run).
// - READONLY (a master demoted by failover): reconnectOnError drops the link; Sentinel mode
//   then asks the sentinels for the new master (and follows +switch-master through
//   failoverDetector before a write even fails), Cluster mode refreshes its slot map, and the
//   operation is retried within its deadline: a rejected write certainly did not run.
// - Cluster: principals, policy, meta and the change counter share the hash tag `{prefix}` so the
//   CAS scripts touch one slot; issued records and the audit stream spread over other slots.
// - A CAS write that fails with StoreUnavailableError has an unknown outcome (the reply may have
//   been lost): re-read before retrying, as kdc/principals.ts does.
import { readFileSync } from 'node:fs';
import Redis, { Cluster, type ClusterOptions, type RedisOptions } from 'ioredis';
import { ok, err } from '../../common/result';
import {
  type AuditEntry,
  type AuditEvent,
  type CasResult,
  type IssuedPut,
  type KdcStore,
  type PolicyRule,
  type PrincipalRecord,
  type StoreMeta,
  type Versioned,
  StoreCorruptError,
  StoreUnavailableError,
  checkIssuedArgs,
  checkTailCount,
  decodeStored,
  encodeAuditEvent,
  isAuditEvent,
  isPolicyRule,
  isPrincipalRecord,
  isStoreMeta,
  sortById,
  sortByName,
} from './store';

export interface RedisEndpoint {
  host: string;
  port: number;
}

export interface RedisTlsOptions {
  /** PEM file with the CA(s) to trust; system CAs when absent. */
  caFile?: string;
  servername?: string;
}

export interface RedisCommonOptions {
  username?: string;
  password?: string;
  tls?: RedisTlsOptions;
  /** Prefix of every key. Default `ciphergate`. */
  keyPrefix?: string;
  /** Deadline of one store operation, connection wait included. Default 500 ms. */
  timeoutMs?: number;
  /** TCP connect timeout. Default 1000 ms. */
  connectTimeoutMs?: number;
  /** Operations allowed to wait for a connection at once. Default 1000. */
  maxPending?: number;
  /** Audit stream length (XADD MAXLEN ~). Default 100000. */
  auditMaxLen?: number;
  /**
   * Principal/policy/meta writes return only once this many replicas acknowledged them (WAIT);
   * otherwise StoreUnavailableError (outcome unknown). Default 0: Redis replication is
   * asynchronous, so a failover can lose a write acknowledged by the master alone.
   */
  waitForReplicas?: number;
}

export type RedisStoreOptions = RedisCommonOptions &
  (
    | { mode: 'standalone'; host: string; port: number; db?: number }
    | {
        mode: 'sentinel';
        sentinels: RedisEndpoint[];
        masterName: string;
        db?: number;
        sentinelUsername?: string;
        sentinelPassword?: string;
      }
    | { mode: 'cluster'; nodes: RedisEndpoint[] }
  );

// KEYS: data hash, revision hash, change counter. ARGV: field, expected ('' absent, '*' any), json ('' delete).
const CAS_SCRIPT = `
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if ARGV[2] == '*' then
  if not cur then return {0, ''} end
elseif ARGV[2] == '' then
  if cur then return {0, cur} end
elseif cur ~= ARGV[2] then
  return {0, cur or ''}
end
local v = redis.call('INCR', KEYS[3])
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  redis.call('HSET', KEYS[2], ARGV[1], v)
end
return {1, v}`;

// Value and revision read atomically.
const GET2_SCRIPT = `return {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('HGET', KEYS[2], ARGV[1])}`;
const LIST2_SCRIPT = `return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}`;

// KEYS: policy hash, change counter. ARGV: id, json, onlyIfAbsent.
const POLICY_PUT_SCRIPT = `
if ARGV[3] == '1' and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[2])
return 1`;
const POLICY_DEL_SCRIPT = `
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('INCR', KEYS[2])
  return 1
end
return 0`;

// Returns the existing record, or stores ARGV[1] for ARGV[2] ms and returns nil. (SET NX GET needs 7.0.)
const ISSUED_SCRIPT = `
local cur = redis.call('GET', KEYS[1])
if cur then return cur end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false`;

// Many put-if-absents in one call (standalone and Sentinel: one node holds every key). KEYS: the
// records; ARGV: bytes and ttl per key. Returns per key the existing record, or '' when stored
// (a record is never empty).
const ISSUED_MANY_SCRIPT = `
local out = {}
for i = 1, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  if cur then
    out[i] = cur
  else
    redis.call('SET', KEYS[i], ARGV[2 * i - 1], 'PX', ARGV[2 * i])
    out[i] = ''
  end
end
return out`;

// A batch of audit events in one call. KEYS: the stream; ARGV: MAXLEN, then the events.
const AUDIT_MANY_SCRIPT = `
for i = 2, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[i])
end
return #ARGV - 1`;

/** Keys per cgIssuedMany call. */
const ISSUED_BATCH_MAX = 256;

interface PendingPut {
  key: string;
  bytes: Uint8Array;
  ttl: string;
  resolve(r: IssuedPut): void;
  reject(e: unknown): void;
}

interface Scripts {
  cgCas(k1: string, k2: string, k3: string, field: string, expected: string, json: string): Promise<[number, string | number]>;
  cgGet2(k1: string, k2: string, field: string): Promise<[string | null, string | null]>;
  cgList2(k1: string, k2: string): Promise<[string[], string[]]>;
  cgPolicyPut(k1: string, k2: string, id: string, json: string, onlyIfAbsent: string): Promise<number>;
  cgPolicyDel(k1: string, k2: string, id: string): Promise<number>;
  cgIssuedBuffer(k1: string, bytes: Buffer, ttlMs: string): Promise<Buffer | null>;
  cgIssuedManyBuffer(numKeys: number, ...keysThenArgs: (string | Buffer)[]): Promise<Buffer[]>;
  cgAuditMany(k1: string, maxLen: string, ...events: string[]): Promise<number>;
}
type Client = (Redis | Cluster) & Scripts;

const RETRIABLE = /^(READONLY|LOADING|MASTERDOWN|TRYAGAIN|CLUSTERDOWN)|Stream isn't writeable|Connection is closed/;

const errMsg = (e: unknown) => (e instanceof Error ? e.message : String(e));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const hp = (e: RedisEndpoint) => (e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`);

export function describeRedis(o: RedisStoreOptions): string {
  switch (o.mode) {
    case 'standalone':
      return `redis ${hp(o)}`;
    case 'sentinel':
      return `redis sentinel ${o.masterName} via ${o.sentinels.map(hp).join(',')}`;
    case 'cluster':
      return `redis cluster ${o.nodes.map(hp).join(',')}`;
  }
}

export class RedisKdcStore implements KdcStore {
  readonly description: string;
  private readonly client: Client;
  private readonly timeoutMs: number;
  private readonly maxPending: number;
  private readonly auditMaxLen: number;
  private readonly waitForReplicas: number;
  private readonly k: { principals: string; principalRevs: string; policy: string; meta: string; metaRevs: string; version: string; audit: string; issued: string };
  private readonly waiters = new Set<{ resolve: () => void; reject: (e: Error) => void }>();
  /** Put-if-absents of this turn of the event loop, sent as one script call (not in Cluster mode). */
  private puts: PendingPut[] | null = null;
  private readonly batchPuts: boolean;
  private lastError = '';
  private closed = false;
  private revive: NodeJS.Timeout | null = null;

  constructor(opts: RedisStoreOptions) {
    this.description = describeRedis(opts);
    this.batchPuts = opts.mode !== 'cluster';
    this.timeoutMs = opts.timeoutMs ?? 500;
    this.maxPending = opts.maxPending ?? 1000;
    this.auditMaxLen = opts.auditMaxLen ?? 100_000;
    this.waitForReplicas = opts.waitForReplicas ?? 0;
    const p = opts.keyPrefix ?? 'ciphergate';
    const tag = `{${p}}`;
    this.k = {
      principals: `${tag}:principals`,
      principalRevs: `${tag}:principal-revs`,
      policy: `${tag}:policy`,
      meta: `${tag}:meta`,
      metaRevs: `${tag}:meta-revs`,
      version: `${tag}:version`,
      audit: `${p}:audit`,
      issued: `${p}:issued:`,
    };

    const base: RedisOptions = {
      username: opts.username,
      password: opts.password,
      tls: opts.tls ? { ca: opts.tls.caFile ? readFileSync(opts.tls.caFile) : undefined, servername: opts.tls.servername } : undefined,
      connectTimeout: opts.connectTimeoutMs ?? 1000,
      // How long close() lets a socket linger (ioredis waits 2 s for a dead one by default).
      disconnectTimeout: 200,
      commandTimeout: this.timeoutMs,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      enableReadyCheck: true,
      // A command in flight when the link dropped may have run: do not send it a second time.
      autoResendUnfulfilledCommands: false,
      retryStrategy: (times: number) => Math.min(times * 100, 1000),
      reconnectOnError: (e: Error) => {
        if (!e.message.startsWith('READONLY')) return false;
        this.lastError = e.message;
        return 1;
      },
    };
    let client: Redis | Cluster;
    if (opts.mode === 'standalone') {
      client = new Redis({ ...base, host: opts.host, port: opts.port, db: opts.db ?? 0 });
    } else if (opts.mode === 'sentinel') {
      client = new Redis({
        ...base,
        sentinels: opts.sentinels,
        name: opts.masterName,
        role: 'master',
        db: opts.db ?? 0,
        sentinelUsername: opts.sentinelUsername,
        sentinelPassword: opts.sentinelPassword,
        sentinelCommandTimeout: this.timeoutMs,
        sentinelRetryStrategy: (times: number) => Math.min(times * 100, 1000),
        failoverDetector: true,
        enableTLSForSentinelMode: !!opts.tls,
      });
    } else {
      const { retryStrategy: _r, enableOfflineQueue: _q, ...redisOptions } = base;
      const clusterOpts: ClusterOptions = {
        redisOptions,
        scaleReads: 'master',
        // Issued records spread over the slots: batch each node's commands of a tick in one write.
        enableAutoPipelining: true,
        enableOfflineQueue: false,
        enableReadyCheck: true,
        maxRedirections: 16,
        retryDelayOnFailover: 100,
        retryDelayOnClusterDown: 100,
        retryDelayOnTryAgain: 100,
        slotsRefreshTimeout: 1000,
        clusterRetryStrategy: (times: number) => Math.min(times * 100, 1000),
      };
      client = new Cluster(opts.nodes, clusterOpts);
      client.on('node error', (e: unknown) => {
        this.lastError = errMsg(e);
      });
    }
    client.defineCommand('cgCas', { numberOfKeys: 3, lua: CAS_SCRIPT });
    client.defineCommand('cgGet2', { numberOfKeys: 2, lua: GET2_SCRIPT });
    client.defineCommand('cgList2', { numberOfKeys: 2, lua: LIST2_SCRIPT });
    client.defineCommand('cgPolicyPut', { numberOfKeys: 2, lua: POLICY_PUT_SCRIPT });
    client.defineCommand('cgPolicyDel', { numberOfKeys: 2, lua: POLICY_DEL_SCRIPT });
    client.defineCommand('cgIssued', { numberOfKeys: 1, lua: ISSUED_SCRIPT });
    client.defineCommand('cgIssuedMany', { lua: ISSUED_MANY_SCRIPT });
    client.defineCommand('cgAuditMany', { numberOfKeys: 1, lua: AUDIT_MANY_SCRIPT });
    client.on('error', (e: unknown) => {
      this.lastError = errMsg(e);
    });
    client.on('ready', () => {
      this.lastError = '';
      for (const w of this.waiters) w.resolve();
      this.waiters.clear();
    });
    // ioredis can give up for good ('end'): e.g. a +switch-master seen by the failover detector
    // of the dead connection aborts the reconnect in progress. Only close() may end the store.
    client.on('end', () => {
      if (this.closed || this.revive) return;
      this.revive = setTimeout(() => {
        this.revive = null;
        if (!this.closed && client.status === 'end') client.connect().catch(() => undefined);
      }, 100);
      this.revive.unref();
    });
    this.client = client as Client;
  }

  private unavailable(op: string, reason: string): StoreUnavailableError {
    return new StoreUnavailableError(this.description, op, reason);
  }

  private async waitReady(op: string, deadline: number): Promise<void> {
    if (this.client.status === 'ready') return;
    if (this.waiters.size >= this.maxPending) throw this.unavailable(op, `${this.waiters.size} operations already waiting for a connection`);
    const ms = Math.max(0, deadline - Date.now());
    await new Promise<void>((resolve, reject) => {
      const w = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(this.unavailable(op, `not connected within ${this.timeoutMs} ms (${this.client.status}${this.lastError ? `: ${this.lastError}` : ''})`));
      }, ms);
      this.waiters.add(w);
    });
  }

  /** Runs one operation under the deadline; retries what certainly did not execute (READONLY...). */
  private async run<T>(op: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw this.unavailable(op, 'store is closed');
    const deadline = Date.now() + this.timeoutMs;
    for (let attempt = 0; ; attempt++) {
      if (this.client.status !== 'ready') await this.waitReady(op, deadline);
      let timer: NodeJS.Timeout | undefined;
      try {
        // A first attempt on a ready standalone/Sentinel connection is bounded by ioredis's own
        // commandTimeout (= timeoutMs): no second timer per operation on the issue path.
        if (attempt === 0 && this.batchPuts && deadline - Date.now() >= this.timeoutMs) return await fn();
        const timeout = new Promise<never>((_, reject) => {
          const ms = Math.max(0, deadline - Date.now());
          timer = setTimeout(() => reject(this.unavailable(op, `no reply within ${this.timeoutMs} ms${this.lastError ? ` (last error: ${this.lastError})` : ''}`)), ms);
        });
        return await Promise.race([fn(), timeout]);
      } catch (e) {
        if (e instanceof StoreUnavailableError || e instanceof StoreCorruptError || e instanceof RangeError) throw e;
        const msg = errMsg(e);
        if (msg.startsWith('WRONGTYPE')) throw new StoreCorruptError(this.description, `${op}: ${msg} (foreign data under the key prefix?)`);
        if (RETRIABLE.test(msg) && Date.now() + 20 < deadline && attempt < 5) {
          if (this.client instanceof Cluster && msg.startsWith('READONLY')) this.client.refreshSlotsCache();
          await sleep(20);
          continue;
        }
        throw this.unavailable(op, msg === 'Command timed out' ? `no reply within ${this.timeoutMs} ms${this.lastError ? ` (last error: ${this.lastError})` : ''}` : msg);
      } finally {
        clearTimeout(timer);
      }
    }
  }

  // ---- principals, policy, meta ----

  async getPrincipal(name: string): Promise<Versioned<PrincipalRecord> | null> {
    const [json, rev] = await this.run('getPrincipal', () => this.client.cgGet2(this.k.principals, this.k.principalRevs, name));
    if (json === null) return null;
    return { value: decodeStored(this.description, `principal ${name}`, json, isPrincipalRecord), revision: Number(rev) };
  }

  private async cas(op: string, keys: [string, string], field: string, expected: string, json: string): Promise<CasResult> {
    const args = [keys[0], keys[1], this.k.version, field, expected, json] as const;
    const [applied, rev] = await this.run(op, async () => {
      if (this.waitForReplicas === 0) return this.client.cgCas(...args);
      // WAIT counts the writes of its own connection: pipeline it behind the script (same node).
      const waitMs = Math.max(1, Math.floor(this.timeoutMs / 2));
      const pipe = this.client.pipeline() as unknown as Scripts & { wait(n: number, ms: number): unknown; exec(): Promise<[Error | null, unknown][] | null> };
      pipe.cgCas(...args);
      pipe.wait(this.waitForReplicas, waitMs);
      const [[e1, r1] = [null, null], [e2, acked] = [null, 0]] = (await pipe.exec()) ?? [];
      if (e1) throw e1;
      const result = r1 as [number, string | number];
      if (result[0] === 1 && (e2 || Number(acked) < this.waitForReplicas)) {
        throw this.unavailable(op, `written to the master but acknowledged by ${e2 ? 0 : Number(acked)}/${this.waitForReplicas} replicas within ${waitMs} ms; it may be lost in a failover, re-read before retrying`);
      }
      return result;
    });
    if (applied === 1) return ok({ revision: Number(rev) });
    return err({ currentRevision: rev === '' ? null : Number(rev) });
  }

  putPrincipal(record: PrincipalRecord, expectedRevision: number | null): Promise<CasResult> {
    const expected = expectedRevision === null ? '' : String(expectedRevision);
    return this.cas('putPrincipal', [this.k.principals, this.k.principalRevs], record.name, expected, JSON.stringify(record));
  }

  deletePrincipal(name: string, expectedRevision?: number): Promise<CasResult> {
    const expected = expectedRevision === undefined ? '*' : String(expectedRevision);
    return this.cas('deletePrincipal', [this.k.principals, this.k.principalRevs], name, expected, '');
  }

  async listPrincipals(): Promise<Versioned<PrincipalRecord>[]> {
    const [flat, revFlat] = await this.run('listPrincipals', () => this.client.cgList2(this.k.principals, this.k.principalRevs));
    const revs = new Map<string, number>();
    for (let i = 0; i + 1 < revFlat.length; i += 2) revs.set(revFlat[i] as string, Number(revFlat[i + 1]));
    const out: Versioned<PrincipalRecord>[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const name = flat[i] as string;
      out.push({ value: decodeStored(this.description, `principal ${name}`, flat[i + 1] as string, isPrincipalRecord), revision: revs.get(name) ?? 0 });
    }
    return sortByName(out);
  }

  async listPolicyRules(): Promise<PolicyRule[]> {
    const all = await this.run('listPolicyRules', () => this.client.hgetall(this.k.policy));
    return sortById(Object.entries(all).map(([id, json]) => decodeStored(this.description, `policy rule ${id}`, json, isPolicyRule)));
  }

  async putPolicyRule(rule: PolicyRule, onlyIfAbsent = false): Promise<boolean> {
    const n = await this.run('putPolicyRule', () => this.client.cgPolicyPut(this.k.policy, this.k.version, rule.id, JSON.stringify(rule), onlyIfAbsent ? '1' : '0'));
    return n === 1;
  }

  async removePolicyRule(id: string): Promise<boolean> {
    return (await this.run('removePolicyRule', () => this.client.cgPolicyDel(this.k.policy, this.k.version, id))) === 1;
  }

  async getMeta(): Promise<Versioned<StoreMeta> | null> {
    const [json, rev] = await this.run('getMeta', () => this.client.cgGet2(this.k.meta, this.k.metaRevs, 'meta'));
    if (json === null) return null;
    return { value: decodeStored(this.description, 'store meta', json, isStoreMeta), revision: Number(rev) };
  }

  putMeta(meta: StoreMeta, expectedRevision: number | null): Promise<CasResult> {
    const expected = expectedRevision === null ? '' : String(expectedRevision);
    return this.cas('putMeta', [this.k.meta, this.k.metaRevs], 'meta', expected, JSON.stringify(meta));
  }

  async changeVersion(): Promise<number> {
    const v = await this.run('changeVersion', () => this.client.get(this.k.version));
    return v === null ? 0 : Number(v);
  }

  // ---- audit ----

  async appendAudit(events: readonly AuditEvent[]): Promise<void> {
    if (events.length === 0) return;
    const encoded = events.map(encodeAuditEvent);
    // One script call per batch: one command for Redis and for ioredis, however many events.
    await this.run('appendAudit', () => this.client.cgAuditMany(this.k.audit, String(this.auditMaxLen), ...encoded));
  }

  async tailAudit(count: number): Promise<AuditEntry[]> {
    checkTailCount(count);
    if (count === 0) return [];
    const rows = await this.run('tailAudit', () => this.client.xrevrange(this.k.audit, '+', '-', 'COUNT', count));
    const out: AuditEntry[] = [];
    for (const [id, fields] of rows.reverse()) {
      const i = fields.indexOf('e');
      const json = i >= 0 ? fields[i + 1] : undefined;
      if (json === undefined) continue;
      try {
        const event: unknown = JSON.parse(json);
        if (isAuditEvent(event)) out.push({ id, event });
      } catch {
        // not ours; skip
      }
    }
    return out;
  }

  // ---- issued responses ----

  putIssuedIfAbsent(requestId: Uint8Array, bytes: Uint8Array, ttlMs: number): Promise<IssuedPut> {
    try {
      checkIssuedArgs(requestId, bytes, ttlMs);
    } catch (e) {
      return Promise.reject(e);
    }
    const key = this.k.issued + Buffer.from(requestId.buffer, requestId.byteOffset, requestId.byteLength).toString('hex');
    if (!this.batchPuts) return this.putIssuedOne(key, bytes, ttlMs);
    // Requests answered in the same turn of the event loop share one script call.
    return new Promise<IssuedPut>((resolve, reject) => {
      if (this.puts === null) {
        this.puts = [];
        setImmediate(() => this.flushPuts());
      }
      this.puts.push({ key, bytes, ttl: String(ttlMs), resolve, reject });
    });
  }

  private async putIssuedOne(key: string, bytes: Uint8Array, ttlMs: number): Promise<IssuedPut> {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const cur = await this.run('putIssuedIfAbsent', () => this.client.cgIssuedBuffer(key, buf, String(ttlMs)));
    return cur === null ? { stored: true, bytes } : { stored: false, bytes: new Uint8Array(cur) };
  }

  private flushPuts(): void {
    const all = this.puts ?? [];
    this.puts = null;
    for (let i = 0; i < all.length; i += ISSUED_BATCH_MAX) {
      const batch = all.slice(i, i + ISSUED_BATCH_MAX);
      const args: (string | Buffer)[] = new Array<string | Buffer>(batch.length * 3);
      batch.forEach((p, j) => {
        args[j] = p.key;
        args[batch.length + 2 * j] = Buffer.from(p.bytes.buffer, p.bytes.byteOffset, p.bytes.byteLength);
        args[batch.length + 2 * j + 1] = p.ttl;
      });
      this.run('putIssuedIfAbsent', () => this.client.cgIssuedManyBuffer(batch.length, ...args)).then(
        (replies) => {
          batch.forEach((p, j) => {
            const cur = replies[j];
            if (cur === undefined) p.reject(this.unavailable('putIssuedIfAbsent', 'short reply from Redis'));
            else p.resolve(cur.length === 0 ? { stored: true, bytes: p.bytes } : { stored: false, bytes: new Uint8Array(cur) });
          });
        },
        (e: unknown) => {
          for (const p of batch) p.reject(e);
        },
      );
    }
  }

  async getIssued(requestId: Uint8Array): Promise<Uint8Array | null> {
    checkIssuedArgs(requestId, null, null);
    const key = this.k.issued + Buffer.from(requestId).toString('hex');
    const cur = await this.run('getIssued', () => this.client.getBuffer(key));
    return cur === null ? null : new Uint8Array(cur);
  }

  async ping(): Promise<void> {
    await this.run('ping', () => this.client.ping());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.revive) clearTimeout(this.revive);
    for (const w of this.waiters) w.reject(this.unavailable('wait', 'store is closed'));
    this.waiters.clear();
    if (this.client.status === 'ready') {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.client.quit().catch(() => undefined), new Promise((r) => (timer = setTimeout(r, 500)))]);
      clearTimeout(timer);
    }
    this.client.disconnect();
  }
}
