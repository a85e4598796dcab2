// What the gateway and agent engines share around their flow tables: the side-action queue, the
// per-packet counters, and the operations and introspection that do not depend on the role.
// Each role keeps its own state machine; only `discard` (how a flow of that role is forgotten)
// is asked of it.
import { ActionQueue, type SideAction } from './actions';
import { Counters } from './counters';
import type { FlowCipher } from './flow-cipher';
import { FlowTable } from './flow-table';
import { type KeyedFlow, ciphersOf, keyedCount } from './keyed-flow';

type PacketCounter = 'packets' | 'pass' | 'segments-protected' | 'segments-unprotected';

export abstract class FlowEngine<Flow extends KeyedFlow<string>, CounterName extends string> {
  readonly counters = new Counters<CounterName | PacketCounter>();
  protected readonly actions = new ActionQueue();
  // The per-packet counters, bumped as plain fields.
  protected readonly packetsCounter = this.counters.counter('packets');
  protected readonly passCounter = this.counters.counter('pass');
  protected readonly protectedCounter = this.counters.counter('segments-protected');
  protected readonly unprotectedCounter = this.counters.counter('segments-unprotected');
  protected readonly table: FlowTable<string, Flow>;

  constructor(maxFlows: number) {
    this.table = new FlowTable(maxFlows);
  }

  /** Forgets `flow` and zeroes its keys; `why` is counted. */
  protected abstract discard(flow: Flow, why: string): void;

  /** Side actions produced since the last call, oldest first. */
  takeActions(): SideAction[] {
    return this.actions.take();
  }

  /** Discards every flow and zeroes its keys (the daemon is stopping). */
  discardAll(_now: number): void {
    for (const [, flow] of [...this.table.entries()]) this.discard(flow, 'shutdown');
  }

  get flowCount(): number {
    return this.table.size;
  }

  /** Flows holding keys right now (zero once flows have ended, rule 5). */
  get keyedFlowCount(): number {
    return keyedCount(this.table.entries());
  }

  /** For tests of rule 5: the ciphers of all flows, live or not. */
  debugCiphers(): FlowCipher[] {
    return ciphersOf(this.table.entries());
  }
}
