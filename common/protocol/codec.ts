// Byte-level primitives shared by every protocol structure (spec "Encoding primitives").
// Writers throw EncodeError on values the caller should never produce (programmer error);
// readers never throw: the first failure is recorded, later reads return zero values, and
// finish() turns the outcome into a Result (so decoders are straight-line code).
import { type Result, ok, err } from '../result';

export type ProtocolErrorKind =
  | 'truncated' // ran out of bytes
  | 'trailing-bytes' // bytes left after the last field
  | 'bad-value' // a field holds a value the layout forbids
  | 'version' // a protocol version we do not speak
  | 'unknown-type' // a message type this protocol does not define
  | 'oversize'; // a length above the configured bound

export interface ProtocolError {
  kind: ProtocolErrorKind;
  /** The field being read when decoding failed (e.g. `hello.tuple.clientPort`). */
  field: string;
  /** Byte offset of the failing read, relative to the start of the decoded buffer. */
  offset: number;
  detail: string;
}

export function protocolError(kind: ProtocolErrorKind, field: string, offset: number, detail: string): ProtocolError {
  return { kind, field, offset, detail };
}

/** An IP address in network byte order: 4 bytes for IPv4, 16 for IPv6. */
export type IpAddr = Uint8Array;

/** The flow's 4-tuple as the gateway sees it (spec `tuple`). Both addresses share one family. */
export interface FlowTuple {
  clientAddr: IpAddr;
  clientPort: number;
  serverAddr: IpAddr;
  serverPort: number;
}

export const STR_MAX_BYTES = 255;
export const BLOB_MAX_BYTES = 0xffff;
const TWO_32 = 0x1_0000_0000;
const U64_MAX = (1n << 64n) - 1n;

/** Thrown by writers for values outside the layout; never reachable from received bytes. */
export class EncodeError extends RangeError {
  override name = 'EncodeError';
}

const utf8Encoder = new TextEncoder();
// fatal: invalid UTF-8 is an error, not U+FFFD; ignoreBOM: keep a leading BOM so decode/encode round-trips.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** The UTF-8 bytes of a `str` field, or null if `s` cannot be one (empty, > 255 bytes, lone surrogate). */
export function strBytes(s: string): Uint8Array | null {
  if (LONE_SURROGATE.test(s)) return null;
  const b = utf8Encoder.encode(s);
  return b.length >= 1 && b.length <= STR_MAX_BYTES ? b : null;
}

// The same few principal names are written into every KDC answer: keep their UTF-8 bytes
// (read-only, only ever copied into a writer). Bounded: cleared when full.
const STR_CACHE_MAX = 1024;
const strCache = new Map<string, Uint8Array | null>();

function cachedStrBytes(s: string): Uint8Array | null {
  let b = strCache.get(s);
  if (b === undefined) {
    b = strBytes(s);
    if (s.length <= 64) {
      if (strCache.size >= STR_CACHE_MAX) strCache.clear();
      strCache.set(s, b);
    }
  }
  return b;
}

/** Makes any text a valid `str` (for ERROR reasons): lone surrogates replaced, cut to 255 bytes on a character boundary, '-' if empty. */
export function fitStr(s: string): string {
  let out = '';
  let bytes = 0;
  for (const ch of s) {
    const safe = LONE_SURROGATE.test(ch) ? '\uFFFD' : ch;
    const n = utf8Encoder.encode(safe).length;
    if (bytes + n > STR_MAX_BYTES) break;
    out += safe;
    bytes += n;
  }
  return out.length > 0 ? out : '-';
}

