// A per-flow-direction view of the CG1 keystream (keystream.ts) that keeps one running cipher
// and fetches keystream ahead of in-order segments, the bulk of any stream. Per segment, a
// native cipher call costs more in set-up and in the Buffer it returns than in ChaCha20 itself,
// so the running cipher fills a prefetch buffer a few segments at a time and segments are XORed
// from it in JS (their checksum summed in the same pass, see segment.ts). Anything else
// (retransmissions behind the buffer, a jump, a 2^32-block boundary, a backend without a running
// cipher) falls back to the one-shot function, which computes the very same bytes.
//
// Prefetch buffers come from one process-wide pool of PREFETCH_SLOTS, handed to the cursors that
// use them most recently (clock eviction): memory stays bounded however many flows exist, and an
// evicted buffer is zeroed before another flow gets it. Keystream is key material: buffers are
// zeroed when a cursor closes, and the temporaries the native cipher returns are wiped.
import type { ChaChaStream, CryptoBackend } from './backend';
import { BLOCK_BYTES, COUNTER_SPACE } from './checks';
import { MAX_STREAM_OFFSET, keystreamXor } from './keystream';

/** A gap up to this many bytes is skipped by running the stream over zeros (cheaper than reopening). */
const MAX_SKIP = 4 * 1024;
/** Bytes per prefetch buffer: what a segment still needs of the last fill, plus a new fill. */
const SLOT_BYTES = 16 * 1024;
/** The most one fill fetches; fills start at one segment and double while segments come in order. */
const MAX_FILL = 8 * 1024;
/** Prefetch buffers in the process (SLOT_BYTES each: 2 MiB). */
const PREFETCH_SLOTS = 128;
const zeros = new Uint8Array(SLOT_BYTES);

interface Slot {
  readonly bytes: Uint8Array;
  /** 32-bit words over `bytes`, made once: word loops over a fresh view are much slower. */
  readonly words: Int32Array;
  owner: KeystreamCursor | null;
  /** Used since the clock hand last passed (second chance). */
  recent: boolean;
  /** Bytes from 0 that may hold keystream: what must be wiped before the slot changes hands. */
  dirty: number;
}

const slots: Slot[] = [];
const freeSlots: Slot[] = [];
let hand = 0;

function acquireSlot(owner: KeystreamCursor): Slot {
  let slot = freeSlots.pop();
  if (slot === undefined && slots.length < PREFETCH_SLOTS) {
    const bytes = new Uint8Array(SLOT_BYTES);
    slot = { bytes, words: new Int32Array(bytes.buffer), owner: null, recent: false, dirty: 0 };
    slots.push(slot);
  }
  while (slot === undefined) {
    const candidate = slots[hand] as Slot;
    hand = (hand + 1) % slots.length;
    if (candidate.recent) candidate.recent = false;
    else slot = candidate;
  }
  wipe(slot); // whoever had it (another flow) must not leave keystream behind
  slot.owner = owner;
  slot.recent = true;
  return slot;
}

function wipe(slot: Slot): void {
  slot.bytes.fill(0, 0, slot.dirty);
  slot.dirty = 0;
}

function releaseSlot(slot: Slot): void {
  wipe(slot);
  slot.owner = null;
  slot.recent = false;
  freeSlots.push(slot);
}

export class KeystreamCursor {
  private stream: ChaChaStream | null = null;
  /** Stream offset the running cipher is positioned at. */
  private next = 0;
  /** First offset the running cipher must not reach (its 32-bit block counter would wrap). */
  private limit = 0;
  /** The prefetch buffer, if this cursor holds one: keystream [bufferStart, next) at its start. */
  private slot: Slot | null = null;
  private bufferStart = 0;
  /** How far the next fill reaches ahead (grows while segments come in order). */
  private fill = 0;

  constructor(
    private readonly backend: CryptoBackend,
    private readonly key: Uint8Array,
  ) {}

  /** XORs `input` with the keystream at stream offset `offset` (same bytes as keystreamXor). */
  xor(offset: number, input: Uint8Array): Uint8Array {
    const output = new Uint8Array(input.length);
    this.xorInto(offset, input, 0, input.length, output, 0);
    return output;
  }

  /**
   * Writes src[srcStart, +length) XOR the keystream at stream offset `offset` to
   * dst[dstStart, +length). `src` and `dst` must be the same bytes or disjoint.
   */
  xorInto(offset: number, src: Uint8Array, srcStart: number, length: number, dst: Uint8Array, dstStart: number): void {
    checkRanges(offset, src, srcStart, length, dst, dstStart);
    const at = this.prefetch(offset, length);
    if (at >= 0) {
      const ks = this.keystreamBytes;
      for (let i = 0; i < length; i++) dst[dstStart + i] = src[srcStart + i]! ^ ks[at + i]!;
      return;
    }
    if (length > 0) keystreamXor(this.backend, this.key, offset, src.subarray(srcStart, srcStart + length), dst.subarray(dstStart, dstStart + length));
  }

