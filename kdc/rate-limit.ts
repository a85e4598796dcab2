// Per-gateway token buckets for the KDC (DESIGN rule 8: a flood cannot exhaust the KDC).
//
// The service peeks before issuing (`allowed`) and takes the token only once the request has
// proved it comes from the gateway (`take`): requests with a forged authenticator that merely
// name a gateway can neither drain its bucket nor slip past an empty one.
//
// The table of buckets is bounded: a full bucket carries no information, so when the table is
// full the limiter first forgets full buckets, and if every bucket is in use it refuses a new
// name (counted) rather than grow. Names come only from known principals, so this is a backstop.

export interface RateLimitOptions {
  /** Sustained requests per second per key. */
  ratePerSec: number;
  /** Bucket size: requests allowed in a burst. */
  burst: number;
  /** Most buckets held at once. Default 10000. */
  maxKeys?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class TokenBucketLimiter {
  private readonly rate: number;
  private readonly burst: number;
  private readonly maxKeys: number;
  private readonly buckets = new Map<string, Bucket>();
  /** New keys refused because the table was full of buckets in use. */
  overflowRefusals = 0;

  constructor(opts: RateLimitOptions) {
    if (!(opts.ratePerSec > 0) || !Number.isFinite(opts.ratePerSec)) throw new RangeError(`ratePerSec must be a positive number, got ${opts.ratePerSec}`);
    if (!(opts.burst >= 1) || !Number.isFinite(opts.burst)) throw new RangeError(`burst must be at least 1, got ${opts.burst}`);
    const maxKeys = opts.maxKeys ?? 10_000;
    if (!Number.isInteger(maxKeys) || maxKeys < 1) throw new RangeError(`maxKeys must be a positive integer, got ${maxKeys}`);
    this.rate = opts.ratePerSec / 1000;
    this.burst = opts.burst;
    this.maxKeys = maxKeys;
  }

  get size(): number {
    return this.buckets.size;
  }

  private refill(b: Bucket, now: number): void {
    if (now > b.at) {
      b.tokens = Math.min(this.burst, b.tokens + (now - b.at) * this.rate);
      b.at = now;
    }
  }

  /** Whether `key` has a whole token at `now` (takes nothing). */
  allowed(key: string, now: number): boolean {
    const b = this.buckets.get(key);
    if (b === undefined) return this.buckets.size < this.maxKeys || this.evictFull(now);
    this.refill(b, now);
    return b.tokens >= 1;
  }

  /** Takes a token for `key`; false (and nothing taken) when none is left. */
  take(key: string, now: number): boolean {
    let b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= this.maxKeys && !this.evictFull(now)) {
        this.overflowRefusals++;
        return false;
      }
      b = { tokens: this.burst, at: now };
      this.buckets.set(key, b);
    }
    this.refill(b, now);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Forgets every bucket that has refilled completely; true when room was made. */
  private evictFull(now: number): boolean {
    for (const [k, b] of this.buckets) {
      this.refill(b, now);
      if (b.tokens >= this.burst) this.buckets.delete(k);
    }
    return this.buckets.size < this.maxKeys;
  }
}
