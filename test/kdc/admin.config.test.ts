// The KDC config validator: defaults, every store shape, and errors that name the field path.
import * as path from 'node:path';
import { ConfigError, type KdcConfig, parseHostPort, validateKdcConfig } from '../../kdc/config';

const v = (json: unknown, env: NodeJS.ProcessEnv = {}) => validateKdcConfig(json, { where: 'kdc.json', baseDir: '/etc/cg', env });
function problems(json: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    v(json, env);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

test('an empty object is a working single-node config', () => {
  const c: KdcConfig = v({});
  expect(c).toEqual({
    listen: { kdc: [{ host: '0.0.0.0', port: 7391 }], metrics: { host: '127.0.0.1', port: 9391 } },
    store: { type: 'embedded', dir: '/var/lib/ciphergate/kdc', auditMaxLen: 100_000 },
    masterKey: { current: { file: '/etc/ciphergate/kdc/master.key' }, additional: [] },
    ticketLifetimeMs: 120_000,
    graceMs: 86_400_000,
    maxSkewMs: 300_000,
    maxInFlight: 1024,
    rateLimit: { ratePerSec: 1000, burst: 2000 },
    storeDeadlineMs: 250,
    audit: { maxLen: 100_000, queueMax: 10_000 },
    cache: { pollMs: 200, maxStalenessMs: 1000 },
    cryptoBackend: 'node',
  });
});

test('relative paths resolve against the config directory; env master key; metrics off', () => {
  const c = v({
    store: { embedded: { path: 'data', compactAfterRecords: 50 } },
    masterKey: { env: 'KDC_MK', additional: [{ file: 'old.key' }] },
    listen: { kdc: '[::]:7391', metrics: null },
    rateLimit: null,
  });
  expect(c.store).toEqual({ type: 'embedded', dir: path.resolve('/etc/cg/data'), compactAfterRecords: 50, lockTimeoutMs: 2000, issuedMaxEntries: 100_000, issuedIdsMax: 2 ** 24, issuedJournal: true, auditMaxLen: 100_000 });
  expect(c.masterKey).toEqual({ current: { env: 'KDC_MK' }, additional: [{ file: '/etc/cg/old.key' }] });
  expect(c.listen).toEqual({ kdc: [{ host: '::', port: 7391 }], metrics: null });
  expect(c.rateLimit).toBeNull();
});

test('redis standalone, sentinel and cluster shapes; secrets from the environment', () => {
  expect(v({ store: { redis: { mode: 'standalone', host: 'redis.internal', passwordEnv: 'RP' } } }, { RP: 's3cret' }).store).toMatchObject({
    type: 'redis',
    mode: 'standalone',
    host: 'redis.internal',
    port: 6379,
    db: 0,
    password: 's3cret',
    keyPrefix: 'ciphergate',
    timeoutMs: 500,
  });
  expect(
    v({ store: { redis: { mode: 'sentinel', masterName: 'kdc', sentinels: [{ host: '10.0.0.1', port: 26379 }, { host: '10.0.0.2', port: 26379 }], waitForReplicas: 1, tls: { caFile: 'ca.pem' } } } }).store,
  ).toMatchObject({ mode: 'sentinel', masterName: 'kdc', sentinels: [{ host: '10.0.0.1', port: 26379 }, { host: '10.0.0.2', port: 26379 }], waitForReplicas: 1, tls: { caFile: '/etc/cg/ca.pem' } });
  expect(v({ store: { redis: { mode: 'cluster', nodes: [{ host: '10.0.0.1', port: 7000 }], tls: true } } }).store).toMatchObject({ mode: 'cluster', nodes: [{ host: '10.0.0.1', port: 7000 }], tls: {} });
});

test.each([
  [{ store: { redis: { mode: 'sentinel', masterName: 'm', sentinels: [{ host: 'a', port: 1 }, { host: 'b', port: 70000 }] } } }, 'store.redis.sentinels[1].port: expected integer 1..65535'],
  [{ store: { redis: { mode: 'sentinel', masterName: 'm', sentinels: [{ host: 'a' }] } } }, 'store.redis.sentinels[0].port: required'],
  [{ store: { redis: { mode: 'sentinel', sentinels: [] } } }, 'store.redis.sentinels: expected a non-empty array of { "host": ..., "port": ... }'],
  [{ store: { redis: { mode: 'sentinel', sentinels: [{ host: 'a', port: 1 }] } } }, 'store.redis.masterName: required'],
  [{ store: { redis: { mode: 'mesh' } } }, 'store.redis.mode: expected "standalone", "sentinel" or "cluster"'],
  [{ store: { redis: { mode: 'cluster', nodes: [{ host: 'a', port: 1 }], host: 'x' } } }, 'store.redis.host: not used in cluster mode'],
  [{ store: { redis: { mode: 'standalone', host: 'bad host!' } } }, 'store.redis.host: "bad host!" is not a host name or IP address'],
  [{ store: { redis: { mode: 'standalone', host: 'r', passwordEnv: 'NOPE' } } }, 'store.redis.passwordEnv: environment variable NOPE is not set'],
  [{ store: { redis: { mode: 'standalone', host: 'r', password: 'a', passwordEnv: 'B' } } }, 'store.redis.password: give password or passwordEnv, not both'],
  [{ store: { embedded: {}, redis: {} } }, 'store: give embedded or redis, not both'],
  [{ store: { embeded: {} } }, 'store.embeded: unknown field (expected one of embedded, redis)'],
  [{ listen: { kdc: ['0.0.0.0:7391', 'nope'] } }, 'listen.kdc[1]: "nope": expected host:port'],
  [{ listen: { kdc: '::1:7391' } }, 'listen.kdc[0]: "::1:7391": write IPv6 addresses as [addr]:port'],
  [{ masterKey: { file: 'a', env: 'B' } }, 'masterKey: give file or env, not both'],
  [{ masterKey: { env: '1BAD' } }, 'masterKey.env: expected an environment variable name'],
  [{ masterKey: { additional: [{ stash: 'x' }] } }, 'masterKey.additional[0].stash: unknown field (expected one of file, env)'],
  [{ ticketLifetimeMs: 10 }, 'ticketLifetimeMs: expected integer 1000..3600000'],
  [{ graceMs: -1 }, 'graceMs: expected integer 0..31622400000'],
  [{ cache: { pollMs: 1000, maxStalenessMs: 1000 } }, 'cache.pollMs: must be below cache.maxStalenessMs (1000)'],
  [{ rateLimit: { ratePerSec: 0 } }, 'rateLimit.ratePerSec: expected integer 1..10000000'],
  [{ cryptoBackend: 'openssl' }, 'cryptoBackend: expected "node" or "noble"'],
  [{ ticketLifetime: 5 }, 'ticketLifetime: unknown field'],
  [[], 'expected a JSON object'],
])('%j -> %s', (json, problem) => {
  expect(problems(json).some((p) => p.startsWith(problem))).toBe(true);
});

test('all problems are reported at once, with the source named', () => {
  try {
    v({ graceMs: 'x', maxInFlight: 0, store: { embedded: { issuedJournal: 'yes' } } });
    throw new Error('no error');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as Error).message).toBe(
      'kdc.json: 3 problems:\n  store.embedded.issuedJournal: expected true or false\n  graceMs: expected integer 0..31622400000\n  maxInFlight: expected integer 1..1000000',
    );
  }
});

test('parseHostPort', () => {
  expect(parseHostPort('kdc.example.com:7391')).toEqual({ host: 'kdc.example.com', port: 7391 });
  expect(parseHostPort('[2001:db8::1]:1')).toEqual({ host: '2001:db8::1', port: 1 });
  expect(parseHostPort('a:0')).toMatch(/port must be 1..65535/);
  expect(parseHostPort('a_b:1')).toMatch(/not a host name/);
});
