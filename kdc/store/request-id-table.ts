// Every request id the embedded store has answered, until its idempotency record would expire,
// kept off the JS heap: 16 bytes of id, an 8-byte expiry (ms) and an 8-byte value (where the
// answer lies in the AnswerRing) per 32-byte slot, open addressing with linear probing.
//
// Why: the store keeps full answers (a few hundred bytes each) for only the newest records. An
// id whose answer was dropped must still never be answered with a second session key, so its
// id stays here for the whole window, and a late retry is refused instead. Off the heap because
// a Map of millions of small records costs every garbage collection.
//
// Generations: ids go into the current generation's table, and a new table starts every
// `generationMs`, sized from the previous generation's count. A generation is dropped whole
// once everything in it has expired. So the steady state never rehashes, and a growing rate
// rehashes only the current generation: one big table would have to be rebuilt whole, which at
// millions of ids froze the event loop for a good fraction of a second. A lookup probes each
// live generation (the window / generationMs of them: 13 at the defaults).
const ID_LEN = 16;
const EXPIRY_AT = ID_LEN;
const VALUE_AT = ID_LEN + 8;
const SLOT = 32;
const MAX_LOAD = 0.75;
const MIN_SLOTS = 16;
export const GENERATION_MS = 60_000;

export type AddResult = 'added' | 'present' | 'full';

/** One generation: a table that only fills (never reuses a slot) and is dropped whole. */
class Generation {
  slots: Uint8Array;
  view: DataView;
  mask: number;
  used = 0;
  /** The latest expiry in it: the whole generation is dead after this. */
  maxExpiry = 0;

  constructor(
    readonly startedAt: number,
    n: number,
  ) {
    this.slots = new Uint8Array(n * SLOT);
    this.view = new DataView(this.slots.buffer);
    this.mask = n - 1;
  }

  get capacity(): number {
    return this.mask + 1;
  }

  /** The slot holding `id` unexpired at `now`, or -1. */
  find(id: Uint8Array, h: number, now: number): number {
    for (let i = h & this.mask; ; i = (i + 1) & this.mask) {
      const exp = this.view.getFloat64(i * SLOT + EXPIRY_AT);
      if (exp === 0) return -1;
      if (exp > now && this.idAt(i, id)) return i;
    }
  }

  insert(id: Uint8Array, h: number, exp: number, value: number): void {
    let i = h & this.mask;
    while (this.view.getFloat64(i * SLOT + EXPIRY_AT) !== 0) i = (i + 1) & this.mask;
    this.slots.set(id, i * SLOT);
    this.view.setFloat64(i * SLOT + EXPIRY_AT, exp);
    this.view.setFloat64(i * SLOT + VALUE_AT, value);
    this.used++;
    if (exp > this.maxExpiry) this.maxExpiry = exp;
  }

  /** Doubles the table; `hash` recomputes each id's hash. */
  grow(hash: (id: Uint8Array) => number): void {
    const old = this.slots;
    const oldView = this.view;
    const n = this.capacity * 2;
    this.slots = new Uint8Array(n * SLOT);
    this.view = new DataView(this.slots.buffer);
    this.mask = n - 1;
    this.used = 0;
    for (let j = 0; j < n / 2; j++) {
      const e = oldView.getFloat64(j * SLOT + EXPIRY_AT);
      if (e === 0) continue;
      const id = old.subarray(j * SLOT, j * SLOT + ID_LEN);
      this.insert(id, hash(id), e, oldView.getFloat64(j * SLOT + VALUE_AT));
    }
  }

  valueAt(i: number): number {
    return this.view.getFloat64(i * SLOT + VALUE_AT);
  }

  live(now: number): number {
    let n = 0;
    for (let i = 0; i <= this.mask; i++) if (this.view.getFloat64(i * SLOT + EXPIRY_AT) > now) n++;
    return n;
  }

  private idAt(i: number, id: Uint8Array): boolean {
    const at = i * SLOT;
    for (let k = 0; k < ID_LEN; k++) if (this.slots[at + k] !== id[k]) return false;
    return true;
  }
}

export class RequestIdTable {
  /** Oldest first; the last is the one being filled. */
  private gens: Generation[] = [];
  private readonly seed: number;
  private readonly initialSlots: number;

