// TCP stream reassembly from captured IP packets, for verifying replays: the bytes each direction
// of each flow carried, placed by sequence number (retransmissions, overlaps and reordering
// collapse to one copy; bytes never seen are holes).
import { ipAddressToString } from '../common/wire/address';
import { parseIp } from '../common/wire/ip';
import { TCP_FLAGS, parseTcp } from '../common/wire/tcp';

export interface StreamBytes {
  /** Reassembled bytes from the first byte after the SYN (or the lowest sequence seen). */
  data: Uint8Array;
  /** 1 where a byte was seen. */
  seen: Uint8Array;
  /** Bytes seen twice with different values. */
  conflicts: number;
}

interface Pending {
  isn: number | null;
  segments: Array<{ seq: number; payload: Uint8Array }>;
}

/** "addr:port>addr:port" for the direction of a packet (display and map key). */
export function directionName(src: Uint8Array, srcPort: number, dst: Uint8Array, dstPort: number): string {
  const show = (a: Uint8Array, p: number): string => (a.length === 16 ? `[${ipAddressToString(a)}]:${p}` : `${ipAddressToString(a)}:${p}`);
  return `${show(src, srcPort)}>${show(dst, dstPort)}`;
}

/** Reassembles every TCP direction found in `packets` (bare IP packets). */
export type DirectionFilter = (src: Uint8Array, srcPort: number, dst: Uint8Array, dstPort: number) => boolean;

export function reassemble(packets: Iterable<Uint8Array>, include: DirectionFilter = () => true): Map<string, StreamBytes> {
  const pending = new Map<string, Pending>();
  for (const packet of packets) {
    const ip = parseIp(packet);
    if (!ip.ok || ip.value.protocol !== 6 || ip.value.isFragment) continue;
    const tcp = parseTcp(packet, ip.value.payloadOffset, ip.value.payloadLength);
    if (!tcp.ok) continue;
    const t = tcp.value;
    if (!include(ip.value.src, t.srcPort, ip.value.dst, t.dstPort)) continue;
    const name = directionName(ip.value.src, t.srcPort, ip.value.dst, t.dstPort);
    let p = pending.get(name);
    if (p === undefined) pending.set(name, (p = { isn: null, segments: [] }));
    if (t.flags & TCP_FLAGS.SYN) p.isn = t.seq;
    if (t.payloadLength > 0) p.segments.push({ seq: (t.seq + (t.flags & TCP_FLAGS.SYN ? 1 : 0)) >>> 0, payload: t.payload.slice() });
  }
  const out = new Map<string, StreamBytes>();
  for (const [name, p] of pending) out.set(name, assemble(p));
  return out;
}

function assemble(p: Pending): StreamBytes {
  const base = p.isn !== null ? (p.isn + 1) >>> 0 : Math.min(...p.segments.map((s) => s.seq));
  const placed = p.segments
    .map((s) => ({ at: (s.seq - base) | 0, payload: s.payload }))
    .filter((s) => s.at >= 0);
  const length = placed.reduce((n, s) => Math.max(n, s.at + s.payload.length), 0);
  const data = new Uint8Array(length);
  const seen = new Uint8Array(length);
  let conflicts = 0;
  for (const { at, payload } of placed) {
    for (let i = 0; i < payload.length; i++) {
      const b = payload[i] as number;
      if (seen[at + i]) {
        if (data[at + i] !== b) conflicts++;
      } else {
        data[at + i] = b;
        seen[at + i] = 1;
      }
    }
  }
  return { data, seen, conflicts };
}

/** Whether two reassembled streams carry the same bytes at the same places. */
export function sameStream(a: StreamBytes, b: StreamBytes): boolean {
  return Buffer.compare(a.data, b.data) === 0 && Buffer.compare(a.seen, b.seen) === 0;
}

const WINDOW = 16;
// Hoisted: a global lookup per byte is measurably slow in sandboxes such as jest's.
const imul = Math.imul;

/** 53-bit fingerprint of the 16 bytes at `at` (two FNV-1a halves). */
function fingerprint(b: Uint8Array, at: number): number {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  for (let i = 0; i < WINDOW; i++) {
    const x = b[at + i] as number;
    h1 = imul(h1 ^ x, 0x01000193) >>> 0;
    h2 = imul(h2 ^ x, 0x5bd1e995) >>> 0;
  }
  return (h1 & 0x1fffff) * 0x1_0000_0000 + h2;
}

/**
 * How many 16-byte runs of `secret` streams occur anywhere in `haystack` payloads. A run of
 * zeros or other filler that also occurs in the haystack counts too; callers use real data.
 */
export function plaintextRunsIn(secrets: Iterable<Uint8Array>, haystack: Iterable<Uint8Array>): number {
  const index = new Map<number, Array<[Uint8Array, number]>>();
  for (const h of haystack) {
    for (let at = 0; at + WINDOW <= h.length; at++) {
      const f = fingerprint(h, at);
      const list = index.get(f);
      if (list === undefined) index.set(f, [[h, at]]);
      else list.push([h, at]);
    }
  }
  let found = 0;
  for (const s of secrets) {
    for (let at = 0; at + WINDOW <= s.length; at++) {
      const hits = index.get(fingerprint(s, at));
      if (hits === undefined) continue;
      const run = s.subarray(at, at + WINDOW);
      if (hits.some(([h, ho]) => Buffer.compare(run, h.subarray(ho, ho + WINDOW)) === 0)) found++;
    }
  }
  return found;
}
