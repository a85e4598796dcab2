// Textual IPv4/IPv6 addresses: strict parsing, canonical (RFC 5952) formatting.
import type { Result } from '../result';
import { ok, err } from '../result';
import type { WireError } from './errors';
import { wireError } from './errors';

/** Dotted quad for 4 bytes, RFC 5952 text for 16 (mapped IPv4 as ::ffff:a.b.c.d). */
export function ipAddressToString(addr: Uint8Array): string {
  if (addr.length === 4) return `${addr[0]}.${addr[1]}.${addr[2]}.${addr[3]}`;
  if (addr.length !== 16) return `<invalid address: ${addr.length} bytes>`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((addr[i]! << 8) | addr[i + 1]!);
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    return `::ffff:${addr[12]}.${addr[13]}.${addr[14]}.${addr[15]}`;
  }
  // Longest run of two or more zero groups becomes "::"; the first wins a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (g: number[]): string => g.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

const DOTTED_QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseV4Into(text: string, out: Uint8Array, at: number): boolean {
  const m = DOTTED_QUAD.exec(text);
  if (m === null) return false;
  for (let i = 0; i < 4; i++) {
    const part = m[i + 1]!;
    // Leading zeros are rejected: some stacks read them as octal.
    if (part.length > 1 && part[0] === '0') return false;
    const v = Number(part);
    if (v > 255) return false;
    out[at + i] = v;
  }
  return true;
}

/** Parses groups of one side of "::" into 16-bit words; a trailing dotted quad counts as two. */
function parseGroups(text: string, allowV4Tail: boolean): number[] | null {
  if (text === '') return [];
  const parts = text.split(':');
  const words: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (allowV4Tail && i === parts.length - 1 && p.includes('.')) {
      const v4 = new Uint8Array(4);
      if (!parseV4Into(p, v4, 0)) return null;
      words.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    } else {
      if (!HEX_GROUP.test(p)) return null;
      words.push(parseInt(p, 16));
    }
  }
  return words;
}

function parseV6(text: string): Uint8Array | null {
  const halves = text.split('::');
  if (halves.length > 2) return null;
  let words: number[];
  if (halves.length === 1) {
    const all = parseGroups(text, true);
    if (all === null || all.length !== 8) return null;
    words = all;
  } else {
    const head = parseGroups(halves[0]!, false);
    const tail = parseGroups(halves[1]!, true);
    if (head === null || tail === null || head.length + tail.length > 7) return null;
    words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = words[i]! >>> 8;
    out[2 * i + 1] = words[i]! & 0xff;
  }
  return out;
}

/** Parses "a.b.c.d" to 4 bytes or an IPv6 text form to 16 bytes. Zone ids ("%eth0") are rejected. */
export function parseIpAddress(text: string): Result<Uint8Array, WireError> {
  if (text.includes(':')) {
    const v6 = parseV6(text);
    return v6 === null ? err(wireError('ipv6', 'bad-address', `not an IPv6 address: ${JSON.stringify(text)}`)) : ok(v6);
  }
  const v4 = new Uint8Array(4);
  return parseV4Into(text, v4, 0) ? ok(v4) : err(wireError('ipv4', 'bad-address', `not an IPv4 address: ${JSON.stringify(text)}`));
}
