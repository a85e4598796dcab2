// The agent daemon: the agent engine on NFQUEUE (OUTPUT and INPUT for protected destinations),
// the key-delivery listener the gateways dial, the control socket and /metrics. SIGHUP reloads
// destinations and keys (flows stay); SIGTERM discards every flow and its keys and exits. The
// steering rules are replaced at exit by rules that reset connections to require-mode
// destinations at once: with no agent, nothing goes out in plaintext and clients learn fast.
// (After a crash the queue rules stay: packets to protected destinations are dropped.)
import { getBackend } from '../common/crypto';
import { systemRandom } from '../common/crypto/random';
import { formatHostPort } from '../common/config/walker';
import { EngineDriver } from '../runtime/engine-driver';
import { KdListener } from '../runtime/kd-transport';
import { NfqueueDatapath } from '../runtime/nfqueue-datapath';
import { Steering, agentClosedRules, agentRules } from '../runtime/steering';
import { type Log, type OpsEndpoints, checkFixedOnReload, engineFigures, serveDaemonOps } from '../runtime/daemon-kit';
import { type AgentConfig, toEngineConfig } from './config';
import { AgentEngine } from './engine';

export class AgentDaemon {
  readonly engine: AgentEngine;
  private readonly driver: EngineDriver;
  private readonly listener: KdListener;
  private readonly datapath: NfqueueDatapath;
  private steering: Steering | null = null;
  private ops: OpsEndpoints | null = null;
  private readonly startedAt = Date.now();

  private constructor(
    private config: AgentConfig,
    private readonly log: Log,
  ) {
    this.engine = new AgentEngine(toEngineConfig(config), { backend: getBackend(config.cryptoBackend), random: systemRandom });
    this.listener = new KdListener({ message: (connId, m) => this.driver.kdMessage(connId, m), failure: (connId, reason) => this.driver.kdFailure(connId, reason) });
    this.datapath = new NfqueueDatapath([config.nfqueue.queue], 10_000, (reason) => log('warn', 'datapath-error', { reason }), config.nfqueue.maxQueueLen);
    this.driver = new EngineDriver(this.engine, {
      sink: this.datapath,
      kd: { send: (c, m) => this.listener.send(c, m), close: (c) => this.listener.close(c) },
      log,
      onTick: (now) => this.datapath.tick(now),
    });
  }

  static async start(config: AgentConfig, log: Log): Promise<AgentDaemon> {
    const d = new AgentDaemon(config, log);
    try {
      await d.listener.listen(config.listen.host, config.listen.port);
      d.datapath.start(d.driver);
      d.steering = await Steering.detect();
      await d.steering.apply(agentRules(config.destinations, { first: config.nfqueue.queue, count: 1 }));
      d.driver.start();
      d.ops = await serveDaemonOps('agent', config, () => d.status());
    } catch (e) {
      d.driver.stop();
      d.datapath.close();
      await d.listener.closeAll();
      throw e;
    }
    log('info', 'agent-started', {
      principal: config.principal,
      kvnos: config.keys.map((k) => k.kvno),
      destinations: config.destinations.map((x) => `${x.endpoint} ${x.meta.mode}`),
      listen: formatHostPort(config.listen),
      steering: d.steering.backend,
    });
    return d;
  }

  async reload(next: AgentConfig): Promise<void> {
    checkFixedOnReload(this.config, next, ['listen', 'nfqueue', 'control', 'metrics'], 'agent');
    this.engine.reconfigure(toEngineConfig(next));
    await this.steering?.apply(agentRules(next.destinations, { first: next.nfqueue.queue, count: 1 }));
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
    await this.listener.closeAll();
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
      keyDelivery: { listen: formatHostPort(this.config.listen), connections: this.listener.connections },
      ...engineFigures(flows, this.engine, this.datapath, this.driver.engineErrors, flows.filter((f) => f.state === 'syn-sent' || f.state === 'keying').length),
    };
  }

}

/** The rules left while the agent is stopped (also installed by `ciphergate agent --closed-rules`). */
export function agentClosedSteering(c: AgentConfig) {
  return agentClosedRules(c.destinations.map((d) => ({ cidr: d.cidr, port: d.port, refuse: d.meta.mode === 'require' })));
}
