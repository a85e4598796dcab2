// The same path as pipeline/Pipeline (agent, gateway, in-process KDC), but the key-delivery
// session and the KDC answer after simulated delays instead of at once. With keying slower than
// the client's SYN retransmission timer the engines see what they see live: resent SYNs while
// the first is held, SYN-ACKs racing key confirmation. Same entry points as Pipeline, so the
// simulation drives either.
import type { SideAction, Verdict } from '../../common/engine/actions';
import { type KdMessage, decodeKdMessage, encodeKdMessage } from '../../common/protocol/kd-messages';
import type { AgentEngine } from '../../client-agent/engine';
import type { GatewayEngine } from '../../gateway/engine';
import type { InProcessKdc } from '../../pipeline/in-process-kdc';
import type { PipelineSinks, WireDirection } from '../../pipeline/pipeline';

export interface Scheduler {
  /** Runs `fn` `delayMs` from now on the virtual clock. */
  later(delayMs: number, fn: (now: number) => void): void;
  /** Delay of one key-delivery or KDC hop (ms). */
  hopDelay(): number;
}

export class AsyncPath {
  /** Key-delivery messages and KDC requests carried (for figures). */
  readonly messages = { keyDelivery: 0, kdc: 0 };

  constructor(
    readonly agent: AgentEngine,
    readonly gateway: GatewayEngine,
    private readonly kdc: InProcessKdc,
    private readonly sinks: PipelineSinks,
    private readonly scheduler: Scheduler,
  ) {}

  clientSends(packet: Uint8Array, now: number): void {
    this.emit(this.agent.handlePacket(packet, now), packet, (p) => this.sinks.wire(p, 'c2s', now));
    this.drain(now);
  }

  serverSends(packet: Uint8Array, now: number): void {
    this.emit(this.gateway.handlePacket(packet, now), packet, (p) => this.sinks.wire(p, 's2c', now));
    this.drain(now);
  }

  deliver(packet: Uint8Array, direction: WireDirection, now: number): void {
    if (direction === 'c2s') this.emit(this.gateway.handlePacket(packet, now), packet, (p) => this.sinks.server(p, now));
    else this.emit(this.agent.handlePacket(packet, now), packet, (p) => this.sinks.client(p, now));
    this.drain(now);
  }

  tick(now: number): void {
    this.agent.handleTimer(now);
    this.gateway.handleTimer(now);
    this.drain(now);
  }

  private emit(verdict: Verdict, original: Uint8Array, out: (p: Uint8Array) => void): void {
    if (verdict.kind === 'pass') out(original);
    else if (verdict.kind === 'rewrite') out(verdict.packet);
  }

  private drain(now: number): void {
    for (const action of this.gateway.takeActions()) this.perform('gateway', action, now);
    for (const action of this.agent.takeActions()) this.perform('agent', action, now);
  }

  private perform(from: 'agent' | 'gateway', action: SideAction, now: number): void {
    switch (action.kind) {
      case 'open-key-delivery':
        return this.sendKd(from, action.hello);
      case 'kd-send':
        return this.sendKd(from, action.message);
      case 'kd-close':
        return;
      case 'ask-kdc':
        this.messages.kdc++;
        this.scheduler.later(this.scheduler.hopDelay(), (at) => {
          const answer = this.kdc.answer(action.request, at);
          this.scheduler.later(this.scheduler.hopDelay(), (back) => {
            this.gateway.handleKdcAnswer(action.requestId, { kind: 'frame', frame: answer }, back);
            this.drain(back);
          });
        });
        return;
      case 'release':
        return this.sinks.server(action.packet, now);
      case 'originate':
        if (from === 'gateway') {
          if (action.toward === 'client') this.sinks.wire(action.packet, 's2c', now);
          else this.sinks.server(action.packet, now);
        } else if (action.toward === 'client') this.sinks.client(action.packet, now);
        else this.sinks.wire(action.packet, 'c2s', now);
        return;
    }
  }

  /** A key-delivery message crosses as bytes, after a hop's delay. */
  private sendKd(from: 'agent' | 'gateway', message: KdMessage): void {
    this.messages.keyDelivery++;
    const decoded = decodeKdMessage(encodeKdMessage(message));
    if (!decoded.ok) throw new Error(`key-delivery message does not decode: ${decoded.error.detail}`);
    const received = decoded.value.message;
    this.scheduler.later(this.scheduler.hopDelay(), (at) => {
      if (from === 'gateway') this.agent.handleKdMessage(received.connId, received, at);
      else this.gateway.handleKdMessage(received.connId, received, at);
      this.drain(at);
    });
  }
}
