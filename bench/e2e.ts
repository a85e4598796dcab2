// End to end: the real daemons in the network-namespace lab (lab/topology.ts), real kernel TCP,
// unmodified programs, compared in one run on this machine with the same topology and programs
// without ciphergate (plain) and with a stunnel TLS 1.3 pair (bench/e2e-tls.ts).
//
// Paths, each through one lab (the router lab is always built: it carries the baselines):
//   plain       the client talks to the server's unprotected ports (8080 for HTTP, an extra
//               `iperf3 -s` on 5202 started here): the gateway's rules leave them in the kernel.
//   stunnel     router lab; stunnel client on the client's loopback -> TLS 1.3 -> stunnel
//               server -> the same unprotected services on the server's loopback.
//   ciphergate  the protected ports (80, 5201) in each requested mode: router, host, bridge.
// Figures per path:
//   throughput       iperf3 client -> server, one stream and two (-P 2), SECONDS each:
//                    receiver-side Mbit/s.
//   connect+1st byte sequential fresh connections for SECONDS (bench/e2e-load.ts, node in the
//                    client namespace): connect, small HTTP request, first byte of the answer.
//   new conns/s      CONCURRENCY loops of fresh connections, one request each, for SECONDS.
//   CPU              utime+stime (/proc/PID/stat, with descendants) of the path's own processes
//                    (gateway, agent, KDC and its Redis; or the two stunnels) over the
//                    one-stream iperf run, per GB received, and over the new-connections run, per
//                    1000 connections. Kernel work (forwarding, softirq) is nobody's and not counted.
// Targets (reported, never asserted): ciphergate throughput >= stunnel's; ciphergate p50
// overhead over plain <= half of stunnel's; new connections/s >= 3x stunnel's.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CiphergateLab, LAB_PORTS, type LabMode, cliPath } from '../lab/topology';
import { isRoot, missingTools } from '../lab/netns';
import type { LatencySummary, RateSummary } from './e2e-load';
import { type TlsDescription, startStunnelPair } from './e2e-tls';
import { type Column, formatNumber, formatTable, machineInfo, writeResult } from './report';

export const E2E_MODES: readonly LabMode[] = ['router', 'host', 'bridge'];

export const E2E_TARGETS = {
  /** ciphergate one-stream Mbit/s / stunnel's, at least. */
  throughputVsStunnel: 1,
  /** (ciphergate p50 - plain p50) / (stunnel p50 - plain p50), at most. */
  latencyOverheadVsStunnel: 0.5,
  /** ciphergate new connections/s / stunnel's, at least. */
  connectionsVsStunnel: 3,
} as const;

/** The extra, unprotected iperf3 server of the plain and stunnel paths. */
export const PLAIN_IPERF_PORT = 5202;
const TOOLS = ['ip', 'ethtool', 'nft', 'ss', 'iperf3', 'redis-server', 'stunnel4', 'openssl'] as const;

export type PathKind = 'plain' | 'stunnel' | 'ciphergate';

export interface Throughput {
  streams: number;
  /** Receiver side, bits per second / 1e6. */
  mbitPerSecond: number;
  bytes: number;
  seconds: number;
  /** TCP retransmissions the sender saw. */
  retransmits: number;
}

export interface PathCpu {
  /** The processes counted, by name -> CPU seconds in the one-stream run and the rate run. */
  byProcess: Record<string, { throughputRun: number; connectionRun: number }>;
  /** CPU seconds (all processes counted) per GB (1e9 bytes) received in the one-stream run. */
  secondsPerGB: number | null;
  /** CPU seconds per 1000 connections completed in the new-connections run. */
  secondsPer1000Connections: number | null;
}

