// A daemon across several cores: one primary process and one worker process per NFQUEUE number
// (DESIGN section 5: processes, never worker_threads; the native addons are not safe in
// threads). The steering rules fill the queues by a symmetric flow hash, so both directions of
// a flow reach the same worker and each worker's engine owns whole flows.
//
// The primary installs the steering rules, serves the control socket and /metrics from the
// workers' status documents, forwards SIGHUP, and on SIGTERM leaves the closed-state rules and
// stops every worker (each discards its keys). A worker that dies is started again on the same
// queue; until then its queue has no reader and the kernel drops its flows (fail closed).
//
// Role-specific traffic between primary and workers (the agent's key-delivery messages) rides
// the same IPC channel as `app` messages; the channel uses structured clone, so bigints and
// byte arrays cross as they are.
import cluster, { type Worker } from 'node:cluster';
import type { HostPort } from '../common/config/walker';
import { type HistogramSnapshot, mergeHistograms } from '../common/engine/latency-histogram';
import { type Log, checkFixedOnReload, countBy, runUntilSignalled, serveOps } from './daemon-kit';
import { type StatusFigures, registryFromStatus } from './engine-metrics';
import { type Ruleset, Steering } from './steering';

type ToWorker = { kind: 'status'; id: number } | { kind: 'reload' } | { kind: 'stop' } | { kind: 'app'; body: unknown };
type FromWorker = { kind: 'ready' } | { kind: 'status'; id: number; status: Record<string, unknown> } | { kind: 'failed'; error: string } | { kind: 'app'; body: unknown };

const WORKER_ENV = 'CIPHERGATE_WORKER';

/** This process's worker index, or null in a primary or a single-process daemon. */
export const workerIndex = (): number | null => (cluster.isWorker && process.env[WORKER_ENV] !== undefined ? Number(process.env[WORKER_ENV]) : null);

/** In a worker: send a role-specific message to the primary. */
export const toPrimary = (body: unknown): void => void process.send?.({ kind: 'app', body } satisfies FromWorker);

export interface PoolDaemon {
  status(): Record<string, unknown>;
  stop(): Promise<void>;
}

/** In a worker process: run the daemon `start` builds, driven by the primary. */
export async function runPoolWorker<D extends PoolDaemon>(o: {
  log: Log;
  start(index: number): Promise<D>;
  reload(daemon: D): Promise<void>;
  /** Role-specific messages from the primary. */
  onMessage?(daemon: D, body: unknown): void;
}): Promise<void> {
  const index = workerIndex() as number;
  const send = (m: FromWorker) => process.send?.(m);
  let daemon: D;
  try {
    daemon = await o.start(index);
  } catch (e) {
    send({ kind: 'failed', error: (e as Error).message });
    process.exit(1);
  }
  // The primary forwards signals as messages; a signal sent straight to the group is ignored here.
  process.on('SIGHUP', () => undefined);
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => undefined);
  process.on('message', (m: ToWorker) => {
    if (m.kind === 'app') o.onMessage?.(daemon, m.body);
    else if (m.kind === 'status') send({ kind: 'status', id: m.id, status: daemon.status() });
    else if (m.kind === 'reload') o.reload(daemon).catch((e: unknown) => o.log('error', 'reload-failed', { error: (e as Error).message }));
    else if (m.kind === 'stop') void daemon.stop().then(() => process.exit(0));
  });
  send({ kind: 'ready' });
}

/** The primary's handle on its workers. */
export class WorkerPool {
  private readonly workers = new Map<number, Worker>();
  private readonly ready = new Set<number>();
  private readonly waiting = new Map<number, (s: Record<string, unknown>) => void>();
  private nextId = 0;
  private stopping = false;

  constructor(
    readonly count: number,
    private readonly log: Log,
    /** Role-specific messages from worker `index`. */
    private readonly onMessage: (index: number, body: unknown) => void = () => undefined,
    /** Worker `index` exited (its flows and their keys are gone with it). */
    private readonly onExit: (index: number) => void = () => undefined,
  ) {}

  /** Forks every worker and resolves once all are ready (rejects when one fails to start). */
  async start(): Promise<void> {
    cluster.setupPrimary({ silent: false, serialization: 'advanced' });
    await Promise.all(Array.from({ length: this.count }, (_, i) => this.fork(i)));
  }

  private fork(index: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const w = cluster.fork({ [WORKER_ENV]: String(index) });
      this.workers.set(index, w);
      w.on('message', (m: FromWorker) => {
        if (m.kind === 'app') this.onMessage(index, m.body);
        else if (m.kind === 'ready') {
          this.ready.add(index);
          resolve();
        } else if (m.kind === 'failed') reject(new Error(`worker ${index}: ${m.error}`));
        else if (m.kind === 'status') this.waiting.get(m.id)?.(m.status);
      });
      w.on('exit', (code, signal) => {
        if (this.workers.get(index) !== w) return;
        this.workers.delete(index);
        this.ready.delete(index);
        this.onExit(index);
        if (this.stopping) return;
        this.log('error', 'worker-exited', { worker: index, code, signal, action: 'restarting' });
        setTimeout(() => void this.fork(index).catch((e: unknown) => this.log('error', 'worker-restart-failed', { worker: index, error: (e as Error).message })), 500);
      });
    });
  }

  /** Sends a role-specific message; false when that worker is not running. */
  send(index: number, body: unknown): boolean {
    const w = this.workers.get(index);
    if (w === undefined || !this.ready.has(index)) return false;
    w.send({ kind: 'app', body } satisfies ToWorker);
    return true;
  }

  get up(): number {
    return this.ready.size;
  }

  /** Every running worker's status document (an empty one for a worker that does not answer in 1 s). */
  statuses(): Promise<Record<string, unknown>[]> {
    return Promise.all(
      [...this.workers.values()].map(
        (w) =>
          new Promise<Record<string, unknown>>((resolve) => {
            const id = this.nextId++;
            const timer = setTimeout(() => {
              this.waiting.delete(id);
              resolve({});
            }, 1000);
            this.waiting.set(id, (s) => {
              clearTimeout(timer);
              this.waiting.delete(id);
              resolve(s);
            });
            w.send({ kind: 'status', id } satisfies ToWorker);
          }),
      ),
    );
  }

  reload(): void {
    for (const w of this.workers.values()) w.send({ kind: 'reload' } satisfies ToWorker);
  }

  /** Asks every worker to stop (each discards its keys); kills what has not exited after timeoutMs. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    const exits = [...this.workers.values()].map((w) => new Promise<void>((r) => w.once('exit', () => r())));
    for (const w of this.workers.values()) w.send({ kind: 'stop' } satisfies ToWorker);
    await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, timeoutMs))]);
    for (const w of this.workers.values()) w.kill('SIGKILL');
  }
}

/**
 * In the primary: start the workers, own the rules and the operator endpoints, until SIGTERM.
 * SIGHUP loads the config again (refused when a field in `fixedOnReload` changed), re-applies
 * the rules and has every worker reload; `rules` and `merge` see the current config.
 */
