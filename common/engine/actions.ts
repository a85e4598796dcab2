// What an engine tells its adapter. Every packet gets exactly one verdict; anything else the
// engine wants done (release a held SYN, originate a RST, talk to the agent or the KDC) is a side
// action, collected until the adapter drains them with takeActions().
import type { FlowTuple } from '../protocol/codec';
import type { KdMessage } from '../protocol/kd-messages';

export type Verdict =
  /** Forward the packet exactly as it came (plaintext flows: byte-for-byte, rule 7). */
  | { kind: 'pass' }
  /** Forward this rewritten packet instead. */
  | { kind: 'rewrite'; packet: Uint8Array }
  | { kind: 'drop'; reason: string }
  /** The engine keeps a copy; it comes back later as a `release` side action, or never. */
  | { kind: 'hold' };

export const PASS: Verdict = Object.freeze({ kind: 'pass' });
export const HOLD: Verdict = Object.freeze({ kind: 'hold' });

/** Toward which side a released or originated packet goes. */
export type Toward = 'client' | 'server';

export type SideAction =
  | { kind: 'release'; packet: Uint8Array; toward: Toward }
  | { kind: 'originate'; packet: Uint8Array; toward: Toward; why: string }
  /** Gateway: open a key-delivery session to the agent of this flow and send `hello`. */
  | { kind: 'open-key-delivery'; connId: bigint; agent: { addr: Uint8Array; port: number }; tuple: FlowTuple; hello: KdMessage }
  /** Either role: send a key-delivery message on the flow's session. */
  | { kind: 'kd-send'; connId: bigint; message: KdMessage }
  /** Either role: the flow's key-delivery session is finished (successfully or not). */
  | { kind: 'kd-close'; connId: bigint }
  /** Gateway: ask the KDC; the answer comes back through handleKdcAnswer with this id. */
  | { kind: 'ask-kdc'; requestId: Uint8Array; request: Uint8Array };

/** A KDC answer as the adapter delivers it: a decoded response, or a transport failure. */
export type KdcAnswer =
  | { kind: 'frame'; frame: Uint8Array }
  | { kind: 'unreachable'; reason: string };

export class ActionQueue {
  private queue: SideAction[] = [];

  push(action: SideAction): void {
    this.queue.push(action);
  }

  /** Hands every pending action to the adapter, oldest first. */
  take(): SideAction[] {
    if (this.queue.length === 0) return [];
    const out = this.queue;
    this.queue = [];
    return out;
  }
}