export interface PathResult {
  path: PathKind;
  /** The lab it ran in. */
  lab: LabMode;
  /** e.g. "ciphergate router", "plain (router lab)". */
  label: string;
  /** ciphergate: worker processes of the gateway and of the agent (nfqueue.workers). */
  workers?: number;
  /** What the client programs connected to. */
  endpoints: { http: string; iperf: string };
  throughput: { oneStream: Throughput | null; twoStreams: Throughput | null };
  connectFirstByte: LatencySummary | null;
  newConnections: RateSummary | null;
  /** null for plain: no process of its own (the kernel's work is not attributed). */
  cpu: PathCpu | null;
  /** Measurements that failed, with why. */
  failures: string[];
  /** ciphergate: the daemons' non-zero counters after the path (gateway, agent). */
  counters?: Record<string, Record<string, number>>;
}

export interface LabOutcome {
  mode: LabMode;
  workers?: number;
  status: 'ok' | 'skipped' | 'failed';
  reason?: string;
  /** Lab build and daemon start-up, seconds. */
  upSeconds?: number;
}

export interface Verdict {
  mode: LabMode;
  /** The ciphergate path's label (mode, and workers when more than one). */
  label: string;
  /** The plain path the overhead is taken against. */
  baseline: string;
  throughput: { ciphergateMbit: number | null; stunnelMbit: number | null; ratio: number | null; met: boolean | null };
  latencyOverhead: { ciphergateMs: number | null; stunnelMs: number | null; ratio: number | null; met: boolean | null };
  newConnections: { ciphergatePerSecond: number | null; stunnelPerSecond: number | null; ratio: number | null; met: boolean | null };
}

export interface E2eBenchResult {
  bench: 'e2e';
  date: string;
  node: string;
  cpu: string;
  cores: number;
  kernel: string;
  /** os.loadavg() when the run started and ended: other work on the machine shows here. */
  loadAverage: { start: number[]; end: number[] };
  secondsPerMeasurement: number;
  concurrency: number;
  tls: TlsDescription | null;
  labs: LabOutcome[];
  paths: PathResult[];
  targets: typeof E2E_TARGETS;
  verdicts: Verdict[];
  notes: string[];
  wallSeconds: number;
}

export interface E2eBenchOptions {
  /** Seconds per measurement (each iperf3 run, latency run and rate run). */
  seconds: number;
  modes: readonly LabMode[];
  /** Concurrent connection loops of the new-connections run (default 16). */
  concurrency?: number;
  /** Worker processes per daemon to measure, each a lab of its own per mode (default [1]). */
  workers?: readonly number[];
  /** Working directory (configs, logs); default a fresh temp dir, removed afterwards. */
  workDir?: string;
  onStep?: (what: string) => void;
}

const distDir = (): string => path.dirname(path.dirname(cliPath()));
const loadScript = (): string => path.join(distDir(), 'bench', 'e2e-load.js');
const bridgeDatapath = (): string => path.join(distDir(), 'runtime', 'bridge-datapath.js');
const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** Why the bench cannot run here, or null. */
export function e2eUnavailable(): string | null {
  if (!isRoot()) return 'needs root (network namespaces)';
  const missing = missingTools(TOOLS);
  if (missing.length > 0) return `missing tools: ${missing.join(', ')}`;
  for (const f of [cliPath(), loadScript()]) if (!fs.existsSync(f)) return `${f} is missing: build first (npx tsc -p .)`;
  return null;
}

// ---- CPU accounting ---------------------------------------------------------------------

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** [ppid, utime + stime + cutime + cstime in ticks] of a process, or null if it is gone. */
function readStat(pid: number): [number, number] | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return [Number(f[1]), Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])];
  } catch {
    return null;
  }
}

/**
 * CPU seconds so far of `pid` and every live descendant (a gateway's worker processes). A
 * child that exited and was reaped is in its parent's cutime/cstime, so nothing counts twice.
 */
export function treeCpuSeconds(pid: number): number {
  const children = new Map<number, number[]>();
  const ticks = new Map<number, number>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (!s) continue;
    ticks.set(Number(name), s[1]);
    children.set(s[0], [...(children.get(s[0]) ?? []), Number(name)]);
  }
  let total = 0;
  const todo = [pid];
  for (let p = todo.pop(); p !== undefined; p = todo.pop()) {
    total += ticks.get(p) ?? 0;
    todo.push(...(children.get(p) ?? []));
  }
  return total / ticksPerSecond();
}

