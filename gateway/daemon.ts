// The gateway daemon: the gateway engine on a live datapath (NFQUEUE in host and router mode,
// capture interfaces in bridge mode), the key-delivery dialer, the KDC client with endpoint
// failover, the control socket and /metrics. SIGHUP reloads services, policy and keys without
// touching established flows; SIGTERM lets keyings in progress finish, then discards every flow
// (zeroing its keys) and exits. At exit the steering rules are replaced by rules that reset SYNs
// to require-mode services and drop keyed flows, so a stopped gateway fails closed and fast:
// protected services refuse, never answer in plaintext. (After a crash the queue rules stay and
// the kernel drops what they queue.)
import { getBackend } from '../common/crypto';
import { systemRandom } from '../common/crypto/random';
import { formatHostPort } from '../common/config/walker';
import { KdcClient } from '../kdc/client';
import { type Datapath, EngineDriver } from '../runtime/engine-driver';
import { KdDialer } from '../runtime/kd-transport';
import { NfqueueDatapath } from '../runtime/nfqueue-datapath';
import { Steering, gatewayClosedRules, gatewayRules } from '../runtime/steering';
import { type Log, type OpsEndpoints, checkFixedOnReload, engineFigures, serveDaemonOps } from '../runtime/daemon-kit';
import { type GatewayConfig, toEngineConfig } from './config';
import { GatewayEngine } from './engine';

/** Config fields SIGHUP cannot change (a restart can). */
export const GATEWAY_FIXED_ON_RELOAD = ['mode', 'nfqueue', 'bridge', 'control', 'metrics', 'agentPort'] as const;

export interface GatewayDaemonOptions {
  log: Log;
  /**
   * Run as one of several worker processes (gateway/workers.ts): bind only this NFQUEUE number;
   * the primary process owns the steering rules, the control socket and /metrics.
   */
  worker?: { index: number; queue: number };
  /** Builds the bridge-mode datapath (loaded lazily: it needs the `cap` addon). */
  bridgeDatapath?: (c: GatewayConfig, onError: (r: string) => void) => Datapath;
}

export class GatewayDaemon {
  readonly engine: GatewayEngine;
  private readonly driver: EngineDriver;
  private readonly dialer: KdDialer;
  private kdc: KdcClient;
  private readonly datapath: Datapath;
  private steering: Steering | null = null;
  private ops: OpsEndpoints | null = null;
  private readonly startedAt = Date.now();

  private constructor(
    private config: GatewayConfig,
    private readonly o: GatewayDaemonOptions,
  ) {
    const log = o.log;
    this.engine = new GatewayEngine(toEngineConfig(config), { backend: getBackend(config.cryptoBackend), random: systemRandom });
    this.kdc = newKdcClient(config);
    this.dialer = new KdDialer(
      { message: (connId, m) => this.driver.kdMessage(connId, m), failure: (connId, reason) => this.driver.kdFailure(connId, reason) },
      { connectTimeoutMs: Math.min(1000, config.timers.keyingTimeoutMs), idleMs: 60_000 },
    );
    const onError = (reason: string) => log('warn', 'datapath-error', { reason });
    if (config.mode === 'bridge') {
      if (o.bridgeDatapath === undefined) throw new Error('bridge mode is not available in this build');
      this.datapath = o.bridgeDatapath(config, onError);
    } else {
      const q = config.nfqueue as NonNullable<GatewayConfig['nfqueue']>;
      this.datapath = new NfqueueDatapath([o.worker?.queue ?? q.queue], config.timers.keyingTimeoutMs + 1000, onError, q.maxQueueLen);
    }
    this.driver = new EngineDriver(this.engine, {
      sink: this.datapath,
      kd: { open: (connId, agent, hello) => this.dialer.open(connId, agent, hello), send: (c, m) => this.dialer.send(c, m), close: (c) => this.dialer.close(c) },
      kdc: { request: (frame) => this.kdc.request(frame) },
      log,
      onTick: (now) => this.datapath.tick(now),
    });
  }

