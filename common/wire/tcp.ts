// The TCP header as a checked view: parseTcp validates once, then every field is a plain number
// and every region (options, payload) an absolute offset pair into the same buffer. Options are
// not parsed here (see tcp-options.ts) so the fast path allocates nothing but the view.
import type { Result } from '../result';
import { ok, err } from '../result';
import { read16, read32 } from './bytes';
import type { WireError } from './errors';
import { wireError } from './errors';

/** Flag bits of header byte 13. Always test by mask: an ECN SYN is SYN|ECE|CWR. */
export const TCP_FLAGS = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
} as const;

export const TCP_HEADER_MIN = 20;
export const TCP_OPTIONS_MAX = 40;

/** True when every bit of `mask` is set in `flags`. */
export function hasFlag(flags: number, mask: number): boolean {
  return (flags & mask) === mask;
}

/** "SYN|ACK"-style rendering for logs. */
export function formatTcpFlags(flags: number): string {
  const names = Object.entries(TCP_FLAGS)
    .filter(([, bit]) => (flags & bit) !== 0)
    .map(([name]) => name);
  return names.length === 0 ? '-' : names.join('|');
}

export class TcpView {
  /** @internal Built only by parseTcp, after validation. */
  constructor(
    readonly bytes: Uint8Array,
    /** Offset of the TCP header in `bytes`. */
    readonly offset: number,
    readonly srcPort: number,
    readonly dstPort: number,
    /** Unsigned 32-bit. */
    readonly seq: number,
    /** Unsigned 32-bit (meaningful only with ACK set). */
    readonly ack: number,
    /** Data offset * 4: 20..60. */
    readonly headerLength: number,
    /** Byte 13: CWR ECE URG ACK PSH RST SYN FIN. */
    readonly flags: number,
    /** Low nibble of byte 12: reserved bits and AE (formerly NS). */
    readonly reservedBits: number,
    readonly window: number,
    readonly checksum: number,
    readonly urgent: number,
    /** Absolute offsets into `bytes`. */
    readonly optionsStart: number,
    readonly optionsEnd: number,
    readonly payloadStart: number,
    readonly payloadEnd: number,
  ) {}

  get payloadLength(): number {
    return this.payloadEnd - this.payloadStart;
  }
  /** Sequence space the segment occupies: payload + 1 for SYN + 1 for FIN. */
  get segmentLength(): number {
    return this.payloadEnd - this.payloadStart + (this.flags & TCP_FLAGS.SYN ? 1 : 0) + (this.flags & TCP_FLAGS.FIN ? 1 : 0);
  }
  /** The segment (header through payload end) length. */
  get length(): number {
    return this.payloadEnd - this.offset;
  }
  /** Raw option bytes (a view, not a copy). */
  get optionBytes(): Uint8Array {
    return this.bytes.subarray(this.optionsStart, this.optionsEnd);
  }
  /** Payload bytes (a view, not a copy). */
  get payload(): Uint8Array {
    return this.bytes.subarray(this.payloadStart, this.payloadEnd);
  }
}

/**
 * Parses the TCP header at `offset`; `length` is the TCP segment length (for a packet: the IP
 * payload length). Never throws.
 */
export function parseTcp(bytes: Uint8Array, offset: number, length: number): Result<TcpView, WireError> {
  if (offset < 0 || length < 0 || offset + length > bytes.length) {
    return err(wireError('tcp', 'truncated', `segment of ${length} bytes at ${offset} overruns a ${bytes.length}-byte buffer`, { offset }));
  }
  if (length < TCP_HEADER_MIN) {
    return err(wireError('tcp', 'truncated', `${length} bytes, header needs ${TCP_HEADER_MIN}`, { offset }));
  }
  const b12 = bytes[offset + 12]!;
  const headerLength = (b12 >>> 4) * 4;
  if (headerLength < TCP_HEADER_MIN) {
    return err(wireError('tcp', 'bad-header-length', `data offset ${headerLength / 4} < 5`, { offset }));
  }
  if (headerLength > length) {
    return err(wireError('tcp', 'bad-header-length', `data offset ${headerLength} bytes > segment length ${length}`, { offset }));
  }
  return ok(
    new TcpView(
      bytes, offset, read16(bytes, offset), read16(bytes, offset + 2), read32(bytes, offset + 4), read32(bytes, offset + 8),
      headerLength, bytes[offset + 13]!, b12 & 0x0f, read16(bytes, offset + 14), read16(bytes, offset + 16),
      read16(bytes, offset + 18), offset + TCP_HEADER_MIN, offset + headerLength, offset + headerLength, offset + length,
    ),
  );
}
