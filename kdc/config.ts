// The KDC config file (JSON) and its validator. Every problem is reported with the path of the
// field, e.g. `store.redis.sentinels[1].port: expected integer 1..65535`; all problems at once.
// Relative paths are relative to the config file. Every field has a default, so `{}` is a
// working single-node config (embedded store, stash file).
//
// {
//   "listen":   { "kdc": ["0.0.0.0:7391"], "metrics": "127.0.0.1:9391" },       // metrics null: off
//   "store":    { "embedded": { "path": "/var/lib/ciphergate/kdc" } }
//            or { "redis": { "mode": "standalone", "host": "10.0.0.9", "port": 6379 } }
//            or { "redis": { "mode": "sentinel", "masterName": "kdc", "sentinels": [{ "host": "10.0.0.1", "port": 26379 }] } }
//            or { "redis": { "mode": "cluster", "nodes": [{ "host": "10.0.0.1", "port": 7000 }] } },
//   "masterKey": { "file": "/etc/ciphergate/kdc/master.key" } or { "env": "CIPHERGATE_MASTER_KEY" },
//                plus "additional": [ ...same shapes ]: other master keys to unseal with while a
//                master-key rotation is under way (the new one before it, the old one after),
//   "ticketLifetimeMs": 120000, "graceMs": 86400000, "maxSkewMs": 300000,
//   "maxInFlight": 1024, "rateLimit": { "ratePerSec": 1000, "burst": 2000 },     // null: off
//   "storeDeadlineMs": 250,
//   "audit": { "maxLen": 100000, "queueMax": 10000 },
//   "cache": { "pollMs": 200, "maxStalenessMs": 1000 },
//   "cryptoBackend": "node"
// }
// Redis options besides the mode's own: username, password or passwordEnv, tls ({ caFile,
// servername } or true), keyPrefix, db (standalone/sentinel), sentinelUsername,
// sentinelPassword(Env), timeoutMs, connectTimeoutMs, maxPending, waitForReplicas.
// Embedded options besides path: compactAfterRecords, lockTimeoutMs, issuedMaxEntries (full
// answers kept for retries, 512 bytes each reserved), issuedIdsMax (request ids held until they expire; see store/embedded.ts),
// issuedJournal (default true: answered ids written to disk before their answers, so idempotency survives a KDC crash).
import * as path from 'node:path';
import type { BackendName } from '../common/crypto/backend';
import type { MasterKeySource } from './master-key';
import type { StoreConfig } from './store';
import type { RedisStoreOptions } from './store/redis';
import { ConfigError, type HostPort, Walker, hostProblem, joinPath as join } from '../common/config/walker';
import { readConfigJson } from '../common/config/file';

// Shared with the gateway and agent configs; re-exported for the kdc files and CLI that import them here.
export { ConfigError, type HostPort, formatHostPort, parseHostPort } from '../common/config/walker';

export interface KdcConfig {
  listen: { kdc: HostPort[]; metrics: HostPort | null };
  store: StoreConfig;
  masterKey: { current: MasterKeySource; additional: MasterKeySource[] };
  ticketLifetimeMs: number;
  graceMs: number;
  maxSkewMs: number;
  maxInFlight: number;
  rateLimit: { ratePerSec: number; burst: number } | null;
  /** Deadline of each store operation on the issue path. */
  storeDeadlineMs: number;
  audit: { maxLen: number; queueMax: number };
  cache: { pollMs: number; maxStalenessMs: number };
  cryptoBackend: BackendName;
}

export const DEFAULT_CONFIG_PATH = '/etc/ciphergate/kdc.json';
export const DEFAULT_STORE_PATH = '/var/lib/ciphergate/kdc';
export const DEFAULT_STASH_PATH = '/etc/ciphergate/kdc/master.key';
export const DEFAULT_KDC_PORT = 7391;

