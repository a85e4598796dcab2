// KdcClient against real KDC instances sharing one Redis: spreading, failover when a KDC dies,
// retries with the same bytes (idempotent across processes), and errors that name every
// endpoint tried. Then the CLI: `ciphergate kdc` as a real process (SIGTERM exits 0) and
// `ciphergate kdc-client` success, refusal and unreachable KDC.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { KDC_ERROR_NAMES, KdcType, type KdcMessage } from '../../common/protocol/kdc-messages';
import { KdcClient, KdcUnreachableError, parseEndpoint } from '../../kdc/client';
import type { KeyFile } from '../../kdc/key-file';
import type { KdcInstance } from '../../kdc/server';
import { type RedisStandalone, freePort, redisAvailable, startRedisStandalone } from '../helpers/redis';
import { CLI, DIST_READY, type Lab, ROOT, decodeAnswer, endpointOf, killProcess, makeLab, request, startKdcProcess, within } from './service.fixture';

const hasRedis = redisAvailable();
const d = hasRedis ? describe : describe.skip;
if (!hasRedis) console.warn('redis-server not found: KDC client suite skipped');

const code = (m: KdcMessage): string => (m.type === KdcType.IssueError ? KDC_ERROR_NAMES[m.code] : 'ok');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');


test('parseEndpoint takes host:port and [v6]:port and names bad text', () => {
  expect(parseEndpoint('127.0.0.1:7391')).toEqual({ host: '127.0.0.1', port: 7391 });
  expect(parseEndpoint('[::1]:7391')).toEqual({ host: '::1', port: 7391 });
  expect(() => parseEndpoint('::1:7391')).toThrow(/'::1:7391' is not HOST:PORT/);
  expect(() => parseEndpoint('kdc:0')).toThrow(/not HOST:PORT/);
});

test('unreachable: the error names every endpoint tried and why', async () => {
  const refused = await freePort();
  // A listener that accepts and never answers.
  const silent = net.createServer((s) => s.on('error', () => undefined));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const silentPort = (silent.address() as net.AddressInfo).port;
  const client = new KdcClient({ endpoints: [`127.0.0.1:${refused}`, `127.0.0.1:${silentPort}`], timeoutMs: 300, retries: 1 });
  try {
    const frame = request({ principal: 'gw1', kvno: 1, key: new Uint8Array(32), kdc: [] }, 'alice');
    const e = await client.request(frame).then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(KdcUnreachableError);
    const msg = (e as Error).message;
    expect(msg).toContain(`127.0.0.1:${refused} connection refused`);
    expect(msg).toContain(`127.0.0.1:${silentPort} timed out after 300 ms`);
    expect(msg).toMatch(/^KDC unreachable: /);
  } finally {
    client.close();
    silent.close();
  }
});

