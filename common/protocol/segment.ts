// Suite CG1 segment protection (docs/PROTOCOL.md "Segment protection").
//
// Encryption: the payload byte at 64-bit stream offset p is XORed with ChaCha20 keystream byte p,
// so a byte is always encrypted the same way however TCP re-segments or retransmits it, and the
// segment keeps its length (rules 2 and 3).
// Authentication: a deterministic PRF tag, HMAC-SHA256-96 over the 64-bit offset, the TCP header
// (ports, checksum and tag zeroed) and the ciphertext. It has no nonce to reuse, so retransmissions
// with other ACK numbers, windows or timestamps are safe (rule 2).
import type { CryptoBackend, HmacKey } from '../crypto/backend';
import { constantTimeEqualAt } from '../crypto/compare';
import { KeystreamCursor } from '../crypto/keystream-cursor';
import { type Result, ok, err } from '../result';
import { type IpView } from '../wire/ip';
import { TCP_OPTIONS_MAX, type TcpView } from '../wire/tcp';
import { beginTcpRewrite, copyBytes, finishTcpRewrite } from '../wire/packet';
import { pooledPacket, pooledWords } from '../wire/packet-pool';
import { onesComplementSum, xorWordsWithSum } from '../wire/checksum';
import { optionListEnd } from '../wire/option-area';
import { TAG_LEN, TAG_OFFSET_IN_OPTION as TAG_OFFSET, TAG_OPTION_LEN, type OptionConfig, OPTIONS_OK, type OurOptionSlots, encodeTagOption, walkOurOptions } from './options';

/** One direction's keys: the keystream (a cursor over the enc key) and the prepared MAC key. */
export interface DirectionKeys {
  keystream: KeystreamCursor;
  mac: HmacKey;
}

/** The keys of one direction from its enc and MAC keys (the MAC key is prepared, not kept). */
export function directionKeys(backend: CryptoBackend, encKey: Uint8Array, macKey: Uint8Array): DirectionKeys {
  return { keystream: new KeystreamCursor(backend, encKey), mac: backend.hmacKey(macKey) };
}

export type SegmentError =
  | 'missing-tag'
  | 'bad-tag'
  | 'bad-options'
  | 'no-option-space'
  | 'unexpected-tag';

const TCP_FIXED_HEADER = 20;
const OPT_NOP = 1;
const OPT_SACK = 5;
const SACK_BLOCK = 8;
const OFFSET_BYTES = 8;

// Reused per call (JS runs each to completion): where our options are, the MAC's fixed-size
// prefix (the 64-bit offset and a copy of the header with fields zeroed), the tag to compare.
const slots: OurOptionSlots = { request: -1, tag: -1, errorAt: -1 };
const macPrefix = new Uint8Array(OFFSET_BYTES + 60);
const expectedTag = new Uint8Array(TAG_LEN);

/**
 * Writes the CG1 tag of the TCP segment whose header is bytes[tcpStart, +headerLength), whose
 * tag bytes sit at `tagAt` (absolute; treated as zero) and whose payload is payload[payloadStart,
 * payloadEnd), to out[outAt, +12). The MAC input is u64be(offset) || header with ports, checksum
 * and tag zeroed || payload, assembled straight in the MAC's scratch where it fits.
 */
export function tagInto(
  mac: HmacKey,
  offset: number,
  bytes: Uint8Array,
  tcpStart: number,
  headerLength: number,
  tagAt: number,
  payload: Uint8Array,
  payloadStart: number,
  payloadEnd: number,
  out: Uint8Array,
  outAt: number,
): void {
  const payloadLength = payloadEnd - payloadStart;
  const prefixLength = OFFSET_BYTES + headerLength;
  const inScratch = prefixLength + payloadLength <= mac.maxMessage;
  const m = inScratch ? mac.scratch : macPrefix;
  const at = inScratch ? mac.messageStart : 0;
  const hi = Math.floor(offset / 0x1_0000_0000);
  const lo = offset >>> 0;
  m[at] = hi >>> 24;
  m[at + 1] = hi >>> 16;
  m[at + 2] = hi >>> 8;
  m[at + 3] = hi;
  m[at + 4] = lo >>> 24;
  m[at + 5] = lo >>> 16;
  m[at + 6] = lo >>> 8;
  m[at + 7] = lo;
  const h = at + OFFSET_BYTES;
  copyBytes(bytes, tcpStart, m, h, headerLength);
  // ports: NAT may rewrite them; the key already names the flow
  m[h] = m[h + 1] = m[h + 2] = m[h + 3] = 0;
  m[h + 16] = m[h + 17] = 0; // checksum
  const tagIn = h + tagAt - tcpStart;
  for (let i = 0; i < TAG_LEN; i++) m[tagIn + i] = 0;
  if (inScratch) {
    copyBytes(payload, payloadStart, m, h + headerLength, payloadLength);
    mac.finishInto(prefixLength + payloadLength, out, outAt, TAG_LEN);
  } else {
    mac.macInto([macPrefix.subarray(0, prefixLength), payload.subarray(payloadStart, payloadEnd)], out, outAt, TAG_LEN);
  }
}

