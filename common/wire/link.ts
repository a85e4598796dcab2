// Link layers we capture on: find where the IP packet starts inside a frame.
import type { Result } from '../result';
import { ok, err } from '../result';
import { read16, read32, read32le } from './bytes';
import type { WireError } from './errors';
import { wireError } from './errors';

/** LINKTYPE_* values as they appear in pcap/pcapng headers (tcpdump.org/linktypes.html). */
export const LINKTYPE = {
  /** BSD loopback: 4-byte address family in host byte order. */
  NULL: 0,
  ETHERNET: 1,
  /** Raw IPv4 or IPv6, version taken from the first nibble. */
  RAW: 101,
  /** DLT_RAW as some platforms wrote it into old files (12 on most, 14 on OpenBSD). */
  RAW_DLT12: 12,
  RAW_DLT14: 14,
  /** OpenBSD loopback: 4-byte address family in network byte order. */
  LOOP: 108,
  LINUX_SLL: 113,
  IPV4: 228,
  IPV6: 229,
  LINUX_SLL2: 276,
} as const;

export const ETHERTYPE = {
  IPV4: 0x0800,
  ARP: 0x0806,
  VLAN: 0x8100,
  IPV6: 0x86dd,
  QINQ: 0x88a8,
  /** Pre-standard Q-in-Q TPID still emitted by some switches. */
  QINQ_LEGACY: 0x9100,
} as const;

export interface LinkFrame {
  /** Offset of the first byte of the IP header in the frame. */
  readonly ipOffset: number;
  /** 0x0800 or 0x86dd: the ethertype after all VLAN tags (synthesised for raw/loopback links). */
  readonly etherType: number;
  /** 802.1Q/802.1ad TCIs, outermost first (VID = tci & 0xfff). Shared empty array when untagged. */
  readonly vlanTags: readonly number[];
}

const NO_TAGS: readonly number[] = Object.freeze([]);
const ETH_HEADER = 14;
const SLL_HEADER = 16;
const SLL2_HEADER = 20;
const LOOPBACK_HEADER = 4;

function isTagTpid(t: number): boolean {
  return t === ETHERTYPE.VLAN || t === ETHERTYPE.QINQ || t === ETHERTYPE.QINQ_LEGACY;
}

/**
 * Walks VLAN tags starting with the ethertype field at `typeOffset`, then checks for IP.
 * Each tag is TPID(2, already read as the type) + TCI(2) + next type(2).
 */
function afterEtherType(bytes: Uint8Array, typeOffset: number): Result<LinkFrame, WireError> {
  let type = read16(bytes, typeOffset);
  let next = typeOffset + 2;
  let tags: number[] | undefined;
  while (isTagTpid(type)) {
    if (next + 4 > bytes.length) {
      return err(wireError('link', 'truncated', `VLAN tag at ${next - 2} needs 4 bytes`, { offset: next }));
    }
    (tags ??= []).push(read16(bytes, next));
    type = read16(bytes, next + 2);
    next += 4;
  }
  if (type !== ETHERTYPE.IPV4 && type !== ETHERTYPE.IPV6) {
    return err(wireError('link', 'not-ip', `ethertype 0x${type.toString(16).padStart(4, '0')}`, { offset: next - 2 }));
  }
  return ok({ ipOffset: next, etherType: type, vlanTags: tags ?? NO_TAGS });
}

function fromVersionNibble(bytes: Uint8Array, ipOffset: number): Result<LinkFrame, WireError> {
  if (bytes.length <= ipOffset) return err(wireError('link', 'truncated', 'no IP header', { offset: ipOffset }));
  const version = bytes[ipOffset]! >>> 4;
  if (version === 4) return ok({ ipOffset, etherType: ETHERTYPE.IPV4, vlanTags: NO_TAGS });
  if (version === 6) return ok({ ipOffset, etherType: ETHERTYPE.IPV6, vlanTags: NO_TAGS });
  return err(wireError('link', 'not-ip', `raw packet with IP version ${version}`, { offset: ipOffset }));
}

// BSD AF_INET is 2 everywhere; AF_INET6 differs by OS (24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS).
function fromAddressFamily(af: number): number {
  if (af === 2) return ETHERTYPE.IPV4;
  if (af === 24 || af === 28 || af === 30) return ETHERTYPE.IPV6;
  return 0;
}

function loopback(bytes: Uint8Array, networkOrder: boolean): Result<LinkFrame, WireError> {
  if (bytes.length < LOOPBACK_HEADER) return err(wireError('link', 'truncated', 'loopback header needs 4 bytes'));
  // DLT_NULL is host byte order of the capturing machine, which the file does not record:
  // accept whichever order yields a known family.
  const etherType = networkOrder
    ? fromAddressFamily(read32(bytes, 0))
    : fromAddressFamily(read32le(bytes, 0)) || fromAddressFamily(read32(bytes, 0));
  if (etherType === 0) return err(wireError('link', 'not-ip', 'loopback address family is not IP'));
  return ok({ ipOffset: LOOPBACK_HEADER, etherType, vlanTags: NO_TAGS });
}

/** Finds the IP packet in a frame of the given link type. Never throws. */
export function parseLink(linkType: number, bytes: Uint8Array): Result<LinkFrame, WireError> {
  switch (linkType) {
    case LINKTYPE.ETHERNET:
      if (bytes.length < ETH_HEADER) return err(wireError('link', 'truncated', `Ethernet header needs ${ETH_HEADER} bytes`));
      return afterEtherType(bytes, 12);
    case LINKTYPE.RAW:
    case LINKTYPE.RAW_DLT12:
    case LINKTYPE.RAW_DLT14:
      return fromVersionNibble(bytes, 0);
    case LINKTYPE.IPV4:
      return ok({ ipOffset: 0, etherType: ETHERTYPE.IPV4, vlanTags: NO_TAGS });
    case LINKTYPE.IPV6:
      return ok({ ipOffset: 0, etherType: ETHERTYPE.IPV6, vlanTags: NO_TAGS });
    case LINKTYPE.LINUX_SLL:
      // packet type(2) ARPHRD(2) addr len(2) addr(8) protocol(2)
      if (bytes.length < SLL_HEADER) return err(wireError('link', 'truncated', `SLL header needs ${SLL_HEADER} bytes`));
      return afterEtherType(bytes, 14);
    case LINKTYPE.LINUX_SLL2: {
      // protocol(2) reserved(2) ifindex(4) ARPHRD(2) packet type(1) addr len(1) addr(8)
      if (bytes.length < SLL2_HEADER) return err(wireError('link', 'truncated', `SLL2 header needs ${SLL2_HEADER} bytes`));
      const type = read16(bytes, 0);
      if (type !== ETHERTYPE.IPV4 && type !== ETHERTYPE.IPV6) {
        return err(wireError('link', 'not-ip', `SLL2 protocol 0x${type.toString(16).padStart(4, '0')}`));
      }
      return ok({ ipOffset: SLL2_HEADER, etherType: type, vlanTags: NO_TAGS });
    }
    case LINKTYPE.NULL:
      return loopback(bytes, false);
    case LINKTYPE.LOOP:
      return loopback(bytes, true);
    default:
      return err(wireError('link', 'unsupported', `link type ${linkType}`));
  }
}

/** True for the link types parseLink understands. */
export function isSupportedLinkType(linkType: number): boolean {
  return (Object.values(LINKTYPE) as number[]).includes(linkType);
}
