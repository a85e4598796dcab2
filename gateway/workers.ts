// The gateway across several cores: one primary process and one worker process per NFQUEUE
// number (DESIGN section 5: processes, never worker_threads; the native addons are not safe in
// threads). The kernel balances flows over the queues by a hash of the address pair, so both
// directions of a flow reach the same worker and each worker's engine owns whole flows.
//
// The primary installs the steering rules (one balanced queue range), serves the control socket
// and /metrics from the workers' status documents, forwards SIGHUP, and on SIGTERM leaves the
// closed-state rules and stops every worker (each discards its keys). A worker that dies is
// started again on the same queue; until then its queue has no reader and its flows are dropped.
import cluster, { type Worker } from 'node:cluster';
import { formatHostPort } from '../common/config/walker';
import { type HistogramSnapshot, mergeHistograms } from '../common/engine/latency-histogram';
import { type Log, checkFixedOnReload, countBy, runUntilSignalled, serveOps } from '../runtime/daemon-kit';
import { type StatusFigures, registryFromStatus } from '../runtime/engine-metrics';
import { Steering } from '../runtime/steering';
import { type GatewayConfig, loadGatewayConfig } from './config';
import { GatewayDaemon, type GatewayDaemonOptions, gatewayClosedSteering, gatewaySteering } from './daemon';

type ToWorker = { kind: 'status'; id: number } | { kind: 'reload' } | { kind: 'stop' };
type FromWorker = { kind: 'ready' } | { kind: 'status'; id: number; status: Record<string, unknown> } | { kind: 'failed'; error: string };

const WORKER_ENV = 'CIPHERGATE_GATEWAY_WORKER';

export const isGatewayWorker = (): boolean => cluster.isWorker && process.env[WORKER_ENV] !== undefined;

/** In a worker process: run one GatewayDaemon on the worker's queue, driven by the primary. */
export async function runGatewayWorker(file: string, log: Log, opts: Omit<GatewayDaemonOptions, 'log' | 'worker'>): Promise<void> {
  const index = Number(process.env[WORKER_ENV]);
  const config = loadGatewayConfig(file);
  const send = (m: FromWorker) => process.send?.(m);
  let daemon: GatewayDaemon;
  try {
    daemon = await GatewayDaemon.start(config, { ...opts, log, worker: { index, queue: (config.nfqueue?.queue ?? 0) + index } });
  } catch (e) {
    send({ kind: 'failed', error: (e as Error).message });
    process.exit(1);
  }
  // The primary forwards signals as messages; a signal sent straight to the group is ignored here.
  process.on('SIGHUP', () => undefined);
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => undefined);
  process.on('message', (m: ToWorker) => {
    if (m.kind === 'status') send({ kind: 'status', id: m.id, status: daemon.status() });
    else if (m.kind === 'reload') daemon.reload(loadGatewayConfig(file)).catch((e: unknown) => log('error', 'reload-failed', { error: (e as Error).message }));
    else if (m.kind === 'stop') void daemon.stop().then(() => process.exit(0));
  });
  send({ kind: 'ready' });
}

