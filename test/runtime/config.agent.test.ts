// The agent config validator: defaults, every field's bad value named by its path, all problems
// at once, key rotation (current key first), and the key files (mode 0600, principal) for real.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type AgentConfig, loadAgentConfig, parseAgentConfig, toEngineConfig } from '../../client-agent/config';
import type { LoadedKey } from '../../common/config/daemon';
import { ConfigError } from '../../common/config/walker';
import { mapReadKey, problemsOf } from './config.fixture';
import { writeKeyFile } from '../../kdc/key-file';

const K3 = new Uint8Array(32).fill(3);
const K2 = new Uint8Array(32).fill(2);
const keys: Record<string, LoadedKey> = {
  '/etc/cg/agent.key': { principal: 'client1.example', kvno: 3, key: K3, kdc: [] },
  '/etc/cg/agent-old.key': { principal: 'client1.example', kvno: 2, key: K2, kdc: [] },
  '/etc/cg/other.key': { principal: 'client2.example', kvno: 1, key: K2, kdc: [] },
};
const readKey = mapReadKey(keys);
const base = { keyFiles: ['agent.key'], destinations: [{ endpoint: '10.0.2.2:80' }] };
const parse = (json: unknown) => parseAgentConfig(json, '/etc/cg', readKey, { where: 'agent.json' });

const problems = (json: unknown) => problemsOf(() => parse(json));

test('the two required fields make a working config with every default', () => {
  const c: AgentConfig = parse(base);
  expect(c).toEqual({
    keyFiles: ['/etc/cg/agent.key'],
    principal: 'client1.example',
    keys: [{ kvno: 3, key: K3 }],
    destinations: [{ cidr: { network: new Uint8Array([10, 0, 2, 2]), prefix: 32 }, port: 80, meta: { mode: 'require' }, endpoint: '10.0.2.2:80' }],
    listen: { host: '0.0.0.0', port: 7390 },
    nfqueue: { queue: 10, workers: 1, maxQueueLen: 8192 },
    dataInterfaces: [],
    option: { kind: 253, exid: 0x4347 },
    timers: { lingerMs: 60_000, idleTimeoutMs: 300_000, maxClockSkewMs: 300_000 },
    limits: { maxFlows: 65_536 },
    metrics: { host: '127.0.0.1', port: 9393 },
    control: '/run/ciphergate/agent.sock',
    cryptoBackend: 'node',
    log: { level: 'info' },
  });
});

test('every field set: rotation keys, destination modes and gateways', () => {
  const c = parse({
    keyFiles: ['agent.key', '/etc/cg/agent-old.key'],
    principal: 'client1.example',
    destinations: [
      { endpoint: '10.0.2.0/24:443', mode: 'opportunistic' },
      { endpoint: '[fd00::2]:80', mode: 'require', gateway: 'gw1.example' },
    ],
    listen: '[::]:17390',
    nfqueue: { queue: 7, workers: 2, maxQueueLen: 100 },
    dataInterfaces: ['eth0'],
    option: { kind: 254, exid: 77 },
    timers: { lingerMs: 1000, idleTimeoutMs: 5000, maxClockSkewMs: 60_000 },
    limits: { maxFlows: 10 },
    metrics: '[::1]:9999',
    control: 'agent.sock',
    cryptoBackend: 'noble',
    log: { level: 'warn' },
  });
  expect(c.keyFiles).toEqual(['/etc/cg/agent.key', '/etc/cg/agent-old.key']);
  expect(c.keys).toEqual([{ kvno: 3, key: K3 }, { kvno: 2, key: K2 }]);
  expect(c.destinations.map((d) => [d.endpoint, d.meta])).toEqual([
    ['10.0.2.0/24:443', { mode: 'opportunistic' }],
    ['[fd00::2]:80', { mode: 'require', gateway: 'gw1.example' }],
  ]);
  expect([c.listen, c.nfqueue, c.dataInterfaces, c.option, c.timers, c.limits]).toEqual([
    { host: '::', port: 17390 },
    { queue: 7, workers: 2, maxQueueLen: 100 },
    ['eth0'],
    { kind: 254, exid: 77 },
    { lingerMs: 1000, idleTimeoutMs: 5000, maxClockSkewMs: 60_000 },
    { maxFlows: 10 },
  ]);
  expect([c.metrics, c.control, c.cryptoBackend, c.log]).toEqual([{ host: '::1', port: 9999 }, '/etc/cg/agent.sock', 'noble', { level: 'warn' }]);
});

