// A latency histogram with fixed bucket bounds, kept by an engine from the clock it is given and
// exported by the adapters (a Prometheus histogram, the status document). Fixed bounds make an
// observation O(buckets) with no allocation, and let a gateway's workers be summed bucket by bucket.

/** Bounds (ms, upper, inclusive) for keying: SYN seen to SYN released after cipher sync. */
export const KEYING_BOUNDS_MS: readonly number[] = [1, 2, 3, 5, 10, 25, 50, 100, 250, 500, 1000, 2500];

export interface HistogramSnapshot {
  /** Upper bounds of the buckets, ascending; one more bucket (+Inf) follows the last. */
  boundsMs: number[];
  /** Observations per bucket (not cumulative): boundsMs.length + 1 entries. */
  counts: number[];
  count: number;
  sumMs: number;
}

export class LatencyHistogram {
  private readonly counts: number[];
  private count = 0;
  private sumMs = 0;

  constructor(private readonly boundsMs: readonly number[]) {
    if (boundsMs.length === 0 || boundsMs.some((b, i) => !(b > 0) || (i > 0 && b <= (boundsMs[i - 1] as number)))) {
      throw new RangeError('histogram bounds must be positive and ascending');
    }
    this.counts = new Array<number>(boundsMs.length + 1).fill(0);
  }

  observe(ms: number): void {
    const v = ms > 0 ? ms : 0; // a clock stepped back counts as instant, never as negative
    let i = 0;
    while (i < this.boundsMs.length && v > (this.boundsMs[i] as number)) i++;
    this.counts[i]!++;
    this.count++;
    this.sumMs += v;
  }

  snapshot(): HistogramSnapshot {
    return { boundsMs: [...this.boundsMs], counts: [...this.counts], count: this.count, sumMs: this.sumMs };
  }
}

/** The sum of histograms with the same bounds (a gateway's workers); null when there are none. */
export function mergeHistograms(parts: readonly HistogramSnapshot[]): HistogramSnapshot | null {
  const first = parts[0];
  if (first === undefined) return null;
  const out: HistogramSnapshot = { boundsMs: [...first.boundsMs], counts: first.counts.map(() => 0), count: 0, sumMs: 0 };
  for (const p of parts) {
    if (p.boundsMs.length !== out.boundsMs.length || p.boundsMs.some((b, i) => b !== out.boundsMs[i])) throw new RangeError('histograms with different bounds');
    p.counts.forEach((c, i) => (out.counts[i]! += c));
    out.count += p.count;
    out.sumMs += p.sumMs;
  }
  return out;
}

/**
 * The upper bound (ms) of the bucket that holds quantile q (0..1): "q of observations took at
 * most this long". Infinity when it falls in the last bucket, null with no observations.
 */
export function quantileBound(h: HistogramSnapshot, q: number): number | null {
  if (h.count === 0) return null;
  const rank = Math.max(1, Math.ceil(q * h.count));
  let seen = 0;
  for (let i = 0; i < h.counts.length; i++) {
    seen += h.counts[i] as number;
    if (seen >= rank) return i < h.boundsMs.length ? (h.boundsMs[i] as number) : Infinity;
  }
  return Infinity;
}
