// Cache invalidation across KDC processes: poll the store's change counter. Caches in
// kdc/principals.ts and kdc/policy.ts subscribe; ensureFresh() refuses to trust a version older
// than maxStalenessMs, so a disable, rotation or policy change takes effect everywhere within
// that bound even when a poll is late (the lookup then waits for a fresh read, or fails with
// StoreUnavailableError).
import type { KdcStore } from './store';

export interface ChangeWatcherOptions {
  /** Background poll period. Default 200 ms. */
  pollMs?: number;
  /** Oldest confirmation a lookup may rely on. Default 1000 ms. */
  maxStalenessMs?: number;
  /** Clock for the staleness bound. Default Date.now. */
  clock?: () => number;
}

export class ChangeWatcher {
  private version: number | null = null;
  private confirmedAt = -Infinity;
  private inflight: Promise<number> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly listeners = new Set<(version: number) => void>();
  private readonly pollMs: number;
  private readonly maxStalenessMs: number;
  private readonly clock: () => number;

  constructor(
    private readonly store: Pick<KdcStore, 'changeVersion'>,
    opts: ChangeWatcherOptions = {},
  ) {
    this.pollMs = opts.pollMs ?? 200;
    this.maxStalenessMs = opts.maxStalenessMs ?? 1000;
    this.clock = opts.clock ?? Date.now;
    if (this.pollMs >= this.maxStalenessMs) throw new RangeError(`pollMs (${this.pollMs}) must be below maxStalenessMs (${this.maxStalenessMs})`);
  }

  /** The last version seen (null before the first poll). */
  get current(): number | null {
    return this.version;
  }

  /** Called (synchronously, inside the poll) whenever the version changes. Returns an unsubscribe. */
  onChange(fn: (version: number) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.poll().catch(() => undefined), this.pollMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** True when the version was confirmed within maxStalenessMs: what was cached under it may be used without a read. */
  isFresh(): boolean {
    return this.version !== null && this.clock() - this.confirmedAt <= this.maxStalenessMs;
  }

  /** The version, re-read first when the last confirmation is older than maxStalenessMs. */
  async ensureFresh(): Promise<number> {
    if (this.isFresh()) return this.version as number;
    return this.poll();
  }

  /** Reads the counter (one read at a time) and notifies listeners on a change. */
  poll(): Promise<number> {
    if (this.inflight) return this.inflight;
    const startedAt = this.clock(); // the value read is at least as fresh as this
    const p = this.store.changeVersion().then((v) => {
      this.confirmedAt = Math.max(this.confirmedAt, startedAt);
      if (v !== this.version) {
        this.version = v;
        for (const fn of this.listeners) fn(v);
      }
      return v;
    });
    this.inflight = p.finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }
}
