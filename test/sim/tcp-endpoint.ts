// A small, honest TCP endpoint for the simulation (not a full TCP): three-way handshake with
// MSS, SACK-permitted, timestamps and window scale (and ECN on request), a byte stream sent in
// segments that fit the peer's MSS, cumulative ACKs with SACK blocks, retransmission on RTO
// (go-back from SND.UNA) and on three duplicate ACKs (SACK-guided), FIN both ways; optionally
// keepalive-style probes, an abort by RST, ECN (CE echoed as ECE until CWR).
//
// "Honest" is what the engines may rely on: at a given sequence number it only ever sends the
// true stream byte (the one opt-in exception: garbage-byte keepalive probes, as BSD sends). Retransmissions are re-segmented freely (random sizes and boundaries), as
// real stacks do after a path change or when coalescing. Positions are kept as offsets from the
// ISN ("rel": SYN at 0, data byte i at i + 1, FIN at N + 1); the wire carries (isn + rel) mod 2^32.
import { emitIpTcp, parseIpTcp } from '../../common/wire/packet';
import { TCP_FLAGS } from '../../common/wire/tcp';
import {
  TCP_OPTION,
  type TcpOption,
  decodeMss,
  decodeSackBlocks,
  decodeTimestamps,
  experimentId,
  mssOption,
  sackOption,
  sackPermittedOption,
  timestampsOption,
  windowScaleOption,
} from '../../common/wire/tcp-options';
import type { Rng } from './wire';

export interface EndpointConfig {
  role: 'client' | 'server';
  version: 4 | 6;
  localAddr: Uint8Array;
  localPort: number;
  remoteAddr: Uint8Array;
  remotePort: number;
  isn: number;
  /** The whole stream this endpoint sends. */
  data: Uint8Array;
  /**
   * MSS advertised in our SYN / SYN-ACK (1460 for IPv4, 1440 for IPv6 on a 1500 MTU); null for
   * a bare handshake without any option (no MSS, SACK, timestamps or window scale), as minimal
   * stacks send: the peer then assumes 536 / 1220 (RFC 9293 3.7.1).
   */
  mss: number | null;
  /** Client: send an ECN-setup SYN (SYN|ECE|CWR). Server: answer one with SYN|ACK|ECE. */
  ecn: boolean;
  /** Bytes in flight at most (a fixed congestion window). */
  window: number;
  /** Chance that a segment is shorter than it could be (app writes, re-segmentation). */
  shortSegmentChance: number;
  /** Chance, per new ACK, of a keepalive-style probe: the last acknowledged byte sent again. */
  probeChance: number;
  /**
   * Probes carry a garbage byte instead of the true one, as BSD-style keepalives do: the one
   * dishonest thing real stacks send, which the engines must strip (the byte is acknowledged).
   */
  garbageProbes?: boolean;
  /** Abort with a RST once SND.UNA reaches this position (rel), instead of closing with FIN. */
  abortAt?: number;
  rng: Rng;
  /** Option kind/ExID of the encryption layer, which this endpoint must never see. */
  foreignOption: { kind: number; exid: number };
  send(packet: Uint8Array): void;
}

export interface EndpointStats {
  segmentsSent: number;
  dataSegmentsSent: number;
  retransmittedSegments: number;
  rtoFires: number;
  fastRetransmits: number;
  probes: number;
  sackBlocksSent: number;
  sackBlocksReceived: number;
  /** Bytes received twice at one position with different values (must stay 0). */
  conflicts: number;
  /** Packets that failed to parse or had a bad checksum (must stay 0). */
  badPackets: number;
  /** Packets that carried the encryption layer's option (must stay 0). */
  foreignOptions: number;
  resets: number;
  /** Packets that arrived with the IP ECN field set to CE. */
  ceReceived: number;
}

interface Range {
  start: number;
  end: number;
  stamp: number;
}

const RTO_INITIAL = 200;
const RTO_MAX = 4_000;
const WINDOW_SHIFT = 7;
const MAX_SACK_BLOCKS_WITH_TS = 3;

type State = 'closed' | 'listen' | 'syn-sent' | 'syn-rcvd' | 'established' | 'reset';

