// The gateway across several cores (runtime/worker-pool.ts): one worker process per NFQUEUE
// number, each running a whole GatewayDaemon on its queue with its own KDC client and
// key-delivery dialer; the primary owns the rules, the control socket and /metrics.
import { formatHostPort } from '../common/config/walker';
import type { Log } from '../runtime/daemon-kit';
import { WorkerPool, runPoolPrimary, runPoolWorker } from '../runtime/worker-pool';
import { type GatewayConfig, loadGatewayConfig } from './config';
import { GATEWAY_FIXED_ON_RELOAD, GatewayDaemon, type GatewayDaemonOptions, gatewayClosedSteering, gatewaySteering } from './daemon';

/** In a worker process: run one GatewayDaemon on the worker's queue, driven by the primary. */
export function runGatewayWorker(file: string, log: Log, opts: Omit<GatewayDaemonOptions, 'log' | 'worker'>): Promise<void> {
  return runPoolWorker<GatewayDaemon>({
    log,
    start: (index) => {
      const config = loadGatewayConfig(file);
      return GatewayDaemon.start(config, { ...opts, log, worker: { index, queue: (config.nfqueue?.queue ?? 0) + index } });
    },
    reload: (daemon) => daemon.reload(loadGatewayConfig(file)),
  });
}

/** In the primary: start the workers, own the rules and the operator endpoints, until SIGTERM. */
export async function runGatewayPrimary(file: string, config: GatewayConfig, log: Log): Promise<void> {
  const pool = new WorkerPool(config.nfqueue?.workers ?? 1, log);
  await runPoolPrimary({
    role: 'gateway',
    pool,
    log,
    config,
    load: () => loadGatewayConfig(file),
    fixedOnReload: GATEWAY_FIXED_ON_RELOAD,
    rules: (c) => ({ running: gatewaySteering(c), closed: gatewayClosedSteering(c) }),
    merge: gatewayFields,
    stopTimeoutMs: (c) => c.timers.keyingTimeoutMs + 3000,
    started: {
      principal: config.principal,
      mode: config.mode,
      queues: `${config.nfqueue?.queue}..${(config.nfqueue?.queue ?? 0) + pool.count - 1}`,
      kdc: config.kdc.endpoints.map(formatHostPort),
    },
  });
}

/** The gateway's own fields of the merged status: its KDC endpoints, and the KDC and key-delivery figures summed. */
export function gatewayFields(parts: readonly Record<string, unknown>[], config: GatewayConfig): Record<string, unknown> {
  return {
    kdc: { endpoints: config.kdc.endpoints.map(formatHostPort), inFlight: parts.reduce((n, p) => n + Number((p.kdc as { inFlight?: number } | undefined)?.inFlight ?? 0), 0) },
    keyDelivery: { connections: parts.reduce((n, p) => n + Number((p.keyDelivery as { connections?: number } | undefined)?.connections ?? 0), 0) },
  };
}