/** CPU seconds each named process used while `fn` ran. */
async function cpuDuring<T>(pids: Record<string, number>, fn: () => Promise<T>): Promise<{ value: T; cpu: Record<string, number> }> {
  const before = Object.fromEntries(Object.entries(pids).map(([n, p]) => [n, treeCpuSeconds(p)]));
  const value = await fn();
  const cpu = Object.fromEntries(Object.entries(pids).map(([n, p]) => [n, round(treeCpuSeconds(p) - (before[n] as number), 2)]));
  return { value, cpu };
}

// ---- measurements -----------------------------------------------------------------------

interface PathSpec {
  path: PathKind;
  /** Daemons of the path that have died (checked before each measurement), if it has any. */
  dead?: () => Promise<string[]>;
  label: string;
  workers?: number;
  /** Where the client programs connect (the stunnel client for stunnel). */
  http: { host: string; port: number };
  iperf: { host: string; port: number };
  /** Processes whose CPU the path is charged with (none for plain). */
  pids: Record<string, number>;
}

interface IperfJson {
  error?: string;
  end?: { sum_received?: { bytes: number; seconds: number; bits_per_second: number }; sum_sent?: { retransmits?: number } };
}

async function iperf(lab: CiphergateLab, target: PathSpec['iperf'], seconds: number, streams: number): Promise<Throughput> {
  // iperf3 reads -t as a whole number (and 0 as "forever").
  const t = Math.max(1, Math.round(seconds));
  const r = await lab.client$('iperf3', ['-c', target.host, '-p', String(target.port), '-t', String(t), '-P', String(streams), '-J', '--connect-timeout', '5000'], {
    timeoutMs: t * 1000 + 15_000,
    allowFailure: true,
  });
  let j: IperfJson;
  try {
    j = JSON.parse(r.stdout) as IperfJson;
  } catch {
    throw new Error(`iperf3 printed no JSON (exit ${r.code ?? r.signal}): ${r.stderr.trim().slice(0, 300)}`);
  }
  const sum = j.end?.sum_received;
  if (j.error || !sum || !(sum.bytes > 0)) throw new Error(`iperf3: ${j.error ?? 'no bytes received'}`);
  return { streams, mbitPerSecond: round(sum.bits_per_second / 1e6, 1), bytes: sum.bytes, seconds: round(sum.seconds, 2), retransmits: j.end?.sum_sent?.retransmits ?? 0 };
}

async function load<T>(lab: CiphergateLab, what: 'latency' | 'rate', target: PathSpec['http'], seconds: number, n: number): Promise<T> {
  const r = await lab.client$(process.execPath, [loadScript(), what, target.host, String(target.port), String(seconds), String(n)], {
    timeoutMs: seconds * 1000 + 60_000,
    allowFailure: true,
  });
  if (r.code !== 0) throw new Error(`e2e-load ${what} failed (${r.code ?? r.signal}): ${r.stderr.trim().slice(0, 300)}`);
  const result = JSON.parse(r.stdout) as LatencySummary;
  if (result.connections === 0) throw new Error(`e2e-load ${what}: no connection completed (${result.errors} errors, first: ${result.firstError})`);
  return result as T;
}

/** Runs `fn`, recording a failure instead of throwing; skipped once a daemon of the path died. */
async function attempt<T>(failures: string[], spec: PathSpec, what: string, fn: () => Promise<T>): Promise<T | null> {
  const dead = (await spec.dead?.()) ?? [];
  if (dead.length > 0) {
    if (!failures.some((f) => f.startsWith('daemon died'))) failures.push(...dead.map((d) => `daemon died: ${d}`));
    failures.push(`${what}: skipped (a daemon died)`);
    return null;
  }
  try {
    return await fn();
  } catch (e) {
    failures.push(`${what}: ${(e as Error).message.split('\n')[0]}`);
    return null;
  }
}

