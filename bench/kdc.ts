// KDC throughput and latency, measured the way gateways see it: a real `ciphergate kdc`
// process (one process, one event loop) serving sealed ISSUE_REQUESTs over TCP on one pipelined
// connection, driven from this process by a lean load generator (bench/kdc-load.ts) whose own
// garbage collection cannot pass for KDC latency.
//
// Cases, for each store (a real redis-server on a free loopback port, and the embedded store):
//   closed-loop  N requests kept in flight (concurrency 1, 16, 64, 256 by default): issues/s and
//                latency percentiles;
//   open-loop    requests sent on a fixed schedule (every millisecond, what is due) at half
//                the throughput target, never waiting for answers, so a KDC stall counts in
//                full (no coordinated omission).
// Baseline: `redis-benchmark -t get` against the same redis-server (50 clients, and 1 client).
// Breakdown: what one issue costs inside the KDC, measured in this process on the same inputs
// (the pure issuing core; a Redis put-if-absent round trip) plus the KDC process's CPU time per
// issue during each case (from /proc), so a shortfall can be placed.
//
// Every request is unique (fresh requestId and nonces), sealed before its case starts, so
// neither the idempotency path nor request sealing is in the timed loop.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { nodeBackend } from '../common/crypto/node-backend';
import { systemRandom } from '../common/crypto/random';
import { decodeKdcMessage, encodeIssueResponse, type IssueRequestFields, type IssueRequestMsg } from '../common/protocol/kdc-messages';
import { deriveRequestAuthKey, sealIssueRequest } from '../common/protocol/kdc-request-auth';
import { deriveTicketKey } from '../common/protocol/ticket';
import { runKdcAdmin } from '../cli/commands/kdc-admin';
import { authenticate, issueAuthenticated, type PrincipalRecord } from '../kdc/issuer';
import { loadKeyFile } from '../kdc/key-file';
import { pooledRandom } from '../kdc/server';
import { RedisKdcStore } from '../kdc/store/redis';
import { freePort, redisAvailable, startRedisStandalone, type RedisStandalone } from '../test/helpers/redis';
import { buildBatch, KdcLoad, type RequestBatch } from './kdc-load';
import { formatNumber, formatTable, machineInfo, writeResult } from './report';

export const KDC_TARGETS = {
  /** Closed-loop issues per second from one KDC process (best concurrency, Redis store). */
  issuesPerSecond: 20_000,
  /** p99 latency at half that rate, open loop. */
  p99Ms: 2,
} as const;

export type KdcStoreKind = 'redis' | 'embedded';

