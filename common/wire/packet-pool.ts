// Memory for packets the engines build on the per-segment path. A fresh ArrayBuffer per packet
// costs more than protecting a small segment (V8 allocates and registers every backing store
// over 64 bytes off-heap), so rewritten segments are carved from shared slabs instead. A slab is
// never reused: each packet is a view on bytes nobody else has seen, and the slab is freed by the
// GC once no packet on it is referenced. Something kept for long (a held or resent SYN) should
// not come from here: it would pin its whole slab.

const SLAB_BYTES = 64 * 1024;
/** Larger packets get their own buffer: they would waste most of a slab. */
const MAX_POOLED = 8 * 1024;

let slab = new ArrayBuffer(SLAB_BYTES);
let slabWords = new Int32Array(slab);
let used = 0;

/**
 * A zero-filled, `length`-byte Uint8Array, usually a view into a shared slab, starting at a
 * byteOffset that is `phase` (0..3) more than a multiple of 4: callers that process a region of
 * it in 32-bit words alongside another buffer line the two up this way. Packets over 8 KiB get
 * a buffer of their own (byteOffset 0).
 */
export function pooledPacket(length: number, phase = 0): Uint8Array {
  if (length > MAX_POOLED) return new Uint8Array(length);
  let at = used + (phase & 3);
  if (at + length > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabWords = new Int32Array(slab);
    at = phase & 3;
  }
  used = (at + length + 7) & ~7;
  return new Uint8Array(slab, at, length);
}

/**
 * 32-bit words over the whole slab of a packet that pooledPacket returned since the last slab
 * was started (index = byte offset in the slab / 4), or null for any other array. Reusing one
 * view per slab keeps word loops fast (a fresh typed array per call costs more than the loop).
 */
export function pooledWords(packet: Uint8Array): Int32Array | null {
  return packet.buffer === slab ? slabWords : null;
}
