// What the gateway and agent daemons share around their engines: JSON logs, the control socket
// and the operators' HTTP port, and the signal handling (SIGHUP reloads, SIGTERM/SIGINT stop).
import type { Registry } from 'prom-client';
import type { HostPort } from '../common/config/walker';
import type { LogLevel } from '../common/config/daemon';
import { ControlServer } from './control';
import type { Datapath } from './engine-driver';
import { type StatusFigures, registryFromStatus } from './engine-metrics';
import { OpsHttpServer } from './ops-http';

export type Log = (level: 'debug' | 'info' | 'warn' | 'error', event: string, fields?: Record<string, unknown>) => void;

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** JSON lines on `out`. Callers never pass key material; fields are plain values. */
export function jsonLogger(out: NodeJS.WritableStream, minLevel: LogLevel, base: Record<string, unknown> = {}): Log {
  return (level, event, fields = {}) => {
    if (RANK[level] < RANK[minLevel]) return;
    out.write(`${JSON.stringify({ ts: new Date().toISOString(), level, event, ...base, ...fields }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
  };
}

export interface OpsEndpoints {
  control: ControlServer | null;
  http: OpsHttpServer | null;
  close(): Promise<void>;
}

export async function serveOps(o: {
  control: string | null;
  metrics: HostPort | null;
  /** The status document (may be computed asynchronously). */
  status: () => unknown;
  registry: () => Registry;
  readiness: () => { ready: boolean; problems: string[] };
}): Promise<OpsEndpoints> {
  const control = o.control === null ? null : new ControlServer(o.control, o.status);
  await control?.listen();
  const http = o.metrics === null ? null : new OpsHttpServer({ host: o.metrics.host, port: o.metrics.port, registry: o.registry, readiness: o.readiness });
  try {
    await http?.listen();
  } catch (e) {
    await control?.close();
    throw new Error(`metrics ${o.metrics?.host}:${o.metrics?.port}: ${(e as Error).message}`);
  }
  return {
    control,
    http,
    async close() {
      await Promise.all([control?.close(), http?.close()]);
    },
  };
}

/**
 * serveOps for one gateway or agent process: /metrics are its status figures (the registry is
 * built on the first scrape), and it is ready once it serves.
 */
export function serveDaemonOps(role: 'gateway' | 'agent', config: { control: string | null; metrics: HostPort | null }, status: () => object): Promise<OpsEndpoints> {
  let registry: Registry | null = null;
  return serveOps({
    control: config.control,
    metrics: config.metrics,
    status,
    registry: () => (registry ??= registryFromStatus(role, () => status() as unknown as StatusFigures)),
    readiness: () => ({ ready: true, problems: [] }),
  });
}

/** Runs until SIGTERM/SIGINT; SIGHUP calls reload (errors are logged, the old config stays). */
export function runUntilSignalled(log: Log, handlers: { reload(): Promise<void>; stop(signal: string): Promise<void> }): Promise<void> {
  return new Promise((resolve) => {
    let reloading = Promise.resolve();
    const onHup = () => {
      reloading = reloading.then(() =>
        handlers.reload().then(
          () => log('info', 'reloaded'),
          (e: unknown) => log('error', 'reload-failed', { error: e instanceof Error ? e.message : String(e), kept: 'previous config' }),
        ),
      );
    };
    const onStop = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', onStop);
      process.off('SIGINT', onStop);
      process.off('SIGHUP', onHup);
      void reloading.then(() => handlers.stop(signal)).then(resolve, (e: unknown) => {
        log('error', 'stop-failed', { error: e instanceof Error ? e.message : String(e) });
        resolve();
      });
    };
    process.on('SIGHUP', onHup);
    process.on('SIGTERM', onStop);
    process.on('SIGINT', onStop);
  });
}

/** SIGHUP cannot change these fields: the error names the first that changed. */
export function checkFixedOnReload<C>(prev: C, next: C, fields: readonly (keyof C & string)[], role: string): void {
  for (const f of fields) {
    if (JSON.stringify(next[f]) !== JSON.stringify(prev[f])) throw new Error(`${f} cannot change on reload; restart the ${role}`);
  }
}

/**
 * The figures both daemons report the same way (status document and /metrics): flows, keys,
 * keyings, held packets, the engine's counters and the datapath's. `keyingsInProgress` is the
 * role's own count.
 */
export function engineFigures(
  flows: readonly { state: string }[],
  engine: { keyedFlowCount: number; counters: { snapshot(): Record<string, number> } },
  datapath: Datapath,
  engineErrors: number,
  keyingsInProgress: number,
) {
  return {
    flowCount: flows.length,
    keyedFlows: engine.keyedFlowCount,
    keyingsInProgress,
    held: datapath.heldCount,
    flowStates: countBy(flows),
    flows,
    counters: engine.counters.snapshot(),
    datapath: { ...datapath.stats, engineErrors },
    queue: datapath.queueStats ?? null,
    kernelQueue: datapath.kernelQueue ?? null,
  };
}

/** Counts a list of states into { state: n }. */
export function countBy(items: readonly { state: string }[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const i of items) out[i.state] = (out[i.state] ?? 0) + 1;
  return out;
}
