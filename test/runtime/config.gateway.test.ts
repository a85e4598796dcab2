// The gateway config validator: defaults, every field's bad value named by its path, all
// problems at once, relative paths, and the key file (mode 0600, principal) through real files.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { LoadedKey } from '../../common/config/daemon';
import { ConfigError } from '../../common/config/walker';
import { mapReadKey, problemsOf } from './config.fixture';
import { type GatewayConfig, loadGatewayConfig, parseGatewayConfig, toEngineConfig } from '../../gateway/config';
import { writeKeyFile } from '../../kdc/key-file';
import { DEFAULT_LIMITS, DEFAULT_TIMERS } from '../../pipeline/setup';

const KEY = new Uint8Array(32).fill(7);
const keys: Record<string, LoadedKey> = {
  '/etc/cg/gw.key': { principal: 'gw1.example', kvno: 3, key: KEY, kdc: ['10.0.3.2:7391', '[fd00::2]:7391'] },
  '/etc/cg/nokdc.key': { principal: 'gw1.example', kvno: 3, key: KEY, kdc: [] },
};
const readKey = mapReadKey(keys);
const base = { keyFile: 'gw.key', services: [{ endpoint: '10.0.2.0/24:80' }] };
const parse = (json: unknown) => parseGatewayConfig(json, '/etc/cg', readKey, { where: 'gateway.json' });

const problems = (json: unknown) => problemsOf(() => parse(json));

test('the two required fields make a working router-mode config with every default', () => {
  const c: GatewayConfig = parse(base);
  expect(c).toEqual({
    keyFile: '/etc/cg/gw.key',
    principal: 'gw1.example',
    key: { kvno: 3, key: KEY },
    mode: 'router',
    services: [{ cidr: { network: new Uint8Array([10, 0, 2, 0]), prefix: 24 }, port: 80, meta: 'require', endpoint: '10.0.2.0/24:80' }],
    kdc: { endpoints: [{ host: '10.0.3.2', port: 7391 }, { host: 'fd00::2', port: 7391 }], timeoutMs: 1000 },
    nfqueue: { queue: 0, workers: 1, maxQueueLen: 8192 },
    bridge: null,
    dataInterfaces: [],
    agentPort: 7390,
    option: { kind: 253, exid: 0x4347 },
    timers: DEFAULT_TIMERS,
    limits: DEFAULT_LIMITS,
    metrics: { host: '127.0.0.1', port: 9392 },
    control: '/run/ciphergate/gateway.sock',
    cryptoBackend: 'node',
    log: { level: 'info' },
  });
});

test('every field set; relative control path; metrics and control off', () => {
  const c = parse({
    ...base,
    principal: 'gw1.example',
    mode: 'host',
    services: [{ endpoint: '[fd00::5]:5432', mode: 'optional' }, { endpoint: '10.0.2.2:80', mode: 'require' }],
    kdc: { endpoints: ['kdc1.example:7391'], timeoutMs: 250 },
    nfqueue: { queue: 100, workers: 4, maxQueueLen: 16384 },
    dataInterfaces: ['eth1', 'eth2'],
    agentPort: 17390,
    option: { kind: 254, exid: 1 },
    timers: { keyingTimeoutMs: 3000, lingerMs: 0 },
    limits: { maxFlows: 1000, maxPendingKeyings: 1000 },
    metrics: null,
    control: 'run/gw.sock',
    cryptoBackend: 'noble',
    log: { level: 'debug' },
  });
  expect(c.mode).toBe('host');
  expect(c.services.map((s) => [s.endpoint, s.meta])).toEqual([['[fd00::5]:5432', 'optional'], ['10.0.2.2:80', 'require']]);
  expect(c.kdc).toEqual({ endpoints: [{ host: 'kdc1.example', port: 7391 }], timeoutMs: 250 });
  expect(c.nfqueue).toEqual({ queue: 100, workers: 4, maxQueueLen: 16384 });
  expect(c.timers).toEqual({ ...DEFAULT_TIMERS, keyingTimeoutMs: 3000, lingerMs: 0 });
  expect(c.limits).toEqual({ maxFlows: 1000, maxPendingKeyings: 1000, maxKdcInFlight: DEFAULT_LIMITS.maxKdcInFlight });
  expect([c.metrics, c.control, c.cryptoBackend, c.log.level, c.agentPort]).toEqual([null, '/etc/cg/run/gw.sock', 'noble', 'debug', 17390]);
  expect(parse({ ...base, control: null }).control).toBeNull();
  expect(parse({ ...base, keyFile: '/etc/cg/gw.key' }).keyFile).toBe('/etc/cg/gw.key');
});