d('KdcClient against two KDC instances on one Redis', () => {
  let redis: RedisStandalone;
  let lab: Lab;
  let gw1: KeyFile;
  let a: KdcInstance;
  let b: KdcInstance;

  beforeAll(async () => {
    redis = await startRedisStandalone();
    lab = await makeLab({ kind: 'redis', redis });
    gw1 = await lab.key('gw1');
    a = await lab.start();
    b = await lab.start();
  });
  afterAll(async () => {
    await lab?.cleanup();
    await redis?.stop();
  });

  test('spreads pipelined requests over both endpoints; every answer matches its request', async () => {
    // Generous timeout: CI machines may be loaded; this test is about routing, not speed.
    const client = new KdcClient({ endpoints: [endpointOf(a), endpointOf(b)], timeoutMs: 15000 });
    try {
      const frames = Array.from({ length: 200 }, () => request(gw1, 'alice'));
      const answers = await Promise.all(frames.map((f) => client.request(f)));
      answers.forEach((ans, i) => {
        const m = decodeAnswer(ans);
        expect(code(m)).toBe('ok');
        expect(hex(m.requestId)).toBe(hex(frames[i]!.subarray(6, 22)));
      });
      const served = (k: KdcInstance) => k.metrics.requests.get().then((v) => v.values.find((x) => x.labels.result === 'ok')?.value ?? 0);
      expect(await served(a)).toBeGreaterThan(0);
      expect(await served(b)).toBeGreaterThan(0);
    } finally {
      client.close();
    }
  });

  test('a retry of the same bytes at the other KDC returns byte-identical tickets', async () => {
    const frame = request(gw1, 'alice');
    const ca = new KdcClient({ endpoints: [endpointOf(a)] });
    const cb = new KdcClient({ endpoints: [endpointOf(b)] });
    try {
      const first = await ca.request(frame);
      const second = await cb.request(frame);
      expect(code(decodeAnswer(first))).toBe('ok');
      expect(hex(second)).toBe(hex(first));
    } finally {
      ca.close();
      cb.close();
    }
  });

  test('fails over when one KDC is killed, with no failed request', async () => {
    const c = await lab.start();
    const client = new KdcClient({ endpoints: [endpointOf(c), endpointOf(b)], timeoutMs: 1000, retries: 2 });
    try {
      const before = await Promise.all(Array.from({ length: 20 }, () => client.request(request(gw1, 'alice'))));
      expect(before.map((x) => code(decodeAnswer(x)))).toEqual(Array(20).fill('ok'));
      // Kill c while requests are being sent: connections are cut, nothing more is accepted.
      const during = Array.from({ length: 50 }, () => client.request(request(gw1, 'alice')));
      await c.close();
      const after = await Promise.all([...during, ...Array.from({ length: 20 }, () => client.request(request(gw1, 'alice')))]);
      expect(after.map((x) => code(decodeAnswer(x)))).toEqual(Array(70).fill('ok'));
      expect(client.inFlight()).toEqual({ [endpointOf(c)]: 0, [endpointOf(b)]: 0 });
    } finally {
      client.close();
    }
  });
});

const dr = hasRedis && DIST_READY ? describe : describe.skip;

dr('KdcClient failover between two KDC processes (dist/) when one is SIGKILLed', () => {
  let redis: RedisStandalone;
  let lab: Lab;
  const procs: ChildProcess[] = [];
  beforeAll(async () => {
    redis = await startRedisStandalone();
    lab = await makeLab({ kind: 'redis', redis });
  });
  afterAll(async () => {
    await Promise.all(procs.map(killProcess));
    await lab?.cleanup();
    await redis?.stop();
  });

  test('no request fails while one process dies; with both dead the error names both', async () => {
    const gw1 = await lab.key('gw1');
    const one = await startKdcProcess(lab);
    const two = await startKdcProcess(lab);
    procs.push(one.proc, two.proc);
    const client = new KdcClient({ endpoints: [one.endpoint, two.endpoint], timeoutMs: 15_000, retries: 2 });
    try {
      const burst = (n: number) => Promise.all(Array.from({ length: n }, () => client.request(request(gw1, 'alice')).then((a) => code(decodeAnswer(a)))));
      expect(await burst(40)).toEqual(Array(40).fill('ok'));
      const during = burst(100);
      await killProcess(one.proc);
      expect(await during).toEqual(Array(100).fill('ok'));
      expect(await burst(40)).toEqual(Array(40).fill('ok'));
      await killProcess(two.proc);
      const e = await client.request(request(gw1, 'alice')).then(
        () => null,
        (x: unknown) => x as Error,
      );
      expect(e).toBeInstanceOf(KdcUnreachableError);
      expect(e?.message).toMatch(new RegExp(`${one.endpoint} connection refused`));
      expect(e?.message).toMatch(new RegExp(`${two.endpoint} (connection refused|connection closed)`));
    } finally {
      client.close();
    }
  });
});

/** Runs the CLI; resolves with exit code and output. */
function cli(args: string[], timeoutMs = 20_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: timeoutMs, cwd: ROOT }, (e, stdout, stderr) => {
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout, stderr });
    });
  });
}