function masterKeySource(w: Walker, at: string, x: unknown): MasterKeySource | undefined {
  const o = w.obj(at, x, at === 'masterKey' ? ['file', 'env', 'additional'] : ['file', 'env']);
  if (!o) return undefined;
  if (o.file !== undefined && o.env !== undefined) return w.bad(at, 'give file or env, not both');
  if (o.env !== undefined) {
    const env = w.str(join(at, 'env'), o.env);
    if (env !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(env)) return w.bad(join(at, 'env'), 'expected an environment variable name');
    return env === undefined ? undefined : { env };
  }
  if (o.file === undefined) return w.bad(at, 'expected "file" or "env"');
  const file = w.path(join(at, 'file'), o.file);
  return file === undefined ? undefined : { file };
}

function storeConfig(w: Walker, x: unknown, auditMaxLen: number): StoreConfig | undefined {
  const o = w.obj('store', x, ['embedded', 'redis']);
  if (!o || (o.embedded === undefined && o.redis === undefined)) {
    if (o) w.bad('store', 'expected "embedded" or "redis"');
    return { type: 'embedded', dir: path.resolve(w.baseDir, DEFAULT_STORE_PATH), auditMaxLen };
  }
  if (o.embedded !== undefined && o.redis !== undefined) return w.bad('store', 'give embedded or redis, not both');
  if (o.embedded !== undefined) {
    const e = w.obj('store.embedded', o.embedded, ['path', 'compactAfterRecords', 'lockTimeoutMs', 'issuedMaxEntries', 'issuedIdsMax', 'issuedJournal']) ?? {};
    return {
      type: 'embedded',
      dir: w.path('store.embedded.path', e.path, DEFAULT_STORE_PATH) as string,
      compactAfterRecords: w.int('store.embedded.compactAfterRecords', e.compactAfterRecords, 1, 1_000_000, 1000),
      lockTimeoutMs: w.int('store.embedded.lockTimeoutMs', e.lockTimeoutMs, 10, 60_000, 2000),
      issuedMaxEntries: w.int('store.embedded.issuedMaxEntries', e.issuedMaxEntries, 1, 4_000_000, 100_000),
      issuedIdsMax: w.int('store.embedded.issuedIdsMax', e.issuedIdsMax, 16, 2 ** 28, 2 ** 24),
      issuedJournal: w.bool('store.embedded.issuedJournal', e.issuedJournal, true),
      auditMaxLen,
    };
  }
  const at = 'store.redis';
  const common = ['mode', 'username', 'password', 'passwordEnv', 'tls', 'keyPrefix', 'timeoutMs', 'connectTimeoutMs', 'maxPending', 'waitForReplicas'];
  const modeKeys: Record<string, string[]> = {
    standalone: ['host', 'port', 'db'],
    sentinel: ['sentinels', 'masterName', 'db', 'sentinelUsername', 'sentinelPassword', 'sentinelPasswordEnv'],
    cluster: ['nodes'],
  };
  const pre = w.obj(at, o.redis, [...common, ...Object.values(modeKeys).flat()]);
  if (!pre) return undefined;
  const mode = pre.mode;
  if (typeof mode !== 'string' || !(mode in modeKeys)) return w.bad(join(at, 'mode'), 'expected "standalone", "sentinel" or "cluster"');
  for (const [m, keys] of Object.entries(modeKeys)) {
    if (m === mode) continue;
    for (const k of keys) if (pre[k] !== undefined && !modeKeys[mode]!.includes(k)) w.bad(join(at, k), `not used in ${mode} mode`);
  }
  let tls: RedisStoreOptions['tls'];
  if (pre.tls === true) tls = {};
  else if (pre.tls !== undefined && pre.tls !== false) {
    const t = w.obj(join(at, 'tls'), pre.tls, ['caFile', 'servername']);
    if (t) {
      const caFile = w.path(join(at, 'tls.caFile'), t.caFile);
      const servername = w.str(join(at, 'tls.servername'), t.servername);
      tls = { ...(caFile ? { caFile } : {}), ...(servername ? { servername } : {}) };
    }
  }
  const keyPrefix = w.str(join(at, 'keyPrefix'), pre.keyPrefix, 'ciphergate') as string;
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(keyPrefix)) w.bad(join(at, 'keyPrefix'), 'expected 1..64 of A-Z a-z 0-9 . _ : -');
  const base = {
    username: w.str(join(at, 'username'), pre.username),
    password: w.secret(at, pre, 'password'),
    tls,
    keyPrefix,
    timeoutMs: w.int(join(at, 'timeoutMs'), pre.timeoutMs, 10, 60_000, 500),
    connectTimeoutMs: w.int(join(at, 'connectTimeoutMs'), pre.connectTimeoutMs, 10, 60_000, 1000),
    maxPending: w.int(join(at, 'maxPending'), pre.maxPending, 1, 1_000_000, 1000),
    waitForReplicas: w.int(join(at, 'waitForReplicas'), pre.waitForReplicas, 0, 16, 0),
    auditMaxLen,
  };
  if (mode === 'standalone') {
    if (pre.host === undefined) w.bad(join(at, 'host'), 'required');
    const host = w.str(join(at, 'host'), pre.host);
    const hp = host === undefined ? null : hostProblem(host);
    if (hp) w.bad(join(at, 'host'), hp);
    const port = w.int(join(at, 'port'), pre.port, 1, 65535, 6379);
    return { type: 'redis', mode, host: host ?? '', port, db: w.int(join(at, 'db'), pre.db, 0, 15, 0), ...base };
  }
  if (mode === 'sentinel') {
    const sentinels = w.endpoints(join(at, 'sentinels'), pre.sentinels);
    if (pre.masterName === undefined) w.bad(join(at, 'masterName'), 'required');
    const masterName = w.str(join(at, 'masterName'), pre.masterName) ?? '';
    return {
      type: 'redis',
      mode,
      sentinels,
      masterName,
      db: w.int(join(at, 'db'), pre.db, 0, 15, 0),
      sentinelUsername: w.str(join(at, 'sentinelUsername'), pre.sentinelUsername),
      sentinelPassword: w.secret(at, pre, 'sentinelPassword'),
      ...base,
    };
  }
  return { type: 'redis', mode: 'cluster', nodes: w.endpoints(join(at, 'nodes'), pre.nodes), ...base };
}

