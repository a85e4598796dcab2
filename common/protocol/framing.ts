// Session framing for the KDC and key-delivery TCP sessions (spec "Framing"):
// u32 length (of what follows, 2..65536) | u8 protocolVersion | u8 type | body.
// The decoder holds at most one incomplete frame, so a peer cannot make it buffer more than
// 4 + maxLength bytes (DESIGN rule 8); a bad length is unrecoverable and the error is sticky.
import { type Result, ok, err } from '../result';
import { ByteReader, ByteWriter, EncodeError, type ProtocolError, protocolError, readU32be } from './codec';

export const FRAME_PROTOCOL_VERSION = 1;
export const FRAME_HEADER_LEN = 4;
export const MIN_FRAME_LENGTH = 2;
export const MAX_FRAME_LENGTH = 65536;

export interface Frame {
  version: number;
  type: number;
  /** The body (a view into `raw`). */
  body: Uint8Array;
  /** The whole frame as received, length prefix included (transcripts and authenticators cover it). */
  raw: Uint8Array;
}

/** A frame around a body written by `writeBody` (the writer is positioned after the type byte). */
export function encodeFrame(type: number, writeBody: (w: ByteWriter) => void, version = FRAME_PROTOCOL_VERSION): Uint8Array {
  const w = new ByteWriter(128).u32(0).u8(version).u8(type);
  writeBody(w);
  const length = w.length - FRAME_HEADER_LEN;
  if (length > MAX_FRAME_LENGTH) throw new EncodeError(`frame too long: ${length}`);
  return w.patchU32(0, length).finish();
}

/** Parses exactly one complete frame (the length prefix must cover the rest of `bytes` exactly). */
export function decodeFrame(bytes: Uint8Array, maxLength = MAX_FRAME_LENGTH): Result<Frame, ProtocolError> {
  if (bytes.length < FRAME_HEADER_LEN) return err(protocolError('truncated', 'frame.length', 0, 'shorter than the length prefix'));
  const length = readU32be(bytes, 0);
  const bad = checkLength(length, maxLength);
  if (bad !== null) return err(bad);
  if (bytes.length < FRAME_HEADER_LEN + length) return err(protocolError('truncated', 'frame', bytes.length, `frame needs ${FRAME_HEADER_LEN + length} bytes`));
  if (bytes.length > FRAME_HEADER_LEN + length) return err(protocolError('trailing-bytes', 'frame', FRAME_HEADER_LEN + length, 'bytes after the frame'));
  return ok(makeFrame(bytes.slice()));
}

export interface FrameDecoderOptions {
  /** Largest accepted `length` field (default and ceiling 65536). */
  maxLength?: number;
}

export class FrameDecoder {
  private readonly maxLength: number;
  private readonly head = new Uint8Array(FRAME_HEADER_LEN);
  private headLen = 0;
  /** The frame being filled, allocated once its length is known and checked. */
  private frame: Uint8Array | null = null;
  private filled = 0;
  private failure: ProtocolError | null = null;
  /** Stream offset of the next byte, for error offsets. */
  private consumed = 0;

  constructor(opts: FrameDecoderOptions = {}) {
    const max = opts.maxLength ?? MAX_FRAME_LENGTH;
    if (!Number.isInteger(max) || max < MIN_FRAME_LENGTH || max > MAX_FRAME_LENGTH) throw new RangeError(`maxLength out of range: ${max}`);
    this.maxLength = max;
  }

  /** Bytes held of an incomplete frame (non-zero at end of stream means the peer cut a frame). */
  get buffered(): number {
    return this.frame !== null ? this.filled : this.headLen;
  }

  get error(): ProtocolError | null {
    return this.failure;
  }

  /** Feeds received bytes; returns the frames they complete, or the (sticky) error. */
  push(chunk: Uint8Array): Result<Frame[], ProtocolError> {
    if (this.failure !== null) return err(this.failure);
    const frames: Frame[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.frame === null) {
        const take = Math.min(FRAME_HEADER_LEN - this.headLen, chunk.length - pos);
        this.head.set(chunk.subarray(pos, pos + take), this.headLen);
        this.headLen += take;
        pos += take;
        if (this.headLen < FRAME_HEADER_LEN) break;
        const length = readU32be(this.head, 0);
        const bad = checkLength(length, this.maxLength, this.consumed + pos - FRAME_HEADER_LEN);
        if (bad !== null) {
          this.failure = bad;
          this.headLen = 0;
          return err(bad);
        }
        this.frame = new Uint8Array(FRAME_HEADER_LEN + length);
        this.frame.set(this.head);
        this.filled = FRAME_HEADER_LEN;
        this.headLen = 0;
      }
      const take = Math.min(this.frame.length - this.filled, chunk.length - pos);
      this.frame.set(chunk.subarray(pos, pos + take), this.filled);
      this.filled += take;
      pos += take;
      if (this.filled === this.frame.length) {
        frames.push(makeFrame(this.frame));
        this.frame = null;
      }
    }
    this.consumed += chunk.length;
    return ok(frames);
  }
}

function checkLength(length: number, maxLength: number, at = 0): ProtocolError | null {
  if (length < MIN_FRAME_LENGTH) return protocolError('bad-value', 'frame.length', at, `length ${length} below ${MIN_FRAME_LENGTH}`);
  if (length > maxLength) return protocolError('oversize', 'frame.length', at, `length ${length} above ${maxLength}`);
  return null;
}

function makeFrame(raw: Uint8Array): Frame {
  return { version: raw[4] as number, type: raw[5] as number, body: raw.subarray(6), raw };
}

/**
 * Decodes a frame's body with the reader for its type: `version` error for another protocol
 * version, `unknown-type` for a type not in `readers`, and the body must be consumed exactly.
 */
export function decodeFrameBody<T>(frame: Frame, readers: Readonly<Record<number, (r: ByteReader) => T>>): Result<T, ProtocolError> {
  if (frame.version !== FRAME_PROTOCOL_VERSION) return err(protocolError('version', 'frame.version', 4, `protocol version ${frame.version}`));
  const read = Object.prototype.hasOwnProperty.call(readers, frame.type) ? readers[frame.type] : undefined;
  if (read === undefined) return err(protocolError('unknown-type', 'frame.type', 5, `message type 0x${frame.type.toString(16)}`));
  const r = new ByteReader(frame.body, FRAME_HEADER_LEN + 2);
  const value = read(r);
  return r.finish(value, 'body');
}

/** decodeFrame then decodeFrameBody: one complete frame in `bytes`. */
export function decodeSingleFrame<T>(bytes: Uint8Array, readers: Readonly<Record<number, (r: ByteReader) => T>>): Result<{ frame: Frame; message: T }, ProtocolError> {
  const f = decodeFrame(bytes);
  if (!f.ok) return f;
  const m = decodeFrameBody(f.value, readers);
  return m.ok ? ok({ frame: f.value, message: m.value }) : m;
}
