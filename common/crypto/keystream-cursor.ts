// A per-flow-direction view of the CG1 keystream (keystream.ts) that keeps one running cipher
// positioned where the last segment ended. In-order segments, the bulk of any stream, then cost
// one update() instead of a new cipher each (the set-up dominates at segment sizes). Anything
// else (retransmissions, a jump, a 2^32-block boundary) falls back to the one-shot function,
// which computes the very same bytes.
import type { ChaChaStream, CryptoBackend } from './backend';
import { BLOCK_BYTES, COUNTER_SPACE } from './checks';
import { MAX_STREAM_OFFSET, keystreamXor } from './keystream';

/** A gap up to this many bytes is skipped by running the stream over zeros (cheaper than reopening). */
const MAX_SKIP = 4 * 1024;
const zeros = new Uint8Array(MAX_SKIP + BLOCK_BYTES);

export class KeystreamCursor {
  private stream: ChaChaStream | null = null;
  /** Stream offset the running cipher is positioned at. */
  private next = 0;
  /** First offset the running cipher must not reach (its 32-bit block counter would wrap). */
  private limit = 0;

  constructor(
    private readonly backend: CryptoBackend,
    private readonly key: Uint8Array,
  ) {}

  /** XORs `input` with the keystream at stream offset `offset` (same bytes as keystreamXor). */
  xor(offset: number, input: Uint8Array): Uint8Array {
    const end = offset + input.length;
    if (!Number.isInteger(offset) || offset < 0 || offset > MAX_STREAM_OFFSET - input.length) {
      throw new RangeError(`KeystreamCursor: offset must be an integer with 0 <= offset and offset + ${input.length} <= 2^53, got ${offset}`);
    }
    if (input.length === 0) return new Uint8Array(0);
    if (this.backend.chacha20Stream === undefined) return keystreamXor(this.backend, this.key, offset, input);
    const continues = this.stream !== null && offset >= this.next && offset - this.next <= MAX_SKIP && end <= this.limit;
    if (!continues) {
      // An old offset (a retransmission) must not rewind the running cipher that serves new data.
      if (this.stream !== null && offset < this.next) return keystreamXor(this.backend, this.key, offset, input);
      this.open(offset);
      if (end > this.limit) return keystreamXor(this.backend, this.key, offset, input);
    }
    const stream = this.stream as ChaChaStream;
    if (offset > this.next) stream.update(zeros.subarray(0, offset - this.next));
    this.next = end;
    return stream.update(input);
  }

  private open(offset: number): void {
    this.close();
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
  }

  /** Frees the running cipher (and the key schedule inside it). */
  close(): void {
    this.stream?.close();
    this.stream = null;
  }
}