/** Validates parsed config JSON. `where` names the source in the error; paths resolve against baseDir. */
export function validateKdcConfig(json: unknown, opts: { where?: string; baseDir?: string; env?: NodeJS.ProcessEnv } = {}): KdcConfig {
  const w = new Walker(opts.baseDir ?? process.cwd(), opts.env ?? process.env);
  const top =
    w.obj('', json, ['listen', 'store', 'masterKey', 'ticketLifetimeMs', 'graceMs', 'maxSkewMs', 'maxInFlight', 'rateLimit', 'storeDeadlineMs', 'audit', 'cache', 'cryptoBackend']) ?? {};
  if (json === undefined || json === null || typeof json !== 'object' || Array.isArray(json)) w.problems.splice(0, w.problems.length, 'expected a JSON object');

  const listenO = w.obj('listen', top.listen, ['kdc', 'metrics']) ?? {};
  let kdc: HostPort[] = [{ host: '0.0.0.0', port: DEFAULT_KDC_PORT }];
  if (listenO.kdc !== undefined) {
    const list = typeof listenO.kdc === 'string' ? [listenO.kdc] : listenO.kdc;
    if (!Array.isArray(list) || list.length === 0) w.bad('listen.kdc', 'expected "host:port" or a non-empty array of them');
    else kdc = list.flatMap((e, i) => w.hostPort(`listen.kdc[${i}]`, e) ?? []);
  }
  let metrics: HostPort | null = { host: '127.0.0.1', port: 9391 };
  if (listenO.metrics === null) metrics = null;
  else if (listenO.metrics !== undefined) metrics = w.hostPort('listen.metrics', listenO.metrics) ?? null;

  const auditO = w.obj('audit', top.audit, ['maxLen', 'queueMax']) ?? {};
  const audit = { maxLen: w.int('audit.maxLen', auditO.maxLen, 100, 10_000_000, 100_000), queueMax: w.int('audit.queueMax', auditO.queueMax, 1, 1_000_000, 10_000) };

  const mkO = w.obj('masterKey', top.masterKey, ['file', 'env', 'additional']);
  const current = (mkO ? masterKeySource(w, 'masterKey', top.masterKey) : undefined) ?? { file: path.resolve(w.baseDir, DEFAULT_STASH_PATH) };
  const additional: MasterKeySource[] = [];
  if (mkO?.additional !== undefined) {
    if (!Array.isArray(mkO.additional)) w.bad('masterKey.additional', 'expected an array of { "file": ... } or { "env": ... }');
    else
      mkO.additional.forEach((p, i) => {
        const s = masterKeySource(w, `masterKey.additional[${i}]`, p);
        if (s) additional.push(s);
      });
  }

  let rateLimit: KdcConfig['rateLimit'] = { ratePerSec: 1000, burst: 2000 };
  if (top.rateLimit === null) rateLimit = null;
  else if (top.rateLimit !== undefined) {
    const r = w.obj('rateLimit', top.rateLimit, ['ratePerSec', 'burst']) ?? {};
    rateLimit = { ratePerSec: w.int('rateLimit.ratePerSec', r.ratePerSec, 1, 10_000_000, 1000), burst: w.int('rateLimit.burst', r.burst, 1, 10_000_000, 2000) };
  }

  const cacheO = w.obj('cache', top.cache, ['pollMs', 'maxStalenessMs']) ?? {};
  const cache = { pollMs: w.int('cache.pollMs', cacheO.pollMs, 10, 60_000, 200), maxStalenessMs: w.int('cache.maxStalenessMs', cacheO.maxStalenessMs, 20, 600_000, 1000) };
  if (cache.pollMs >= cache.maxStalenessMs) w.bad('cache.pollMs', `must be below cache.maxStalenessMs (${cache.maxStalenessMs})`);

  const cryptoBackend = top.cryptoBackend ?? 'node';
  if (cryptoBackend !== 'node' && cryptoBackend !== 'noble') w.bad('cryptoBackend', 'expected "node" or "noble"');

  const cfg: KdcConfig = {
    listen: { kdc, metrics },
    store: storeConfig(w, top.store, audit.maxLen) ?? { type: 'embedded', dir: DEFAULT_STORE_PATH },
    masterKey: { current, additional },
    ticketLifetimeMs: w.int('ticketLifetimeMs', top.ticketLifetimeMs, 1000, 3_600_000, 120_000),
    graceMs: w.int('graceMs', top.graceMs, 0, 366 * 86_400_000, 86_400_000),
    maxSkewMs: w.int('maxSkewMs', top.maxSkewMs, 1000, 3_600_000, 300_000),
    maxInFlight: w.int('maxInFlight', top.maxInFlight, 1, 1_000_000, 1024),
    rateLimit,
    storeDeadlineMs: w.int('storeDeadlineMs', top.storeDeadlineMs, 10, 60_000, 250),
    audit,
    cache,
    cryptoBackend: cryptoBackend as BackendName,
  };
  if (w.problems.length > 0) throw new ConfigError(opts.where ?? 'config', w.problems);
  return cfg;
}

/** Reads and validates a config file. */
export function loadKdcConfig(file: string, env: NodeJS.ProcessEnv = process.env): KdcConfig {
  const doc = readConfigJson(file);
  return validateKdcConfig(doc.json, { where: doc.where, baseDir: doc.baseDir, env });
}