export function addrFamily(a: IpAddr): 4 | 6 | null {
  return a.length === 4 ? 4 : a.length === 16 ? 6 : null;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function tupleEqual(a: FlowTuple, b: FlowTuple): boolean {
  return (
    a.clientPort === b.clientPort &&
    a.serverPort === b.serverPort &&
    bytesEqual(a.clientAddr, b.clientAddr) &&
    bytesEqual(a.serverAddr, b.serverAddr)
  );
}

const EMPTY = new Uint8Array(0);

export class ByteWriter {
  private buf: Uint8Array;
  private len = 0;

  constructor(initialCapacity = 256) {
    this.buf = new Uint8Array(Math.max(16, initialCapacity));
  }

  get length(): number {
    return this.len;
  }

  private reserve(n: number): number {
    const at = this.len;
    if (at + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, at + n));
      next.set(this.buf.subarray(0, at));
      this.buf.fill(0); // may have held secrets (ticket plaintext)
      this.buf = next;
    }
    this.len = at + n;
    return at;
  }

  private static checkUint(v: number, max: number, what: string): void {
    if (!Number.isInteger(v) || v < 0 || v > max) throw new EncodeError(`${what} out of range: ${v}`);
  }

  u8(v: number): this {
    ByteWriter.checkUint(v, 0xff, 'u8');
    const at = this.reserve(1); // before reading this.buf: reserve may replace it
    this.buf[at] = v;
    return this;
  }

  u16(v: number): this {
    ByteWriter.checkUint(v, 0xffff, 'u16');
    const at = this.reserve(2);
    this.buf[at] = v >>> 8;
    this.buf[at + 1] = v & 0xff;
    return this;
  }

  u32(v: number): this {
    ByteWriter.checkUint(v, 0xffff_ffff, 'u32');
    this.putU32(this.reserve(4), v);
    return this;
  }

  /** u64 from a JS number; values above 2^53-1 cannot be represented exactly and are refused. */
  u64(v: number): this {
    ByteWriter.checkUint(v, Number.MAX_SAFE_INTEGER, 'u64');
    const at = this.reserve(8);
    this.putU32(at, Math.floor(v / TWO_32));
    this.putU32(at + 4, v % TWO_32);
    return this;
  }

  /** u64 from a bigint (full 64-bit range: connection ids). */
  u64n(v: bigint): this {
    if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) throw new EncodeError(`u64 out of range: ${String(v)}`);
    const at = this.reserve(8);
    this.putU32(at, Number(v >> 32n));
    this.putU32(at + 4, Number(v & 0xffff_ffffn));
    return this;
  }

  /** Fixed-length bytes; `n` (when given) is the length the layout requires. */
  bytes(b: Uint8Array, n?: number): this {
    if (n !== undefined && b.length !== n) throw new EncodeError(`expected ${n} bytes, got ${b.length}`);
    const at = this.reserve(b.length);
    this.buf.set(b, at);
    return this;
  }

  /** A `str` field; `s` may be its UTF-8 bytes already (from strBytes, or as decoded). */
  str(s: string | Uint8Array): this {
    const b = typeof s === 'string' ? cachedStrBytes(s) : s;
    if (b === null || b.length < 1 || b.length > STR_MAX_BYTES) {
      throw new EncodeError(`str must be 1..255 bytes of well-formed UTF-8: ${typeof s === 'string' ? JSON.stringify(s.slice(0, 40)) : `${s.length} bytes`}`);
    }
    return this.u8(b.length).bytes(b);
  }

  blob(b: Uint8Array): this {
    if (b.length > BLOB_MAX_BYTES) throw new EncodeError(`blob too long: ${b.length}`);
    return this.u16(b.length).bytes(b);
  }

  addr(a: IpAddr): this {
    const fam = addrFamily(a);
    if (fam === null) throw new EncodeError(`address must be 4 or 16 bytes, got ${a.length}`);
    return this.u8(fam).bytes(a);
  }

  tuple(t: FlowTuple): this {
    if (addrFamily(t.clientAddr) !== addrFamily(t.serverAddr)) throw new EncodeError('tuple mixes address families');
    return this.addr(t.clientAddr).u16(t.clientPort).addr(t.serverAddr).u16(t.serverPort);
  }

  /** Overwrites a u32 already written at `offset` (frame length prefixes). */
  patchU32(offset: number, v: number): this {
    ByteWriter.checkUint(v, 0xffff_ffff, 'u32');
    if (offset < 0 || offset + 4 > this.len) throw new EncodeError(`patch offset ${offset} outside written bytes`);
    this.putU32(offset, v);
    return this;
  }

  /**
   * The bytes written so far, as a view (no copy): valid until the next write that outgrows the
   * capacity given to the constructor. For AADs that are a prefix of what is being written.
   */
  view(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }

  /** The written bytes (a fresh array of exactly `length` bytes). */
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }

  /**
   * finish() for a writer sized exactly: the written bytes without a copy when they fill the
   * buffer (else a copy, as finish()). The writer is left empty, holding nothing of them.
   */
  take(): Uint8Array {
    const out = this.len === this.buf.length ? this.buf : this.buf.slice(0, this.len);
    this.buf = EMPTY;
    this.len = 0;
    return out;
  }

  /** `n` zero bytes (room the caller fills in later). */
  zeros(n: number): this {
    this.buf.fill(0, this.reserve(n), this.len);
    return this;
  }

  /** Zeroes the internal buffer (after finish() when the content was secret). */
  wipe(): void {
    this.buf.fill(0);
    this.len = 0;
  }

  private putU32(at: number, v: number): void {
    this.buf[at] = v >>> 24;
    this.buf[at + 1] = (v >>> 16) & 0xff;
    this.buf[at + 2] = (v >>> 8) & 0xff;
    this.buf[at + 3] = v & 0xff;
  }
}