export async function runPoolPrimary<C extends { control: string | null; metrics: HostPort | null }>(o: {
  role: 'gateway' | 'agent';
  pool: WorkerPool;
  log: Log;
  config: C;
  load(): C;
  fixedOnReload: readonly (keyof C & string)[];
  rules(c: C): { running: Ruleset; closed: Ruleset };
  /** The role's own fields for the merged status (over the summed figures). */
  merge(parts: readonly Record<string, unknown>[], c: C): Record<string, unknown>;
  /** How long stopping workers may take before they are killed. */
  stopTimeoutMs(c: C): number;
  started: Record<string, unknown>;
  /** After the workers are gone, before the operator endpoints close. */
  onStopped?(): Promise<void>;
}): Promise<void> {
  const { pool, log } = o;
  let current = o.config;
  await pool.start();
  const steering = await Steering.detect();
  await steering.apply(o.rules(current).running);

  let last: Record<string, unknown>[] = [];
  const refresh = async () => (last = await pool.statuses());
  const merged = (): Record<string, unknown> => ({ ...mergeWorkerStatuses(last, steering.backend), ...o.merge(last.filter((p) => p.role === o.role), current) });
  await refresh();
  const timer = setInterval(() => void refresh(), 1000);

  const ops = await serveOps({
    control: current.control,
    metrics: current.metrics,
    status: async () => {
      await refresh();
      return merged();
    },
    registry: () => registry,
    readiness: () => ({ ready: pool.up === pool.count, problems: pool.up === pool.count ? [] : [`${pool.count - pool.up} of ${pool.count} workers down`] }),
  });
  const registry = registryFromStatus(o.role, () => merged() as unknown as StatusFigures);
  log('info', `${o.role}-started`, { ...o.started, workers: pool.count, steering: steering.backend });

  await runUntilSignalled(log, {
    reload: async () => {
      const next = o.load();
      checkFixedOnReload(current, next, o.fixedOnReload, o.role);
      await steering.apply(o.rules(next).running);
      current = next;
      pool.reload();
    },
    stop: async (signal) => {
      log('info', `${o.role}-stopping`, { signal, workers: pool.up });
      clearInterval(timer);
      await steering.apply(o.rules(current).closed).catch((e: unknown) => log('error', 'steering-close-failed', { error: (e as Error).message }));
      await pool.stop(o.stopTimeoutMs(current));
      await o.onStopped?.();
      await ops.close();
      log('info', `${o.role}-stopped`, {});
    },
  });
}

/**
 * The figures every role sums over its workers (flows listed together, counters and queue
 * figures added), with each worker's share in `byWorker` so an operator sees the spread.
 */
export function mergeWorkerStatuses(parts: readonly Record<string, unknown>[], steering: string): Record<string, unknown> {
  const live = parts.filter((p) => p.pid !== undefined);
  const add = (into: Record<string, number>, from: unknown) => {
    for (const [k, v] of Object.entries((from ?? {}) as Record<string, number>)) into[k] = (into[k] ?? 0) + v;
  };
  const counters: Record<string, number> = {};
  const datapath: Record<string, number> = {};
  let queue: Record<string, number> | null = null;
  let kernelQueue: Record<string, number> | null = null;
  const flows = live.flatMap((p) => p.flows as { state: string }[]);
  for (const p of live) {
    add(counters, p.counters);
    add(datapath, p.datapath);
    if (p.queue) add((queue ??= {}), p.queue);
    if (p.kernelQueue) add((kernelQueue ??= {}), p.kernelQueue);
  }
  const total = (k: string) => live.reduce((n, p) => n + Number(p[k] ?? 0), 0);
  const keying = live.flatMap((p) => (p.keying ? [p.keying as HistogramSnapshot] : []));
  return {
    ...(live[0] ?? {}),
    pid: process.pid,
    workers: live.map((p) => p.pid),
    byWorker: live.map((p) => ({ pid: p.pid, flows: Number(p.flowCount ?? 0), keyedFlows: Number(p.keyedFlows ?? 0), packets: Number((p.counters as Record<string, number> | undefined)?.packets ?? 0) })),
    steering,
    ...(keying.length > 0 ? { keying: mergeHistograms(keying) } : {}),
    flowCount: flows.length,
    keyedFlows: total('keyedFlows'),
    keyingsInProgress: total('keyingsInProgress'),
    held: total('held'),
    flowStates: countBy(flows),
    flows,
    counters,
    datapath,
    queue,
    kernelQueue,
  };
}
