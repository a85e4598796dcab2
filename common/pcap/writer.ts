// Classic pcap output (little-endian, microsecond timestamps, snaplen 262144): the format every
// tool reads. Used for replay output and test artefacts.

export const PCAP_SNAPLEN = 262144;

export interface PacketToWrite {
  readonly data: Uint8Array;
  /** Nanoseconds since the epoch; preferred over timestampMs when both are given. */
  readonly timestampNs?: bigint;
  /** Milliseconds since the epoch (fractional allowed). */
  readonly timestampMs?: number;
  /** Length on the wire; defaults to data.length. */
  readonly originalLength?: number;
}

const HEADER = 24;
const RECORD = 16;

function microseconds(p: PacketToWrite): bigint {
  if (p.timestampNs !== undefined) return p.timestampNs / 1000n;
  if (p.timestampMs !== undefined) return BigInt(Math.floor(p.timestampMs * 1000));
  return 0n;
}

/**
 * Writes a classic pcap file. Data longer than the snaplen is cut to it (original length kept).
 * Throws RangeError for a timestamp before 1970 or past 2106, or a link type outside 0..65535:
 * those are caller bugs, not capture data.
 */
export function writePcap(linkType: number, packets: readonly PacketToWrite[]): Uint8Array {
  if (!Number.isInteger(linkType) || linkType < 0 || linkType > 0xffff) throw new RangeError(`link type ${linkType}`);
  let size = HEADER;
  for (const p of packets) size += RECORD + Math.min(p.data.length, PCAP_SNAPLEN);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, 0xa1b2c3d4, true);
  view.setUint16(4, 2, true);
  view.setUint16(6, 4, true);
  view.setUint32(16, PCAP_SNAPLEN, true);
  view.setUint32(20, linkType, true);
  let pos = HEADER;
  for (const p of packets) {
    const us = microseconds(p);
    const sec = us / 1_000_000n;
    if (us < 0n || sec > 0xffffffffn) throw new RangeError(`timestamp ${us} us does not fit a pcap record`);
    const caplen = Math.min(p.data.length, PCAP_SNAPLEN);
    view.setUint32(pos, Number(sec), true);
    view.setUint32(pos + 4, Number(us % 1_000_000n), true);
    view.setUint32(pos + 8, caplen, true);
    view.setUint32(pos + 12, Math.max(p.originalLength ?? p.data.length, caplen), true);
    out.set(p.data.subarray(0, caplen), pos + RECORD);
    pos += RECORD + caplen;
  }
  return out;
}