  /** `maxSlots` bounds memory (32 bytes a slot, over all generations); sizes are powers of two. */
  constructor(
    private readonly maxSlots: number,
    initialSlots = 1024,
    seed = 0x9e3779b9,
    private readonly generationMs = GENERATION_MS,
  ) {
    if (!Number.isInteger(maxSlots) || maxSlots < MIN_SLOTS) throw new RangeError(`maxSlots must be an integer >= ${MIN_SLOTS}, got ${maxSlots}`);
    if (!(generationMs > 0)) throw new RangeError(`generationMs must be positive, got ${generationMs}`);
    this.initialSlots = pow2(Math.min(initialSlots, maxSlots));
    this.seed = seed >>> 0;
  }

  /** Slots allocated over all generations. */
  get capacity(): number {
    let n = 0;
    for (const g of this.gens) n += g.capacity;
    return n;
  }

  get bytes(): number {
    return this.capacity * SLOT;
  }

  get generations(): number {
    return this.gens.length;
  }

  /** Ids recorded and not yet expired at `nowMs` (a scan: for tests and status, not per request). */
  live(nowMs: number): number {
    let n = 0;
    for (const g of this.gens) n += g.live(nowMs);
    return n;
  }

  has(id: Uint8Array, nowMs: number): boolean {
    return this.get(id, nowMs) !== undefined;
  }

  /** The value recorded with `id`, or undefined when it is not recorded or has expired. */
  get(id: Uint8Array, nowMs: number): number | undefined {
    checkId(id);
    const h = this.hash(id);
    for (let k = this.gens.length - 1; k >= 0; k--) {
      const g = this.gens[k] as Generation;
      const i = g.find(id, h, nowMs);
      if (i >= 0) return g.valueAt(i);
    }
    return undefined;
  }

  /**
   * Records `id` with `value` until `expiresAtMs`. 'present' when it is already recorded and
   * unexpired (its value unchanged); 'full' when `maxSlots` cannot hold one more live id (the
   * caller must refuse, not forget).
   */
  add(id: Uint8Array, expiresAtMs: number, nowMs: number, value = 0): AddResult {
    if (this.has(id, nowMs)) return 'present';
    const now = nowMs;
    while (this.gens.length > 0 && (this.gens[0] as Generation).maxExpiry <= now) this.gens.shift();
    const g = this.generationFor(now);
    if (g === null) return 'full';
    g.insert(id, this.hash(id), Math.max(now + 1, expiresAtMs), value);
    return 'added';
  }

  /** The generation to insert into, with room for one more id, or null when maxSlots is reached. */
  private generationFor(now: number): Generation | null {
    let g = this.gens[this.gens.length - 1];
    if (g === undefined || now - g.startedAt >= this.generationMs) {
      // Sized for as many ids as the last generation took, so the steady state never grows.
      const want = g === undefined ? this.initialSlots : pow2(Math.max(this.initialSlots, (g.used + 1) / MAX_LOAD));
      const room = this.maxSlots - this.capacity;
      const n = Math.min(want, floorPow2(room));
      if (n >= MIN_SLOTS) {
        g = new Generation(now, n);
        this.gens.push(g);
      } else if (g === undefined) return null;
    }
    if (g.used + 1 > MAX_LOAD * g.capacity) {
      if (this.capacity + g.capacity > this.maxSlots) return null;
      g.grow((id) => this.hash(id));
    }
    return g;
  }

  /** Ids are random, but come from the network: mix all 16 bytes under a per-table seed. */
  private hash(id: Uint8Array): number {
    let h = this.seed;
    for (let k = 0; k < ID_LEN; k += 4) {
      const w = (id[k]! | (id[k + 1]! << 8) | (id[k + 2]! << 16) | (id[k + 3]! << 24)) >>> 0;
      h = Math.imul(h ^ w, 0x85ebca6b);
      h ^= h >>> 13;
    }
    h = Math.imul(h, 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  }
}

function pow2(n: number): number {
  let p = MIN_SLOTS;
  while (p < n) p *= 2;
  return p;
}

function floorPow2(n: number): number {
  if (n < MIN_SLOTS) return 0;
  let p = MIN_SLOTS;
  while (p * 2 <= n) p *= 2;
  return p;
}

function checkId(id: Uint8Array): void {
  if (!(id instanceof Uint8Array) || id.length !== ID_LEN) throw new TypeError(`request id must be ${ID_LEN} bytes`);
}