  /** The prefetch buffer; prefetch() says where in it a range's keystream is. */
  get keystreamBytes(): Uint8Array {
    return (this.slot as Slot).bytes;
  }

  /** 32-bit words over keystreamBytes (whose byteOffset is 0). */
  get keystreamWords(): Int32Array {
    return (this.slot as Slot).words;
  }

  /**
   * Makes the keystream for [offset, offset + length) available in keystreamBytes (fetching
   * it as needed) and returns its index there: valid only until this cursor is used again, and
   * never to be handed on. Returns -1 where the caller must use xorInto instead (no running
   * cipher, an offset behind the buffer, a jump, a block-counter boundary, a segment too large
   * for the buffer, an empty range).
   */
  prefetch(offset: number, length: number): number {
    if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(length) || length < 0 || offset > MAX_STREAM_OFFSET - length) {
      throw new RangeError(`KeystreamCursor: offset must be an integer with 0 <= offset and offset + ${length} <= 2^53, got ${offset}`);
    }
    if (this.backend.chacha20Stream === undefined || length === 0) return -1;
    const end = offset + length;
    let slot = this.slot !== null && this.slot.owner === this ? this.slot : null;
    // Without its buffer (never had one, or evicted) the cursor holds no keystream before `next`.
    if (slot === null) this.bufferStart = this.next;
    // Evicted: more flows are busy than there are buffers. Fetch no further ahead than needed
    // until this flow keeps a buffer again, or every segment would refill a large buffer.
    if (slot === null && this.slot !== null) {
      this.slot = null;
      this.fill = 0;
    }
    if (slot !== null && offset >= this.bufferStart && end <= this.next) {
      slot.recent = true;
      return offset - this.bufferStart;
    }
    if (this.stream === null || offset < this.bufferStart || offset - this.next > MAX_SKIP || end > this.limit) {
      // An old offset (a retransmission) must not rewind the running cipher that serves new data.
      if (this.stream !== null && offset < this.bufferStart) return -1;
      this.open(offset);
      if (end > this.limit) return -1;
    }
    // Keep what the segment needs of the buffer, fetch the rest and more.
    const keepFrom = Math.min(offset, this.next);
    const keep = this.next - keepFrom;
    const need = end - this.next;
    const room = Math.min(SLOT_BYTES - keep, this.limit - this.next);
    if (need > room) return -1;
    const fetch = Math.max(need, Math.min(this.fill, room));
    this.fill = Math.min(MAX_FILL, Math.max(this.fill, need) * 2);
    if (slot === null) slot = this.slot = acquireSlot(this);
    slot.recent = true;
    if (keep > 0) slot.bytes.copyWithin(0, keepFrom - this.bufferStart, this.next - this.bufferStart);
    const fresh = (this.stream as ChaChaStream).update(zeros.subarray(0, fetch));
    slot.bytes.set(fresh, keep);
    slot.dirty = Math.max(slot.dirty, keep + fetch);
    fresh.fill(0);
    this.bufferStart = keepFrom;
    this.next += fetch;
    return offset - keepFrom;
  }

  private open(offset: number): void {
    this.closeStream();
    const block = Math.floor(offset / BLOCK_BYTES);
    const high = Math.floor(block / COUNTER_SPACE);
    const counter = block - high * COUNTER_SPACE;
    const nonce = new Uint8Array(12);
    const view = new DataView(nonce.buffer);
    view.setUint32(4, Math.floor(high / COUNTER_SPACE));
    view.setUint32(8, high >>> 0);
    this.stream = (this.backend.chacha20Stream as NonNullable<CryptoBackend['chacha20Stream']>)(this.key, nonce, counter);
    this.limit = (high + 1) * COUNTER_SPACE * BLOCK_BYTES;
    this.next = block * BLOCK_BYTES;
    this.bufferStart = this.next;
    this.fill = 0;
  }

  private closeStream(): void {
    this.stream?.close();
    this.stream = null;
  }

  /** Frees the running cipher (and the key schedule inside it) and wipes the prefetched keystream. */
  close(): void {
    this.closeStream();
    if (this.slot !== null && this.slot.owner === this) releaseSlot(this.slot);
    this.slot = null;
    this.bufferStart = this.next;
  }
}

function checkRanges(offset: number, src: Uint8Array, srcStart: number, length: number, dst: Uint8Array, dstStart: number): void {
  if (!Number.isInteger(offset) || offset < 0 || offset > MAX_STREAM_OFFSET - length) {
    throw new RangeError(`KeystreamCursor: offset must be an integer with 0 <= offset and offset + ${length} <= 2^53, got ${offset}`);
  }
  if (!Number.isInteger(length) || length < 0 || srcStart < 0 || dstStart < 0 || srcStart + length > src.length || dstStart + length > dst.length) {
    throw new RangeError(`KeystreamCursor: ${length} bytes from ${srcStart} / to ${dstStart} overrun the buffers`);
  }
}
