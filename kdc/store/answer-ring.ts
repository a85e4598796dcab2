// The embedded store's full answers for retries: the newest `maxEntries` of them, end to end in
// one off-heap byte ring. An answer is addressed by its position (bytes written before it, a
// number that only grows); appending overwrites the oldest bytes, so a position is readable
// while it is among the newest maxEntries answers and its bytes have not been written over.
//
// Why a ring and not a Map of answers: at 20k issues/s a Map of 100k small buffers made every
// garbage collection walk and sweep 100k ArrayBuffers, and the Map's own deletes from the front
// cost more than the issuing. Here an append is one copy, and memory is allocated once.
//
// Entry: u32 length | bytes. An entry never wraps: when it does not fit before the end, the
// tail of the ring is skipped (counted as written) and the entry starts at offset 0.
const LEN = 4;

/** Bytes reserved per entry: a typical answer record is 32 + 414 bytes (docs/PROTOCOL.md). */
const RING_BYTES_PER_ENTRY = 512;
/** The ring is never smaller than this, so the largest answer (32 + 1932 bytes) always fits. */
const MIN_RING_BYTES = 64 * 1024;

export class AnswerRing {
  private readonly buf: Uint8Array;
  private readonly view: DataView;
  /** Bytes written since creation, skipped tails included: the next entry's position. */
  private written = 0;
  /** Positions of the newest entries, oldest first, in a circular queue of maxEntries. */
  private readonly starts: Float64Array;
  private head = 0;
  private count = 0;
  /** Entries before this position have been dropped by the count bound. */
  private floor = 0;

  constructor(readonly maxEntries: number, bytesPerEntry = RING_BYTES_PER_ENTRY) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError(`maxEntries must be a positive integer, got ${maxEntries}`);
    this.buf = new Uint8Array(Math.max(MIN_RING_BYTES, maxEntries * bytesPerEntry));
    this.view = new DataView(this.buf.buffer);
    this.starts = new Float64Array(maxEntries);
  }

  get byteLength(): number {
    return this.buf.byteLength;
  }

  /** Copies `bytes` in as the newest entry; returns its position. */
  append(bytes: Uint8Array): number {
    const need = LEN + bytes.length;
    const cap = this.buf.length;
    if (need > cap) throw new RangeError(`an answer of ${bytes.length} bytes does not fit a ring of ${cap}`);
    let at = this.written % cap;
    if (at + need > cap) {
      this.written += cap - at;
      at = 0;
    }
    const pos = this.written;
    this.view.setUint32(at, bytes.length);
    this.buf.set(bytes, at + LEN);
    this.written += need;
    if (this.count === this.maxEntries) {
      this.head = (this.head + 1) % this.maxEntries;
      this.count--;
      this.floor = this.starts[this.head] as number;
    }
    this.starts[(this.head + this.count) % this.maxEntries] = pos;
    this.count++;
    return pos;
  }

  /** A copy of the entry at `pos`, or null when it has been dropped or written over. */
  read(pos: number): Uint8Array | null {
    const cap = this.buf.length;
    if (!(pos >= this.floor && pos >= this.written - cap && pos < this.written)) return null;
    const at = pos % cap;
    const len = this.view.getUint32(at);
    return this.buf.slice(at + LEN, at + LEN + len);
  }
}