const dc = DIST_READY ? describe : describe.skip;
if (!DIST_READY) console.warn(`dist/ is missing or stale (no ${CLI} with kdc-client): CLI tests skipped; run \`npx tsc -p .\` first`);

dc('the CLI: ciphergate kdc and kdc-client (from dist/)', () => {
  let lab: Lab;
  let kdcProc: ChildProcess;
  let port: number;
  let gwKeyFile: string;
  const logs: string[] = [];

  beforeAll(async () => {
    lab = await makeLab({ kind: 'embedded' });
    port = await freePort();
    const cfg = JSON.parse(fs.readFileSync(lab.configPath, 'utf8')) as Record<string, unknown>;
    const httpPort = await freePort();
    fs.writeFileSync(lab.configPath, JSON.stringify({ ...cfg, listen: { kdc: `127.0.0.1:${port}`, metrics: `127.0.0.1:${httpPort}` } }));
    gwKeyFile = path.join(lab.dir, 'gw1-cli.key');
    await lab.admin('principal', 'export', 'gw1', '--out', gwKeyFile);
    kdcProc = spawn(process.execPath, [CLI, 'kdc', '--config', lab.configPath], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    kdcProc.stdout?.on('data', (c: Buffer) => logs.push(...c.toString().split('\n').filter(Boolean)));
    kdcProc.stderr?.on('data', (c: Buffer) => logs.push(c.toString()));
    await within('kdc-started log line', 15_000, async () => logs.some((l) => l.includes('"kdc-started"')));
  });
  afterAll(async () => {
    if (kdcProc.exitCode === null && kdcProc.signalCode === null) {
      kdcProc.kill('SIGKILL');
      await new Promise((r) => kdcProc.once('exit', r));
    }
    await lab.cleanup();
  });

  test('kdc-client: tickets issued, JSON without key bytes', async () => {
    const r = await cli(['kdc-client', '--kdc', `127.0.0.1:${port}`, '--gateway', 'gw1', '--gateway-key', gwKeyFile, '--client', 'alice', '--service', '10.9.9.9:5432']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out).toMatchObject({ result: 'ok', gateway: 'gw1', gatewayKvno: 1, client: 'alice', clientKvno: 1, service: '10.9.9.9:5432', lifetimeMs: 120_000 });
    expect(out.gatewayTicketBytes).toBeGreaterThan(100);
    expect(typeof out.latencyMs).toBe('number');
    const key = JSON.parse(fs.readFileSync(gwKeyFile, 'utf8')).key as string;
    expect(r.stdout).not.toContain(key);
    expect(r.stdout).not.toMatch(/[0-9a-f]{64}/);
  });

  test('kdc-client: a refusal exits 1 with the KDC reason', async () => {
    const r = await cli(['kdc-client', '--kdc', `127.0.0.1:${port}`, '--gateway', 'gw1', '--gateway-key', gwKeyFile, '--client', 'alice', '--service', '10.9.9.9:22']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('KDC refused: policy-denied: policy does not allow this client to this service');
    expect(JSON.parse(r.stdout)).toMatchObject({ result: 'policy-denied', code: 4 });
  });

  test('kdc-client: an unreachable KDC exits 1 saying so', async () => {
    const dead = await freePort();
    const r = await cli(['kdc-client', '--kdc', `127.0.0.1:${dead}`, '--gateway', 'gw1', '--gateway-key', gwKeyFile, '--client', 'alice', '--timeout', '500']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`KDC unreachable: 127.0.0.1:${dead} connection refused`);
  });

  test('kdc: SIGTERM stops accepting, finishes, exits 0', async () => {
    const exited = new Promise<number | null>((r) => kdcProc.once('exit', (c) => r(c)));
    kdcProc.kill('SIGTERM');
    expect(await exited).toBe(0);
    const lines = logs.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event: string });
    expect(lines.map((l) => l.event)).toEqual(expect.arrayContaining(['kdc-started', 'kdc-stopping', 'kdc-stopped']));
  });
});