export class TcpEndpoint {
  readonly stats: EndpointStats = {
    segmentsSent: 0,
    dataSegmentsSent: 0,
    retransmittedSegments: 0,
    rtoFires: 0,
    fastRetransmits: 0,
    probes: 0,
    sackBlocksSent: 0,
    sackBlocksReceived: 0,
    conflicts: 0,
    badPackets: 0,
    foreignOptions: 0,
    resets: 0,
    ceReceived: 0,
  };
  private state: State;
  // Send side (rel to our ISN).
  private sndUna = 0;
  private sndNxt = 0;
  private sndMax = 0;
  private readonly finRel: number;
  private readonly endRel: number;
  private sacked: Range[] = [];
  private dupAcks = 0;
  private inRecovery = false;
  private recoverPoint = 0;
  private retxNext = 0;
  private rto = RTO_INITIAL;
  private rtoAt: number | null = null;
  // Learnt from the peer's SYN / SYN-ACK.
  private peerIsn: number | null = null;
  private peerMss: number;
  private sackOk = false;
  private tsOk = false;
  private tsRecent = 0;
  private ecnOk = false;
  /** RFC 3168: we saw CE and echo ECE until the peer's CWR; the peer echoed ECE and we owe a CWR. */
  private echoEce = false;
  private owedCwr = false;
  // Receive side (rel to the peer's ISN).
  private rcvNxt = 0;
  private rcvBuf = new Uint8Array(4096);
  private have = new Uint8Array(4096);
  private ooo: Range[] = [];
  private stampCounter = 0;
  private peerFinRel: number | null = null;
  private finReceived = false;
  private ipId = 1;

  constructor(private readonly cfg: EndpointConfig) {
    this.state = cfg.role === 'client' ? 'closed' : 'listen';
    this.peerMss = cfg.version === 4 ? 536 : 1220;
    this.finRel = cfg.data.length + 1;
    this.endRel = cfg.data.length + 2;
  }

  /** Client: sends the SYN. */
  connect(now: number): void {
    if (this.cfg.role !== 'client' || this.state !== 'closed') throw new Error('connect: not a closed client');
    this.state = 'syn-sent';
    this.sendSyn(now);
    this.sndNxt = this.sndMax = 1;
    this.rtoAt = now + this.rto;
  }

  /** Both FINs are through: ours acknowledged, the peer's received (and acknowledged by us). */
  get done(): boolean {
    return (this.state === 'established' && this.sndUna === this.endRel && this.finReceived) || this.state === 'reset';
  }

  /** Nothing arrived yet (a server still listening). */
  get untouched(): boolean {
    return this.state === 'listen' || this.state === 'closed';
  }

  /** Aborted: sent a RST (abortAt) or accepted one. */
  get wasReset(): boolean {
    return this.state === 'reset';
  }

  get finSent(): boolean {
    return this.sndMax === this.endRel;
  }

  get established(): boolean {
    return this.state === 'established';
  }

  /** The stream the application has read so far (in order, up to the FIN). */
  received(): Uint8Array {
    const upTo = Math.max(0, this.rcvNxt - 1 - (this.finReceived ? 1 : 0));
    return this.rcvBuf.slice(0, upTo);
  }

  get peerFinReceived(): boolean {
    return this.finReceived;
  }

  /** The MSS this endpoint learnt from the peer's handshake segment (after any clamping). */
  get learntMss(): number {
    return this.peerMss;
  }

  /** When the retransmission timer fires, or null when nothing is outstanding. */
  get timerAt(): number | null {
    return this.rtoAt;
  }

  /** Where the stream stands, for failure messages. */
  describe(): string {
    return `${this.cfg.role}: state=${this.state} snd.una=${this.sndUna} snd.nxt=${this.sndNxt} snd.max=${this.sndMax} end=${this.endRel} rcv.nxt=${this.rcvNxt} fin=${this.finReceived}`;
  }

  // ---- timers -----------------------------------------------------------------------------

  onTimer(now: number): void {
    if (this.rtoAt === null || now < this.rtoAt) return;
    this.stats.rtoFires++;
    this.rto = Math.min(this.rto * 2, RTO_MAX);
    this.rtoAt = now + this.rto;
    if (this.state === 'syn-sent') {
      this.sendSyn(now);
      return;
    }
    if (this.state === 'syn-rcvd' || this.sndUna === 0) {
      this.sendSyn(now);
      return;
    }
    // Go back to the first unacknowledged byte; SACKed ranges are skipped.
    this.sndNxt = this.sndUna;
    this.inRecovery = false;
    this.dupAcks = 0;
    this.pump(now);
  }

