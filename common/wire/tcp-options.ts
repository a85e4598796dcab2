// TCP options: a lossless list form (every option, NOP and EOL included, in order, unknown kinds
// verbatim) for rebuilding option space, and non-allocating scans for the per-packet path.
import type { Result } from '../result';
import { ok, err } from '../result';
import { read16, read32, write16, write32 } from './bytes';
import type { WireError } from './errors';
import { wireError } from './errors';

export const TCP_OPTION = {
  EOL: 0,
  NOP: 1,
  MSS: 2,
  WINDOW_SCALE: 3,
  SACK_PERMITTED: 4,
  SACK: 5,
  TIMESTAMPS: 8,
  MD5: 19,
  USER_TIMEOUT: 28,
  AUTHENTICATION: 29,
  MPTCP: 30,
  FAST_OPEN: 34,
  /** RFC 4727 / RFC 6994 experimental kinds, shared by ExID. */
  EXPERIMENT_1: 253,
  EXPERIMENT_2: 254,
} as const;

/** One option. `data` excludes kind and length bytes; it is empty for EOL and NOP. */
export interface TcpOption {
  readonly kind: number;
  readonly data: Uint8Array;
}

const EMPTY = new Uint8Array(0);
const MAX_OPTION_DATA = 253;

/** findOption: the option is not present. */
export const OPTION_ABSENT = -1;
/** findOption: the option space is malformed before the option was found. */
export const OPTION_MALFORMED = -2;

/**
 * Parses option space [start, end). Data fields are views into `bytes`, not copies. Parsing stops
 * at the first EOL (recorded), as the bytes after it are padding. Never throws.
 */
export function parseTcpOptions(bytes: Uint8Array, start: number, end: number): Result<TcpOption[], WireError> {
  if (start < 0 || start > end || end > bytes.length) {
    return err(wireError('tcp-options', 'truncated', `option range [${start}, ${end}) outside a ${bytes.length}-byte buffer`));
  }
  const out: TcpOption[] = [];
  let i = start;
  while (i < end) {
    const kind = bytes[i]!;
    if (kind === TCP_OPTION.EOL) {
      out.push({ kind, data: EMPTY });
      break;
    }
    if (kind === TCP_OPTION.NOP) {
      out.push({ kind, data: EMPTY });
      i++;
      continue;
    }
    const len = optionLength(bytes, i, end);
    if (len < 0) return err(badOption(bytes, i, end));
    out.push({ kind, data: bytes.subarray(i + 2, i + len) });
    i += len;
  }
  return ok(out);
}

/** Length of the TLV option at i, or -1 when it has no length byte, len < 2, or overruns end. */
function optionLength(bytes: Uint8Array, i: number, end: number): number {
  if (i + 1 >= end) return -1;
  const len = bytes[i + 1]!;
  if (len < 2 || i + len > end) return -1;
  return len;
}

function badOption(bytes: Uint8Array, i: number, end: number): WireError {
  const kind = bytes[i]!;
  if (i + 1 >= end) return wireError('tcp-options', 'bad-option', `option ${kind} has no length byte`, { offset: i });
  const len = bytes[i + 1]!;
  const why = len < 2 ? `length ${len} < 2` : `length ${len} overruns the option space by ${i + len - end}`;
  return wireError('tcp-options', 'bad-option', `option ${kind}: ${why}`, { offset: i });
}

/**
 * Scans [start, end) for the first option of `kind` (>= 2) and, when `exid` is given, whose
 * first two data bytes are that RFC 6994 ExID. Returns the absolute offset of its kind byte
 * (length at +1, data at +2), OPTION_ABSENT, or OPTION_MALFORMED. Allocates nothing.
 */
export function findOption(bytes: Uint8Array, start: number, end: number, kind: number, exid?: number): number {
  if (start < 0 || start > end || end > bytes.length) return OPTION_MALFORMED;
  let i = start;
  while (i < end) {
    const k = bytes[i]!;
    if (k === TCP_OPTION.EOL) return OPTION_ABSENT;
    if (k === TCP_OPTION.NOP) {
      i++;
      continue;
    }
    const len = optionLength(bytes, i, end);
    if (len < 0) return OPTION_MALFORMED;
    if (k === kind && (exid === undefined || (len >= 4 && read16(bytes, i + 2) === exid))) return i;
    i += len;
  }
  return OPTION_ABSENT;
}

/** Bytes the options take on the wire, before padding. */
export function tcpOptionsLength(options: readonly TcpOption[]): number {
  let n = 0;
  for (const o of options) n += o.kind === TCP_OPTION.EOL || o.kind === TCP_OPTION.NOP ? 1 : 2 + o.data.length;
  return n;
}

