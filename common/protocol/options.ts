// ciphergate's two TCP options (spec "TCP options"): the 14-byte encryption request in the SYN
// and the 16-byte tag option. Both are RFC 6994 experimental options: one configurable kind
// (default 253) and one 16-bit ExID (default 0x4347 "CG"); the length tells them apart.
import { type Result, ok, err } from '../result';
import { OPTION_ABSENT, findOption } from '../wire/tcp-options';
import { ByteReader, ByteWriter, EncodeError, type ProtocolError, protocolError } from './codec';

export interface OptionConfig {
  kind: number;
  exid: number;
}

export const DEFAULT_OPTION_CONFIG: Readonly<OptionConfig> = Object.freeze({ kind: 253, exid: 0x4347 });

export const REQUEST_OPTION_LEN = 14;
export const TAG_OPTION_LEN = 16;
export const TAG_LEN = 12;
/** Where the 12 tag bytes start inside the tag option (after kind, len, exid). */
export const TAG_OFFSET_IN_OPTION = 4;
export const OPTION_PROTOCOL_VERSION = 1;
const REQUEST_TYPE = 1;

/** Cipher suites. The request option's `suites` bitmask has bit (suite - 1) set per offered suite. */
export enum Suite {
  /** ChaCha20 keystream by 64-bit stream offset + HMAC-SHA256-96 tag. */
  CG1 = 1,
}

export function suiteBit(suite: Suite): number {
  return 1 << (suite - 1);
}

export interface RequestOption {
  /** Protocol version from the high nibble of verType (1 today); the engine decides what to do with others. */
  version: number;
  /** Bitmask of offered suites (bit 0 = CG1). */
  suites: number;
  /** Random 64-bit connection id that names the flow to the agent and the KDC. */
  connId: bigint;
}

function checkConfig(cfg: OptionConfig): void {
  if (!Number.isInteger(cfg.kind) || cfg.kind < 2 || cfg.kind > 255) throw new EncodeError(`option kind out of range: ${cfg.kind}`);
  if (!Number.isInteger(cfg.exid) || cfg.exid < 0 || cfg.exid > 0xffff) throw new EncodeError(`ExID out of range: ${cfg.exid}`);
}

export function encodeRequestOption(opt: RequestOption, cfg: OptionConfig = DEFAULT_OPTION_CONFIG): Uint8Array {
  checkConfig(cfg);
  if (!Number.isInteger(opt.version) || opt.version < 1 || opt.version > 15) throw new EncodeError(`version out of range: ${opt.version}`);
  return new ByteWriter(REQUEST_OPTION_LEN)
    .u8(cfg.kind)
    .u8(REQUEST_OPTION_LEN)
    .u16(cfg.exid)
    .u8((opt.version << 4) | REQUEST_TYPE)
    .u8(opt.suites)
    .u64n(opt.connId)
    .finish();
}

/**
 * The tag option with a zero tag. The MAC is computed over the header with these zeros in
 * place, then written at `tagOffset` (relative to the option's first byte).
 */
export function encodeTagOption(cfg: OptionConfig = DEFAULT_OPTION_CONFIG): { bytes: Uint8Array; tagOffset: number } {
  checkConfig(cfg);
  const bytes = new ByteWriter(TAG_OPTION_LEN).u8(cfg.kind).u8(TAG_OPTION_LEN).u16(cfg.exid).bytes(new Uint8Array(TAG_LEN)).finish();
  return { bytes, tagOffset: TAG_OFFSET_IN_OPTION };
}

export interface FoundRequestOption extends RequestOption {
  /** Offset of the option's kind byte within the scanned options area. */
  offset: number;
  length: typeof REQUEST_OPTION_LEN;
}

export interface FoundTagOption {
  /** The 12 tag bytes (a copy). */
  tag: Uint8Array;
  /** Offset of the option's kind byte within the scanned options area. */
  offset: number;
  length: typeof TAG_OPTION_LEN;
  /** Offset of the tag bytes within the scanned options area (offset + 4): zero these for the MAC. */
  tagOffset: number;
}

export interface OurOptions {
  request: FoundRequestOption | null;
  tag: FoundTagOption | null;
}

/** walkOurOptions outcomes: OPTIONS_OK, or why the area is not acceptable. */
export const OPTIONS_OK = 0;
export const OPTIONS_MALFORMED = 1;
export const OPTIONS_BAD_LENGTH = 2;
export const OPTIONS_BAD_TYPE = 3;
export const OPTIONS_REQUEST_TWICE = 4;
export const OPTIONS_TAG_TWICE = 5;
export type OptionsWalk = 0 | 1 | 2 | 3 | 4 | 5;

