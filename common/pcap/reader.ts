// Capture files from a byte buffer: classic pcap (either byte order, microsecond or nanosecond
// timestamps) and pcapng (any number of sections and interfaces, EPB/SPB/obsolete PB, unknown
// blocks skipped). Pure: the caller reads the file. Packet data are views into the input.
import type { Result } from '../result';
import { ok, err } from '../result';
import { read16, read16le, read32, read32le } from '../wire/bytes';
import type { WireError, WireErrorKind } from '../wire/errors';
import { wireError } from '../wire/errors';

export interface CapturedPacket {
  /** LINKTYPE_* of the interface the packet was captured on (see wire/link.ts). */
  readonly linkType: number;
  /** Nanoseconds since the Unix epoch (exact). */
  readonly timestampNs: bigint;
  /** Milliseconds since the Unix epoch (fractional; microsecond precision). */
  readonly timestampMs: number;
  /** Captured bytes: a view into the input buffer. */
  readonly data: Uint8Array;
  /** Length on the wire; more than data.length when the capture was truncated by a snaplen. */
  readonly originalLength: number;
  /** pcapng interface id within its section (0 for classic pcap). */
  readonly interfaceId: number;
}

export interface Capture {
  readonly format: 'pcap' | 'pcapng';
  readonly packets: CapturedPacket[];
}

export type CaptureFormat = Capture['format'];

const PCAP_HEADER = 24;
const PCAP_RECORD = 16;
/** Kuznetzov's patched libpcap adds ifindex, protocol, pkt type and padding to each record. */
const PCAP_RECORD_MODIFIED = 24;
const MAGIC_US = 0xa1b2c3d4;
const MAGIC_NS = 0xa1b23c4d;
const MAGIC_MODIFIED = 0xa1b2cd34;
/** Larger than any real snaplen; a record claiming more means a corrupt header. */
const MAX_RECORD = 0x4000000;

const BLOCK_SHB = 0x0a0d0d0a;
const BLOCK_IDB = 0x00000001;
const BLOCK_PB = 0x00000002;
const BLOCK_SPB = 0x00000003;
const BLOCK_EPB = 0x00000006;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
const OPT_ENDOFOPT = 0;
const OPT_IF_TSRESOL = 9;
const OPT_IF_TSOFFSET = 14;

function pcapError(kind: WireErrorKind, detail: string, offset: number, index?: number): WireError {
  return wireError('pcap', kind, detail, index === undefined ? { offset } : { offset, index });
}

/** Which format the bytes start with, or null. */
export function detectCaptureFormat(bytes: Uint8Array): CaptureFormat | null {
  if (bytes.length < 4) return null;
  const be = read32(bytes, 0);
  if (be === BLOCK_SHB) return 'pcapng';
  const le = read32le(bytes, 0);
  for (const m of [MAGIC_US, MAGIC_NS, MAGIC_MODIFIED]) if (be === m || le === m) return 'pcap';
  return null;
}

/**
 * Yields every packet in order, then stops; on a malformed or truncated record yields one error
 * and stops. The error's `index` is the number of packets read before it and `offset` the start
 * of the bad record or block. Packets before the error are still usable.
 */
export function* captureRecords(bytes: Uint8Array): Generator<Result<CapturedPacket, WireError>, void, undefined> {
  const format = detectCaptureFormat(bytes);
  if (format === 'pcap') yield* pcapRecords(bytes);
  else if (format === 'pcapng') yield* pcapngRecords(bytes);
  else yield err(pcapError(bytes.length < 4 ? 'truncated' : 'bad-magic', 'not a pcap or pcapng file', 0));
}

/** Reads a whole capture; the first malformed or truncated record makes the whole read an error. */
export function readCapture(bytes: Uint8Array): Result<Capture, WireError> {
  const format = detectCaptureFormat(bytes);
  const packets: CapturedPacket[] = [];
  for (const r of captureRecords(bytes)) {
    if (!r.ok) return r;
    packets.push(r.value);
  }
  return ok({ format: format ?? 'pcap', packets });
}

function makePacket(linkType: number, ns: bigint, data: Uint8Array, originalLength: number, interfaceId: number): CapturedPacket {
  return { linkType, timestampNs: ns, timestampMs: Number(ns / 1000n) / 1000, data, originalLength, interfaceId };
}

// ---- classic pcap ----

