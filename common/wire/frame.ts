// The per-packet fast path in one call: link -> IP -> TCP, views only, no option parsing.
import type { Result } from '../result';
import { err, ok } from '../result';
import type { WireError } from './errors';
import { wireError } from './errors';
import type { IpView } from './ip';
import { IP_PROTOCOL, parseIp } from './ip';
import type { LinkFrame } from './link';
import { ETHERTYPE, parseLink } from './link';
import type { TcpView } from './tcp';
import { parseTcp } from './tcp';

export interface FrameView {
  readonly link: LinkFrame;
  readonly ip: IpView;
  readonly tcp: TcpView;
}

/**
 * Parses a captured frame down to its TCP header. For a bare IP packet (NFQUEUE, raw sockets)
 * pass LINKTYPE.RAW. Errors are typed: 'not-ip' (ARP...), 'not-tcp' (UDP, ICMP, ESP...),
 * 'fragment' (any non-atomic IP fragment), 'bad-version' (ethertype and IP version disagree),
 * plus whatever each layer reports. Never throws.
 */
export function parseFrame(linkType: number, bytes: Uint8Array): Result<FrameView, WireError> {
  const linkr = parseLink(linkType, bytes);
  if (!linkr.ok) return linkr;
  const link = linkr.value;
  const ipr = parseIp(bytes, link.ipOffset);
  if (!ipr.ok) return ipr;
  const ip = ipr.value;
  const layer = ip.version === 4 ? 'ipv4' : 'ipv6';
  if ((ip.version === 4) !== (link.etherType === ETHERTYPE.IPV4)) {
    return err(wireError(layer, 'bad-version', `IPv${ip.version} packet under ethertype 0x${link.etherType.toString(16)}`, { offset: ip.offset }));
  }
  if (ip.isFragment) {
    return err(wireError(layer, 'fragment', `fragment at offset ${ip.fragmentOffset}${ip.moreFragments ? ', more follow' : ''}`, { offset: ip.offset }));
  }
  if (ip.protocol !== IP_PROTOCOL.TCP) return err(wireError(layer, 'not-tcp', `protocol ${ip.protocol}`, { offset: ip.offset }));
  const tcpr = parseTcp(bytes, ip.payloadOffset, ip.payloadLength);
  if (!tcpr.ok) return tcpr;
  return ok({ link, ip, tcp: tcpr.value });
}