test('bridge mode: bridge required, interfaces become the data interfaces, nfqueue refused', () => {
  const c = parse({ ...base, mode: 'bridge', bridge: { clientInterface: 'eth1', serverInterface: 'eth2' } });
  expect([c.bridge, c.nfqueue, c.dataInterfaces]).toEqual([{ clientInterface: 'eth1', serverInterface: 'eth2' }, null, ['eth1', 'eth2']]);
  expect(problems({ ...base, mode: 'bridge' })).toEqual([expect.stringMatching(/^bridge: required in bridge mode/)]);
  expect(problems({ ...base, mode: 'bridge', bridge: { clientInterface: 'eth1' }, nfqueue: { queue: 1 } })).toEqual([
    expect.stringMatching(/^nfqueue: not used in bridge mode/),
    'bridge.serverInterface: required',
  ]);
  expect(problems({ ...base, mode: 'bridge', bridge: { clientInterface: 'eth1', serverInterface: 'eth1' } })).toEqual(['bridge.serverInterface: must differ from bridge.clientInterface (eth1)']);
  expect(problems({ ...base, mode: 'bridge', bridge: { clientInterface: 'eth1', serverInterface: 'eth2' }, dataInterfaces: ['eth1'] })).toEqual([
    'dataInterfaces: must include the bridge interface eth2 (its offloads matter most)',
  ]);
  expect(problems({ ...base, bridge: { clientInterface: 'eth1', serverInterface: 'eth2' } })).toEqual(['bridge: only used in bridge mode (mode is router)']);
});

// One bad value per field: the problem starts with the field's path.
const BAD: [string, Record<string, unknown>][] = [
  ['keyFile', { keyFile: 42 }],
  ['keyFile', { keyFile: 'missing.key' }],
  ['principal', { principal: 'gw2.example' }],
  ['principal', { principal: 7 }],
  ['mode', { mode: 'nat' }],
  ['services', { services: [] }],
  ['services', { services: 'x' }],
  ['services[0].endpoint', { services: [{ endpoint: '10.0.2.0/33:80' }] }],
  ['services[0].endpoint', { services: [{ endpoint: '10.0.2.1:0' }] }],
  ['services[0].endpoint', { services: [{ mode: 'require' }] }],
  ['services[0].mode', { services: [{ endpoint: '10.0.2.1:80', mode: 'opportunistic' }] }],
  ['services[0].prot', { services: [{ endpoint: '10.0.2.1:80', prot: 1 }] }],
  ['services', { services: [{ endpoint: '10.0.2.1:80' }, { endpoint: '10.0.2.1/32:80' }] }],
  ['kdc.endpoints', { kdc: { endpoints: [] } }],
  ['kdc.endpoints[1]', { kdc: { endpoints: ['10.0.3.2:7391', '10.0.3.3'] } }],
  ['kdc.timeoutMs', { kdc: { timeoutMs: 0 } }],
  ['kdc.endpoint', { kdc: { endpoint: ['10.0.3.2:7391'] } }],
  ['nfqueue.queue', { nfqueue: { queue: 65536 } }],
  ['nfqueue.workers', { nfqueue: { workers: 0 } }],
  ['nfqueue.workers', { nfqueue: { workers: 65 } }],
  ['nfqueue.workers', { nfqueue: { queue: 65535, workers: 2 } }],
  ['nfqueue.maxQueueLen', { nfqueue: { maxQueueLen: 0 } }],
  ['nfqueue.maxQueueLen', { nfqueue: { maxQueueLen: 2 ** 20 + 1 } }],
  ['nfqueue.maxQueueLen', { nfqueue: { maxQueueLen: 4096 } }],
  ['nfqueue', { nfqueue: 3 }],
  ['dataInterfaces', { dataInterfaces: 'eth1' }],
  ['dataInterfaces[0]', { dataInterfaces: ['a-very-long-interface-name'] }],
  ['dataInterfaces[1]', { dataInterfaces: ['eth1', 'eth/2'] }],
  ['dataInterfaces', { dataInterfaces: ['eth1', 'eth1'] }],
  ['agentPort', { agentPort: 70000 }],
  ['option.kind', { option: { kind: 8 } }],
  ['option.kind', { option: { kind: 34 } }],
  ['option.kind', { option: { kind: 256 } }],
  ['option.exid', { option: { exid: -1 } }],
  ['option.exid', { option: { exid: 0x10000 } }],
  ['timers.keyingTimeoutMs', { timers: { keyingTimeoutMs: 50 } }],
  ['timers.lingerMs', { timers: { lingerMs: -1 } }],
  ['timers.idleTimeoutMs', { timers: { idleTimeoutMs: 1.5 } }],
  ['timers.refusedHoldMs', { timers: { refusedHoldMs: '5s' } }],
  ['timers.linger', { timers: { linger: 5 } }],
  ['limits.maxFlows', { limits: { maxFlows: 0 } }],
  ['limits.maxPendingKeyings', { limits: { maxPendingKeyings: 2_000_000 } }],
  ['limits.maxPendingKeyings', { limits: { maxFlows: 10, maxPendingKeyings: 11 } }],
  ['limits.maxKdcInFlight', { limits: { maxKdcInFlight: null } }],
  ['metrics', { metrics: '127.0.0.1' }],
  ['metrics', { metrics: 9392 }],
  ['control', { control: '' }],
  ['control', { control: `/run/${'x'.repeat(120)}.sock` }],
  ['cryptoBackend', { cryptoBackend: 'openssl' }],
  ['log.level', { log: { level: 'trace' } }],
  ['log.file', { log: { file: 'x' } }],
  ['sevices', { sevices: [] }],
];