export interface LatencyStats {
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface KdcCase extends LatencyStats {
  store: KdcStoreKind;
  mode: 'closed-loop' | 'open-loop';
  /** closed-loop: requests kept in flight; open-loop: the most that were in flight. */
  concurrency: number;
  /** open-loop only: the scheduled rate. */
  targetPerSecond: number | null;
  seconds: number;
  /** Answers received (ISSUE_RESPONSE or ISSUE_ERROR). */
  answers: number;
  /** Answers that were not ISSUE_RESPONSE, by error name (should be empty). */
  refusals: Record<string, number>;
  issuesPerSecond: number;
  /** KDC process CPU seconds / wall seconds (1 = one core busy), null where /proc is missing. */
  kdcCpuShare: number | null;
  /** KDC process CPU microseconds per answer. */
  kdcCpuUsPerIssue: number | null;
  /** This (load-generating) process's CPU share over the case. */
  clientCpuShare: number;
}

export interface RedisBaseline {
  clients: number;
  requests: number;
  getsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

export interface KdcBreakdown {
  /** authenticate + issueAuthenticated + encoding, in this process, one core: µs per issue. */
  issueCoreUs: number;
  /** Of which authenticate(): lookups and the HMAC under the cached request key. */
  authenticateUs: number;
  /** Sealing one request (the gateway's side), µs: what the load generator paid beforehand. */
  sealRequestUs: number;
  /** One putIssuedIfAbsent to the bench Redis, sequential, through RedisKdcStore: p50 µs. */
  redisPutP50Us: number | null;
  /** putIssuedIfAbsent with 64 in flight: per second. */
  redisPutsPerSecond: number | null;
}

export interface KdcBenchResult {
  bench: 'kdc';
  date: string;
  node: string;
  cpu: string;
  cores: number;
  secondsPerCase: number;
  cases: KdcCase[];
  redisBenchmark: RedisBaseline[];
  breakdown: KdcBreakdown;
  targets: typeof KDC_TARGETS;
  /** Redis (as the targets are stated). */
  meets: TargetsMet;
  /** Each store. */
  meetsByStore: Partial<Record<KdcStoreKind, TargetsMet>>;
  notes: string[];
}

export interface TargetsMet {
  issuesPerSecond: boolean | null;
  p99AtHalfRate: boolean | null;
}

export interface KdcBenchOptions {
  seconds: number;
  concurrencies?: readonly number[];
  stores?: readonly KdcStoreKind[];
  /** dist/cli/ciphergate.js (the KDC runs as its own process). */
  cli?: string;
  /** Extra node flags for the KDC process (e.g. --cpu-prof), for profiling. */
  kdcNodeArgs?: readonly string[];
  onCase?: (what: string) => void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const ms = (x: number) => Math.round(x * 1000) / 1000;

function stats(latMs: Float64Array, n: number): LatencyStats {
  const a = latMs.subarray(0, n).slice().sort();
  const q = (p: number) => (n === 0 ? NaN : ms(a[Math.min(n - 1, Math.floor(p * n))] as number));
  return { p50Ms: q(0.5), p90Ms: q(0.9), p99Ms: q(0.99), maxMs: n === 0 ? NaN : ms(a[n - 1] as number) };
}

/** utime + stime of a process, in seconds (Linux /proc), or null. */
function procCpuSeconds(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

/** Quiet io for kdc-admin: the bench sets up its own lab. */
function adminIo(out: string[]) {
  return { out: (t: string) => out.push(t), env: process.env, now: Date.now, random: systemRandom, user: 'bench' };
}

interface Lab {
  dir: string;
  config: string;
  gateway: { principal: string; kvno: number; key: Uint8Array };
}

async function makeLab(store: KdcStoreKind, redis: RedisStandalone | null, kdcPort: number, httpPort: number): Promise<Lab> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `cg-bench-kdc-${store}-`));
  const config = path.join(dir, 'kdc.json');
  const storeJson =
    store === 'redis' ? { redis: { mode: 'standalone', host: redis!.host, port: redis!.port, keyPrefix: `bench${randomBytes(3).toString('hex')}` } } : { embedded: { path: path.join(dir, 'store') } };
  fs.writeFileSync(
    config,
    JSON.stringify({
      listen: { kdc: `127.0.0.1:${kdcPort}`, metrics: `127.0.0.1:${httpPort}` },
      store: storeJson,
      masterKey: { file: path.join(dir, 'master.key') },
      rateLimit: null,
      maxInFlight: 4096,
    }),
  );
  const out: string[] = [];
  const admin = async (...argv: string[]) => {
    if ((await runKdcAdmin(['--config', config, ...argv], adminIo(out))) !== 0) throw new Error(`kdc-admin ${argv.join(' ')}: ${out.join('\n')}`);
  };
  await admin('init');
  await admin('principal', 'add', 'gw1');
  await admin('principal', 'add', 'alice');
  await admin('policy', 'add', '--client', 'alice', '--gateway', 'gw1', '--service', '10.9.9.9:5432', '--id', 'bench');
  await admin('principal', 'export', 'gw1', '--out', path.join(dir, 'gw1.key'));
  const k = loadKeyFile(path.join(dir, 'gw1.key'));
  return { dir, config, gateway: { principal: k.principal, kvno: k.kvno, key: k.key } };
}

function fields(gw: Lab['gateway'], requestId?: Uint8Array): IssueRequestFields {
  const r = randomBytes(16 + 8 + 4 + 16 + 16);
  return {
    requestId: requestId ?? r.subarray(0, 16),
    gatewayPrincipal: gw.principal,
    gatewayKvno: gw.kvno,
    clientPrincipal: 'alice',
    connId: r.readBigUInt64BE(16),
    tuple: { clientAddr: Uint8Array.of(10, 1, 2, 3), clientPort: 40001, serverAddr: Uint8Array.of(10, 9, 9, 9), serverPort: 5432 },
    clientIsn: r.readUInt32BE(24),
    suite: 1,
    gatewayNonce: r.subarray(28, 44),
    agentNonce: r.subarray(44, 60),
    timestampMs: Date.now(),
  };
}

function sealMany(gw: Lab['gateway'], n: number): Uint8Array[] {
  const out: Uint8Array[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = sealIssueRequest(nodeBackend, gw.key, fields(gw));
  return out;
}

/** `n` unique requests end to end, request i's requestId starting with i (bench/kdc-load.ts). */
function sealBatch(gw: Lab['gateway'], n: number): RequestBatch {
  const tails = randomBytes(12 * n);
  return buildBatch(n, (id) => sealIssueRequest(nodeBackend, gw.key, fields(gw, id)), (i) => tails.subarray(12 * i, 12 * i + 12));
}

async function startKdcProcess(cli: string, lab: Lab, httpPort: number, nodeArgs: readonly string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, [...nodeArgs, cli, 'kdc', '--config', lab.config, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the KDC process exited ${child.exitCode}: ${stderr}`);
    try {
      const r = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
      if (r.status === 200) return child;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the KDC process did not become ready: ${stderr}`);
    }
    await sleep(50);
  }
}

