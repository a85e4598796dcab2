// The CG1 keystream (spec "Suite CG1 segment protection"): the payload byte at stream offset p is
// XORed with byte (p mod 64) of ChaCha20 block b = floor(p / 64), computed with
// counter = b mod 2^32 and nonce = 00000000 || u64be(floor(b / 2^32)).
// Being a pure function of the offset, the same stream byte always meets the same keystream byte
// however TCP segments, retransmits or re-segments it (rule 2).
import type { CryptoBackend } from './backend';
import { BLOCK_BYTES, COUNTER_SPACE, KEY_BYTES, checkBytes, checkOutput } from './checks';

/** Offsets are exact JS integers; the flow must fail closed before the stream reaches this. */
export const MAX_STREAM_OFFSET = 2 ** 53;

// Both reused across calls (JS runs them to completion; backends keep no reference).
const nonce = new Uint8Array(12);
const nonceView = new DataView(nonce.buffer);
// An unaligned segment is XORed at position (offset mod 64) of this buffer, so the keystream
// starts on its block boundary without a second backend call. Sized for a 64 KiB segment.
const SCRATCH_BYTES = 65536 + BLOCK_BYTES;
const scratch = new Uint8Array(SCRATCH_BYTES);

/**
 * XORs `input` with the CG1 keystream starting at stream byte `offset`. Writes into `output`
 * when given (same length; the same bytes as `input` or disjoint) and returns it; otherwise
 * returns a new array, which may be a view at a non-zero byteOffset of a larger buffer.
 * Throws RangeError unless offset is an integer with 0 <= offset and offset + length <= 2^53.
 */
export function keystreamXor(
  backend: CryptoBackend,
  key: Uint8Array,
  offset: number,
  input: Uint8Array,
  output?: Uint8Array,
): Uint8Array {
  const op = 'keystreamXor';
  checkBytes(op, 'key', key, KEY_BYTES);
  checkBytes(op, 'input', input);
  if (!Number.isInteger(offset) || offset < 0 || offset > MAX_STREAM_OFFSET - input.length) {
    throw new RangeError(`${op}: offset must be an integer with 0 <= offset and offset + ${input.length} <= 2^53, got ${offset}`);
  }
  if (output !== undefined) checkOutput(op, input, output);
  if (input.length === 0) return output ?? new Uint8Array(0);

  let block = Math.floor(offset / BLOCK_BYTES);
  let skip = offset - block * BLOCK_BYTES;
  let done = 0;
  let result: Uint8Array | undefined = output;
  // At most two rounds: one Uint8Array is far shorter than the 2^38 bytes between boundaries.
  while (done < input.length) {
    const high = Math.floor(block / COUNTER_SPACE);
    const counter = block - high * COUNTER_SPACE;
    const room = (COUNTER_SPACE - counter) * BLOCK_BYTES - skip;
    const take = Math.min(input.length - done, room);
    nonceView.setUint32(4, Math.floor(high / COUNTER_SPACE));
    nonceView.setUint32(8, high >>> 0);
    const part = done === 0 && take === input.length ? input : input.subarray(done, done + take);
    let out: Uint8Array;
    if (skip === 0) {
      const into = result === undefined || part === input ? result : result.subarray(done, done + take);
      out = backend.chacha20Xor(key, nonce, counter, part, into);
    } else {
      out = xorUnaligned(backend, key, counter, skip, part);
      if (result !== undefined) result.set(out, done);
    }
    if (result === undefined) {
      if (take === input.length) return out; // the common case: one call, no copy
      result = new Uint8Array(input.length);
      result.set(out, 0);
    }
    done += take;
    block += Math.ceil((skip + take) / BLOCK_BYTES);
    skip = 0;
  }
  return result!;
}

/** Keystream from byte `skip` of block `counter`: place the input at `skip` in scratch. */
function xorUnaligned(backend: CryptoBackend, key: Uint8Array, counter: number, skip: number, part: Uint8Array): Uint8Array {
  const span = skip + part.length;
  const buf = span <= SCRATCH_BYTES ? scratch.subarray(0, span) : new Uint8Array(span);
  buf.set(part, skip);
  // Not in place: the node backend returns its own fresh buffer, so this costs no extra copy.
  const full = backend.chacha20Xor(key, nonce, counter, buf);
  full.fill(0, 0, skip); // wipe the skipped keystream bytes; the caller sees only the view after them
  return full.subarray(skip);
}