/** Where walkOurOptions found things: absolute offsets of the options' kind bytes, or -1. */
export interface OurOptionSlots {
  request: number;
  tag: number;
  /** Where the walk failed (absolute), when it did. */
  errorAt: number;
}

/**
 * The one walk over an options area [start, end) of `bytes` for our options, without
 * allocating (the per-packet path): fills `slots` and returns OPTIONS_OK, or names the problem.
 * Options of our kind with another ExID (or too short to carry one) are someone else's and are
 * skipped; nothing after an EOL is looked at. Problems: the area cannot be walked, our ExID with
 * a length other than 14/16, a request with a type nibble other than 1, either option twice.
 */
export function walkOurOptions(bytes: Uint8Array, start: number, end: number, cfg: OptionConfig, slots: OurOptionSlots): OptionsWalk {
  slots.request = -1;
  slots.tag = -1;
  slots.errorAt = -1;
  let from = start;
  while (true) {
    const at = findOption(bytes, from, end, cfg.kind, cfg.exid);
    if (at === OPTION_ABSENT) return OPTIONS_OK;
    slots.errorAt = at < 0 ? from : at;
    if (at < 0) return OPTIONS_MALFORMED;
    const len = bytes[at + 1] as number;
    if (len === REQUEST_OPTION_LEN) {
      if (slots.request >= 0) return OPTIONS_REQUEST_TWICE;
      if (((bytes[at + 4] as number) & 0x0f) !== REQUEST_TYPE) return OPTIONS_BAD_TYPE;
      slots.request = at;
    } else if (len === TAG_OPTION_LEN) {
      if (slots.tag >= 0) return OPTIONS_TAG_TWICE;
      slots.tag = at;
    } else {
      return OPTIONS_BAD_LENGTH;
    }
    slots.errorAt = -1;
    from = at + len;
  }
}

const WALK_ERRORS: Record<Exclude<OptionsWalk, 0>, [field: string, detail: string]> = {
  [OPTIONS_MALFORMED]: ['options', 'option space is malformed'],
  [OPTIONS_BAD_LENGTH]: ['option.len', 'our ExID with a length other than 14 or 16'],
  [OPTIONS_BAD_TYPE]: ['requestOption.verType', 'request type is not 1'],
  [OPTIONS_REQUEST_TWICE]: ['requestOption', 'request option appears twice'],
  [OPTIONS_TAG_TWICE]: ['tagOption', 'tag option appears twice'],
};

/**
 * Finds our options in a TCP options area (the bytes after the 20-byte fixed header), with the
 * rules of walkOurOptions, and decodes them.
 */
export function scanOptions(options: Uint8Array, cfg: OptionConfig = DEFAULT_OPTION_CONFIG): Result<OurOptions, ProtocolError> {
  const slots: OurOptionSlots = { request: -1, tag: -1, errorAt: -1 };
  const walk = walkOurOptions(options, 0, options.length, cfg, slots);
  if (walk !== OPTIONS_OK) {
    const [field, detail] = WALK_ERRORS[walk];
    return err(protocolError('bad-value', field, slots.errorAt, detail));
  }
  const out: OurOptions = { request: null, tag: null };
  if (slots.request >= 0) {
    const at = slots.request;
    const r = new ByteReader(options.subarray(at + 4, at + REQUEST_OPTION_LEN), at + 4);
    const verType = r.u8('requestOption.verType');
    const suites = r.u8('requestOption.suites');
    const connId = r.u64n('requestOption.connId');
    const done = r.finish({ version: verType >> 4, suites, connId });
    if (!done.ok) return done;
    out.request = { ...done.value, offset: at, length: REQUEST_OPTION_LEN };
  }
  if (slots.tag >= 0) {
    const at = slots.tag;
    out.tag = { tag: new Uint8Array(options.subarray(at + TAG_OFFSET_IN_OPTION, at + TAG_OPTION_LEN)), offset: at, length: TAG_OPTION_LEN, tagOffset: at + TAG_OFFSET_IN_OPTION };
  }
  return ok(out);
}

/** The request option in an options area, null when absent. */
export function findRequestOption(options: Uint8Array, cfg: OptionConfig = DEFAULT_OPTION_CONFIG): Result<FoundRequestOption | null, ProtocolError> {
  const s = scanOptions(options, cfg);
  return s.ok ? ok(s.value.request) : s;
}

/** The tag option in an options area, null when absent. */
export function findTagOption(options: Uint8Array, cfg: OptionConfig = DEFAULT_OPTION_CONFIG): Result<FoundTagOption | null, ProtocolError> {
  const s = scanOptions(options, cfg);
  return s.ok ? ok(s.value.tag) : s;
}