function redisBenchmark(port: number, clients: number, requests: number): Promise<RedisBaseline | null> {
  return new Promise((resolve) => {
    execFile('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '-t', 'get', '-n', String(requests), '-c', String(clients), '--csv'], { timeout: 120_000 }, (e, stdout) => {
      if (e) return resolve(null);
      const row = stdout.trim().split('\n').find((l) => l.startsWith('"GET"'));
      if (!row) return resolve(null);
      const v = row.split(',').map((x) => Number(x.replace(/"/g, '')));
      resolve({ clients, requests, getsPerSecond: v[1] as number, p50Ms: v[4] as number, p99Ms: v[6] as number });
    });
  });
}

/**
 * The issuing core alone, on this process's core: authenticate + issue + encode per request, as
 * the KDC runs it (derived ticket/request keys cached per principal key, requests decoded from
 * their frames).
 */
function measureCore(gw: Lab['gateway']): { issueCoreUs: number; authenticateUs: number; sealRequestUs: number } {
  const n = 5000;
  const t0 = performance.now();
  const frames = sealMany(gw, n);
  const sealRequestUs = ((performance.now() - t0) * 1000) / n;
  const cached = (kvno: number, key: Uint8Array) => ({ kvno, key, ticketKey: deriveTicketKey(nodeBackend, key), requestKey: deriveRequestAuthKey(nodeBackend, key) });
  const client: PrincipalRecord = { name: 'alice', keys: [cached(1, new Uint8Array(32).fill(1))], disabled: false, allowedNets: [], groups: [] };
  const gateway: PrincipalRecord = { name: gw.principal, keys: [cached(gw.kvno, gw.key)], disabled: false, allowedNets: [], groups: [] };
  const decoded = frames.map((f) => {
    const d = decodeKdcMessage(f);
    if (!d.ok) throw new Error('bench request does not decode');
    return { message: d.value.message as IssueRequestMsg, raw: d.value.frame.raw };
  });
  // The KDC's own random source (a pooled CSPRNG), so the figure is what the KDC pays.
  const base = { now: Date.now(), random: pooledRandom(), backend: nodeBackend, ticketLifetimeMs: 120_000, policyAllows: () => true };
  const t0a = performance.now();
  for (const req of decoded) authenticate(req, { ...base, lookupPrincipal: () => gateway });
  const authenticateUs = ((performance.now() - t0a) * 1000) / n;
  const t1 = performance.now();
  for (const req of decoded) {
    const a = authenticate(req, { ...base, lookupPrincipal: () => gateway });
    if (!a.ok) throw new Error('bench request does not authenticate');
    const o = issueAuthenticated(a.value, { ...base, lookupPrincipal: () => client });
    if (!o.ok) throw new Error(`bench request refused: ${o.message.reason}`);
    encodeIssueResponse(o.message, 32);
  }
  return { issueCoreUs: ((performance.now() - t1) * 1000) / n, authenticateUs, sealRequestUs };
}

async function measureRedisPut(redis: RedisStandalone): Promise<{ redisPutP50Us: number; redisPutsPerSecond: number }> {
  const store = new RedisKdcStore({ mode: 'standalone', host: redis.host, port: redis.port, keyPrefix: 'benchput' });
  try {
    const body = new Uint8Array(700).fill(7);
    await store.putIssuedIfAbsent(randomBytes(16), body, 60_000);
    const n = 3000;
    const lat = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const s = performance.now();
      await store.putIssuedIfAbsent(randomBytes(16), body, 60_000);
      lat[i] = performance.now() - s;
    }
    const m = 20_000;
    let i = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (i++ < m) await store.putIssuedIfAbsent(randomBytes(16), body, 60_000);
      }),
    );
    const perSecond = m / ((performance.now() - t0) / 1000);
    return { redisPutP50Us: Math.round(stats(lat, n).p50Ms * 1000), redisPutsPerSecond: Math.round(perSecond) };
  } finally {
    await store.close();
  }
}

