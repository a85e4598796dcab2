// Every request id the embedded store has answered, until its idempotency record would expire,
// kept off the JS heap: 16 bytes of id, an 8-byte expiry (ms) and an 8-byte value (where the
// answer lies in the AnswerRing) per slot, open addressing with linear probing in one
// ArrayBuffer that doubles as it fills.
//
// Why: the store keeps full answers (a few hundred bytes each) for only the newest records. An
// id whose answer was dropped must still never be answered with a second session key, so its
// id stays here for the whole window, at 32 bytes, and a late retry is refused instead. Off the
// heap because a Map of a million small records costs every garbage collection.
//
// Slots are never emptied, only expired; an expired slot is reused by the next insert that
// probes past it, and a rehash (on growth, or at the size limit) drops them all.
const ID_LEN = 16;
const EXPIRY_AT = ID_LEN;
const VALUE_AT = ID_LEN + 8;
const SLOT = 32;
const MAX_LOAD = 0.75;
const REBUILD_LOAD = 0.6;

export type AddResult = 'added' | 'present' | 'full';

export class RequestIdTable {
  private slots: Uint8Array;
  private view: DataView;
  private mask: number;
  /** Slots in use (live or expired). */
  private used = 0;
  private readonly seed: number;

  /** `maxSlots` bounds memory (32 bytes a slot); both sizes are rounded up to powers of two. */
  constructor(
    private readonly maxSlots: number,
    initialSlots = 1024,
    seed = 0x9e3779b9,
  ) {
    if (!Number.isInteger(maxSlots) || maxSlots < 16) throw new RangeError(`maxSlots must be an integer >= 16, got ${maxSlots}`);
    const n = pow2(Math.min(initialSlots, maxSlots));
    this.slots = new Uint8Array(n * SLOT);
    this.view = new DataView(this.slots.buffer);
    this.mask = n - 1;
    this.seed = seed >>> 0;
  }

  get capacity(): number {
    return this.mask + 1;
  }

  get bytes(): number {
    return this.slots.byteLength;
  }

  /** Ids recorded and not yet expired at `nowMs` (a scan: for tests and status, not per request). */
  live(nowMs: number): number {
    const now = nowMs;
    let n = 0;
    for (let i = 0; i <= this.mask; i++) if (this.view.getFloat64(i * SLOT + EXPIRY_AT) > now) n++;
    return n;
  }

  has(id: Uint8Array, nowMs: number): boolean {
    return this.find(id, nowMs) >= 0;
  }

  /** The value recorded with `id`, or undefined when it is not recorded or has expired. */
  get(id: Uint8Array, nowMs: number): number | undefined {
    const i = this.find(id, nowMs);
    return i < 0 ? undefined : this.view.getFloat64(i * SLOT + VALUE_AT);
  }

  private find(id: Uint8Array, now: number): number {
    checkId(id);
    for (let i = this.hash(id) & this.mask; ; i = (i + 1) & this.mask) {
      const exp = this.view.getFloat64(i * SLOT + EXPIRY_AT);
      if (exp === 0) return -1;
      if (exp > now && this.idAt(i, id)) return i;
    }
  }

  /**
   * Records `id` with `value` until `expiresAtMs`. 'present' when it is already recorded and
   * unexpired (its value unchanged); 'full' when `maxSlots` cannot hold one more live id (the
   * caller must refuse, not forget).
   */
  add(id: Uint8Array, expiresAtMs: number, nowMs: number, value = 0): AddResult {
    checkId(id);
    const now = nowMs;
    const exp = Math.max(now + 1, expiresAtMs);
    let reuse = -1;
    for (let i = this.hash(id) & this.mask; ; i = (i + 1) & this.mask) {
      const e = this.view.getFloat64(i * SLOT + EXPIRY_AT);
      if (e === 0) break;
      if (e > now) {
        if (this.idAt(i, id)) return 'present';
      } else if (reuse < 0) reuse = i;
    }
    if (reuse >= 0) {
      this.write(reuse, id, exp, value);
      return 'added';
    }
    if (this.used + 1 > MAX_LOAD * this.capacity && !this.grow(now)) return 'full';
    // The table may have been rebuilt: probe again for the first empty slot.
    let i = this.hash(id) & this.mask;
    while (this.view.getFloat64(i * SLOT + EXPIRY_AT) !== 0) i = (i + 1) & this.mask;
    this.write(i, id, exp, value);
    this.used++;
    return 'added';
  }

  /**
   * Rebuilds without the expired slots, doubled until live ids fill at most half. At the size
   * limit it rebuilds only while live ids fill at most REBUILD_LOAD, so each O(capacity) rebuild
   * is followed by many inserts; beyond that it is full (false).
   */
  private grow(now: number): boolean {
    const live = this.live(now);
    let n = this.capacity;
    while (live + 1 > 0.5 * n && n < this.maxSlots) n *= 2;
    if (live + 1 > REBUILD_LOAD * n) return false;
    const old = this.slots;
    const oldView = this.view;
    const oldCapacity = this.capacity;
    this.slots = new Uint8Array(n * SLOT);
    this.view = new DataView(this.slots.buffer);
    this.mask = n - 1;
    this.used = 0;
    for (let j = 0; j < oldCapacity; j++) {
      const e = oldView.getFloat64(j * SLOT + EXPIRY_AT);
      if (e <= now) continue;
      const id = old.subarray(j * SLOT, j * SLOT + ID_LEN);
      let i = this.hash(id) & this.mask;
      while (this.view.getFloat64(i * SLOT + EXPIRY_AT) !== 0) i = (i + 1) & this.mask;
      this.write(i, id, e, oldView.getFloat64(j * SLOT + VALUE_AT));
      this.used++;
    }
    return true;
  }

  private write(i: number, id: Uint8Array, exp: number, value: number): void {
    this.slots.set(id, i * SLOT);
    this.view.setFloat64(i * SLOT + EXPIRY_AT, exp);
    this.view.setFloat64(i * SLOT + VALUE_AT, value);
  }

  private idAt(i: number, id: Uint8Array): boolean {
    const at = i * SLOT;
    for (let k = 0; k < ID_LEN; k++) if (this.slots[at + k] !== id[k]) return false;
    return true;
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
  let p = 16;
  while (p < n) p *= 2;
  return p;
}

function checkId(id: Uint8Array): void {
  if (!(id instanceof Uint8Array) || id.length !== ID_LEN) throw new TypeError(`request id must be ${ID_LEN} bytes`);
}