  // ---- receiving --------------------------------------------------------------------------

  onPacket(packet: Uint8Array, now: number): void {
    const parsed = parseIpTcp(packet);
    if (!parsed.ok) {
      this.stats.badPackets++;
      return;
    }
    const { ip, tcp } = parsed.value;
    if (tcp.srcPort !== this.cfg.remotePort || tcp.dstPort !== this.cfg.localPort) {
      this.stats.badPackets++;
      return;
    }
    for (const o of tcp.options) {
      if (o.kind === this.cfg.foreignOption.kind && experimentId(o) === this.cfg.foreignOption.exid) this.stats.foreignOptions++;
    }
    const flags = tcp.flags;
    if (this.state === 'reset') return;
    if (flags & TCP_FLAGS.RST) {
      this.stats.resets++;
      // RFC 9293 3.10.7.3: in SYN-SENT a RST counts only if it acknowledges our SYN. Later, any
      // RST (the peer is honest; the engines drop forged ones before they get here).
      const acceptable = this.state === 'syn-sent' ? (flags & TCP_FLAGS.ACK) !== 0 && tcp.ack === ((this.cfg.isn + 1) >>> 0) : this.peerIsn !== null;
      if (acceptable) this.enterReset();
      return;
    }
    const syn = (flags & TCP_FLAGS.SYN) !== 0;
    const ack = (flags & TCP_FLAGS.ACK) !== 0;
    if (this.ecnOk && !syn) {
      if ((ip.tos & 3) === 3) {
        this.echoEce = true;
        this.stats.ceReceived++;
      }
      if (flags & TCP_FLAGS.CWR) this.echoEce = false;
      if (flags & TCP_FLAGS.ECE) this.owedCwr = true;
    }
    if (this.state === 'listen') {
      if (syn && !ack) this.acceptSyn(tcp.seq, tcp.options, flags, now);
      return;
    }
    if (this.state === 'syn-sent') {
      if (syn && ack && tcp.ack === ((this.cfg.isn + 1) >>> 0)) {
        this.learnOptions(tcp.options, flags);
        this.peerIsn = tcp.seq;
        this.rcvNxt = 1;
        this.state = 'established';
        this.newAck(1, now);
        this.sendAck(now);
        this.pump(now);
      }
      return;
    }
    if (syn) {
      // A resent SYN (our SYN-ACK was lost) or SYN-ACK (our ACK was lost): answer it again.
      if (this.cfg.role === 'server' && !ack && tcp.seq === this.peerIsn) {
        if (this.sndUna === 0) this.sendSyn(now);
        else this.sendAck(now);
      } else if (this.cfg.role === 'client' && ack) this.sendAck(now);
      return;
    }
    this.readTimestamp(tcp.options);
    const peerIsn = this.peerIsn as number;
    if (ack) {
      const ackRel = (tcp.ack - this.cfg.isn) >>> 0;
      const blocks = this.sackOk ? tcp.options.flatMap((o) => decodeSackBlocks(o) ?? []) : [];
      this.onAck(ackRel, blocks, tcp.payload.length > 0 || (flags & TCP_FLAGS.FIN) !== 0, now);
      if (this.wasReset) return; // onAck may have aborted
    }
    if (this.state === 'syn-rcvd') return;
    const seqRel = (tcp.seq - peerIsn) >>> 0;
    const fin = (flags & TCP_FLAGS.FIN) !== 0;
    if (tcp.payload.length > 0 || fin) {
      this.onData(seqRel, tcp.payload, fin);
      this.sendAck(now);
    }
    this.pump(now);
  }

  private enterReset(): void {
    this.state = 'reset';
    this.rtoAt = null;
  }

  private acceptSyn(seq: number, options: readonly TcpOption[], flags: number, now: number): void {
    this.learnOptions(options, flags);
    this.peerIsn = seq;
    this.rcvNxt = 1;
    this.state = 'syn-rcvd';
    this.sendSyn(now);
    this.sndNxt = this.sndMax = 1;
    this.rtoAt = now + this.rto;
  }

