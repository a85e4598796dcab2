// Named monotonic counters for an engine. Adapters export them (prom-client, status); the engine
// only increments. A fixed set of names per engine keeps metric cardinality bounded.
export class Counters<Name extends string> {
  private readonly values = new Map<Name, number>();

  inc(name: Name, by = 1): void {
    this.values.set(name, (this.values.get(name) ?? 0) + by);
  }

  get(name: Name): number {
    return this.values.get(name) ?? 0;
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.values.entries()].sort(([a], [b]) => a.localeCompare(b)));
  }
}