const ZERO4 = new Uint8Array(4);

export class ByteReader {
  private pos = 0;
  private firstError: ProtocolError | null = null;

  /** `base` is added to error offsets, for readers over a slice of a larger buffer. */
  constructor(
    private readonly buf: Uint8Array,
    private readonly base = 0,
  ) {}

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  get error(): ProtocolError | null {
    return this.firstError;
  }

  /** Records an error (only the first one is kept). Decoders call it for semantic checks too. */
  fail(kind: ProtocolErrorKind, field: string, detail: string, at = this.pos): void {
    if (this.firstError === null) this.firstError = protocolError(kind, field, this.base + at, detail);
  }

  /** Advances over n bytes and returns their start, or -1 after recording `truncated`. */
  private take(n: number, field: string): number {
    if (this.firstError !== null) return -1;
    if (n > this.buf.length - this.pos) {
      this.fail('truncated', field, `need ${n} bytes, have ${this.buf.length - this.pos}`);
      return -1;
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u8(field: string): number {
    const at = this.take(1, field);
    return at < 0 ? 0 : (this.buf[at] as number);
  }

  u16(field: string): number {
    const at = this.take(2, field);
    return at < 0 ? 0 : ((this.buf[at] as number) << 8) | (this.buf[at + 1] as number);
  }

  u32(field: string): number {
    const at = this.take(4, field);
    return at < 0 ? 0 : this.getU32(at);
  }

  u64(field: string): number {
    const at = this.take(8, field);
    if (at < 0) return 0;
    const hi = this.getU32(at);
    if (hi > 0x1f_ffff) {
      this.fail('bad-value', field, 'u64 above 2^53-1', at);
      return 0;
    }
    return hi * TWO_32 + this.getU32(at + 4);
  }

  u64n(field: string): bigint {
    const at = this.take(8, field);
    if (at < 0) return 0n;
    return (BigInt(this.getU32(at)) << 32n) | BigInt(this.getU32(at + 4));
  }

  /** n bytes, copied (decoded values never alias the input buffer). */
  bytes(n: number, field: string): Uint8Array {
    const at = this.take(n, field);
    return at < 0 ? new Uint8Array(n) : this.buf.slice(at, at + n);
  }

  str(field: string): string {
    const start = this.pos;
    const n = this.u8(field);
    if (this.firstError !== null) return '';
    if (n === 0) {
      this.fail('bad-value', field, 'empty string', start);
      return '';
    }
    const at = this.take(n, field);
    if (at < 0) return '';
    try {
      return utf8Decoder.decode(this.buf.subarray(at, at + n));
    } catch {
      this.fail('bad-value', field, 'invalid UTF-8', at);
      return '';
    }
  }

  blob(field: string): Uint8Array {
    const n = this.u16(field);
    if (this.firstError !== null) return EMPTY;
    return this.bytes(n, field);
  }

  addr(field: string): IpAddr {
    const start = this.pos;
    const fam = this.u8(field);
    if (this.firstError !== null) return ZERO4.slice();
    if (fam !== 4 && fam !== 6) {
      this.fail('bad-value', field, `address family ${fam} (want 4 or 6)`, start);
      return ZERO4.slice();
    }
    return this.bytes(fam === 4 ? 4 : 16, field);
  }

  tuple(field: string): FlowTuple {
    const start = this.pos;
    const clientAddr = this.addr(`${field}.clientAddr`);
    const clientPort = this.u16(`${field}.clientPort`);
    const serverAddr = this.addr(`${field}.serverAddr`);
    const serverPort = this.u16(`${field}.serverPort`);
    if (this.firstError === null && clientAddr.length !== serverAddr.length) {
      this.fail('bad-value', field, 'tuple mixes address families', start);
    }
    return { clientAddr, clientPort, serverAddr, serverPort };
  }

  /** The outcome: the first recorded error, `trailing-bytes` if input is left, else ok(value). */
  finish<T>(value: T, field = 'end'): Result<T, ProtocolError> {
    if (this.firstError !== null) return err(this.firstError);
    if (this.pos !== this.buf.length) {
      return err(protocolError('trailing-bytes', field, this.base + this.pos, `${this.buf.length - this.pos} bytes after the last field`));
    }
    return ok(value);
  }

  private getU32(at: number): number {
    return readU32be(this.buf, at);
  }
}

/** Big-endian u32 at `at`; the caller has checked that 4 bytes are there. */
export function readU32be(b: Uint8Array, at: number): number {
  return (((b[at] as number) << 24) >>> 0) + (((b[at + 1] as number) << 16) | ((b[at + 2] as number) << 8) | (b[at + 3] as number));
}