  static async start(config: GatewayConfig, o: GatewayDaemonOptions): Promise<GatewayDaemon> {
    const d = new GatewayDaemon(config, o);
    try {
      d.datapath.start(d.driver);
      if (config.mode !== 'bridge' && o.worker === undefined) {
        d.steering = await Steering.detect();
        await d.steering.apply(gatewaySteering(config));
      }
      d.driver.start();
      if (o.worker === undefined)
        d.ops = await serveDaemonOps('gateway', config, () => d.status());
    } catch (e) {
      d.driver.stop();
      d.datapath.close();
      d.dialer.closeAll();
      d.kdc.close();
      throw e;
    }
    o.log('info', 'gateway-started', {
      principal: config.principal,
      kvno: config.key.kvno,
      mode: config.mode,
      services: config.services.map((s) => `${s.endpoint} ${s.meta}`),
      kdc: config.kdc.endpoints.map(formatHostPort),
      steering: d.steering?.backend ?? 'capture',
    });
    return d;
  }

  /** SIGHUP: services, keys, timers and KDC endpoints from the new config; flows stay. */
  async reload(next: GatewayConfig): Promise<void> {
    checkFixedOnReload(this.config, next, GATEWAY_FIXED_ON_RELOAD, 'gateway');
    this.engine.reconfigure(toEngineConfig(next));
    if (this.steering !== null) await this.steering.apply(gatewaySteering(next));
    if (JSON.stringify(next.kdc) !== JSON.stringify(this.config.kdc)) {
      const old = this.kdc;
      this.kdc = newKdcClient(next);
      setTimeout(() => old.close(), 5000).unref();
    }
    this.config = next;
    this.o.log('info', 'gateway-reloaded', { kvno: next.key.kvno, services: next.services.map((s) => `${s.endpoint} ${s.meta}`) });
  }

  /** SIGTERM: let keyings in progress finish (bounded), then discard every flow and its keys. */
  async stop(drainMs = this.config.timers.keyingTimeoutMs): Promise<void> {
    const until = Date.now() + drainMs;
    while (this.engine.pendingKeyingCount > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    await this.steering?.apply(gatewayClosedSteering(this.config)).catch((e: unknown) => this.o.log('error', 'steering-close-failed', { error: (e as Error).message }));
    this.driver.shutdown();
    this.datapath.close();
    this.dialer.closeAll();
    this.kdc.close();
    await this.ops?.close();
    this.o.log('info', 'gateway-stopped', { keyedFlows: this.engine.keyedFlowCount });
  }

  status(): Record<string, unknown> {
    const now = this.driver.now();
    const flows = this.engine.flows(now);
    return {
      role: 'gateway',
      principal: this.config.principal,
      kvno: this.config.key.kvno,
      mode: this.config.mode,
      pid: process.pid,
      uptimeS: Math.round((Date.now() - this.startedAt) / 1000),
      steering: this.steering?.backend ?? 'capture',
      queues: this.config.nfqueue,
      services: this.config.services.map((s) => ({ endpoint: s.endpoint, mode: s.meta })),
      kdc: { endpoints: this.config.kdc.endpoints.map(formatHostPort), inFlight: this.driver.kdcInFlight },
      keyDelivery: { connections: this.dialer.connections },
      keying: this.engine.keyingTimes.snapshot(),
      ...engineFigures(flows, this.engine, this.datapath, this.driver.engineErrors, this.engine.pendingKeyingCount),
    };
  }

}

/** The steering rules of a running gateway: every worker's queue in one balanced range. */
export function gatewaySteering(c: GatewayConfig) {
  const q = c.nfqueue as NonNullable<GatewayConfig['nfqueue']>;
  return gatewayRules(c.mode === 'host' ? 'host' : 'router', c.services, { first: q.queue, count: q.workers });
}

/** The rules left while the gateway is stopped. */
export function gatewayClosedSteering(c: GatewayConfig) {
  return gatewayClosedRules(c.mode === 'host' ? 'host' : 'router', c.services.map((s) => ({ cidr: s.cidr, port: s.port, refuse: s.meta === 'require' })));
}

function newKdcClient(c: GatewayConfig): KdcClient {
  return new KdcClient({ endpoints: c.kdc.endpoints.map(formatHostPort), timeoutMs: c.kdc.timeoutMs });
}