  private learnOptions(options: readonly TcpOption[], flags: number): void {
    for (const o of options) {
      const mss = decodeMss(o);
      if (mss !== null) this.peerMss = mss;
      if (this.cfg.mss === null) continue; // we offered nothing, so nothing is negotiated
      if (o.kind === TCP_OPTION.SACK_PERMITTED) this.sackOk = true;
      const ts = decodeTimestamps(o);
      if (ts !== null) {
        this.tsOk = true;
        this.tsRecent = ts.tsval;
      }
    }
    if (this.cfg.ecn) {
      this.ecnOk = this.cfg.role === 'server' ? (flags & (TCP_FLAGS.ECE | TCP_FLAGS.CWR)) === (TCP_FLAGS.ECE | TCP_FLAGS.CWR) : (flags & TCP_FLAGS.ECE) !== 0;
    }
  }

  private readTimestamp(options: readonly TcpOption[]): void {
    for (const o of options) {
      const ts = decodeTimestamps(o);
      if (ts !== null) this.tsRecent = ts.tsval;
    }
  }

  private onAck(ackRel: number, blocks: readonly { left: number; right: number }[], carriesData: boolean, now: number): void {
    if (ackRel > this.sndMax) return; // acknowledges what we never sent: ignore
    for (const b of blocks) {
      this.stats.sackBlocksReceived++;
      const left = (b.left - this.cfg.isn) >>> 0;
      const right = (b.right - this.cfg.isn) >>> 0;
      if (left < right && right <= this.sndMax && left >= this.sndUna) this.sacked = addRange(this.sacked, left, right, 0);
    }
    if (ackRel > this.sndUna) {
      if (this.state === 'syn-rcvd' && ackRel >= 1) this.state = 'established';
      this.newAck(ackRel, now);
      if (this.state === 'reset') return;
      if (this.inRecovery) {
        if (this.sndUna >= this.recoverPoint) this.inRecovery = false;
        else this.retransmitHole(now); // partial ACK: the next hole is lost too
      }
      if (this.sndUna >= 2 && this.sndUna <= this.finRel && this.cfg.rng.chance(this.cfg.probeChance)) this.probe(now);
      return;
    }
    if (ackRel === this.sndUna && !carriesData && this.sndUna < this.sndMax) {
      this.dupAcks++;
      if (this.dupAcks === 3 && !this.inRecovery) {
        this.inRecovery = true;
        this.recoverPoint = this.sndMax;
        this.retxNext = this.sndUna;
        this.stats.fastRetransmits++;
        this.retransmitHole(now, true);
      } else if (this.dupAcks > 3 && this.inRecovery) this.retransmitHole(now);
    }
  }

  private newAck(ackRel: number, now: number): void {
    this.sndUna = ackRel;
    if (this.cfg.abortAt !== undefined && ackRel >= this.cfg.abortAt && this.state === 'established') {
      this.emit(now, this.sndMax, TCP_FLAGS.RST | TCP_FLAGS.ACK, new Uint8Array(0));
      this.enterReset();
      return;
    }
    this.dupAcks = 0;
    this.sacked = this.sacked.filter((r) => r.end > ackRel).map((r) => ({ ...r, start: Math.max(r.start, ackRel) }));
    if (this.sndNxt < this.sndUna) this.sndNxt = this.sndUna;
    if (this.retxNext < this.sndUna) this.retxNext = this.sndUna;
    this.rto = RTO_INITIAL;
    this.rtoAt = this.sndUna < this.sndMax ? now + this.rto : null;
  }

  private onData(seqRel: number, payload: Uint8Array, fin: boolean): void {
    const start = seqRel;
    const end = seqRel + payload.length;
    if (payload.length > 0 && start >= 1) {
      this.ensure(end - 1);
      for (let i = 0; i < payload.length; i++) {
        const at = start - 1 + i;
        const b = payload[i] as number;
        if (this.have[at]) {
          if (this.rcvBuf[at] !== b) this.stats.conflicts++;
        } else {
          this.rcvBuf[at] = b;
          this.have[at] = 1;
        }
      }
      const before = this.rcvNxt;
      while (this.rcvNxt - 1 < this.have.length && this.have[this.rcvNxt - 1]) this.rcvNxt++;
      if (start > before) this.ooo = addRange(this.ooo, start, end, ++this.stampCounter);
      this.ooo = this.ooo.filter((r) => r.end > this.rcvNxt);
    }
    if (fin) this.peerFinRel = end;
    if (this.peerFinRel !== null && !this.finReceived && this.rcvNxt === this.peerFinRel) {
      this.rcvNxt++;
      this.finReceived = true;
    }
  }

