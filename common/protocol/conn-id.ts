// Drawing a flow's connection id (docs/PROTOCOL.md 3.1). An agent on several worker processes
// draws it so that connId mod workers is the index of the worker holding the flow: its primary
// routes key-delivery messages to that worker by arithmetic, with no table to keep in step.
// Every other party treats the id as opaque; log2(workers) of its 64 bits are no longer random,
// which costs nothing: the id names a flow, it is not a secret or a nonce.
const U64_MAX = (1n << 64n) - 1n;

export interface WorkerSlot {
  index: number;
  count: number;
}

/** A connId from 8 random bytes, landing in `slot` when one is given. */
export function drawConnId(random8: Uint8Array, slot?: WorkerSlot): bigint {
  if (random8.length !== 8) throw new RangeError(`connId needs 8 random bytes, got ${random8.length}`);
  const r = Buffer.from(random8.buffer, random8.byteOffset, 8).readBigUInt64BE(0);
  if (slot === undefined || slot.count === 1) return r;
  const n = BigInt(slot.count);
  const id = r - (r % n) + BigInt(slot.index);
  return id > U64_MAX ? id - n : id;
}

/** The index of the worker a connId was drawn for. */
export const connIdWorker = (connId: bigint, count: number): number => Number(connId % BigInt(count));