function defaultCli(): string {
  return path.join(__dirname, '..', 'cli', 'ciphergate.js');
}

export async function runKdcBench(options: KdcBenchOptions): Promise<KdcBenchResult> {
  const seconds = options.seconds;
  if (!(seconds > 0)) throw new RangeError(`seconds must be positive, got ${seconds}`);
  const concurrencies = options.concurrencies ?? [1, 16, 64, 256];
  const cli = options.cli ?? defaultCli();
  if (!fs.existsSync(cli) || !cli.endsWith('.js')) throw new Error(`bench kdc runs the KDC as a process from the build: ${cli} not found (run \`npx tsc -p .\` and use dist/cli/ciphergate.js)`);
  const notes: string[] = [];
  const haveRedis = redisAvailable();
  const stores = (options.stores ?? ['redis', 'embedded']).filter((s) => s !== 'redis' || haveRedis);
  if (!haveRedis) notes.push('redis-server/redis-cli not found: Redis cases, baseline and targets skipped');
  const redis = stores.includes('redis') ? await startRedisStandalone() : null;
  const date = new Date();
  const cases: KdcCase[] = [];
  const baseline: RedisBaseline[] = [];
  let breakdown: KdcBreakdown = { issueCoreUs: NaN, authenticateUs: NaN, sealRequestUs: NaN, redisPutP50Us: null, redisPutsPerSecond: null };
  try {
    for (const store of stores) {
      const kdcPort = await freePort();
      const httpPort = await freePort();
      const lab = await makeLab(store, redis, kdcPort, httpPort);
      if (store === stores[0]) breakdown = { ...breakdown, ...measureCore(lab.gateway) };
      const child = await startKdcProcess(cli, lab, httpPort, options.kdcNodeArgs ?? []);
      const load = await KdcLoad.connect('127.0.0.1', kdcPort);
      try {
        const measure = async (mode: KdcCase['mode'], concurrency: number, rate: number | null): Promise<KdcCase> => {
          options.onCase?.(`${store} ${mode} ${rate === null ? `concurrency ${concurrency}` : `${rate}/s`}`);
          // Warm-up: JIT, caches, connections.
          await load.closedLoop(sealBatch(lab.gateway, 20_000), Math.max(concurrency, 16), 0.3);
          const budget = Math.ceil((rate ?? 60_000) * seconds * 1.1) + 1000;
          const batch = sealBatch(lab.gateway, budget);
          const cpu0 = procCpuSeconds(child.pid as number);
          const me0 = process.cpuUsage();
          const run = rate === null ? await load.closedLoop(batch, concurrency, seconds) : await load.openLoop(batch, rate, seconds);
          const cpu1 = procCpuSeconds(child.pid as number);
          const me = process.cpuUsage(me0);
          const kdcCpu = cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : null;
          return {
            store,
            mode,
            concurrency: run.maxInFlight,
            targetPerSecond: rate,
            seconds: ms(run.seconds),
            answers: run.answers,
            refusals: run.refusals,
            issuesPerSecond: Math.round((run.answers - Object.values(run.refusals).reduce((a, b) => a + b, 0)) / run.seconds),
            ...stats(run.lat, run.answers),
            kdcCpuShare: kdcCpu === null ? null : ms(kdcCpu / run.seconds),
            kdcCpuUsPerIssue: kdcCpu === null ? null : Math.round((kdcCpu * 1e6) / Math.max(1, run.answers)),
            clientCpuShare: ms((me.user + me.system) / 1e6 / run.seconds),
          };
        };
        const closed: KdcCase[] = [];
        for (const c of concurrencies) closed.push(await measure('closed-loop', c, null));
        cases.push(...closed);
        // At half the target, and at half of what this machine sustained (the target's shape
        // applied to the capacity measured here), so latency is reported below saturation too.
        const half = Math.round(Math.max(...closed.map((c) => c.issuesPerSecond)) / 2);
        cases.push(await measure('open-loop', 0, KDC_TARGETS.issuesPerSecond / 2));
        if (half < KDC_TARGETS.issuesPerSecond / 2) cases.push(await measure('open-loop', 0, half));
      } finally {
        load.close();
        child.kill('SIGTERM');
        await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
        fs.rmSync(lab.dir, { recursive: true, force: true });
      }
    }
    if (redis !== null) {
      options.onCase?.('redis put-if-absent round trip');
      breakdown = { ...breakdown, ...(await measureRedisPut(redis)) };
      options.onCase?.('redis-benchmark -t get');
      for (const clients of [50, 1]) {
        const b = await redisBenchmark(redis.port, clients, clients === 1 ? 20_000 : 100_000);
        if (b) baseline.push(b);
        else notes.push(`redis-benchmark -c ${clients} did not run`);
      }
    }
  } finally {
    await redis?.stop();
  }
  const met = (store: KdcStoreKind): TargetsMet => {
    const closed = cases.filter((c) => c.store === store && c.mode === 'closed-loop');
    const open = cases.find((c) => c.store === store && c.mode === 'open-loop' && c.targetPerSecond === KDC_TARGETS.issuesPerSecond / 2);
    return {
      issuesPerSecond: closed.length ? Math.max(...closed.map((c) => c.issuesPerSecond)) >= KDC_TARGETS.issuesPerSecond : null,
      p99AtHalfRate: open ? open.p99Ms < KDC_TARGETS.p99Ms && Object.keys(open.refusals).length === 0 : null,
    };
  };
  const meets = met('redis');
  const meetsByStore = Object.fromEntries(stores.map((st) => [st, met(st)]));
  notes.push(...explain(cases, breakdown));
  return {
    bench: 'kdc',
    date: date.toISOString(),
    ...machineInfo(),
    cores: os.cpus().length,
    secondsPerCase: seconds,
    cases,
    redisBenchmark: baseline,
    breakdown,
    targets: KDC_TARGETS,
    meets,
    meetsByStore,
    notes,
  };
}

