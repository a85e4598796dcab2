// A bounded table of flows (DESIGN rule 8); the engines' timers expire idle entries. Only flows that asked for encryption
// live here; plaintext flows are never tracked, so a flood of them costs nothing.

export interface TableEntry {
  /** Last time (ms) the flow saw a packet or message; drives idle expiry. */
  lastActivity: number;
}

export class FlowTable<K, F extends TableEntry> {
  private readonly flows = new Map<K, F>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`flow table capacity must be a positive integer, got ${capacity}`);
  }

  get size(): number {
    return this.flows.size;
  }

  get full(): boolean {
    return this.flows.size >= this.capacity;
  }

  get(key: K): F | undefined {
    return this.flows.get(key);
  }

  /** Inserts a new flow; returns false (and inserts nothing) when the table is full. */
  insert(key: K, flow: F): boolean {
    if (this.flows.has(key)) {
      this.flows.set(key, flow);
      return true;
    }
    if (this.full) return false;
    this.flows.set(key, flow);
    return true;
  }

  delete(key: K): F | undefined {
    const flow = this.flows.get(key);
    if (flow) this.flows.delete(key);
    return flow;
  }

  entries(): IterableIterator<[K, F]> {
    return this.flows.entries();
  }
}
