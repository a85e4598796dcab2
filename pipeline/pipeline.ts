// The whole path of DESIGN section 2 in one process: client host -> agent -> wire -> gateway ->
// server, with the key-delivery session and the KDC in memory. Replay and simulation drive it;
// they decide when the wire delivers (immediately, or late, lost, duplicated, reordered).
import type { SideAction, Verdict } from '../common/engine/actions';
import { decodeKdMessage, encodeKdMessage, type KdMessage } from '../common/protocol/kd-messages';
import type { AgentEngine } from '../client-agent/engine';
import type { GatewayEngine } from '../gateway/engine';
import type { InProcessKdc } from './in-process-kdc';

export type WireDirection = 'c2s' | 's2c';

export interface PipelineSinks {
  /** A packet reaches the client host (from the agent). */
  client(packet: Uint8Array, now: number): void;
  /** A packet reaches the server (from the gateway). */
  server(packet: Uint8Array, now: number): void;
  /**
   * A packet enters the agent-gateway wire. The wire calls Pipeline.deliver when (and if) it
   * arrives; the default transport delivers at once.
   */
  wire(packet: Uint8Array, direction: WireDirection, now: number): void;
}

export interface VerdictTally {
  pass: number;
  rewrite: number;
  drop: number;
  hold: number;
  released: number;
  originated: number;
}

const emptyTally = (): VerdictTally => ({ pass: 0, rewrite: 0, drop: 0, hold: 0, released: 0, originated: 0 });

export class Pipeline {
  readonly tally = { agent: emptyTally(), gateway: emptyTally() };
  /** Key-delivery and KDC messages exchanged (for summaries and tests). */
  readonly messages = { keyDelivery: 0, kdc: 0 };

  constructor(
    readonly agent: AgentEngine,
    readonly gateway: GatewayEngine,
    private readonly kdc: InProcessKdc,
    private readonly sinks: PipelineSinks,
  ) {}

  /** The client host sends a packet: it meets the agent first. */
  clientSends(packet: Uint8Array, now: number): void {
    const verdict = this.agent.handlePacket(packet, now);
    this.count('agent', verdict);
    this.emit(verdict, packet, (p) => this.sinks.wire(p, 'c2s', now));
    this.drain(now);
  }

  /** The server sends a packet: it meets the gateway first. */
  serverSends(packet: Uint8Array, now: number): void {
    const verdict = this.gateway.handlePacket(packet, now);
    this.count('gateway', verdict);
    this.emit(verdict, packet, (p) => this.sinks.wire(p, 's2c', now));
    this.drain(now);
  }

  /** A wire packet arrives: client-to-server ones at the gateway, the others at the agent. */
  deliver(packet: Uint8Array, direction: WireDirection, now: number): void {
    if (direction === 'c2s') {
      const verdict = this.gateway.handlePacket(packet, now);
      this.count('gateway', verdict);
      this.emit(verdict, packet, (p) => this.sinks.server(p, now));
    } else {
      const verdict = this.agent.handlePacket(packet, now);
      this.count('agent', verdict);
      this.emit(verdict, packet, (p) => this.sinks.client(p, now));
    }
    this.drain(now);
  }

  tick(now: number): void {
    this.agent.handleTimer(now);
    this.gateway.handleTimer(now);
    this.drain(now);
  }

  private count(role: 'agent' | 'gateway', verdict: Verdict): void {
    this.tally[role][verdict.kind]++;
  }

  private emit(verdict: Verdict, original: Uint8Array, out: (p: Uint8Array) => void): void {
    if (verdict.kind === 'pass') out(original);
    else if (verdict.kind === 'rewrite') out(verdict.packet);
  }

  /** Carries out side actions until both engines are quiet (key delivery is synchronous here). */
  private drain(now: number): void {
    for (let round = 0; round < 64; round++) {
      const actions = [...this.gateway.takeActions().map((a) => ['gateway', a] as const), ...this.agent.takeActions().map((a) => ['agent', a] as const)];
      if (actions.length === 0) return;
      for (const [from, action] of actions) this.perform(from, action, now);
    }
    throw new Error('pipeline: side actions did not settle');
  }

  private perform(from: 'agent' | 'gateway', action: SideAction, now: number): void {
    switch (action.kind) {
      case 'open-key-delivery':
        this.sendKd(from, action.hello, now);
        return;
      case 'kd-send':
        this.sendKd(from, action.message, now);
        return;
      case 'kd-close':
        return;
      case 'ask-kdc': {
        this.messages.kdc++;
        const answer = this.kdc.answer(action.request, now);
        this.gateway.handleKdcAnswer(action.requestId, { kind: 'frame', frame: answer }, now);
        return;
      }
      case 'release':
        this.tally.gateway.released++;
        this.sinks.server(action.packet, now);
        return;
      case 'originate':
        this.tally[from].originated++;
        if (from === 'gateway') {
          if (action.toward === 'client') this.sinks.wire(action.packet, 's2c', now);
          else this.sinks.server(action.packet, now);
        } else if (action.toward === 'client') this.sinks.client(action.packet, now);
        else this.sinks.wire(action.packet, 'c2s', now);
        return;
    }
  }

  /** A key-delivery message crosses as bytes, so the codecs are on the path as they are live. */
  private sendKd(from: 'agent' | 'gateway', message: KdMessage, now: number): void {
    this.messages.keyDelivery++;
    const decoded = decodeKdMessage(encodeKdMessage(message));
    if (!decoded.ok) throw new Error(`pipeline: key-delivery message does not decode: ${decoded.error.detail}`);
    const received = decoded.value.message;
    if (from === 'gateway') this.agent.handleKdMessage(received.connId, received, now);
    else this.gateway.handleKdMessage(received.connId, received, now);
  }
}
