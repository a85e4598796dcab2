// CG1 segment protection against a reference built the plain way from the spec (docs/PROTOCOL.md
// section 5): option list + tag option padded with EOL, rewriteTcp, the one-shot keystream, the
// one-shot HMAC over u64be(offset) || header (ports, checksum, tag zeroed) || ciphertext. The
// engine's path builds the packet in one piece with prepared keys and a running keystream; on any
// segment (IPv4 options, IPv6 extension headers, SACK that must shrink, foreign kind-253
// options, odd buffer offsets, any stream offset) both must give the same bytes and the same
// errors, and undo each other.
import fc from 'fast-check';
import { backendNames, getBackend } from '../../common/crypto';
import type { CryptoBackend } from '../../common/crypto/backend';
import { keystreamXor } from '../../common/crypto/keystream';
import { DEFAULT_OPTION_CONFIG, type OptionConfig, TAG_LEN, TAG_OPTION_LEN, encodeTagOption, scanOptions } from '../../common/protocol/options';
import { directionKeys, protectSegment, unprotectSegment } from '../../common/protocol/segment';
import { write16 } from '../../common/wire/bytes';
import { ipv4HeaderChecksum } from '../../common/wire/checksum';
import { type IpView, parseIp } from '../../common/wire/ip';
import { emitIpTcp, parseIpTcp, recomputeTcpChecksum, rewriteTcp } from '../../common/wire/packet';
import { assembleOptions, optionList } from '../../common/wire/option-area';
import { type TcpView, parseTcp } from '../../common/wire/tcp';
import { TCP_OPTION, emitTcpOptions, parseTcpOptions, sackOption, timestampsOption } from '../../common/wire/tcp-options';
import { ipTcpReprArb } from '../wire/arbitraries';

const hex = (b: Uint8Array | string): string => (typeof b === 'string' ? b : Buffer.from(b).toString('hex'));

function views(packet: Uint8Array): { ip: IpView; tcp: TcpView } {
  const ip = parseIp(packet);
  if (!ip.ok) throw new Error(ip.error.detail);
  const tcp = parseTcp(packet, ip.value.payloadOffset, ip.value.payloadLength);
  if (!tcp.ok) throw new Error(tcp.error.detail);
  return { ip: ip.value, tcp: tcp.value };
}

function u64be(n: number): Uint8Array {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, Math.floor(n / 2 ** 32));
  view.setUint32(4, n >>> 0);
  return out;
}

/** The SACK rule of the spec: drop blocks from the end (then the option and its NOPs) until it fits. */
function refMakeRoom(list: Uint8Array, extra: number): Uint8Array | null {
  if (list.length + extra <= 40) return list;
  const parsed = parseTcpOptions(list, 0, list.length);
  if (!parsed.ok) return null;
  const opts = parsed.value;
  const at = opts.findIndex((o) => o.kind === TCP_OPTION.SACK);
  if (at < 0) return null;
  const sack = opts[at]!;
  for (let keep = sack.data.length / 8 - 1; keep >= 0; keep--) {
    let candidate;
    if (keep > 0) {
      candidate = [...opts.slice(0, at), { kind: TCP_OPTION.SACK, data: sack.data.subarray(0, keep * 8) }, ...opts.slice(at + 1)];
    } else {
      let from = at;
      while (from > 0 && from > at - 2 && opts[from - 1]!.kind === TCP_OPTION.NOP) from--;
      candidate = [...opts.slice(0, from), ...opts.slice(at + 1)];
    }
    const bytes = emitUnpadded(candidate);
    if (bytes.length + extra <= 40) return bytes;
  }
  return null;
}

function emitUnpadded(opts: readonly { kind: number; data: Uint8Array }[]): Uint8Array {
  const out: number[] = [];
  for (const o of opts) {
    if (o.kind === TCP_OPTION.NOP || o.kind === TCP_OPTION.EOL) out.push(o.kind);
    else out.push(o.kind, o.data.length + 2, ...o.data);
  }
  return Uint8Array.from(out);
}

function refTag(backend: CryptoBackend, macKey: Uint8Array, offset: number, packet: Uint8Array, tcpStart: number, headerLength: number, tagAt: number, payload: Uint8Array): Uint8Array {
  const header = packet.slice(tcpStart, tcpStart + headerLength);
  header.fill(0, 0, 4);
  header.fill(0, 16, 18);
  header.fill(0, tagAt - tcpStart, tagAt - tcpStart + TAG_LEN);
  return backend.hmacSha256(macKey, u64be(offset), header, payload).subarray(0, TAG_LEN);
}