/** In the primary: start the workers, own the rules and the operator endpoints, until SIGTERM. */
export async function runGatewayPrimary(file: string, config: GatewayConfig, log: Log): Promise<void> {
  const count = config.nfqueue?.workers ?? 1;
  const workers = new Map<number, Worker>();
  let stopping = false;
  let nextId = 0;
  const waiting = new Map<number, (s: Record<string, unknown>) => void>();

  const fork = (index: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const w = cluster.fork({ [WORKER_ENV]: String(index) });
      workers.set(index, w);
      w.on('message', (m: FromWorker) => {
        if (m.kind === 'ready') resolve();
        else if (m.kind === 'failed') reject(new Error(`worker ${index}: ${m.error}`));
        else if (m.kind === 'status') waiting.get(m.id)?.(m.status);
      });
      w.on('exit', (code, signal) => {
        if (workers.get(index) === w) workers.delete(index);
        if (stopping) return;
        log('error', 'worker-exited', { worker: index, code, signal, action: 'restarting' });
        setTimeout(() => void fork(index).catch((e: unknown) => log('error', 'worker-restart-failed', { worker: index, error: (e as Error).message })), 500);
      });
    });

  cluster.setupPrimary({ silent: false });
  await Promise.all(Array.from({ length: count }, (_, i) => fork(i)));
  const steering = await Steering.detect();
  await steering.apply(gatewaySteering(config));

  const statuses = async (): Promise<Record<string, unknown>[]> =>
    Promise.all(
      [...workers.values()].map(
        (w) =>
          new Promise<Record<string, unknown>>((resolve) => {
            const id = nextId++;
            const timer = setTimeout(() => resolve({}), 1000);
            waiting.set(id, (s) => {
              clearTimeout(timer);
              waiting.delete(id);
              resolve(s);
            });
            w.send({ kind: 'status', id } satisfies ToWorker);
          }),
      ),
    );
  let last: Record<string, unknown>[] = [];
  const refresh = async () => (last = await statuses());
  const merged = (): Record<string, unknown> => mergeStatuses(last, config, steering.backend);
  await refresh();
  const timer = setInterval(() => void refresh(), 1000);

  const ops = await serveOps({
    control: config.control,
    metrics: config.metrics,
    status: async () => {
      await refresh();
      return merged();
    },
    registry: () => registry,
    readiness: () => ({ ready: workers.size === count, problems: workers.size === count ? [] : [`${count - workers.size} of ${count} workers down`] }),
  });
  const registry = registryFromStatus('gateway', () => merged() as unknown as StatusFigures);
  log('info', 'gateway-started', { principal: config.principal, mode: config.mode, workers: count, queues: `${config.nfqueue?.queue}..${(config.nfqueue?.queue ?? 0) + count - 1}`, kdc: config.kdc.endpoints.map(formatHostPort), steering: steering.backend });

  let current = config;
  await runUntilSignalled(log, {
    reload: async () => {
      const next = loadGatewayConfig(file);
      checkFixedOnReload(current, next, ['mode', 'nfqueue', 'control', 'metrics'], 'gateway');
      await steering.apply(gatewaySteering(next));
      for (const w of workers.values()) w.send({ kind: 'reload' } satisfies ToWorker);
      current = next;
    },
    stop: async (signal) => {
      log('info', 'gateway-stopping', { signal, workers: workers.size });
      stopping = true;
      clearInterval(timer);
      await steering.apply(gatewayClosedSteering(current)).catch((e: unknown) => log('error', 'steering-close-failed', { error: (e as Error).message }));
      const exits = [...workers.values()].map((w) => new Promise<void>((r) => w.once('exit', () => r())));
      for (const w of workers.values()) w.send({ kind: 'stop' } satisfies ToWorker);
      await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, current.timers.keyingTimeoutMs + 3000))]);
      for (const w of workers.values()) w.kill('SIGKILL');
      await ops.close();
      log('info', 'gateway-stopped', {});
    },
  });
}

/** One status document for the whole gateway: flows listed together, figures summed. */
export function mergeStatuses(parts: readonly Record<string, unknown>[], config: GatewayConfig, steering: string): Record<string, unknown> {
  const live = parts.filter((p) => p.role === 'gateway');
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
  return {
    ...(live[0] ?? {}),
    pid: process.pid,
    workers: live.map((p) => p.pid),
    steering,
    queues: config.nfqueue,
    kdc: { endpoints: config.kdc.endpoints.map(formatHostPort), inFlight: live.reduce((n, p) => n + Number((p.kdc as { inFlight: number }).inFlight), 0) },
    keyDelivery: { connections: live.reduce((n, p) => n + Number((p.keyDelivery as { connections: number }).connections), 0) },
    keying: mergeHistograms(live.flatMap((p) => (p.keying ? [p.keying as HistogramSnapshot] : []))),
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