/**
 * Where the SACK option sits in an options list, if anywhere, and where the NOP options right
 * before it start (found by walking options: a 0x01 byte inside another option's data is no NOP).
 */
function findSack(options: Uint8Array): { at: number; len: number; nopsFrom: number } | null {
  let i = 0;
  let nopsFrom = 0;
  while (i < options.length) {
    const kind = options[i] as number;
    if (kind === OPT_NOP) {
      i++;
      continue;
    }
    const len = options[i + 1] ?? 0;
    if (kind === 0 || len < 2) return null; // end of list, or a length that cannot be walked
    if (kind === OPT_SACK) return { at: i, len, nopsFrom };
    i += len;
    nopsFrom = i;
  }
  return null;
}

/**
 * Drops SACK blocks from the end until `extra` more bytes fit in the 40-byte option space.
 * SACK is advisory (RFC 2018) and the first block, the most recent, is kept longest; timestamps
 * and every other option are never touched.
 */
function makeRoom(options: Uint8Array, extra: number): Uint8Array | null {
  if (options.length + extra <= TCP_OPTIONS_MAX) return options;
  const sack = findSack(options);
  if (sack === null) return null;
  const head = options.subarray(0, sack.at);
  const tail = options.subarray(sack.at + sack.len);
  const blocks = (sack.len - 2) / SACK_BLOCK;
  for (let keep = blocks - 1; keep >= 0; keep--) {
    let pre = head;
    let kept = new Uint8Array(0);
    if (keep > 0) {
      kept = new Uint8Array(2 + keep * SACK_BLOCK);
      kept.set(options.subarray(sack.at, sack.at + kept.length));
      kept[1] = kept.length;
    } else {
      // With the SACK option gone, the NOP pair that aligned it goes too (at most two NOPs).
      pre = head.subarray(0, Math.max(sack.nopsFrom, head.length - 2));
    }
    if (pre.length + kept.length + tail.length + extra <= TCP_OPTIONS_MAX) return Uint8Array.from([...pre, ...kept, ...tail]);
  }
  return null;
}

/**
 * Where the payload's keystream is (prefetch), and the packet allocator that lines the new
 * packet's payload up with it for word-wise XOR (pooledPacket's phase). Set just before each
 * beginTcpRewrite; JS runs each call to completion.
 */
let keystreamAt = -1;
let payloadPhase = 0;
const allocLinedUp = (length: number): Uint8Array => pooledPacket(length, payloadPhase);

function prepareKeystream(keystream: KeystreamCursor, offset: number, length: number, payloadAt: number): void {
  keystreamAt = keystream.prefetch(offset, length);
  payloadPhase = keystreamAt < 0 ? 0 : (keystreamAt - payloadAt) & 3;
}

/**
 * Writes the payload XOR the keystream into the new packet and returns the payload's
 * one's-complement sum: copied natively, then XORed and summed in one pass of 32-bit words
 * where prepareKeystream found the keystream prefetched.
 */
function xorPayload(keystream: KeystreamCursor, offset: number, src: Uint8Array, srcAt: number, length: number, out: Uint8Array, outAt: number): number {
  const words = keystreamAt < 0 ? null : pooledWords(out);
  if (words !== null) {
    copyBytes(src, srcAt, out, outAt, length);
    return xorWordsWithSum(out, words, outAt, keystream.keystreamBytes, keystream.keystreamWords, keystreamAt, length);
  }
  keystream.xorInto(offset, src, srcAt, length, out, outAt);
  return onesComplementSum(out, outAt, outAt + length);
}

// The tag option (zero tag) is the same for every segment of a configuration: build it once.
const tagOptions = new WeakMap<OptionConfig, ReturnType<typeof encodeTagOption>>();
function tagOptionFor(cfg: OptionConfig): ReturnType<typeof encodeTagOption> {
  let t = tagOptions.get(cfg);
  if (t === undefined) tagOptions.set(cfg, (t = encodeTagOption(cfg)));
  return t;
}

export interface ProtectInput {
  packet: Uint8Array;
  ip: IpView;
  tcp: TcpView;
  /** Stream offset of the segment's sequence number (authenticated by the tag). */
  offset: number;
  /** Stream offset of the first payload byte (offset + 1 on a SYN): the keystream position. */
  payloadOffset: number;
  /** Send the segment without its payload (a probe or spurious resend of acknowledged bytes). */
  stripPayload: boolean;
}

/**
 * Encrypts the payload and adds the tag option after the segment's own options (SACK blocks are
 * dropped if that is the only way to make room). Returns the new IP packet, built in one piece:
 * headers copied, ciphertext written straight into place, tag, then the TCP checksum once.
 * The input packet is never written.
 */