/**
 * Encodes options in order and pads with EOL (zero) bytes to a multiple of 4. The 40-byte limit
 * is checked where the options go into a header (emitIpTcp, rewriteTcp). Throws RangeError for
 * an option that cannot be encoded at all (data over 253 bytes, kind outside 0..255): that is
 * a programming error, not hostile input.
 */
export function emitTcpOptions(options: readonly TcpOption[]): Uint8Array {
  const raw = tcpOptionsLength(options);
  const out = new Uint8Array((raw + 3) & ~3);
  let i = 0;
  for (const o of options) {
    if (!Number.isInteger(o.kind) || o.kind < 0 || o.kind > 255) throw new RangeError(`TCP option kind ${o.kind}`);
    out[i++] = o.kind;
    if (o.kind === TCP_OPTION.EOL || o.kind === TCP_OPTION.NOP) continue;
    if (o.data.length > MAX_OPTION_DATA) throw new RangeError(`TCP option ${o.kind}: ${o.data.length} data bytes > ${MAX_OPTION_DATA}`);
    out[i++] = o.data.length + 2;
    out.set(o.data, i);
    i += o.data.length;
  }
  return out;
}

// ---- well-known options ----

export function mssOption(mss: number): TcpOption {
  const data = new Uint8Array(2);
  write16(data, 0, mss);
  return { kind: TCP_OPTION.MSS, data };
}

/** The MSS value, or null if this is not a well-formed MSS option. */
export function decodeMss(o: TcpOption): number | null {
  return o.kind === TCP_OPTION.MSS && o.data.length === 2 ? read16(o.data, 0) : null;
}

/** MSS from raw option space without allocating; -1 if absent or malformed. */
export function findMss(bytes: Uint8Array, start: number, end: number): number {
  const at = findOption(bytes, start, end, TCP_OPTION.MSS);
  return at >= 0 && bytes[at + 1] === 4 ? read16(bytes, at + 2) : -1;
}

export function windowScaleOption(shift: number): TcpOption {
  return { kind: TCP_OPTION.WINDOW_SCALE, data: Uint8Array.of(shift) };
}

export function decodeWindowScale(o: TcpOption): number | null {
  return o.kind === TCP_OPTION.WINDOW_SCALE && o.data.length === 1 ? o.data[0]! : null;
}

export function sackPermittedOption(): TcpOption {
  return { kind: TCP_OPTION.SACK_PERMITTED, data: EMPTY };
}

export interface SackBlock {
  /** First sequence number of the block. */
  readonly left: number;
  /** Sequence number just past the block. */
  readonly right: number;
}

export function sackOption(blocks: readonly SackBlock[]): TcpOption {
  const data = new Uint8Array(8 * blocks.length);
  blocks.forEach((b, i) => {
    write32(data, 8 * i, b.left);
    write32(data, 8 * i + 4, b.right);
  });
  return { kind: TCP_OPTION.SACK, data };
}

/** SACK blocks, or null if this is not a well-formed SACK option (data a non-zero multiple of 8). */
export function decodeSackBlocks(o: TcpOption): SackBlock[] | null {
  if (o.kind !== TCP_OPTION.SACK || o.data.length === 0 || o.data.length % 8 !== 0) return null;
  const out: SackBlock[] = [];
  for (let i = 0; i < o.data.length; i += 8) out.push({ left: read32(o.data, i), right: read32(o.data, i + 4) });
  return out;
}

export interface Timestamps {
  readonly tsval: number;
  readonly tsecr: number;
}

export function timestampsOption(tsval: number, tsecr: number): TcpOption {
  const data = new Uint8Array(8);
  write32(data, 0, tsval);
  write32(data, 4, tsecr);
  return { kind: TCP_OPTION.TIMESTAMPS, data };
}

export function decodeTimestamps(o: TcpOption): Timestamps | null {
  return o.kind === TCP_OPTION.TIMESTAMPS && o.data.length === 8 ? { tsval: read32(o.data, 0), tsecr: read32(o.data, 4) } : null;
}

/** An RFC 6994 experimental option: kind 253/254, 16-bit ExID, then `payload`. */
export function experimentalOption(kind: number, exid: number, payload: Uint8Array): TcpOption {
  const data = new Uint8Array(2 + payload.length);
  write16(data, 0, exid);
  data.set(payload, 2);
  return { kind, data };
}

/** The ExID of an experimental option, or null if it has fewer than 2 data bytes. */
export function experimentId(o: TcpOption): number | null {
  return (o.kind === TCP_OPTION.EXPERIMENT_1 || o.kind === TCP_OPTION.EXPERIMENT_2) && o.data.length >= 2 ? read16(o.data, 0) : null;
}