async function measurePath(lab: CiphergateLab, spec: PathSpec, o: Required<Pick<E2eBenchOptions, 'seconds' | 'concurrency'>>): Promise<PathResult> {
  const failures: string[] = [];
  const maxSequential = Math.max(50, Math.round(1000 * o.seconds));
  const one = await attempt(failures, spec, 'iperf3 one stream', () => cpuDuring(spec.pids, () => iperf(lab, spec.iperf, o.seconds, 1)));
  const two = await attempt(failures, spec, 'iperf3 -P 2', () => iperf(lab, spec.iperf, o.seconds, 2));
  const latency = await attempt(failures, spec, 'connect+first byte', () => load<LatencySummary>(lab, 'latency', spec.http, o.seconds, maxSequential));
  const rate = await attempt(failures, spec, 'new connections/s', () => cpuDuring(spec.pids, () => load<RateSummary>(lab, 'rate', spec.http, o.seconds, o.concurrency)));
  let cpu: PathCpu | null = null;
  if (Object.keys(spec.pids).length > 0) {
    const total = (c: Record<string, number> | undefined): number | null => (c === undefined ? null : Object.values(c).reduce((a, b) => a + b, 0));
    const oneCpu = total(one?.cpu);
    const rateCpu = total(rate?.cpu);
    cpu = {
      byProcess: Object.fromEntries(Object.keys(spec.pids).map((n) => [n, { throughputRun: one?.cpu[n] ?? NaN, connectionRun: rate?.cpu[n] ?? NaN }])),
      secondsPerGB: one && oneCpu !== null ? round(oneCpu / (one.value.bytes / 1e9), 2) : null,
      secondsPer1000Connections: rate && rateCpu !== null ? round(rateCpu / (rate.value.connections / 1000), 3) : null,
    };
  }
  return {
    path: spec.path,
    lab: lab.opts.mode,
    label: spec.label,
    ...(spec.workers === undefined ? {} : { workers: spec.workers }),
    endpoints: { http: `${spec.http.host}:${spec.http.port}`, iperf: `${spec.iperf.host}:${spec.iperf.port}` },
    throughput: { oneStream: one?.value ?? null, twoStreams: two },
    connectFirstByte: latency,
    newConnections: rate?.value ?? null,
    cpu,
    failures,
  };
}

/** Non-zero counters of the gateway and agent (what went wrong shows here first). */
async function daemonCounters(lab: CiphergateLab): Promise<Record<string, Record<string, number>>> {
  const out: Record<string, Record<string, number>> = {};
  for (const role of ['gateway', 'agent'] as const) {
    try {
      const s = await lab.status(role);
      out[role] = Object.fromEntries(Object.entries(s.counters).filter(([, v]) => v !== 0));
    } catch (e) {
      out[role] = {};
      out[`${role} status error`] = { [(e as Error).message.slice(0, 200)]: 1 };
    }
  }
  return out;
}

/** Daemons of the lab that have exited, with the tail of their logs. */
async function deadDaemons(lab: CiphergateLab): Promise<string[]> {
  const dead: string[] = [];
  for (const name of ['gateway', 'agent', 'kdc', 'redis']) {
    const p = lab.procs.get(name);
    if (!p) continue;
    const code = await Promise.race([p.exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 10))]);
    if (code !== 'running') dead.push(`${name} exited (${code}): ${p.stdout().trim().split('\n').slice(-12).join(' | ')}`);
  }
  return dead;
}

// ---- the run ----------------------------------------------------------------------------

