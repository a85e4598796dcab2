// The first step of both roles on every packet: is it one of ours? Parses IP and TCP once and
// matches the protected endpoints. Unrelated traffic (including malformed traffic that touches
// no protected host) passes untouched; fragments and malformed packets that touch a protected
// host are dropped, never passed as unprotected plaintext.
import type { IpView } from '../wire/ip';
import { parseIp } from '../wire/ip';
import { type TcpView, parseTcp } from '../wire/tcp';
import type { EndpointSet } from './endpoints';
import { peekAddresses } from './peek';

export type Admission<M> =
  | { kind: 'pass'; malformed: 'ip' | 'tcp' | null }
  | { kind: 'drop'; reason: 'malformed-ip' | 'malformed-tcp' | 'fragment' }
  /** Toward a protected endpoint (`to`) or from one (`from`). */
  | { kind: 'to' | 'from'; ip: IpView; tcp: TcpView; meta: M };

// Shared answers for the common cases: no allocation on the pass-through path.
const PASS = Object.freeze({ kind: 'pass', malformed: null } as const);
const PASS_MALFORMED_IP = Object.freeze({ kind: 'pass', malformed: 'ip' } as const);
const PASS_MALFORMED_TCP = Object.freeze({ kind: 'pass', malformed: 'tcp' } as const);
const DROP_MALFORMED_IP = Object.freeze({ kind: 'drop', reason: 'malformed-ip' } as const);
const DROP_MALFORMED_TCP = Object.freeze({ kind: 'drop', reason: 'malformed-tcp' } as const);
const DROP_FRAGMENT = Object.freeze({ kind: 'drop', reason: 'fragment' } as const);

const IPPROTO_TCP = 6;

function touches<M>(endpoints: EndpointSet<M>, addrs: { src: Uint8Array; dst: Uint8Array } | null): boolean {
  return addrs !== null && (endpoints.coversAddress(addrs.dst) || endpoints.coversAddress(addrs.src));
}

export function admit<M>(packet: Uint8Array, endpoints: EndpointSet<M>): Admission<M> {
  const ipr = parseIp(packet);
  if (!ipr.ok) return touches(endpoints, peekAddresses(packet)) ? DROP_MALFORMED_IP : PASS_MALFORMED_IP;
  const ip = ipr.value;
  if (ip.protocol !== IPPROTO_TCP) return PASS;
  // Fragments carry no ports. TCP to a protected host never needs them (MSS clamped, DF set).
  if (ip.isFragment) return touches(endpoints, ip) ? DROP_FRAGMENT : PASS;
  const tcpr = parseTcp(packet, ip.payloadOffset, ip.payloadLength);
  if (!tcpr.ok) return touches(endpoints, ip) ? DROP_MALFORMED_TCP : PASS_MALFORMED_TCP;
  const tcp = tcpr.value;
  const to = endpoints.matchAt(packet, ip.dstOffset, ip.addressLength, tcp.dstPort);
  if (to !== undefined) return { kind: 'to', ip, tcp, meta: to.meta };
  const from = endpoints.matchAt(packet, ip.srcOffset, ip.addressLength, tcp.srcPort);
  if (from !== undefined) return { kind: 'from', ip, tcp, meta: from.meta };
  return PASS;
}