function* pcapRecords(bytes: Uint8Array): Generator<Result<CapturedPacket, WireError>, void, undefined> {
  if (bytes.length < PCAP_HEADER) {
    yield err(pcapError('truncated', `file header needs ${PCAP_HEADER} bytes, file has ${bytes.length}`, 0));
    return;
  }
  const le = read32(bytes, 0) !== MAGIC_US && read32(bytes, 0) !== MAGIC_NS && read32(bytes, 0) !== MAGIC_MODIFIED;
  const r16 = le ? read16le : read16;
  const r32 = le ? read32le : read32;
  const magic = r32(bytes, 0);
  const nanos = magic === MAGIC_NS;
  const recordHeader = magic === MAGIC_MODIFIED ? PCAP_RECORD_MODIFIED : PCAP_RECORD;
  const major = r16(bytes, 4);
  if (major !== 2) {
    yield err(pcapError('bad-version', `pcap version ${major}.${r16(bytes, 6)}`, 4));
    return;
  }
  const snaplen = r32(bytes, 16);
  // Low 16 bits: link type; the upper bits may carry FCS-length information we do not need
  // (IP lengths tell us where the packet ends).
  const linkType = r32(bytes, 20) & 0xffff;
  const limit = Math.max(snaplen, 262144);
  let pos = PCAP_HEADER;
  for (let index = 0; pos < bytes.length; index++) {
    if (pos + recordHeader > bytes.length) {
      yield err(pcapError('truncated', `record header needs ${recordHeader} bytes, ${bytes.length - pos} left`, pos, index));
      return;
    }
    const sec = r32(bytes, pos);
    const frac = r32(bytes, pos + 4);
    const caplen = r32(bytes, pos + 8);
    const origlen = r32(bytes, pos + 12);
    if (caplen > limit || caplen > MAX_RECORD) {
      yield err(pcapError('bad-length', `captured length ${caplen} exceeds snaplen ${snaplen}`, pos, index));
      return;
    }
    const dataStart = pos + recordHeader;
    if (dataStart + caplen > bytes.length) {
      yield err(pcapError('truncated', `record of ${caplen} bytes, ${bytes.length - dataStart} left`, pos, index));
      return;
    }
    const ns = BigInt(sec) * 1_000_000_000n + BigInt(nanos ? frac : frac * 1000);
    yield ok(makePacket(linkType, ns, bytes.subarray(dataStart, dataStart + caplen), Math.max(origlen, caplen), 0));
    pos = dataStart + caplen;
  }
}

// ---- pcapng ----

interface Interface {
  readonly linkType: number;
  readonly snaplen: number;
  /** Timestamp units: value * num / den nanoseconds. */
  readonly num: bigint;
  readonly den: bigint;
  readonly offsetNs: bigint;
}

interface Section {
  readonly r16: (b: Uint8Array, o: number) => number;
  readonly r32: (b: Uint8Array, o: number) => number;
  readonly interfaces: Interface[];
}

