// The issue path's way to the audit log: enqueue() never waits and never throws. A background
// loop writes batches with store.appendAudit. The queue is bounded; when it is full, or a batch
// cannot be written after a retry, events are dropped and counted (a store outage must not turn
// into KDC memory growth, and issuing must not wait for audit writes).
import type { AuditEvent, KdcStore } from './store/store';

export interface AuditWriterOptions {
  /** Events held at most (default 10000). */
  maxQueue?: number;
  /** Events per appendAudit call (default 256). */
  batchSize?: number;
  /**
   * How long the first event of a batch waits for others (default 10 ms), unless a full batch
   * gathers first: one store call per batch instead of one per event at moderate rates, where
   * each call costs the KDC more CPU than the issue it records.
   */
  lingerMs?: number;
  /** Wait after a failed write before the retry (default 200 ms). */
  retryDelayMs?: number;
  /** Drops and write failures, for metrics. */
  onDrop?(count: number, reason: 'queue-full' | 'write-failed'): void;
  onWriteError?(error: unknown): void;
}

export class AuditWriter {
  private readonly maxQueue: number;
  private readonly batchSize: number;
  private readonly retryDelayMs: number;
  private readonly lingerMs: number;
  /** Ends the current linger early (a full batch is queued). */
  private wake: (() => void) | null = null;
  private queue: AuditEvent[] = [];
  private writing: Promise<void> | null = null;
  private closed = false;
  dropped = 0;
  written = 0;

  constructor(
    private readonly store: Pick<KdcStore, 'appendAudit'>,
    private readonly opts: AuditWriterOptions = {},
  ) {
    this.maxQueue = opts.maxQueue ?? 10_000;
    this.batchSize = opts.batchSize ?? 256;
    this.retryDelayMs = opts.retryDelayMs ?? 200;
    this.lingerMs = opts.lingerMs ?? 10;
    if (!(this.lingerMs >= 0)) throw new RangeError(`audit lingerMs must be >= 0, got ${this.lingerMs}`);
    if (!Number.isInteger(this.maxQueue) || this.maxQueue < 1) throw new RangeError(`audit maxQueue must be a positive integer, got ${this.maxQueue}`);
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) throw new RangeError(`audit batchSize must be a positive integer, got ${this.batchSize}`);
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Queues an event; returns false (and counts a drop) when the queue is full or closed. */
  enqueue(event: AuditEvent): boolean {
    if (this.closed || this.queue.length >= this.maxQueue) {
      this.drop(1, 'queue-full');
      return false;
    }
    this.queue.push(event);
    if (this.writing === null) this.writing = this.drain();
    else if (this.wake !== null && this.queue.length >= this.batchSize) this.wake();
    return true;
  }

  private drop(n: number, reason: 'queue-full' | 'write-failed'): void {
    this.dropped += n;
    this.opts.onDrop?.(n, reason);
  }

  private async drain(): Promise<void> {
    await this.linger();
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.batchSize);
        if (await this.tryWrite(batch)) continue;
        if (!this.closed) await new Promise<void>((r) => setTimeout(r, this.retryDelayMs));
        if (!(await this.tryWrite(batch))) this.drop(batch.length, 'write-failed');
      }
    } finally {
      this.writing = null;
    }
  }

  /** Resolves after lingerMs, at once when closing, or as soon as a full batch is queued. */
  private linger(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, this.closed ? 0 : this.lingerMs);
      this.wake = done;
    });
  }

  private async tryWrite(batch: AuditEvent[]): Promise<boolean> {
    try {
      await this.store.appendAudit(batch);
      this.written += batch.length;
      return true;
    } catch (e) {
      this.opts.onWriteError?.(e);
      return false;
    }
  }

  /** Waits until everything queued so far has been written or dropped. */
  async flush(): Promise<void> {
    while (this.writing !== null) await this.writing;
  }

  /** Stops taking events and flushes what is queued. */
  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    await this.flush();
  }
}
