// Suite CG1 segment protection (docs/PROTOCOL.md "Segment protection").
//
// Encryption: the payload byte at 64-bit stream offset p is XORed with ChaCha20 keystream byte p,
// so a byte is always encrypted the same way however TCP re-segments or retransmits it, and the
// segment keeps its length (rules 2 and 3).
// Authentication: a deterministic PRF tag, HMAC-SHA256-96 over the 64-bit offset, the TCP header
// (ports, checksum and tag zeroed) and the ciphertext. It has no nonce to reuse, so retransmissions
// with other ACK numbers, windows or timestamps are safe (rule 2).
import type { CryptoBackend } from '../crypto/backend';
import { constantTimeEqual } from '../crypto/compare';
import type { KeystreamCursor } from '../crypto/keystream-cursor';
import { type Result, ok, err } from '../result';
import { type IpView } from '../wire/ip';
import { TCP_OPTIONS_MAX, type TcpView } from '../wire/tcp';
import { rewriteTcp } from '../wire/packet';
import { assembleOptions, optionList } from '../wire/option-area';
import { checksumAdjustAt } from '../wire/checksum';
import { read16, write16 } from '../wire/bytes';
import { TAG_LEN, TAG_OPTION_LEN, type OptionConfig, encodeTagOption, scanOptions } from './options';

/** One direction's keys: the keystream (a cursor over the enc key) and the MAC key. */
export interface DirectionKeys {
  keystream: KeystreamCursor;
  mac: Uint8Array;
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

// Reused per call: the MAC input prefix and a copy of the header with fields zeroed.
const offsetPrefix = new Uint8Array(8);
const headerScratch = new Uint8Array(60);

function writeOffset(offset: number): Uint8Array {
  const hi = Math.floor(offset / 0x1_0000_0000);
  const lo = offset >>> 0;
  offsetPrefix[0] = hi >>> 24;
  offsetPrefix[1] = hi >>> 16;
  offsetPrefix[2] = hi >>> 8;
  offsetPrefix[3] = hi;
  offsetPrefix[4] = lo >>> 24;
  offsetPrefix[5] = lo >>> 16;
  offsetPrefix[6] = lo >>> 8;
  offsetPrefix[7] = lo;
  return offsetPrefix;
}

/**
 * The CG1 tag of the TCP segment whose header starts at `tcpStart`, whose tag bytes sit at
 * `tagAt` (absolute) and whose payload is `payload`. The tag bytes are treated as zero.
 */
export function computeTag(
  backend: CryptoBackend,
  macKey: Uint8Array,
  offset: number,
  packet: Uint8Array,
  tcpStart: number,
  headerLength: number,
  tagAt: number,
  payload: Uint8Array,
): Uint8Array {
  const header = headerScratch.subarray(0, headerLength);
  header.set(packet.subarray(tcpStart, tcpStart + headerLength));
  header.fill(0, 0, 4); // ports: NAT may rewrite them; the key already names the flow
  header.fill(0, 16, 18); // checksum
  header.fill(0, tagAt - tcpStart, tagAt - tcpStart + TAG_LEN);
  return backend.hmacSha256(macKey, writeOffset(offset), header, payload).subarray(0, TAG_LEN);
}

/** Where the SACK option sits in an options list, if anywhere. */
function findSack(options: Uint8Array): { at: number; len: number } | null {
  let i = 0;
  while (i < options.length) {
    const kind = options[i] as number;
    if (kind === OPT_NOP) {
      i++;
      continue;
    }
    const len = options[i + 1] as number;
    if (kind === OPT_SACK) return { at: i, len };
    i += len;
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
      // With the SACK option gone, the NOP pair that aligned it goes too.
      let end = head.length;
      while (end > 0 && end > head.length - 2 && head[end - 1] === OPT_NOP) end--;
      pre = head.subarray(0, end);
    }
    if (pre.length + kept.length + tail.length + extra <= TCP_OPTIONS_MAX) return Uint8Array.from([...pre, ...kept, ...tail]);
  }
  return null;
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

/** Encrypts the payload and adds the tag option. Returns the new IP packet. */
export function protectSegment(
  backend: CryptoBackend,
  keys: DirectionKeys,
  cfg: OptionConfig,
  input: ProtectInput,
): Result<Uint8Array, SegmentError> {
  const { packet, ip, tcp, offset } = input;
  const optionsArea = packet.subarray(tcp.optionsStart, tcp.optionsEnd);
  const ours = scanOptions(optionsArea, cfg);
  if (!ours.ok) return err('bad-options');
  if (ours.value.tag !== null) return err('unexpected-tag');
  const existing = makeRoom(optionList(optionsArea), TAG_OPTION_LEN);
  if (existing === null) return err('no-option-space');
  const tagOption = tagOptionFor(cfg);
  const assembled = assembleOptions([existing, tagOption.bytes]);
  if (!assembled.ok) return err('no-option-space');
  const options = assembled.value;
  const plain = packet.subarray(tcp.payloadStart, tcp.payloadEnd);
  const payload = input.stripPayload ? new Uint8Array(0) : keys.keystream.xor(input.payloadOffset, plain);
  const rebuilt = rewriteTcp(packet, ip, tcp, { options, payload });
  if (!rebuilt.ok) return err('no-option-space');
  const out = rebuilt.value;
  const tcpStart = ip.headerLength;
  const headerLength = TCP_FIXED_HEADER + options.length;
  const tagAt = tcpStart + TCP_FIXED_HEADER + existing.length + tagOption.tagOffset;
  const tag = computeTag(backend, keys.mac, offset, out, tcpStart, headerLength, tagAt, payload);
  // The checksum was computed over a zero tag; fold the tag in word by word (RFC 1624).
  let sum = read16(out, tcpStart + 16);
  for (let i = 0; i < TAG_LEN; i += 2) {
    sum = checksumAdjustAt(sum, tagAt - tcpStart + i, 0, ((tag[i] as number) << 8) | (tag[i + 1] as number));
  }
  write16(out, tcpStart + 16, sum);
  out.set(tag, tagAt);
  return ok(out);
}

/** Verifies the tag, decrypts the payload and removes the tag option. Returns the new IP packet. */
export function unprotectSegment(
  backend: CryptoBackend,
  keys: DirectionKeys,
  cfg: OptionConfig,
  packet: Uint8Array,
  ip: IpView,
  tcp: TcpView,
  offset: number,
  payloadOffset: number,
): Result<Uint8Array, SegmentError> {
  const optionsArea = packet.subarray(tcp.optionsStart, tcp.optionsEnd);
  const ours = scanOptions(optionsArea, cfg);
  if (!ours.ok) return err('bad-options');
  const found = ours.value.tag;
  if (found === null) return err('missing-tag');
  const tcpStart = tcp.offset;
  const cipher = packet.subarray(tcp.payloadStart, tcp.payloadEnd);
  const expected = computeTag(backend, keys.mac, offset, packet, tcpStart, tcp.headerLength, tcp.optionsStart + found.tagOffset, cipher);
  if (!constantTimeEqual(expected, found.tag)) return err('bad-tag');
  const before = optionsArea.subarray(0, found.offset);
  const after = optionList(optionsArea.subarray(found.offset + TAG_OPTION_LEN));
  const assembled = assembleOptions([before, after]);
  if (!assembled.ok) return err('bad-options');
  const options = assembled.value;
  const payload = keys.keystream.xor(payloadOffset, cipher);
  const rebuilt = rewriteTcp(packet, ip, tcp, { options, payload });
  return rebuilt.ok ? ok(rebuilt.value) : err('bad-options');
}
