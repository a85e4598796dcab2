// The agent daemon: the agent engine on NFQUEUE (OUTPUT and INPUT for protected destinations),
// the key-delivery listener the gateways dial, the control socket and /metrics. SIGHUP reloads
// destinations and keys (flows stay); SIGTERM discards every flow and its keys and exits. The
// steering rules are replaced at exit by rules that reset connections to require-mode
// destinations at once: with no agent, nothing goes out in plaintext and clients learn fast.
// (After a crash the queue rules stay: packets to protected destinations are dropped.)
// As one of several worker processes (client-agent/workers.ts) it binds only its own queue and
// speaks key delivery through the primary, which owns the listener, the rules and the endpoints.
import { getBackend } from '../common/crypto';
import { systemRandom } from '../common/crypto/random';
import { formatHostPort } from '../common/config/walker';
import type { WorkerSlot } from '../common/protocol/conn-id';
import type { KdMessage } from '../common/protocol/kd-messages';
import { EngineDriver, type KdTransport } from '../runtime/engine-driver';
import { KdListener } from '../runtime/kd-transport';
import { NfqueueDatapath } from '../runtime/nfqueue-datapath';
import { Steering, agentClosedRules, agentRules } from '../runtime/steering';
import { type Log, type OpsEndpoints, checkFixedOnReload, engineFigures, serveDaemonOps } from '../runtime/daemon-kit';
import { type AgentConfig, toEngineConfig } from './config';
import { AgentEngine } from './engine';

/** Config fields SIGHUP cannot change (a restart can). */
export const AGENT_FIXED_ON_RELOAD = ['listen', 'nfqueue', 'control', 'metrics'] as const;

/** One worker process of several: its slot, and key delivery relayed by the primary. */
export interface AgentWorker extends WorkerSlot {
  kd: KdTransport;
}

export class AgentDaemon {
  readonly engine: AgentEngine;
  private readonly driver: EngineDriver;
  private readonly listener: KdListener | null;
  private readonly datapath: NfqueueDatapath;
  private steering: Steering | null = null;
  private ops: OpsEndpoints | null = null;
  private readonly startedAt = Date.now();

  private constructor(
    private config: AgentConfig,
    private readonly log: Log,
    worker?: AgentWorker,
  ) {
    this.engine = new AgentEngine(toEngineConfig(config), { backend: getBackend(config.cryptoBackend), random: systemRandom }, worker);
    const listener = worker === undefined ? new KdListener({ message: (connId, m) => this.kdMessage(connId, m), failure: (connId, reason) => this.kdFailure(connId, reason) }) : null;
    this.listener = listener;
    const queue = config.nfqueue.queue + (worker?.index ?? 0);
    this.datapath = new NfqueueDatapath([queue], 10_000, (reason) => log('warn', 'datapath-error', { reason }), config.nfqueue.maxQueueLen);
    this.driver = new EngineDriver(this.engine, {
      sink: this.datapath,
      kd: worker?.kd ?? { send: (c, m) => listener!.send(c, m), close: (c) => listener!.close(c) },
      log,
      onTick: (now) => this.datapath.tick(now),
    });
  }

  static async start(config: AgentConfig, log: Log, worker?: AgentWorker): Promise<AgentDaemon> {
    const d = new AgentDaemon(config, log, worker);
    try {
      await d.listener?.listen(config.listen.host, config.listen.port);
      d.datapath.start(d.driver);
      if (worker === undefined) {
        d.steering = await Steering.detect();
        await d.steering.apply(agentSteering(config));
      }
      d.driver.start();
      if (worker === undefined) d.ops = await serveDaemonOps('agent', config, () => d.status());
    } catch (e) {
      d.driver.stop();
      d.datapath.close();
      await d.listener?.closeAll();
      throw e;
    }
    log('info', 'agent-started', {
      principal: config.principal,
      kvnos: config.keys.map((k) => k.kvno),
      destinations: config.destinations.map((x) => `${x.endpoint} ${x.meta.mode}`),
      listen: formatHostPort(config.listen),
      steering: d.steering?.backend ?? 'primary',
    });
    return d;
  }

  /** A key-delivery message for one of this agent's flows (from its listener or the primary). */
  kdMessage(connId: bigint, message: KdMessage): void {
    this.driver.kdMessage(connId, message);
  }

  /** The key-delivery session of this flow cannot continue. */
  kdFailure(connId: bigint, reason: string): void {
    this.driver.kdFailure(connId, reason);
  }

  async reload(next: AgentConfig): Promise<void> {
    checkFixedOnReload(this.config, next, AGENT_FIXED_ON_RELOAD, 'agent');
    this.engine.reconfigure(toEngineConfig(next));
    await this.steering?.apply(agentSteering(next));
    this.config = next;
    this.log('info', 'agent-reloaded', { kvnos: next.keys.map((k) => k.kvno), destinations: next.destinations.map((x) => `${x.endpoint} ${x.meta.mode}`) });
  }

  async stop(): Promise<void> {
    // From here on, protected destinations refuse at once instead of waiting on a dead queue.
    await this.steering
      ?.apply(agentClosedSteering(this.config))
      .catch((e: unknown) => this.log('error', 'steering-close-failed', { error: (e as Error).message }));
    this.driver.shutdown();
    this.datapath.close();
    await this.listener?.closeAll();
    await this.ops?.close();
    this.log('info', 'agent-stopped', { keyedFlows: this.engine.keyedFlowCount });
  }

  status(): Record<string, unknown> {
    const flows = this.engine.flows(this.driver.now());
    return {
      role: 'agent',
      principal: this.config.principal,
      kvnos: this.config.keys.map((k) => k.kvno),
      pid: process.pid,
      uptimeS: Math.round((Date.now() - this.startedAt) / 1000),
      steering: this.steering?.backend ?? null,
      queues: this.config.nfqueue,
      destinations: this.config.destinations.map((x) => ({ endpoint: x.endpoint, ...x.meta })),
      keyDelivery: { listen: formatHostPort(this.config.listen), connections: this.listener?.connections ?? 0 },
      ...engineFigures(flows, this.engine, this.datapath, this.driver.engineErrors, flows.filter((f) => f.state === 'syn-sent' || f.state === 'keying').length),
    };
  }

}

/** The steering rules of a running agent: every worker's queue in one balanced range. */
export function agentSteering(c: AgentConfig) {
  return agentRules(c.destinations, { first: c.nfqueue.queue, count: c.nfqueue.workers });
}

/** The rules left while the agent is stopped (also installed by `ciphergate agent --closed-rules`). */
export function agentClosedSteering(c: AgentConfig) {
  return agentClosedRules(c.destinations.map((d) => ({ cidr: d.cidr, port: d.port, refuse: d.meta.mode === 'require' })));
}