  private ensure(index: number): void {
    if (index < this.rcvBuf.length) return;
    let size = this.rcvBuf.length;
    while (size <= index) size *= 2;
    const buf = new Uint8Array(size);
    buf.set(this.rcvBuf);
    const have = new Uint8Array(size);
    have.set(this.have);
    this.rcvBuf = buf;
    this.have = have;
  }

  // ---- sending ----------------------------------------------------------------------------

  /** Sends new data (or, after an RTO, data again from SND.UNA) while the window allows. */
  private pump(now: number): void {
    if (this.state !== 'established') return;
    for (;;) {
      let pos = this.sndNxt;
      for (const r of this.sacked) if (pos >= r.start && pos < r.end) pos = r.end;
      this.sndNxt = pos;
      if (pos >= this.endRel) return;
      const room = this.cfg.window - (pos - this.sndUna);
      if (room <= 0) return;
      if (pos === this.finRel) {
        this.sndNxt = this.sendData(now, pos, 0, true);
        continue;
      }
      const max = Math.min(this.payloadRoom(now), this.finRel - pos, this.nextSacked(pos) - pos, room);
      if (max <= 0) return;
      const len = this.cfg.rng.chance(this.cfg.shortSegmentChance) ? this.cfg.rng.int(1, max) : max;
      this.sndNxt = this.sendData(now, pos, len, pos + len === this.finRel && len < room);
    }
  }

  /** Fast retransmit / SACK recovery: resend one segment of the next hole below the highest SACK. */
  private retransmitHole(now: number, first = false): void {
    let pos = Math.max(this.retxNext, this.sndUna);
    for (const r of this.sacked) if (pos >= r.start && pos < r.end) pos = r.end;
    const highSack = this.sacked.reduce((m, r) => Math.max(m, r.end), 0);
    if (pos >= this.sndMax || (!first && pos >= highSack)) return;
    if (pos === this.finRel) {
      this.sendData(now, pos, 0, true);
      this.retxNext = pos + 1;
      return;
    }
    const max = Math.min(this.payloadRoom(now), this.finRel - pos, this.nextSacked(pos) - pos, this.sndMax - pos);
    if (max <= 0) return;
    const len = this.cfg.rng.chance(0.5) ? this.cfg.rng.int(1, max) : max;
    this.sendData(now, pos, len, pos + len === this.finRel && pos + len < this.sndMax);
    this.retxNext = pos + len;
  }

  /** A keepalive-style probe: the byte just below SND.UNA (already acknowledged), sent again. */
  private probe(now: number): void {
    this.stats.probes++;
    const at = this.sndUna - 1;
    const byte = this.cfg.data.subarray(at - 1, at);
    this.emit(now, at, TCP_FLAGS.ACK, this.cfg.garbageProbes ? byte.map((b) => b ^ 0xa5) : byte);
  }

  private nextSacked(pos: number): number {
    let next = Infinity;
    for (const r of this.sacked) if (r.start > pos && r.start < next) next = r.start;
    return next;
  }

  /** Payload bytes that fit one segment: the peer's MSS less the options this segment carries. */
  private payloadRoom(now: number): number {
    return this.peerMss - optionsLength(this.dataOptions(now));
  }

  /** Sends [pos, pos + len) (and FIN); returns the position after it. SND.NXT is the caller's business. */
  private sendData(now: number, pos: number, len: number, fin: boolean): number {
    if (pos < this.sndMax) this.stats.retransmittedSegments++;
    if (len > 0) this.stats.dataSegmentsSent++;
    const payload = this.cfg.data.subarray(pos - 1, pos - 1 + len);
    this.emit(now, pos, TCP_FLAGS.ACK | (len > 0 ? TCP_FLAGS.PSH : 0) | (fin ? TCP_FLAGS.FIN : 0), payload);
    const end = pos + len + (fin ? 1 : 0);
    if (end > this.sndMax) this.sndMax = end;
    if (this.rtoAt === null) this.rtoAt = now + this.rto;
    return end;
  }