const BAD: [string, Record<string, unknown>][] = [
  ['keyFiles', { keyFiles: [] }],
  ['keyFiles', { keyFiles: 'agent.key' }],
  ['keyFiles[0]', { keyFiles: [5] }],
  ['keyFiles[0]', { keyFiles: ['missing.key'] }],
  ['keyFiles[1]', { keyFiles: ['agent.key', 'other.key'] }],
  ['keyFiles[1]', { keyFiles: ['agent-old.key', 'agent.key'] }],
  ['keyFiles[1]', { keyFiles: ['agent.key', 'agent.key'] }],
  ['keyFiles[2]', { keyFiles: ['agent.key', 'agent-old.key', 'agent-old.key'] }],
  ['principal', { principal: 'client2.example' }],
  ['destinations', { destinations: [] }],
  ['destinations[0].endpoint', { destinations: [{ endpoint: 'example.com:80' }] }],
  ['destinations[0].mode', { destinations: [{ endpoint: '10.0.2.2:80', mode: 'optional' }] }],
  ['destinations[0].gateway', { destinations: [{ endpoint: '10.0.2.2:80', gateway: 'gw 1' }] }],
  ['destinations[0].gateway', { destinations: [{ endpoint: '10.0.2.2:80', gateway: '' }] }],
  ['destinations[0].gw', { destinations: [{ endpoint: '10.0.2.2:80', gw: 'gw1' }] }],
  ['destinations', { destinations: [{ endpoint: '10.0.2.2:80' }, { endpoint: '10.0.2.2:80', mode: 'opportunistic' }] }],
  ['listen', { listen: '0.0.0.0' }],
  ['listen', { listen: null }],
  ['nfqueue.queue', { nfqueue: { queue: -1 } }],
  ['nfqueue.workers', { nfqueue: { workers: 0 } }],
  ['nfqueue.workers', { nfqueue: { workers: 65 } }],
  ['nfqueue.workers', { nfqueue: { queue: 65535, workers: 2 } }],
  ['nfqueue.threads', { nfqueue: { threads: 2 } }],
  ['nfqueue.maxQueueLen', { nfqueue: { maxQueueLen: 1.5 } }],
  ['dataInterfaces[0]', { dataInterfaces: [''] }],
  ['option.kind', { option: { kind: 0 } }],
  ['option.exid', { option: { exid: 'CG' } }],
  ['timers.lingerMs', { timers: { lingerMs: 600_001 } }],
  ['timers.idleTimeoutMs', { timers: { idleTimeoutMs: 999 } }],
  ['timers.maxClockSkewMs', { timers: { maxClockSkewMs: 0 } }],
  ['timers.keyingTimeoutMs', { timers: { keyingTimeoutMs: 1500 } }],
  ['limits.maxFlows', { limits: { maxFlows: 1e9 } }],
  ['limits.maxPendingKeyings', { limits: { maxPendingKeyings: 5 } }],
  ['metrics', { metrics: 'localhost:99999' }],
  ['control', { control: 3 }],
  ['cryptoBackend', { cryptoBackend: null }],
  ['log.level', { log: { level: 'INFO' } }],
  ['log', { log: 'info' }],
  ['keyFile', { keyFile: 'agent.key' }],
];