function* pcapngRecords(bytes: Uint8Array): Generator<Result<CapturedPacket, WireError>, void, undefined> {
  let section: Section | null = null;
  let pos = 0;
  let index = 0;
  while (pos < bytes.length) {
    if (pos + 12 > bytes.length) {
      yield err(pcapError('truncated', `block header needs 12 bytes, ${bytes.length - pos} left`, pos, index));
      return;
    }
    const rawType = read32(bytes, pos);
    if (rawType === BLOCK_SHB) {
      // The SHB's own byte-order magic tells how to read its length and everything after it.
      const bom = read32(bytes, pos + 8);
      if (bom !== BYTE_ORDER_MAGIC && read32le(bytes, pos + 8) !== BYTE_ORDER_MAGIC) {
        yield err(pcapError('bad-magic', 'section header byte-order magic', pos + 8, index));
        return;
      }
      const le = bom !== BYTE_ORDER_MAGIC;
      section = { r16: le ? read16le : read16, r32: le ? read32le : read32, interfaces: [] };
    } else if (section === null) {
      yield err(pcapError('bad-record', 'block before the first section header', pos, index));
      return;
    }
    const { r16, r32 } = section;
    const type = r32(bytes, pos);
    const total = r32(bytes, pos + 4);
    if (total < 12 || total % 4 !== 0) {
      yield err(pcapError('bad-length', `block length ${total}`, pos, index));
      return;
    }
    if (pos + total > bytes.length) {
      yield err(pcapError('truncated', `block of ${total} bytes, ${bytes.length - pos} left`, pos, index));
      return;
    }
    if (r32(bytes, pos + total - 4) !== total) {
      yield err(pcapError('bad-record', `trailing block length ${r32(bytes, pos + total - 4)} != ${total}`, pos, index));
      return;
    }
    const body = pos + 8;
    const bodyEnd = pos + total - 4;
    switch (type) {
      case BLOCK_SHB: {
        if (bodyEnd - body < 16) {
          yield err(pcapError('bad-length', 'section header too short', pos, index));
          return;
        }
        const major = r16(bytes, body + 4);
        if (major !== 1) {
          yield err(pcapError('bad-version', `pcapng version ${major}.${r16(bytes, body + 6)}`, pos, index));
          return;
        }
        break;
      }
      case BLOCK_IDB: {
        const idb = parseInterface(bytes, body, bodyEnd, section);
        if (typeof idb === 'string') {
          yield err(pcapError('bad-record', idb, pos, index));
          return;
        }
        section.interfaces.push(idb);
        break;
      }
      case BLOCK_EPB:
      case BLOCK_PB: {
        const pb = type === BLOCK_PB;
        if (bodyEnd - body < 20) {
          yield err(pcapError('bad-length', 'packet block too short', pos, index));
          return;
        }
        const ifid = pb ? r16(bytes, body) : r32(bytes, body);
        const iface = section.interfaces[ifid];
        if (iface === undefined) {
          yield err(pcapError('bad-record', `packet on undeclared interface ${ifid}`, pos, index));
          return;
        }
        const ts = (BigInt(r32(bytes, body + 4)) << 32n) | BigInt(r32(bytes, body + 8));
        const caplen = r32(bytes, body + 12);
        const origlen = r32(bytes, body + 16);
        const dataStart = body + 20;
        if (caplen > bodyEnd - dataStart) {
          yield err(pcapError('bad-length', `captured length ${caplen} overruns its block`, pos, index));
          return;
        }
        yield ok(makePacket(iface.linkType, timestamp(iface, ts), bytes.subarray(dataStart, dataStart + caplen), Math.max(origlen, caplen), ifid));
        index++;
        break;
      }
      case BLOCK_SPB: {
        const iface = section.interfaces[0];
        if (iface === undefined) {
          yield err(pcapError('bad-record', 'simple packet block without interface 0', pos, index));
          return;
        }
        if (bodyEnd - body < 4) {
          yield err(pcapError('bad-length', 'simple packet block too short', pos, index));
          return;
        }
        const origlen = r32(bytes, body);
        const room = bodyEnd - body - 4;
        let caplen = Math.min(origlen, room);
        if (iface.snaplen !== 0) caplen = Math.min(caplen, iface.snaplen);
        // SPBs carry no timestamp.
        yield ok(makePacket(iface.linkType, 0n, bytes.subarray(body + 4, body + 4 + caplen), origlen, 0));
        index++;
        break;
      }
      default:
        break; // NRB, ISB, DSB, custom...: not needed to read packets.
    }
    pos += total;
  }
}

function parseInterface(bytes: Uint8Array, body: number, end: number, section: Section): Interface | string {
  if (end - body < 8) return 'interface description too short';
  const { r16, r32 } = section;
  const linkType = r16(bytes, body);
  const snaplen = r32(bytes, body + 4);
  let num = 1000n; // default resolution: microseconds
  let den = 1n;
  let offsetNs = 0n;
  for (let o = body + 8; o + 4 <= end; ) {
    const code = r16(bytes, o);
    const len = r16(bytes, o + 2);
    if (code === OPT_ENDOFOPT) break;
    const value = o + 4;
    if (value + len > end) return `interface option ${code} overruns its block`;
    if (code === OPT_IF_TSRESOL && len >= 1) {
      const v = bytes[value]!;
      const exp = BigInt(v & 0x7f);
      if ((v & 0x80) !== 0) {
        num = 1_000_000_000n;
        den = 1n << exp;
      } else if (exp <= 9n) {
        num = 10n ** (9n - exp);
        den = 1n;
      } else {
        num = 1n;
        den = 10n ** (exp - 9n);
      }
    } else if (code === OPT_IF_TSOFFSET && len >= 8) {
      // A 64-bit signed count of seconds in section byte order.
      const first = BigInt(r32(bytes, value));
      const second = BigInt(r32(bytes, value + 4));
      const raw = r32 === read32le ? (second << 32n) | first : (first << 32n) | second;
      offsetNs = BigInt.asIntN(64, raw) * 1_000_000_000n;
    }
    o = value + ((len + 3) & ~3);
  }
  return { linkType, snaplen, num, den, offsetNs };
}

function timestamp(iface: Interface, units: bigint): bigint {
  return (units * iface.num) / iface.den + iface.offsetNs;
}