export async function runE2eBench(opts: E2eBenchOptions): Promise<E2eBenchResult> {
  const unavailable = e2eUnavailable();
  if (unavailable) throw new Error(`bench e2e: ${unavailable}`);
  const started = performance.now();
  const loadStart = os.loadavg().map((x) => round(x, 2));
  const o = { seconds: opts.seconds, concurrency: opts.concurrency ?? 16 };
  const step = opts.onStep ?? (() => undefined);
  const ownDir = opts.workDir === undefined;
  const workDir = opts.workDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'cg-bench-e2e-'));
  const labs: LabOutcome[] = [];
  const paths: PathResult[] = [];
  const notes: string[] = [];
  let tls: TlsDescription | null = null;
  let keepLogs = false;
  // The router lab always runs: it carries the plain and stunnel baselines. Each mode's first
  // lab carries its plain path; a lab per further worker count measures ciphergate only. Bridge
  // mode has no workers (one capture process).
  const counts = opts.workers ?? [1];
  const modes: LabMode[] = ['router', ...E2E_MODES.filter((m) => m !== 'router' && opts.modes.includes(m))];
  const order = modes.flatMap((mode) =>
    (mode === 'bridge' || !opts.modes.includes(mode) ? [1] : counts).map((workers, i) => ({ mode, workers, baselines: i === 0 })),
  );
  try {
    for (const { mode, workers, baselines } of order) {
      const labName = workers === 1 ? mode : `${mode}-${workers}w`;
      if (mode === 'bridge' && !fs.existsSync(bridgeDatapath())) {
        labs.push({ mode, status: 'skipped', reason: `${bridgeDatapath()} does not exist (bridge datapath not built)` });
        continue;
      }
      step(`${labName} lab: up`);
      const t0 = performance.now();
      let lab: CiphergateLab;
      try {
        lab = await CiphergateLab.up({ mode, dir: path.join(workDir, labName), gatewayWorkers: workers, agentWorkers: workers });
      } catch (e) {
        labs.push({ mode, workers, status: 'failed', reason: (e as Error).message.slice(0, 2000) });
        keepLogs = true;
        continue;
      }
      const outcome: LabOutcome = { mode, workers, status: 'ok', upSeconds: round((performance.now() - t0) / 1000, 1) };
      labs.push(outcome);
      try {
        const s = lab.server.v4;
        lab.netns.spawn(lab.server.ns, 'iperf3', ['-s', '-p', String(PLAIN_IPERF_PORT)], { logFile: path.join(workDir, labName, 'iperf3-plain.log') });
        await lab.netns.waitForListen(lab.server.ns, PLAIN_IPERF_PORT);
        const specs: PathSpec[] = [];
        if (baselines)
          specs.push({ path: 'plain', label: mode === 'bridge' ? 'plain (bridge lab, via the userspace bridge)' : `plain (${mode} lab)`, http: { host: s, port: LAB_PORTS.plainHttp }, iperf: { host: s, port: PLAIN_IPERF_PORT }, pids: {} });
        if (mode === 'router' && baselines) {
          step('router lab: stunnel pair');
          const pair = await startStunnelPair(lab, path.join(workDir, labName), { httpPort: LAB_PORTS.plainHttp, iperfPort: PLAIN_IPERF_PORT });
          tls = pair.describe;
          specs.push({ path: 'stunnel', label: 'stunnel TLS 1.3 (router lab)', http: pair.tunnels.http.local, iperf: pair.tunnels.iperf.local, pids: pair.pids });
        }
        if (opts.modes.includes(mode)) {
          const pid = (n: string): number => lab.procs.get(n)?.pid ?? -1;
          specs.push({
            path: 'ciphergate',
            label: workers === 1 ? `ciphergate ${mode}` : `ciphergate ${mode}, ${workers} workers each`,
            workers,
            http: { host: s, port: LAB_PORTS.http },
            iperf: { host: s, port: LAB_PORTS.iperf },
            pids: { gateway: pid('gateway'), agent: pid('agent'), kdc: pid('kdc'), 'kdc redis': pid('redis') },
            dead: () => deadDaemons(lab),
          });
        }
        for (const spec of specs) {
          step(`${labName} lab: ${spec.label}`);
          const result = await measurePath(lab, spec, o);
          if (spec.path === 'ciphergate') {
            result.counters = await daemonCounters(lab);
            if (!result.failures.some((f) => f.startsWith('daemon died'))) result.failures.push(...(await deadDaemons(lab)).map((d) => `daemon died: ${d}`));
          }
          if (result.failures.length > 0) keepLogs = true;
          paths.push(result);
        }
      } catch (e) {
        outcome.status = 'failed';
        outcome.reason = (e as Error).message.slice(0, 2000);
        keepLogs = true;
      } finally {
        step(`${labName} lab: down`);
        await lab.down().catch((e: unknown) => notes.push(`${labName} lab teardown: ${(e as Error).message}`));
      }
    }
  } finally {
    // The daemons' logs are what explains a failure: keep them then.
    if (ownDir && !keepLogs) fs.rmSync(workDir, { recursive: true, force: true });
    else if (keepLogs) notes.push(`Something failed: configs and logs (gateway.log, agent.log, kdc.log, stunnel-*.log per lab) kept in ${workDir}.`);
  }
  notes.push(...standingNotes(os.cpus().length));
  return {
    bench: 'e2e',
    date: new Date().toISOString(),
    ...machineInfo(),
    cores: os.cpus().length,
    kernel: os.release(),
    loadAverage: { start: loadStart, end: os.loadavg().map((x) => round(x, 2)) },
    secondsPerMeasurement: o.seconds,
    concurrency: o.concurrency,
    tls,
    labs,
    paths,
    targets: E2E_TARGETS,
    verdicts: verdicts(paths),
    notes,
    wallSeconds: round((performance.now() - started) / 1000, 1),
  };
}