test.each(BAD)('a bad %s is named', (field, patch) => {
  const ps = problems({ ...base, ...patch });
  expect(ps.length).toBeGreaterThan(0);
  for (const p of ps) expect(p.startsWith(`${field}: `)).toBe(true);
});

test('rotation mistakes say what is wrong', () => {
  expect(problems({ ...base, keyFiles: ['agent-old.key', 'agent.key'] })).toEqual([
    'keyFiles[1]: kvno 3 of /etc/cg/agent.key is not older than kvno 2 of /etc/cg/agent-old.key (list the current key first)',
  ]);
  expect(problems({ ...base, keyFiles: ['agent.key', 'other.key'] })).toEqual([
    'keyFiles[1]: key file /etc/cg/other.key is for "client2.example", not "client1.example" like /etc/cg/agent.key',
  ]);
});

test('all problems at once', () => {
  expect(problems({ destinations: [{ endpoint: 'x' }], listen: 1, log: { level: 0 } }).map((p) => p.slice(0, p.indexOf(':')))).toEqual([
    'keyFiles',
    'destinations[0].endpoint',
    'listen',
    'log.level',
  ]);
});

test('toEngineConfig', () => {
  const c = parse({ ...base, keyFiles: ['agent.key', 'agent-old.key'], destinations: [{ endpoint: '10.0.2.2:80', gateway: 'gw1.example' }] });
  expect(toEngineConfig(c)).toEqual({
    principal: 'client1.example',
    keys: [{ kvno: 3, key: K3 }, { kvno: 2, key: K2 }],
    destinations: [{ cidr: c.destinations[0]!.cidr, port: 80, meta: { mode: 'require', gateway: 'gw1.example' } }],
    option: { kind: 253, exid: 0x4347 },
    limits: { maxFlows: 65_536 },
    timers: { lingerMs: 60_000, idleTimeoutMs: 300_000, maxClockSkewMs: 300_000 },
  });
});

describe('loadAgentConfig from files', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-agentconf-'));
    writeKeyFile(path.join(dir, 'agent.key'), { principal: 'client1.example', kvno: 4, key: K3, kdc: [] });
    writeKeyFile(path.join(dir, 'agent-3.key'), { principal: 'client1.example', kvno: 3, key: K2, kdc: [] });
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (json: unknown) => {
    const file = path.join(dir, 'agent.json');
    fs.writeFileSync(file, JSON.stringify(json));
    return file;
  };

  test('relative key files resolve against the config directory', () => {
    const c = loadAgentConfig(write({ keyFiles: ['agent.key', 'agent-3.key'], destinations: [{ endpoint: '10.0.2.2:80' }] }));
    expect(c.keyFiles).toEqual([path.join(dir, 'agent.key'), path.join(dir, 'agent-3.key')]);
    expect(c.keys.map((k) => k.kvno)).toEqual([4, 3]);
  });

  test('every key file that others can read is named, with chmod 600', () => {
    fs.chmodSync(path.join(dir, 'agent.key'), 0o640);
    fs.chmodSync(path.join(dir, 'agent-3.key'), 0o604);
    let error: ConfigError | undefined;
    try {
      loadAgentConfig(write({ keyFiles: ['agent.key', 'agent-3.key'], destinations: [{ endpoint: '10.0.2.2:80' }] }));
    } catch (e) {
      error = e as ConfigError;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.problems).toEqual([
      `keyFiles[0]: key file ${dir}/agent.key: mode 0640 lets group or others read it; run chmod 600 ${dir}/agent.key`,
      `keyFiles[1]: key file ${dir}/agent-3.key: mode 0604 lets group or others read it; run chmod 600 ${dir}/agent-3.key`,
    ]);
  });

  test('a principal that does not match the key files', () => {
    expect(() => loadAgentConfig(write({ ...base, principal: 'client9.example' }))).toThrow(
      `principal: "client9.example" does not match the principal "client1.example" of key file ${dir}/agent.key`,
    );
  });
});
