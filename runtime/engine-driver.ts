// Runs one engine (gateway or agent) on live I/O: packets in from a datapath adapter, verdicts
// back to it, and every side action carried out (released and originated packets, key-delivery
// messages, KDC requests). Timers tick on a fixed interval. The engine stays pure; this is the
// only place its events meet sockets and the clock.
import type { KdcAnswer, SideAction, Toward, Verdict } from '../common/engine/actions';
import type { KdMessage } from '../common/protocol/kd-messages';
import { type FlowTuple } from '../common/protocol/codec';
import type { KernelQueueFigures } from './kernel-queue';

/** The engine surface both roles share, plus the gateway's extra events. */
export interface LiveEngine {
  handlePacket(packet: Uint8Array, now: number): Verdict;
  takeActions(): SideAction[];
  handleTimer(now: number): void;
  /** Discards every flow and zeroes its keys. */
  discardAll(now: number): void;
  handleKdMessage(connId: bigint, message: KdMessage, now: number): void;
  handleKdFailure?(connId: bigint, reason: string): void;
  handleKdcAnswer?(requestId: Uint8Array, answer: KdcAnswer, now: number): void;
}

/** Where released and originated packets go (NFQUEUE + raw socket, or a capture interface). */
export interface PacketSink {
  release(packet: Uint8Array, toward: Toward): void;
  originate(packet: Uint8Array, toward: Toward): void;
}

/** A datapath adapter: feeds packets to the driver and carries out what comes back. */
export interface Datapath extends PacketSink {
  /** Binds queues or interfaces; throws with a message that says how to fix it. */
  start(driver: EngineDriver): void;
  /** Housekeeping on the driver's timer (e.g. dropping held packets the engine gave up on). */
  tick(now: number): void;
  close(): void;
  readonly stats: Record<string, number>;
  /**
   * The kernel queue binding's own counters (native/nfq: packets, batches, wakes, verdict
   * sends, errors, pending verdict bytes), summed over queues; null where there are none.
   */
  readonly queueStats?: Record<string, number> | null;
  /** The kernel's figures for the datapath's NFQUEUEs (waiting, dropped when full), summed; null where there are none. */
  readonly kernelQueue?: KernelQueueFigures | null;
  /** Packets held for the engine right now. */
  readonly heldCount: number;
}

/** The key-delivery transport of the role (dialer on the gateway, listener on the agent). */
export interface KdTransport {
  open?(connId: bigint, agent: { addr: Uint8Array; port: number }, hello: KdMessage, tuple: FlowTuple): void;
  send(connId: bigint, message: KdMessage): void;
  close(connId: bigint): void;
}

export interface KdcTransport {
  request(frame: Uint8Array): Promise<Uint8Array>;
}

export interface DriverLog {
  (level: 'info' | 'warn' | 'error', event: string, fields?: Record<string, unknown>): void;
}

export class EngineDriver {
  private timer: NodeJS.Timeout | null = null;
  /** KDC requests sent and not yet answered. */
  kdcInFlight = 0;

  constructor(
    readonly engine: LiveEngine,
    private readonly io: { sink: PacketSink; kd: KdTransport; kdc?: KdcTransport; log: DriverLog; clock?: () => number; onTick?: (now: number) => void },
  ) {}

  now(): number {
    return this.io.clock ? this.io.clock() : Date.now();
  }

  /** Packets whose handling threw (a bug): dropped, counted, never fatal to the other flows. */
  engineErrors = 0;
  private lastErrorLog = 0;

  /** A packet from the datapath: the caller applies the verdict, then side actions run. */
  packet(packet: Uint8Array, apply: (v: Verdict) => void): void {
    const now = this.now();
    let verdict: Verdict;
    try {
      verdict = this.engine.handlePacket(packet, now);
    } catch (e) {
      // Fail closed for this packet only: one bad packet must not take every flow down with it.
      this.engineErrors++;
      if (now - this.lastErrorLog > 1000) {
        this.lastErrorLog = now;
        this.io.log('error', 'engine-error', { error: e instanceof Error ? e.message : String(e), count: this.engineErrors });
      }
      verdict = { kind: 'drop', reason: 'engine-error' };
    }
    apply(verdict);
    this.drain(now);
  }

  kdMessage(connId: bigint, message: KdMessage): void {
    const now = this.now();
    this.engine.handleKdMessage(connId, message, now);
    this.drain(now);
  }

  kdFailure(connId: bigint, reason: string): void {
    this.engine.handleKdFailure?.(connId, reason);
    this.drain(this.now());
  }

  tick(): void {
    const now = this.now();
    this.engine.handleTimer(now);
    this.drain(now);
    this.io.onTick?.(now);
  }

  start(intervalMs = 100): void {
    this.timer ??= setInterval(() => this.tick(), intervalMs);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** The daemon is stopping: no more timers, every flow discarded with its keys, no side actions. */
  shutdown(): void {
    this.stop();
    this.engine.discardAll(this.now());
    this.engine.takeActions();
  }

  private drain(now: number): void {
    for (const action of this.engine.takeActions()) this.perform(action, now);
  }

  private perform(action: SideAction, _now: number): void {
    switch (action.kind) {
      case 'release':
        return this.io.sink.release(action.packet, action.toward);
      case 'originate':
        return this.io.sink.originate(action.packet, action.toward);
      case 'open-key-delivery':
        if (this.io.kd.open === undefined) throw new Error('this role cannot open key-delivery sessions');
        return this.io.kd.open(action.connId, action.agent, action.hello, action.tuple);
      case 'kd-send':
        return this.io.kd.send(action.connId, action.message);
      case 'kd-close':
        return this.io.kd.close(action.connId);
      case 'ask-kdc':
        return this.askKdc(action.requestId, action.request);
    }
  }

  private askKdc(requestId: Uint8Array, request: Uint8Array): void {
    const kdc = this.io.kdc;
    const answer = (a: KdcAnswer): void => {
      this.kdcInFlight--;
      const now = this.now();
      this.engine.handleKdcAnswer?.(requestId, a, now);
      this.drain(now);
    };
    this.kdcInFlight++;
    if (kdc === undefined) {
      queueMicrotask(() => answer({ kind: 'unreachable', reason: 'no KDC configured' }));
      return;
    }
    kdc.request(request).then(
      (frame) => answer({ kind: 'frame', frame }),
      (e: unknown) => {
        this.io.log('warn', 'kdc-unreachable', { reason: e instanceof Error ? e.message : String(e) });
        answer({ kind: 'unreachable', reason: e instanceof Error ? e.message : String(e) });
      },
    );
  }
}