export function protectSegment(keys: DirectionKeys, cfg: OptionConfig, input: ProtectInput): Result<Uint8Array, SegmentError> {
  const { packet, ip, tcp, offset } = input;
  if (walkOurOptions(packet, tcp.optionsStart, tcp.optionsEnd, cfg, slots) !== OPTIONS_OK) return err('bad-options');
  if (slots.tag >= 0) return err('unexpected-tag');
  let existing = packet;
  let existingStart = tcp.optionsStart;
  let existingLength = optionListEnd(packet, tcp.optionsStart, tcp.optionsEnd) - tcp.optionsStart;
  if (existingLength + TAG_OPTION_LEN > TCP_OPTIONS_MAX) {
    const room = makeRoom(packet.subarray(existingStart, existingStart + existingLength), TAG_OPTION_LEN);
    if (room === null) return err('no-option-space');
    existing = room;
    existingStart = 0;
    existingLength = room.length;
  }
  const tagOption = tagOptionFor(cfg);
  const optionsLength = (existingLength + TAG_OPTION_LEN + 3) & ~3;
  const payloadLength = input.stripPayload ? 0 : tcp.payloadEnd - tcp.payloadStart;
  const tcpStart = ip.headerLength;
  const optionsAt = tcpStart + TCP_FIXED_HEADER;
  prepareKeystream(keys.keystream, input.payloadOffset, payloadLength, optionsAt + optionsLength);
  // The segment's own options usually stay as they are, copied along with the headers.
  const kept = existing === packet ? existingLength : 0;
  const begun = beginTcpRewrite(packet, ip, tcp, optionsLength, payloadLength, allocLinedUp, kept);
  if (!begun.ok) return err('no-option-space');
  const out = begun.value;
  if (kept === 0) copyBytes(existing, existingStart, out, optionsAt, existingLength);
  const tagOptionAt = optionsAt + existingLength;
  copyBytes(tagOption.bytes, 0, out, tagOptionAt, TAG_OPTION_LEN);
  out.fill(0, tagOptionAt + TAG_OPTION_LEN, optionsAt + optionsLength); // EOL padding
  const payloadAt = optionsAt + optionsLength;
  const payloadSum = xorPayload(keys.keystream, input.payloadOffset, packet, tcp.payloadStart, payloadLength, out, payloadAt);
  const tagAt = tagOptionAt + tagOption.tagOffset;
  tagInto(keys.mac, offset, out, tcpStart, TCP_FIXED_HEADER + optionsLength, tagAt, out, payloadAt, out.length, out, tagAt);
  finishTcpRewrite(out, ip, payloadSum);
  return ok(out);
}

/**
 * Verifies the tag, removes the tag option and decrypts the payload. Returns the new IP packet
 * (built as protectSegment builds it); the input packet is never written.
 */
export function unprotectSegment(
  keys: DirectionKeys,
  cfg: OptionConfig,
  packet: Uint8Array,
  ip: IpView,
  tcp: TcpView,
  offset: number,
  payloadOffset: number,
): Result<Uint8Array, SegmentError> {
  if (walkOurOptions(packet, tcp.optionsStart, tcp.optionsEnd, cfg, slots) !== OPTIONS_OK) return err('bad-options');
  const tagOptionAt = slots.tag;
  if (tagOptionAt < 0) return err('missing-tag');
  const tagAt = tagOptionAt + TAG_OFFSET;
  tagInto(keys.mac, offset, packet, tcp.offset, tcp.headerLength, tagAt, packet, tcp.payloadStart, tcp.payloadEnd, expectedTag, 0);
  if (!constantTimeEqualAt(expectedTag, 0, packet, tagAt, TAG_LEN)) return err('bad-tag');
  // The options before ours as they are, then the list after ours up to its end (padding dropped).
  const beforeLength = tagOptionAt - tcp.optionsStart;
  const afterStart = tagOptionAt + TAG_OPTION_LEN;
  const afterLength = optionListEnd(packet, afterStart, tcp.optionsEnd) - afterStart;
  const optionsLength = (beforeLength + afterLength + 3) & ~3;
  const payloadLength = tcp.payloadEnd - tcp.payloadStart;
  const optionsAt = ip.headerLength + TCP_FIXED_HEADER;
  prepareKeystream(keys.keystream, payloadOffset, payloadLength, optionsAt + optionsLength);
  const begun = beginTcpRewrite(packet, ip, tcp, optionsLength, payloadLength, allocLinedUp, beforeLength);
  if (!begun.ok) return err('bad-options');
  const out = begun.value;
  copyBytes(packet, afterStart, out, optionsAt + beforeLength, afterLength);
  out.fill(0, optionsAt + beforeLength + afterLength, optionsAt + optionsLength); // EOL padding
  const payloadSum = xorPayload(keys.keystream, payloadOffset, packet, tcp.payloadStart, payloadLength, out, optionsAt + optionsLength);
  finishTcpRewrite(out, ip, payloadSum);
  return ok(out);
}
