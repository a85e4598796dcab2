// 64-bit stream offsets from a direction's ISN (DESIGN rule 2: keystream positions must not
// repeat across the 2^32 sequence wrap). Like TCP-AO's sequence number extension, a 32-bit
// sequence number is placed in the 2^32-wide window centred on the highest offset seen so far.
// Offsets are exact JS integers; flows are failed closed before MAX_STREAM_OFFSET.

const TWO32 = 0x1_0000_0000;

/** Beyond this the flow is torn down: offsets stay exact integers and nonces never repeat. */
export const MAX_STREAM_OFFSET = Number.MAX_SAFE_INTEGER - TWO32;

export class StreamOffset {
  /** Highest offset accepted so far (only authenticated or locally originated segments advance it). */
  private highest = 0;

  constructor(readonly isn: number) {}

  /** The 64-bit offset of a 32-bit sequence number, without recording it (negative: before the ISN). */
  offsetOf(seq: number): number {
    const rel = (seq - this.isn) >>> 0;
    const highLow = this.highest % TWO32;
    let candidate = this.highest - highLow + rel;
    // Choose the candidate nearest to `highest` (within +-2^31).
    if (candidate - this.highest > TWO32 / 2) candidate -= TWO32;
    else if (this.highest - candidate > TWO32 / 2) candidate += TWO32;
    // Negative means "before the ISN": no valid segment has that; callers drop it.
    return candidate;
  }

  /** Records that sequence space up to `offsetEnd` (exclusive) has been seen. */
  advance(offsetEnd: number): void {
    if (offsetEnd > this.highest) this.highest = offsetEnd;
  }
}