/** Plain statements of where the time goes, from the measurements. */
function explain(cases: readonly KdcCase[], b: KdcBreakdown): string[] {
  const out: string[] = [];
  const best = (store: KdcStoreKind) => cases.filter((c) => c.store === store && c.mode === 'closed-loop').sort((x, y) => y.issuesPerSecond - x.issuesPerSecond)[0];
  for (const store of ['redis', 'embedded'] as const) {
    const c = best(store);
    if (!c) continue;
    const cpu = c.kdcCpuUsPerIssue;
    out.push(
      `${store}: best ${c.issuesPerSecond}/s at concurrency ${c.concurrency}; the KDC process spent ${cpu ?? '?'} us CPU per issue ` +
        `(${c.kdcCpuShare ?? '?'} cores), of which the issuing core is ${b.issueCoreUs.toFixed(1)} us (authenticate ${b.authenticateUs.toFixed(1)} us; ` +
        `the rest: session key, two ticket seals under cached ticket keys, encoding); the load generator used ${c.clientCpuShare} cores.`,
    );
    if (c.kdcCpuShare !== null && c.kdcCpuShare > 0.9) out.push(`${store}: the KDC's one event loop is saturated: throughput = 1 / (${cpu} us per issue).`);
  }
  if (os.cpus().length <= 2) out.push(`only ${os.cpus().length} cores: the KDC process, redis-server and the load generator share them, so each case measures all three.`);
  return out;
}