function standingNotes(cores: number): string[] {
  return [
    `All namespaces share this machine's ${cores} cores: the load generators (iperf3, node), the servers, the daemons and stunnel compete for them, so every figure is of this machine under that sharing.`,
    'The bridge lab\'s plain path also crosses ciphergate\'s userspace bridge; the bridge verdict takes its overhead against the router lab\'s plain (kernel) path.',
    "CPU counts only the path's own processes (their system time includes the NFQUEUE and capture copies); forwarding and TCP work in softirq, and the load generators, are nobody's and not counted.",
    'Every lab interface has GRO/GSO/TSO and checksum offloads off (ciphergate requires it), for every path alike: plain TCP moves 1500-byte frames, hence ~1-2 Gbit/s rather than tens.',
  ];
}

/** The plain path each mode's overhead is measured against: the same lab's, except bridge. */
function baselineOf(paths: readonly PathResult[], mode: LabMode): PathResult | undefined {
  return paths.find((p) => p.path === 'plain' && p.lab === (mode === 'bridge' ? 'router' : mode));
}

export function verdicts(paths: readonly PathResult[]): Verdict[] {
  const stunnel = paths.find((p) => p.path === 'stunnel');
  const routerPlain = baselineOf(paths, 'router');
  const stunnelOverhead = stunnel?.connectFirstByte && routerPlain?.connectFirstByte ? stunnel.connectFirstByte.p50Ms - routerPlain.connectFirstByte.p50Ms : null;
  const ratio = (a: number | null | undefined, b: number | null | undefined): number | null => (a == null || b == null || b === 0 ? null : round(a / b, 2));
  return paths
    .filter((p) => p.path === 'ciphergate')
    .map((cg): Verdict => {
      const plain = baselineOf(paths, cg.lab);
      const cgOverhead = cg.connectFirstByte && plain?.connectFirstByte ? round(cg.connectFirstByte.p50Ms - plain.connectFirstByte.p50Ms) : null;
      const tput = { ciphergateMbit: cg.throughput.oneStream?.mbitPerSecond ?? null, stunnelMbit: stunnel?.throughput.oneStream?.mbitPerSecond ?? null };
      const conns = { ciphergatePerSecond: cg.newConnections ? round(cg.newConnections.perSecond, 1) : null, stunnelPerSecond: stunnel?.newConnections ? round(stunnel.newConnections.perSecond, 1) : null };
      const tRatio = ratio(tput.ciphergateMbit, tput.stunnelMbit);
      const lRatio = ratio(cgOverhead, stunnelOverhead);
      const cRatio = ratio(conns.ciphergatePerSecond, conns.stunnelPerSecond);
      return {
        mode: cg.lab,
        label: cg.label,
        baseline: plain?.label ?? 'none',
        throughput: { ...tput, ratio: tRatio, met: tRatio === null ? null : tRatio >= E2E_TARGETS.throughputVsStunnel },
        latencyOverhead: {
          ciphergateMs: cgOverhead,
          stunnelMs: stunnelOverhead === null ? null : round(stunnelOverhead),
          ratio: lRatio,
          // A ciphergate overhead at or below zero meets the target whatever stunnel's is.
          met: cgOverhead === null || stunnelOverhead === null ? null : cgOverhead <= E2E_TARGETS.latencyOverheadVsStunnel * stunnelOverhead,
        },
        newConnections: { ...conns, ratio: cRatio, met: cRatio === null ? null : cRatio >= E2E_TARGETS.connectionsVsStunnel },
      };
    });
}