function withChecksum(out: Uint8Array): Uint8Array {
  const { ip, tcp } = views(out);
  recomputeTcpChecksum(out, ip, tcp);
  return out;
}

interface Keys {
  enc: Uint8Array;
  mac: Uint8Array;
}

function refProtect(backend: CryptoBackend, k: Keys, cfg: OptionConfig, packet: Uint8Array, offset: number, payloadOffset: number, strip: boolean): Uint8Array | string {
  const { ip, tcp } = views(packet);
  const area = packet.subarray(tcp.optionsStart, tcp.optionsEnd);
  const ours = scanOptions(area, cfg);
  if (!ours.ok) return 'bad-options';
  if (ours.value.tag !== null) return 'unexpected-tag';
  const existing = refMakeRoom(optionList(area), TAG_OPTION_LEN);
  if (existing === null) return 'no-option-space';
  const tagOption = encodeTagOption(cfg);
  const options = assembleOptions([existing, tagOption.bytes]);
  if (!options.ok) return 'no-option-space';
  const plain = packet.subarray(tcp.payloadStart, tcp.payloadEnd);
  const payload = strip ? new Uint8Array(0) : keystreamXor(backend, k.enc, payloadOffset, plain);
  const rebuilt = rewriteTcp(packet, ip, tcp, { options: options.value, payload });
  if (!rebuilt.ok) return 'no-option-space';
  const out = rebuilt.value;
  const tcpStart = ip.headerLength;
  const tagAt = tcpStart + 20 + existing.length + tagOption.tagOffset;
  out.set(refTag(backend, k.mac, offset, out, tcpStart, 20 + options.value.length, tagAt, payload), tagAt);
  return withChecksum(out);
}

function refUnprotect(backend: CryptoBackend, k: Keys, cfg: OptionConfig, packet: Uint8Array, offset: number, payloadOffset: number): Uint8Array | string {
  const { ip, tcp } = views(packet);
  const area = packet.subarray(tcp.optionsStart, tcp.optionsEnd);
  const ours = scanOptions(area, cfg);
  if (!ours.ok) return 'bad-options';
  const found = ours.value.tag;
  if (found === null) return 'missing-tag';
  const cipher = packet.subarray(tcp.payloadStart, tcp.payloadEnd);
  const expected = refTag(backend, k.mac, offset, packet, tcp.offset, tcp.headerLength, tcp.optionsStart + found.tagOffset, cipher);
  if (hex(expected) !== hex(found.tag)) return 'bad-tag';
  const options = assembleOptions([area.subarray(0, found.offset), optionList(area.subarray(found.offset + TAG_OPTION_LEN))]);
  if (!options.ok) return 'bad-options';
  const rebuilt = rewriteTcp(packet, ip, tcp, { options: options.value, payload: keystreamXor(backend, k.enc, payloadOffset, cipher) });
  return rebuilt.ok ? rebuilt.value : 'bad-options';
}

/** IPv4 options (NOPs) or an IPv6 destination-options header between IP and TCP. */
function withIpExtras(packet: Uint8Array, words: number): Uint8Array {
  if (words === 0) return packet;
  if (packet[0]! >> 4 === 4) {
    const extra = words * 4;
    const out = new Uint8Array(packet.length + extra);
    out.set(packet.subarray(0, 20));
    out.fill(TCP_OPTION.NOP, 20, 20 + extra); // IP option 1 is NOP too
    out.set(packet.subarray(20), 20 + extra);
    out[0] = 0x45 + words;
    write16(out, 2, out.length);
    write16(out, 10, 0);
    write16(out, 10, ipv4HeaderChecksum(out, 0, 20 + extra));
    return out;
  }
  const out = new Uint8Array(packet.length + 8);
  out.set(packet.subarray(0, 40));
  out[6] = 60; // destination options
  out.set([6, 0, 1, 4, 0, 0, 0, 0], 40); // next TCP, 8 bytes, PadN(4)
  out.set(packet.subarray(40), 48);
  write16(out, 4, out.length - 40);
  return out;
}

/** The packet at `shift` bytes into a larger buffer (frames, pools and captures do that). */
function shifted(packet: Uint8Array, shift: number): Uint8Array {
  const buf = new Uint8Array(packet.length + shift + 3).fill(0xee);
  buf.set(packet, shift);
  return buf.subarray(shift, shift + packet.length);
}

