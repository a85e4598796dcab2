// Rule 1 detector for the simulation: how many 16-byte runs of the secret streams occur anywhere
// in the wire payloads. Same contract as pipeline/streams.ts plaintextRunsIn (and cross-checked
// against it in sim.test.ts), but built for the ~1 MB a 300 KB run puts on the wire: a rolling
// hash, windows kept as sorted numbers in a typed array (no Map of arrays), and no global
// lookups in the loops (under jest every `Math.x` goes through the sandbox's global object,
// ~0.2 us each, which makes plaintextRunsIn take seconds here).
const WINDOW = 16;
const P = 1_000_000_007; // prime; (h + P) * 256 and hash * SPAN stay exact doubles
const B = 256;
/** Window positions in the concatenated haystack are below SPAN (8 MB). */
const SPAN = 8_388_608;
let POW = 1; // B^(WINDOW - 1) mod P
for (let i = 0; i < WINDOW - 1; i++) POW = (POW * B) % P;

/** Calls `visit(hash, at)` for every 16-byte window of b[from, to). */
function eachWindow(b: Uint8Array, from: number, to: number, visit: (hash: number, at: number) => void): void {
  if (to - from < WINDOW) return;
  let h = 0;
  for (let i = from; i < from + WINDOW; i++) h = (h * B + (b[i] as number)) % P;
  visit(h, from);
  for (let at = from + 1; at + WINDOW <= to; at++) {
    const out = ((b[at - 1] as number) * POW) % P;
    h = (((h - out + P) % P) * B + (b[at + WINDOW - 1] as number)) % P;
    visit(h, at);
  }
}

export function plaintextRuns(secrets: Iterable<Uint8Array>, haystack: Iterable<Uint8Array>): number {
  const parts = [...haystack];
  const total = parts.reduce((n, h) => n + h.length, 0);
  if (total >= SPAN) throw new RangeError(`plaintextRuns: ${total} haystack bytes, at most ${SPAN - 1}`);
  const cat = new Uint8Array(total);
  const keys = new Float64Array(total);
  let n = 0;
  let start = 0;
  for (const h of parts) {
    cat.set(h, start);
    eachWindow(cat, start, start + h.length, (hash, at) => {
      keys[n++] = hash * SPAN + at;
    });
    start += h.length;
  }
  const sorted = keys.subarray(0, n).sort();
  // One bit per hash (mod 2^25): most secret windows stop here without a binary search.
  const filter = new Uint32Array(1 << 20);
  for (let i = 0; i < n; i++) {
    const h = ((sorted[i] as number) - ((sorted[i] as number) % SPAN)) / SPAN;
    filter[(h >>> 5) & 0xfffff] = (filter[(h >>> 5) & 0xfffff] as number) | (1 << (h & 31));
  }
  let found = 0;
  for (const s of secrets) {
    eachWindow(s, 0, s.length, (hash, at) => {
      if (((filter[(hash >>> 5) & 0xfffff] as number) & (1 << (hash & 31))) === 0) return;
      // Lower bound of hash * SPAN, then every window with this hash.
      const lowest = hash * SPAN;
      let lo = 0;
      let hi = sorted.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if ((sorted[mid] as number) < lowest) lo = mid + 1;
        else hi = mid;
      }
      for (let i = lo; i < sorted.length && (sorted[i] as number) < lowest + SPAN; i++) {
        const g = (sorted[i] as number) - lowest;
        let same = true;
        for (let k = 0; k < WINDOW && same; k++) same = s[at + k] === cat[g + k];
        if (same) {
          found++;
          return;
        }
      }
    });
  }
  return found;
}