// ---- output -----------------------------------------------------------------------------

const num = (x: number | null | undefined, digits = 2): string => (x == null || Number.isNaN(x) ? '-' : formatNumber(x, digits));

function columns(result: E2eBenchResult): Column<PathResult>[] {
  const overhead = (p: PathResult): string => {
    const base = p.path === 'plain' ? undefined : p.path === 'stunnel' ? baselineOf(result.paths, 'router') : baselineOf(result.paths, p.lab);
    return base?.connectFirstByte && p.connectFirstByte ? `+${num(p.connectFirstByte.p50Ms - base.connectFirstByte.p50Ms)}` : '-';
  };
  return [
    { title: 'path', cell: (p) => p.label },
    { title: 'Mbit/s 1 stream', align: 'right', cell: (p) => num(p.throughput.oneStream?.mbitPerSecond, 1) },
    { title: 'Mbit/s -P 2', align: 'right', cell: (p) => num(p.throughput.twoStreams?.mbitPerSecond, 1) },
    { title: 'c+1st byte p50 ms', align: 'right', cell: (p) => num(p.connectFirstByte?.p50Ms) },
    { title: 'p99 ms', align: 'right', cell: (p) => num(p.connectFirstByte?.p99Ms) },
    { title: 'p50 overhead ms', align: 'right', cell: overhead },
    { title: 'new conns/s', align: 'right', cell: (p) => num(p.newConnections?.perSecond, 0) },
    { title: 'CPU s/GB', align: 'right', cell: (p) => num(p.cpu?.secondsPerGB) },
    { title: 'CPU s/1000 conns', align: 'right', cell: (p) => num(p.cpu?.secondsPer1000Connections, 3) },
    { title: 'errors', align: 'right', cell: (p) => String((p.connectFirstByte?.errors ?? 0) + (p.newConnections?.errors ?? 0) + p.failures.length) },
  ];
}

export function e2eTable(result: E2eBenchResult): string {
  return formatTable(columns(result), result.paths);
}

function markdownTable(result: E2eBenchResult): string[] {
  const cols = columns(result);
  const row = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [
    row(cols.map((c) => c.title)),
    row(cols.map((c) => (c.align === 'right' ? '---:' : '---'))),
    ...result.paths.map((p) => row(cols.map((c) => c.cell(p)))),
  ];
}

function verdictLines(result: E2eBenchResult): string[] {
  const yes = (b: boolean | null): string => (b === null ? 'n/a' : b ? 'met' : 'NOT met');
  return result.verdicts.flatMap((v) => [
    `${v.label} (overhead vs ${v.baseline}):`,
    `  throughput >= stunnel: ${num(v.throughput.ciphergateMbit, 1)} vs ${num(v.throughput.stunnelMbit, 1)} Mbit/s (${num(v.throughput.ratio)}x): ${yes(v.throughput.met)}`,
    `  connect+first-byte p50 overhead <= half of stunnel's: +${num(v.latencyOverhead.ciphergateMs)} vs +${num(v.latencyOverhead.stunnelMs)} ms (${num(v.latencyOverhead.ratio)}x): ${yes(v.latencyOverhead.met)}`,
    `  new connections/s >= 3x stunnel: ${num(v.newConnections.ciphergatePerSecond, 0)} vs ${num(v.newConnections.stunnelPerSecond, 0)} (${num(v.newConnections.ratio)}x): ${yes(v.newConnections.met)}`,
  ]);
}