const sackArb = fc.array(fc.record({ left: fc.nat(0xffffffff), right: fc.nat(0xffffffff) }), { minLength: 1, maxLength: 4 });

/** Segments as Linux sends them (timestamps, SACK after NOPs), and anything else the arbitraries make. */
const segmentArb = fc
  .record({
    repr: ipTcpReprArb,
    linux: fc.option(fc.tuple(fc.boolean(), sackArb), { nil: null }),
    ipExtra: fc.integer({ min: 0, max: 3 }),
    shift: fc.integer({ min: 0, max: 7 }),
    extra: fc.constantFrom('none', 'foreign', 'tag', 'bad-length'),
    // Now and then a jumbo payload: past the MAC scratch (4 KiB) and the packet pool's 8 KiB.
    big: fc.option(fc.integer({ min: 3990, max: 9100 }), { nil: null, freq: 8 }),
  })
  .map(({ repr, linux, ipExtra, shift, extra, big }) => {
    let options = repr.tcp.options;
    if (linux !== null) {
      const [ts, blocks] = linux;
      const nop = { kind: TCP_OPTION.NOP, data: new Uint8Array(0) };
      options = [...(ts ? [nop, nop, timestampsOption(1, 2)] : []), nop, nop, sackOption(blocks)];
    }
    // Someone else's kind-253 option (another ExID) is carried along untouched; a tag already
    // there, or our ExID at a length of neither option, is an error.
    const added = {
      none: null,
      foreign: Uint8Array.of(0x12, 0x34, 9, 9),
      tag: encodeTagOption().bytes.subarray(2),
      'bad-length': Uint8Array.of(0x43, 0x47, 9, 9),
    }[extra];
    if (added !== null && emitTcpOptions(options).length + added.length + 2 <= 40) options = [{ kind: 253, data: added }, ...options];
    const payload = big === null ? repr.tcp.payload : Uint8Array.from({ length: big }, (_, i) => i * 7);
    const emitted = emitIpTcp({ ip: repr.ip, tcp: { ...repr.tcp, options, payload } });
    if (!emitted.ok) return null;
    return shifted(withIpExtras(emitted.value, ipExtra), shift);
  })
  .filter((p): p is Uint8Array => p !== null);

const offsetArb = fc.oneof(fc.integer({ min: 0, max: 1 << 20 }), fc.integer({ min: 2 ** 32 - 2000, max: 2 ** 32 + 2000 }), fc.constant(2 ** 38 - 100), fc.constant(2 ** 50 + 3));

