// Typed errors for every wire codec. Parsers on the per-packet path return these in a Result;
// they never throw.

export type WireLayer = 'link' | 'ipv4' | 'ipv6' | 'tcp' | 'tcp-options' | 'pcap';

export type WireErrorKind =
  /** The buffer ends before the structure does. */
  | 'truncated'
  /** IP version nibble (or pcap/pcapng format version) is not one we read. */
  | 'bad-version'
  /** IPv4 IHL < 5, TCP data offset < 5, or a header that overruns its packet. */
  | 'bad-header-length'
  /** A length field that contradicts another (IPv4 total length < IHL, pcap record sizes). */
  | 'bad-length'
  /** A TCP option with length < 2 or that overruns the option space, or > 40 option bytes. */
  | 'bad-option'
  /** A malformed IPv6 extension header chain (e.g. hop-by-hop not first). */
  | 'bad-extension'
  /** A textual IP address that does not parse. */
  | 'bad-address'
  /** A checksum that does not verify (only where verification was asked for). */
  | 'bad-checksum'
  /** Not a pcap or pcapng file. */
  | 'bad-magic'
  /** A pcap/pcapng record that is structurally wrong (unknown interface, bad trailer). */
  | 'bad-record'
  /** Well-formed but outside what we handle (jumbograms, unknown link types, RPL routing). */
  | 'unsupported'
  /** The frame carries something other than IPv4/IPv6 (ARP, LLC, MPLS...). */
  | 'not-ip'
  /** The IP packet carries something other than TCP (UDP, ICMP, ESP...). */
  | 'not-tcp'
  /** An IP fragment: there is no complete TCP segment to look at. */
  | 'fragment';

export interface WireError {
  readonly layer: WireLayer;
  readonly kind: WireErrorKind;
  readonly detail: string;
  /** Byte offset in the input where the problem was found (pcap: start of the bad record). */
  readonly offset?: number;
  /** pcap: index of the packet record that failed (0-based). */
  readonly index?: number;
}

export function wireError(
  layer: WireLayer,
  kind: WireErrorKind,
  detail: string,
  where?: { offset?: number; index?: number },
): WireError {
  return where === undefined ? { layer, kind, detail } : { layer, kind, detail, ...where };
}

/** One-line rendering for logs and CLI output. */
export function formatWireError(e: WireError): string {
  const at = [e.index !== undefined ? `record ${e.index}` : '', e.offset !== undefined ? `offset ${e.offset}` : '']
    .filter((s) => s !== '')
    .join(', ');
  return `${e.layer}: ${e.kind}: ${e.detail}${at ? ` (${at})` : ''}`;
}