function problems(result: E2eBenchResult): string[] {
  return [
    ...result.labs.filter((l) => l.status !== 'ok').map((l) => `${l.mode} lab ${l.status}: ${(l.reason ?? '').split('\n')[0]}`),
    ...result.paths.flatMap((p) => [
      ...p.failures.map((f) => `${p.label}: ${f}`),
      ...([['connect+first byte', p.connectFirstByte], ['new conns/s', p.newConnections]] as const)
        .filter(([, s]) => s && s.errors > 0)
        .map(([what, s]) => `${p.label}, ${what}: ${s?.errors} of ${(s?.errors ?? 0) + (s?.connections ?? 0)} connections failed (first: ${s?.firstError})`),
    ]),
  ];
}

function header(result: E2eBenchResult): string {
  const load = (l: number[]): string => l.map((x) => x.toFixed(1)).join(' ');
  return [
    `e2e bench: ${result.node}, ${result.cpu}, ${result.cores} cores, kernel ${result.kernel}, ${result.date}`,
    `${result.secondsPerMeasurement} s per measurement, ${result.concurrency} concurrent loops for new conns/s; load average ${load(result.loadAverage.start)} at start, ${load(result.loadAverage.end)} at end; ${result.wallSeconds} s in all`,
  ].join('\n');
}

export function e2eText(result: E2eBenchResult): string {
  const tls = result.tls ? [`stunnel: ${result.tls.implementation}, ${result.tls.protocol} ${result.tls.cipherSuite}, ${result.tls.certificate}`] : [];
  const issues = problems(result);
  return [header(result), '', e2eTable(result), '', ...tls, ...verdictLines(result), ...(issues.length ? ['', 'problems:', ...issues.map((i) => `  ${i}`)] : [])].join('\n');
}

/** The same as e2eText, as markdown (for bench/results/e2e-latest.md). */
export function e2eMarkdown(result: E2eBenchResult): string {
  const issues = problems(result);
  const t = result.tls;
  return [
    '# ciphergate bench e2e',
    '',
    ...header(result).split('\n').flatMap((l) => [l, '']),
    ...markdownTable(result),
    '',
    ...(t ? [`stunnel: ${t.implementation}, ${t.protocol} ${t.cipherSuite}, ${t.certificate}; ${t.notes}.`, ''] : []),
    '## Targets',
    ...verdictLines(result).flatMap((l) => (l.startsWith('  ') ? [`- ${l.trim()}`] : ['', `### ${l.replace(/:$/, '')}`, ''])),
    '',
    '## What is measured',
    '',
    '- Mbit/s: iperf3 client -> server, receiver side, one stream and two (-P 2).',
    '- c+1st byte: sequential fresh connections (node, client namespace): from connect() to the first byte of the answer to a small HTTP request. p50 overhead: against the plain path of the same lab (router lab for stunnel and bridge).',
    `- new conns/s: ${result.concurrency} concurrent loops of fresh connections, one request each; completed connections per second.`,
    "- CPU: utime+stime from /proc of the path's own processes (gateway, agent, KDC and its Redis; or both stunnels), over the one-stream iperf3 run per GB received, and over the new-connections run per 1000 connections.",
    '',
    ...(issues.length ? ['## Problems', '', ...issues.map((i) => `- ${i}`), ''] : []),
    '## Notes',
    '',
    ...result.notes.map((n) => `- ${n}`),
    '',
  ].join('\n');
}

export async function e2eBenchCommand(o: { seconds: number; json: boolean; outDir: string; modes: readonly LabMode[]; workers: readonly number[] }): Promise<number> {
  const result = await runE2eBench({
    seconds: o.seconds,
    modes: o.modes,
    workers: o.workers,
    onStep: (what) => {
      if (process.stderr.isTTY) process.stderr.write(`  ${what}...\n`);
    },
  });
  const written = writeResult(o.outDir, 'e2e', new Date(result.date), result);
  const md = path.join(o.outDir, 'e2e-latest.md');
  fs.writeFileSync(md, e2eMarkdown(result));
  if (o.json) console.log(JSON.stringify(result, null, 2));
  else console.log(`${e2eText(result)}\n\nwrote ${written.dated}\n  and ${written.latest}, ${md}`);
  return 0;
}