describe.each(backendNames)('segment protection against the reference (%s)', (name) => {
  const backend = getBackend(name);
  const k: Keys = { enc: Uint8Array.from({ length: 32 }, (_, i) => i + 1), mac: Uint8Array.from({ length: 32 }, (_, i) => 200 - i) };
  const cfg = DEFAULT_OPTION_CONFIG;

  /** One case of the property below: protect and unprotect agree with the reference and undo each other. */
  function agreesWithReference(packet: Uint8Array, offset: number, syn: boolean, strip: boolean): void {
    const { ip, tcp } = views(packet);
    const payloadOffset = offset + (syn ? 1 : 0);
    const before = hex(packet);
    const keys = directionKeys(backend, k.enc, k.mac);
    const got = protectSegment(keys, cfg, { packet, ip, tcp, offset, payloadOffset, stripPayload: strip });
    const want = refProtect(backend, k, cfg, packet, offset, payloadOffset, strip);
    expect(got.ok ? hex(got.value) : got.error).toBe(hex(want));
    expect(hex(packet)).toBe(before); // the input is never written
    if (!got.ok) return;
    const wire = got.value;
    expect(parseIpTcp(wire).ok).toBe(true); // checksums verify
    const w = views(wire);
    const back = unprotectSegment(keys, cfg, wire, w.ip, w.tcp, offset, payloadOffset);
    const ref = refUnprotect(backend, k, cfg, wire, offset, payloadOffset);
    expect(back.ok ? hex(back.value) : back.error).toBe(hex(ref));
    if (!back.ok) return;
    const plain = parseIpTcp(back.value);
    expect(plain.ok).toBe(true);
    if (plain.ok) expect(hex(plain.value.tcp.payload)).toBe(strip ? '' : hex(tcp.payload));
  }

  test('protect and unprotect give the reference bytes and errors; unprotect undoes protect', () => {
    fc.assert(fc.property(segmentArb, offsetArb, fc.boolean(), fc.boolean(), agreesWithReference), { numRuns: 400 });
  });

  test('SACK made room for: the NOPs before it are found by walking options, not by looking for 0x01 bytes', () => {
    // Found by the property above (CI seed -311452282): the byte before the NOP that aligns SACK
    // was the last byte of an MSS option's value, 0x01, and was cut as if it were a second NOP.
    // Options: MSS (length 5), NOP, MSS 0x0701, NOP, SACK (one block), MSS 0; 41 bytes with the tag.
    const packet = Uint8Array.from([
      96, 0, 0, 0, 0, 48, 6, 0, ...new Array<number>(32).fill(0),
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 0, 0, 37, 183, 0, 0,
      2, 5, 0, 0, 0, 1, 2, 4, 7, 1, 1, 5, 10, 0, 0, 0, 0, 0, 0, 0, 0, 2, 4, 0, 0, 0, 0, 0,
    ]);
    agreesWithReference(packet, 274877906844, false, false);
    const keys = directionKeys(backend, k.enc, k.mac);
    const { ip, tcp } = views(packet);
    const got = protectSegment(keys, cfg, { packet, ip, tcp, offset: 274877906844, payloadOffset: 274877906844, stripPayload: false });
    if (!got.ok) throw new Error(got.error);
    const w = views(got.value);
    expect(hex(got.value.subarray(w.tcp.optionsStart, w.tcp.optionsStart + 14))).toBe('0205000000010204070102040000');
  });

  test('a changed bit anywhere the tag covers is refused', () => {
    fc.assert(
      fc.property(segmentArb, offsetArb, fc.nat(), fc.integer({ min: 0, max: 7 }), (packet, offset, where, bit) => {
        const { ip, tcp } = views(packet);
        const keys = directionKeys(backend, k.enc, k.mac);
        const got = protectSegment(keys, cfg, { packet, ip, tcp, offset, payloadOffset: offset, stripPayload: false });
        if (!got.ok) return;
        const wire = shifted(got.value, where % 5);
        const tcpStart = ip.headerLength;
        // Everything from the TCP header on, except the ports and the checksum.
        const covered = [...Array(wire.length - tcpStart).keys()].map((i) => tcpStart + i).filter((i) => i - tcpStart >= 4 && (i - tcpStart < 16 || i - tcpStart >= 18));
        const at = covered[where % covered.length]!;
        wire[at]! ^= 1 << bit;
        const ipv = parseIp(wire);
        const tcpv = ipv.ok ? parseTcp(wire, ipv.value.payloadOffset, ipv.value.payloadLength) : null;
        if (!ipv.ok || tcpv === null || !tcpv.ok) return; // no longer a TCP segment at all
        const back = unprotectSegment(directionKeys(backend, k.enc, k.mac), cfg, wire, ipv.value, tcpv.value, offset, offset);
        expect(back.ok).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  test('the wrong offset, MAC key or port-insensitive parts: only the ports may change', () => {
    const repr = { ip: { version: 4 as const, src: Uint8Array.of(10, 0, 0, 1), dst: Uint8Array.of(10, 0, 1, 1), ttl: 64, tos: 0, id: 1, dontFragment: true, flowLabel: 0 } };
    const emitted = emitIpTcp({ ...repr, tcp: { srcPort: 40000, dstPort: 443, seq: 5, ack: 9, flags: 0x18, window: 100, urgent: 0, options: [timestampsOption(3, 4)], payload: Uint8Array.of(1, 2, 3) } });
    if (!emitted.ok) throw new Error('emit');
    const { ip, tcp } = views(emitted.value);
    const got = protectSegment(directionKeys(backend, k.enc, k.mac), cfg, { packet: emitted.value, ip, tcp, offset: 77, payloadOffset: 77, stripPayload: false });
    if (!got.ok) throw new Error(got.error);
    const w = views(got.value);
    expect(unprotectSegment(directionKeys(backend, k.enc, k.mac), cfg, got.value, w.ip, w.tcp, 78, 78)).toEqual({ ok: false, error: 'bad-tag' });
    expect(unprotectSegment(directionKeys(backend, k.enc, k.enc), cfg, got.value, w.ip, w.tcp, 77, 77)).toEqual({ ok: false, error: 'bad-tag' });
    const natted = got.value.slice();
    write16(natted, 20, 12345); // a NAT rewrote the source port (and would fix the checksum)
    const n = views(natted);
    expect(unprotectSegment(directionKeys(backend, k.enc, k.mac), cfg, natted, n.ip, n.tcp, 77, 77).ok).toBe(true);
  });
});
