// RST segments an engine originates: to refuse a flow that asked for encryption but cannot be
// keyed (fail closed, rule 7), without waiting for the client's SYN timeout.
import type { IpView } from '../wire/ip';
import { emitIpTcp } from '../wire/packet';
import { TCP_FLAGS, type TcpView } from '../wire/tcp';

/**
 * A RST answering `tcp` (sent to its source, from its destination). For a SYN the client only
 * accepts a RST whose ACK acknowledges its SYN, so `ack` covers the segment.
 */
export function resetReplyTo(ip: IpView, tcp: TcpView): Uint8Array | null {
  const ack = (tcp.seq + tcp.segmentLength) >>> 0;
  const seq = tcp.flags & TCP_FLAGS.ACK ? tcp.ack : 0;
  return resetPacket(ip, tcp, true, seq, ack);
}

/**
 * A RST sent in place of `tcp`, in its direction (same source and destination). Replacing a
 * SYN-ACK, it carries the SYN-ACK's ACK, which is what a client in SYN-SENT checks.
 */
export function resetInstead(ip: IpView, tcp: TcpView): Uint8Array | null {
  return resetPacket(ip, tcp, false, (tcp.seq + (tcp.flags & TCP_FLAGS.SYN ? 1 : 0)) >>> 0, tcp.ack);
}

function resetPacket(ip: IpView, tcp: TcpView, reply: boolean, seq: number, ack: number): Uint8Array | null {
  const out = emitIpTcp({
    ip: {
      version: ip.version,
      src: (reply ? ip.dst : ip.src).slice(),
      dst: (reply ? ip.src : ip.dst).slice(),
      ttl: 64,
      tos: 0,
      id: 0,
      dontFragment: true,
      flowLabel: 0,
    },
    tcp: {
      srcPort: reply ? tcp.dstPort : tcp.srcPort,
      dstPort: reply ? tcp.srcPort : tcp.dstPort,
      seq,
      ack,
      flags: TCP_FLAGS.RST | TCP_FLAGS.ACK,
      window: 0,
      urgent: 0,
      options: [],
      payload: new Uint8Array(0),
    },
  });
  return out.ok ? out.value : null;
}
