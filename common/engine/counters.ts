// Named monotonic counters for an engine. Adapters export them (prom-client, status); the engine
// only increments. A fixed set of names per engine keeps metric cardinality bounded.
//
// The per-packet counters are held as handles (counter(name)) and bumped as plain fields: a Map
// update per packet costs more than it should on the hot path.

/** One counter; `value` is bumped directly on the per-packet path. */
export class Counter {
  value = 0;
}

export class Counters<Name extends string> {
  private readonly values = new Map<Name, Counter>();
  /** Names inc() has been called for: shown even at zero (as they always were). */
  private readonly touched = new Set<Name>();

  /** The counter `name` as a handle (created at zero; it shows in snapshot once non-zero or inc'ed). */
  counter(name: Name): Counter {
    let c = this.values.get(name);
    if (c === undefined) this.values.set(name, (c = new Counter()));
    return c;
  }

  inc(name: Name, by = 1): void {
    const c = this.counter(name);
    c.value += by;
    this.touched.add(name);
  }

  get(name: Name): number {
    return this.values.get(name)?.value ?? 0;
  }

  snapshot(): Record<string, number> {
    const shown = [...this.values.entries()].filter(([name, c]) => c.value !== 0 || this.touched.has(name));
    return Object.fromEntries(shown.map(([name, c]) => [name, c.value] as const).sort(([a], [b]) => a.localeCompare(b)));
  }
}