// ---- `ciphergate bench kdc` output ----

function table(r: KdcBenchResult): string {
  const rows = formatTable<KdcCase>(
    [
      { title: 'store', cell: (c) => c.store },
      { title: 'mode', cell: (c) => c.mode },
      { title: 'offered', align: 'right', cell: (c) => (c.targetPerSecond === null ? 'max' : `${formatNumber(c.targetPerSecond)}/s`) },
      { title: 'in flight', align: 'right', cell: (c) => (c.mode === 'open-loop' ? `<=${c.concurrency}` : String(c.concurrency)) },
      { title: 'issues/s', align: 'right', cell: (c) => formatNumber(c.issuesPerSecond) },
      { title: 'p50 ms', align: 'right', cell: (c) => c.p50Ms.toFixed(3) },
      { title: 'p99 ms', align: 'right', cell: (c) => c.p99Ms.toFixed(3) },
      { title: 'max ms', align: 'right', cell: (c) => c.maxMs.toFixed(2) },
      { title: 'KDC cpu', align: 'right', cell: (c) => (c.kdcCpuShare === null ? '?' : `${Math.round(c.kdcCpuShare * 100)}%`) },
      { title: 'us/issue', align: 'right', cell: (c) => String(c.kdcCpuUsPerIssue ?? '?') },
      { title: 'refused', align: 'right', cell: (c) => Object.entries(c.refusals).map(([k, v]) => `${k}:${v}`).join(' ') || '0' },
    ],
    r.cases,
  );
  const yes = (b: boolean | null) => (b === null ? 'not measured' : b ? 'met' : 'NOT met');
  const b = r.breakdown;
  return [
    `kdc bench: ${r.node}, ${r.cpu}, ${r.cores} cores, ${r.secondsPerCase} s per case, ${r.date}`,
    '',
    rows,
    '',
    ...r.redisBenchmark.map((x) => `redis-benchmark -t get -c ${x.clients}: ${formatNumber(x.getsPerSecond)} GET/s, p50 ${x.p50Ms} ms, p99 ${x.p99Ms} ms`),
    `issuing core in this process: ${b.issueCoreUs.toFixed(1)} us/issue (authenticate ${b.authenticateUs.toFixed(1)} us); sealing a request: ${b.sealRequestUs.toFixed(1)} us` +
      (b.redisPutP50Us !== null ? `; Redis put-if-absent p50 ${b.redisPutP50Us} us, ${formatNumber(b.redisPutsPerSecond ?? 0)}/s with 64 in flight` : ''),
    ...Object.entries(r.meetsByStore).flatMap(([store, m]) => [
      `>= ${formatNumber(r.targets.issuesPerSecond)} issues/s from one KDC process (${store}): ${yes(m.issuesPerSecond)}`,
      `p99 < ${r.targets.p99Ms} ms at ${formatNumber(r.targets.issuesPerSecond / 2)}/s (${store}, open loop): ${yes(m.p99AtHalfRate)}`,
    ]),
    ...r.notes,
  ].join('\n');
}

/** `ciphergate bench kdc`: runs, writes kdc-<date>.json and kdc-latest.json, prints. */
export async function kdcBenchCommand(o: { seconds: number; json: boolean; outDir: string }): Promise<number> {
  const result = await runKdcBench({
    seconds: o.seconds,
    onCase: (what) => {
      if (process.stderr.isTTY) process.stderr.write(`  ${what}...\n`);
    },
  });
  const written = writeResult(o.outDir, 'kdc', new Date(result.date), result);
  if (o.json) console.log(JSON.stringify(result, null, 2));
  else console.log(`${table(result)}\n\nwrote ${written.dated}\n  and ${written.latest}`);
  return 0;
}