  private sendAck(now: number): void {
    this.emit(now, this.sndMax, TCP_FLAGS.ACK, new Uint8Array(0));
  }

  private sendSyn(now: number): void {
    const options =
      this.cfg.mss === null
        ? []
        : [mssOption(this.cfg.mss), sackPermittedOption(), timestampsOption(now >>> 0, this.cfg.role === 'server' ? this.tsRecent : 0), NOP, windowScaleOption(WINDOW_SHIFT)];
    let flags = TCP_FLAGS.SYN;
    if (this.cfg.role === 'server') flags |= TCP_FLAGS.ACK | (this.ecnOk ? TCP_FLAGS.ECE : 0);
    else if (this.cfg.ecn) flags |= TCP_FLAGS.ECE | TCP_FLAGS.CWR;
    this.emit(now, 0, flags, new Uint8Array(0), options);
  }

  /** Options of a non-SYN segment: timestamps, and SACK blocks (most recent first) while data is missing. */
  private dataOptions(now: number): TcpOption[] {
    const out: TcpOption[] = [];
    if (this.tsOk) out.push(NOP, NOP, timestampsOption(now >>> 0, this.tsRecent));
    if (this.sackOk && this.ooo.length > 0) {
      const blocks = [...this.ooo].sort((a, b) => b.stamp - a.stamp).slice(0, this.tsOk ? MAX_SACK_BLOCKS_WITH_TS : 4);
      const peerIsn = this.peerIsn as number;
      out.push(NOP, NOP, sackOption(blocks.map((r) => ({ left: (peerIsn + r.start) >>> 0, right: (peerIsn + r.end) >>> 0 }))));
    }
    return out;
  }

  private emit(now: number, rel: number, flags: number, payload: Uint8Array, synOptions?: TcpOption[]): void {
    const opts = synOptions ?? this.dataOptions(now);
    if (synOptions === undefined && this.ecnOk) {
      if (this.echoEce) flags |= TCP_FLAGS.ECE;
      if (this.owedCwr && payload.length > 0) {
        flags |= TCP_FLAGS.CWR;
        this.owedCwr = false;
      }
    }
    for (const o of opts) if (o.kind === TCP_OPTION.SACK) this.stats.sackBlocksSent += o.data.length / 8;
    const hasAck = (flags & TCP_FLAGS.ACK) !== 0;
    const out = emitIpTcp({
      ip: {
        version: this.cfg.version,
        src: this.cfg.localAddr,
        dst: this.cfg.remoteAddr,
        ttl: 64,
        tos: this.ecnOk && payload.length > 0 ? 0x02 : 0,
        id: this.cfg.version === 4 ? this.ipId++ & 0xffff : 0,
        dontFragment: this.cfg.version === 4,
        flowLabel: 0,
      },
      tcp: {
        srcPort: this.cfg.localPort,
        dstPort: this.cfg.remotePort,
        seq: (this.cfg.isn + rel) >>> 0,
        ack: hasAck && this.peerIsn !== null ? (this.peerIsn + this.rcvNxt) >>> 0 : 0,
        flags,
        window: 0xffff,
        urgent: 0,
        options: opts,
        payload,
      },
    });
    if (!out.ok) throw new Error(`tcp-endpoint: cannot emit a segment: ${out.error.detail}`);
    this.stats.segmentsSent++;
    this.cfg.send(out.value);
  }
}

const NOP: TcpOption = { kind: TCP_OPTION.NOP, data: new Uint8Array(0) };

function optionsLength(options: readonly TcpOption[]): number {
  let n = 0;
  for (const o of options) n += o.kind === TCP_OPTION.NOP || o.kind === TCP_OPTION.EOL ? 1 : 2 + o.data.length;
  return (n + 3) & ~3;
}

/** Inserts [start, end) into a sorted list of disjoint ranges, merging overlaps and neighbours. */
function addRange(ranges: readonly Range[], start: number, end: number, stamp: number): Range[] {
  const out: Range[] = [];
  let s = start;
  let e = end;
  let st = stamp;
  for (const r of ranges) {
    if (r.end < s || r.start > e) out.push(r);
    else {
      s = Math.min(s, r.start);
      e = Math.max(e, r.end);
      st = Math.max(st, r.stamp);
    }
  }
  out.push({ start: s, end: e, stamp: st });
  return out.sort((a, b) => a.start - b.start);
}