test.each(BAD)('a bad %s is named', (field, patch) => {
  const ps = problems({ ...base, ...patch });
  expect(ps.length).toBeGreaterThan(0);
  for (const p of ps) expect(p.startsWith(`${field}: `)).toBe(true);
});

test('required fields, the top-level shape, and KDC endpoints from nowhere', () => {
  expect(problems({})).toEqual(['keyFile: required', 'services: required']);
  expect(problems([])).toEqual(['expected a JSON object', 'keyFile: required', 'services: required']);
  expect(problems({ ...base, keyFile: 'nokdc.key' })).toEqual([expect.stringMatching(/^kdc\.endpoints: required: key file \/etc\/cg\/nokdc\.key names no KDC/)]);
  expect(parse({ ...base, keyFile: 'nokdc.key', kdc: { endpoints: ['10.0.3.9:7391'] } }).kdc.endpoints).toEqual([{ host: '10.0.3.9', port: 7391 }]);
});

test('every problem is reported at once, and the error message lists them', () => {
  const json = { ...base, mode: 'nat', agentPort: 0, option: { kind: 2 }, log: { level: 'loud' }, typo: true };
  let error: unknown;
  try {
    parse(json);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(ConfigError);
  const e = error as ConfigError;
  expect(e.problems.map((p) => p.slice(0, p.indexOf(':')))).toEqual(['typo', 'mode', 'option.kind', 'log.level', 'agentPort']);
  expect(e.message).toMatch(/^gateway\.json: 5 problems:\n {2}typo: unknown field/);
});

test('toEngineConfig carries what the engine needs and nothing for display', () => {
  const c = parse({ ...base, option: { kind: 254, exid: 9 } });
  expect(toEngineConfig(c)).toEqual({
    principal: 'gw1.example',
    key: { kvno: 3, key: KEY },
    services: [{ cidr: c.services[0]!.cidr, port: 80, meta: 'require' }],
    option: { kind: 254, exid: 9 },
    agentPort: 7390,
    limits: DEFAULT_LIMITS,
    timers: DEFAULT_TIMERS,
  });
});

describe('loadGatewayConfig from files', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-gwconf-'));
    fs.mkdirSync(path.join(dir, 'keys'));
    writeKeyFile(path.join(dir, 'keys', 'gw.key'), { principal: 'gw1.example', kvno: 2, key: KEY, kdc: ['10.0.3.2:7391'] });
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (json: unknown) => {
    const file = path.join(dir, 'gateway.json');
    fs.writeFileSync(file, JSON.stringify(json));
    return file;
  };

  test('relative key path resolves against the config directory, not the working directory', () => {
    const c = loadGatewayConfig(write({ keyFile: 'keys/gw.key', services: [{ endpoint: '10.0.2.2:80' }] }));
    expect(c.keyFile).toBe(path.join(dir, 'keys', 'gw.key'));
    expect(c.key).toEqual({ kvno: 2, key: KEY });
    expect(c.kdc.endpoints).toEqual([{ host: '10.0.3.2', port: 7391 }]);
  });

  test('a key file others can read is refused: the error names the file and says chmod 600', () => {
    const key = path.join(dir, 'keys', 'gw.key');
    fs.chmodSync(key, 0o644);
    const file = write({ keyFile: 'keys/gw.key', services: [{ endpoint: '10.0.2.2:80' }] });
    expect(() => loadGatewayConfig(file)).toThrow(ConfigError);
    expect(() => loadGatewayConfig(file)).toThrow(`keyFile: key file ${key}: mode 0644 lets group or others read it; run chmod 600 ${key}`);
  });

  test('a principal that does not match the key file', () => {
    const file = write({ keyFile: 'keys/gw.key', principal: 'gw9.example', services: [{ endpoint: '10.0.2.2:80' }] });
    expect(() => loadGatewayConfig(file)).toThrow(`principal: "gw9.example" does not match the principal "gw1.example" of key file ${path.join(dir, 'keys', 'gw.key')}`);
  });

  test('missing file and broken JSON name the file', () => {
    expect(() => loadGatewayConfig(path.join(dir, 'nope.json'))).toThrow(`config ${path.join(dir, 'nope.json')}: no such file`);
    const file = path.join(dir, 'bad.json');
    fs.writeFileSync(file, '{ "keyFile": ');
    expect(() => loadGatewayConfig(file)).toThrow(/^config .*bad\.json: not valid JSON/);
  });
});
