// The gateway role as a state machine (DESIGN section 2, steps 2-8). No I/O, no clock, no
// randomness of its own: adapters feed packets, key-delivery messages, KDC answers and timer
// ticks, and carry out the verdicts and side actions.
//
// Per flow:  hello -> kdc -> confirm -> released -> established -> (linger) -> gone
//                 \______\________\-> refused (RST to the client; tombstone absorbs resent SYNs)
import { zeroize } from '../common/crypto/compare';
import { HOLD, type KdcAnswer, PASS, type Verdict } from '../common/engine/actions';
import { EndpointSet, type EndpointRule } from '../common/engine/endpoints';
import { FlowCipher } from '../common/engine/flow-cipher';
import { FlowEngine } from '../common/engine/flow-engine';
import { type EngineDeps, type FlowStatus, type KeyedFlow, describeFlow, endsFlow } from '../common/engine/keyed-flow';
import { KEYING_BOUNDS_MS, LatencyHistogram } from '../common/engine/latency-histogram';

export type { EngineDeps } from '../common/engine/keyed-flow';
import { admit } from '../common/engine/admission';
import { resetReplyTo } from '../common/engine/reset';
import { clampMss, removeOption } from '../common/engine/syn-options';
import { bindingEqual } from '../common/protocol/binding';
import type { FlowTuple } from '../common/protocol/codec';
import { gatewayConfirm, transcriptHash, verifyAgentConfirm } from '../common/protocol/confirm';
import { KD_ERROR_NAMES, type KdHello, type KdMessage, KdType, encodeKdMessage } from '../common/protocol/kd-messages';
import { KDC_ERROR_NAMES, KdcType, decodeKdcMessage } from '../common/protocol/kdc-messages';
import { sealIssueRequest } from '../common/protocol/kdc-request-auth';
import { deriveFlowKeys } from '../common/protocol/key-schedule';
import { type OptionConfig, Suite, TAG_OPTION_LEN, scanOptions, suiteBit } from '../common/protocol/options';
import { type VersionedKey, openTicket } from '../common/protocol/ticket';
import { canonicalFlowKey } from '../common/wire/flow-key';
import { type IpView, parseIp } from '../common/wire/ip';
import { rewriteTcp } from '../common/wire/packet';
import { TCP_FLAGS, type TcpView, parseTcp } from '../common/wire/tcp';

export type ServiceMode = 'require' | 'optional';

export interface GatewayEngineConfig {
  principal: string;
  /** The gateway's long-term key (its current kvno). */
  key: VersionedKey;
  /** Protected services; `meta` says whether a flow without the option is refused. */
  services: readonly EndpointRule<ServiceMode>[];
  option: OptionConfig;
  /** TCP port of the agents' key-delivery listener. */
  agentPort: number;
  limits: { maxFlows: number; maxPendingKeyings: number; maxKdcInFlight: number };
  timers: { keyingTimeoutMs: number; lingerMs: number; idleTimeoutMs: number; refusedHoldMs: number };
}

export type GatewayFlowState = 'hello' | 'kdc' | 'confirm' | 'released' | 'established' | 'refused';

interface GatewayFlow extends KeyedFlow<GatewayFlowState> {
  clientIsn: number;
  // `deadline` is the keying deadline, the end of the linger, or the end of the refused tombstone.
  heldSyn: Uint8Array | null;
  releasedSyn: Uint8Array | null;
  gatewayNonce: Uint8Array;
  hello: KdHello;
  helloFrame: Uint8Array;
  helloReplyFrame: Uint8Array | null;
  agentNonce: Uint8Array | null;
  clientPrincipal: string | null;
  requestId: string | null;
  transcript: Uint8Array | null;
}

const KEYING_STATES: ReadonlySet<GatewayFlowState> = new Set(['hello', 'kdc', 'confirm']);

export type GatewayCounter =
  | 'packets'
  | 'pass'
  | 'malformed'
  | 'fragment-dropped'
  | 'syn-request'
  | 'syn-held'
  | 'syn-duplicate-absorbed'
  | 'syn-released'
  | 'require-refused'
  | 'refused'
  | 'flows-established'
  | 'segments-protected'
  | 'segments-unprotected'
  | 'auth-failed'
  | 'no-flow-dropped'
  | 'keying-dropped'
  | 'probe-payload-stripped'
  | 'keys-discarded'
  | 'limit-flows'
  | 'limit-keyings'
  | 'limit-kdc'
  | 'kd-unknown'
  | 'kdc-unknown-answer';

export interface GatewayFlowStatus extends FlowStatus<GatewayFlowState> {
  clientPrincipal: string | null;
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

export class GatewayEngine extends FlowEngine<GatewayFlow, GatewayCounter | `refused:${string}` | `discarded:${string}` | `malformed:${string}`> {
  private services: EndpointSet<ServiceMode>;
  private readonly byConnId = new Map<bigint, GatewayFlow>();
  private readonly byRequestId = new Map<string, GatewayFlow>();
  private pendingKeyings = 0;
  /** SYN seen to SYN released (cipher sync done): the delay keying adds to a connection. */
  readonly keyingTimes = new LatencyHistogram(KEYING_BOUNDS_MS);

  constructor(
    private config: GatewayEngineConfig,
    private readonly deps: EngineDeps,
  ) {
    super(config.limits.maxFlows);
    this.services = new EndpointSet(config.services);
  }

  // ---- packets --------------------------------------------------------------------------

  handlePacket(packet: Uint8Array, now: number): Verdict {
    this.packetsCounter.value++;
    const a = admit(packet, this.services);
    switch (a.kind) {
      case 'pass':
        return a.malformed === null ? this.pass() : this.malformed(a.malformed);
      case 'drop':
        return this.drop(a.reason === 'fragment' ? 'fragment-dropped' : 'malformed', a.reason);
      case 'to':
        return this.clientToServer(packet, a.ip, a.tcp, a.meta, now);
      case 'from':
        return this.serverToClient(packet, a.ip, a.tcp, a.meta, now);
    }
  }

  private clientToServer(packet: Uint8Array, ip: IpView, tcp: TcpView, mode: ServiceMode, now: number): Verdict {
    const key = canonicalFlowKey(ip, tcp.srcPort, tcp.dstPort);
    const flow = this.table.get(key);
    const isSyn = (tcp.flags & (TCP_FLAGS.SYN | TCP_FLAGS.ACK)) === TCP_FLAGS.SYN;
    if (isSyn) return this.syn(packet, ip, tcp, mode, key, flow, now);
    if (flow === undefined) {
      const ours = scanOptions(packet.subarray(tcp.optionsStart, tcp.optionsEnd), this.config.option);
      // A segment protected for a flow we no longer (or never) had: never hand ciphertext on.
      if (!ours.ok || ours.value.tag !== null || ours.value.request !== null) return this.drop('no-flow-dropped', 'no-flow');
      if (mode === 'require') return this.drop('require-refused', 'require-no-flow');
      return this.pass();
    }
    flow.lastActivity = now;
    if (flow.state !== 'released' && flow.state !== 'established') return this.drop('keying-dropped', flow.state);
    const cipher = flow.cipher as FlowCipher;
    const out = cipher.unprotect('c2s', packet, ip, tcp);
    if (!out.ok) return this.drop('auth-failed', out.error);
    this.unprotectedCounter.value++;
    this.afterSegment(flow, out.value.rst, now);
    return { kind: 'rewrite', packet: out.value.packet };
  }

  private serverToClient(packet: Uint8Array, ip: IpView, tcp: TcpView, mode: ServiceMode, now: number): Verdict {
    const flow = this.table.get(canonicalFlowKey(ip, tcp.srcPort, tcp.dstPort));
    if (flow === undefined) return mode === 'require' ? this.drop('require-refused', 'require-no-flow') : this.pass();
    flow.lastActivity = now;
    if (flow.state !== 'released' && flow.state !== 'established') return this.drop('keying-dropped', flow.state);
    const cipher = flow.cipher as FlowCipher;
    let segment = packet;
    let ipv = ip;
    let tcpv = tcp;
    if (tcp.flags & (TCP_FLAGS.SYN | TCP_FLAGS.RST) && !cipher.serverIsnKnown) cipher.setServerIsn(tcp.seq);
    if (tcp.flags & TCP_FLAGS.SYN) {
      // The SYN-ACK: clamp its MSS too, so the client's segments still fit once tagged (rule 4).
      const clamped = this.withOptions(packet, ip, tcp, clampMss(tcp.optionBytes, TAG_OPTION_LEN, ip.version));
      if (clamped === null) return this.drop('malformed', 'synack-options');
      [segment, ipv, tcpv] = clamped;
    }
    const out = cipher.protect('s2c', segment, ipv, tcpv);
    if (!out.ok) return this.drop('malformed', out.error);
    this.protectedCounter.value++;
    if (out.value.strippedPayload) this.counters.inc('probe-payload-stripped');
    if (flow.state === 'released' && tcp.flags & TCP_FLAGS.SYN) {
      flow.state = 'established';
      this.counters.inc('flows-established');
    }
    this.afterSegment(flow, out.value.rst, now);
    return { kind: 'rewrite', packet: out.value.packet };
  }

  /** After an accepted segment: an authenticated RST ends the flow; closed flows linger. */
  private afterSegment(flow: GatewayFlow, rst: boolean, now: number): void {
    if (endsFlow(flow, rst, now, this.config.timers.lingerMs)) this.discard(flow, 'rst');
  }

  private syn(packet: Uint8Array, ip: IpView, tcp: TcpView, mode: ServiceMode, key: string, flow: GatewayFlow | undefined, now: number): Verdict {
    const ours = scanOptions(packet.subarray(tcp.optionsStart, tcp.optionsEnd), this.config.option);
    if (!ours.ok) return this.refuseSyn(ip, tcp, 'bad-option');
    const request = ours.value.request;
    if (request === null) {
      if (flow !== undefined && flow.state !== 'refused') return this.drop('keying-dropped', 'plain-syn-on-protected-flow');
      return mode === 'require' ? this.refuseSyn(ip, tcp, 'require') : this.pass();
    }
    this.counters.inc('syn-request');
    if (flow !== undefined) {
      if (flow.clientIsn === tcp.seq) {
        flow.lastActivity = now;
        // A resent SYN: absorbed while keying, resent (stripped) once the original went on.
        if (flow.releasedSyn !== null) return { kind: 'rewrite', packet: flow.releasedSyn };
        return this.drop('syn-duplicate-absorbed', 'duplicate-syn');
      }
      if (!flow.lingering && flow.state !== 'refused') return this.drop('keying-dropped', 'syn-isn-mismatch');
      this.discard(flow, 'reused-tuple');
    }
    if (request.version !== 1 || (request.suites & suiteBit(Suite.CG1)) === 0) return this.refuseSyn(ip, tcp, 'unsupported-version');
    if (this.pendingKeyings >= this.config.limits.maxPendingKeyings) return this.refuseSyn(ip, tcp, 'limit-keyings');
    if (this.table.full) return this.refuseSyn(ip, tcp, 'limit-flows');
    if (this.byConnId.has(request.connId)) return this.refuseSyn(ip, tcp, 'duplicate-conn-id');

    // Copies, not views: an adapter may hand us a Buffer it reuses (Buffer#slice is a view).
    const tuple: FlowTuple = { clientAddr: new Uint8Array(ip.src), clientPort: tcp.srcPort, serverAddr: new Uint8Array(ip.dst), serverPort: tcp.dstPort };
    const gatewayNonce = this.deps.random(16);
    const hello: KdHello = {
      type: KdType.Hello,
      connId: request.connId,
      gatewayPrincipal: this.config.principal,
      tuple,
      clientIsn: tcp.seq,
      suite: Suite.CG1,
      gatewayNonce,
    };
    const created: GatewayFlow = {
      key,
      state: 'hello',
      connId: request.connId,
      tuple,
      clientIsn: tcp.seq,
      createdAt: now,
      lastActivity: now,
      deadline: now + this.config.timers.keyingTimeoutMs,
      lingering: false,
      heldSyn: new Uint8Array(packet.subarray(ip.offset, ip.end)),
      releasedSyn: null,
      gatewayNonce,
      hello,
      helloFrame: encodeKdMessage(hello),
      helloReplyFrame: null,
      agentNonce: null,
      clientPrincipal: null,
      requestId: null,
      transcript: null,
      cipher: null,
    };
    this.table.insert(key, created);
    this.byConnId.set(request.connId, created);
    this.pendingKeyings++;
    this.counters.inc('syn-held');
    this.actions.push({ kind: 'open-key-delivery', connId: request.connId, agent: { addr: tuple.clientAddr, port: this.config.agentPort }, tuple, hello });
    return HOLD;
  }

  // ---- key delivery and KDC -------------------------------------------------------------

  handleKdMessage(connId: bigint, message: KdMessage, now: number): void {
    const flow = this.byConnId.get(connId);
    if (flow === undefined || !KEYING_STATES.has(flow.state)) {
      this.counters.inc('kd-unknown');
      return;
    }
    flow.lastActivity = now;
    if (message.type === KdType.Error) return this.refuse(flow, `agent-${KD_ERROR_NAMES[message.code] ?? 'error'}`);
    if (message.type === KdType.HelloReply && flow.state === 'hello') return this.askKdc(flow, message.clientPrincipal, message.agentNonce, encodeKdMessage(message), now);
    if (message.type === KdType.Confirm && flow.state === 'confirm') {
      const cipher = flow.cipher as FlowCipher;
      if (!verifyAgentConfirm(this.deps.backend, cipher.confirmKeys, flow.transcript as Uint8Array, message.agentConfirm)) {
        return this.refuse(flow, 'confirm-failed');
      }
      return this.release(flow, now);
    }
    this.refuse(flow, 'kd-protocol');
  }

  /** The key-delivery session of a flow failed (connect refused, reset, timed out). */
  handleKdFailure(connId: bigint, _reason: string): void {
    const flow = this.byConnId.get(connId);
    if (flow !== undefined && KEYING_STATES.has(flow.state)) this.refuse(flow, 'agent-unreachable');
  }

  private askKdc(flow: GatewayFlow, clientPrincipal: string, agentNonce: Uint8Array, replyFrame: Uint8Array, now: number): void {
    if (this.byRequestId.size >= this.config.limits.maxKdcInFlight) return this.refuse(flow, 'limit-kdc');
    flow.clientPrincipal = clientPrincipal;
    flow.agentNonce = agentNonce;
    flow.helloReplyFrame = replyFrame;
    const requestId = this.deps.random(16);
    const request = sealIssueRequest(this.deps.backend, this.config.key.key, {
      requestId,
      gatewayPrincipal: this.config.principal,
      gatewayKvno: this.config.key.kvno,
      clientPrincipal,
      connId: flow.connId,
      tuple: flow.tuple,
      clientIsn: flow.clientIsn,
      suite: Suite.CG1,
      gatewayNonce: flow.gatewayNonce,
      agentNonce,
      timestampMs: Math.floor(now),
    });
    flow.requestId = hex(requestId);
    this.byRequestId.set(flow.requestId, flow);
    flow.state = 'kdc';
    this.actions.push({ kind: 'ask-kdc', requestId, request });
  }

  handleKdcAnswer(requestId: Uint8Array, answer: KdcAnswer, now: number): void {
    const flow = this.byRequestId.get(hex(requestId));
    if (flow === undefined) {
      this.counters.inc('kdc-unknown-answer');
      return;
    }
    this.byRequestId.delete(hex(requestId));
    flow.requestId = null;
    if (flow.state !== 'kdc') return;
    if (answer.kind === 'unreachable') return this.refuse(flow, 'kdc-unreachable');
    const decoded = decodeKdcMessage(answer.frame);
    if (!decoded.ok) return this.refuse(flow, 'kdc-malformed');
    const msg = decoded.value.message;
    if (msg.type === KdcType.IssueError) return this.refuse(flow, `kdc-${KDC_ERROR_NAMES[msg.code] ?? 'error'}`);
    if (msg.type !== KdcType.IssueResponse) return this.refuse(flow, 'kdc-malformed');
    const opened = openTicket(this.deps.backend, msg.gatewayTicket, this.config.principal, [this.config.key]);
    if (!opened.ok) return this.refuse(flow, `ticket-${opened.error.kind}`);
    const { sessionKey, binding } = opened.value;
    const expected = {
      ...binding,
      suite: Suite.CG1,
      connId: flow.connId,
      clientPrincipal: flow.clientPrincipal as string,
      gatewayPrincipal: this.config.principal,
      tuple: flow.tuple,
      clientIsn: flow.clientIsn,
      gatewayNonce: flow.gatewayNonce,
      agentNonce: flow.agentNonce as Uint8Array,
    };
    if (!bindingEqual(binding, expected) || binding.expiresAtMs <= now) {
      zeroize(sessionKey);
      return this.refuse(flow, 'ticket-binding');
    }
    const keys = deriveFlowKeys(this.deps.backend, sessionKey, binding);
    zeroize(sessionKey);
    flow.cipher = new FlowCipher(this.deps.backend, this.config.option, keys, flow.clientIsn);
    flow.transcript = transcriptHash(this.deps.backend, flow.helloFrame, flow.helloReplyFrame as Uint8Array, msg.clientTicket);
    flow.state = 'confirm';
    this.actions.push({
      kind: 'kd-send',
      connId: flow.connId,
      message: { type: KdType.Ticket, connId: flow.connId, clientTicket: msg.clientTicket, gatewayConfirm: gatewayConfirm(this.deps.backend, keys, flow.transcript) },
    });
  }

  /** Cipher sync is done: the held SYN goes on to the server, without our option (step 5). */
  private release(flow: GatewayFlow, now: number): void {
    const syn = flow.heldSyn as Uint8Array;
    flow.heldSyn = null;
    this.pendingKeyings--;
    this.actions.push({ kind: 'kd-close', connId: flow.connId });
    const stripped = this.stripRequest(syn);
    if (stripped === null) return this.refuse(flow, 'held-syn');
    flow.releasedSyn = stripped;
    flow.state = 'released';
    this.counters.inc('syn-released');
    this.keyingTimes.observe(now - flow.createdAt);
    this.actions.push({ kind: 'release', packet: stripped, toward: 'server' });
  }

  private stripRequest(syn: Uint8Array): Uint8Array | null {
    const ip = parseIp(syn);
    if (!ip.ok) return null;
    const tcp = parseTcp(syn, ip.value.payloadOffset, ip.value.payloadLength);
    if (!tcp.ok) return null;
    const ours = scanOptions(tcp.value.optionBytes, this.config.option);
    if (!ours.ok || ours.value.request === null) return null;
    const options = removeOption(tcp.value.optionBytes, ours.value.request.offset, ours.value.request.length);
    // Unauthenticated SYN data never reaches the server (rule 1).
    const out = rewriteTcp(syn, ip.value, tcp.value, { options, payload: new Uint8Array(0) });
    return out.ok ? out.value : null;
  }

  private withOptions(packet: Uint8Array, ip: IpView, tcp: TcpView, options: { ok: true; value: Uint8Array } | { ok: false }): [Uint8Array, IpView, TcpView] | null {
    if (!options.ok) return null;
    const out = rewriteTcp(packet, ip, tcp, { options: options.value });
    if (!out.ok) return null;
    const ipv = parseIp(out.value);
    if (!ipv.ok) return null;
    const tcpv = parseTcp(out.value, ipv.value.payloadOffset, ipv.value.payloadLength);
    return tcpv.ok ? [out.value, ipv.value, tcpv.value] : null;
  }

  // ---- failure, discard, timers ---------------------------------------------------------

  /** Refuses a keying flow: the held SYN is dropped and the client gets a RST (fail closed, rule 7). */
  private refuse(flow: GatewayFlow, why: string): void {
    this.counters.inc('refused');
    this.counters.inc(`refused:${why}`);
    if (flow.heldSyn !== null) {
      this.pendingKeyings--;
      const ip = parseIp(flow.heldSyn);
      const tcp = ip.ok ? parseTcp(flow.heldSyn, ip.value.payloadOffset, ip.value.payloadLength) : null;
      const rst = ip.ok && tcp?.ok ? resetReplyTo(ip.value, tcp.value) : null;
      if (rst !== null) this.actions.push({ kind: 'originate', packet: rst, toward: 'client', why });
      flow.heldSyn = null;
    }
    this.forgetKeying(flow);
    flow.cipher?.zeroize();
    flow.state = 'refused';
    flow.deadline = flow.lastActivity + this.config.timers.refusedHoldMs;
    this.actions.push({ kind: 'kd-close', connId: flow.connId });
  }

  private refuseSyn(ip: IpView, tcp: TcpView, why: string): Verdict {
    this.counters.inc('refused');
    this.counters.inc(`refused:${why}`);
    if (why.startsWith('limit-')) this.counters.inc(why as GatewayCounter);
    const rst = resetReplyTo(ip, tcp);
    if (rst !== null) this.actions.push({ kind: 'originate', packet: rst, toward: 'client', why });
    return { kind: 'drop', reason: why };
  }

  private forgetKeying(flow: GatewayFlow): void {
    if (flow.requestId !== null) this.byRequestId.delete(flow.requestId);
    flow.requestId = null;
  }

  /** Ends a flow: keys zeroed (rule 5), every index entry removed. */
  protected discard(flow: GatewayFlow, why: string): void {
    if (flow.heldSyn !== null) this.pendingKeyings--;
    flow.heldSyn = null;
    this.forgetKeying(flow);
    if (flow.cipher !== null) {
      flow.cipher.zeroize();
      this.counters.inc('keys-discarded');
    }
    this.table.delete(flow.key);
    if (this.byConnId.get(flow.connId) === flow) this.byConnId.delete(flow.connId);
    this.counters.inc(`discarded:${why}`);
  }

  /** Advances timers: keying timeouts (refuse), linger and tombstone ends, idle expiry. */
  handleTimer(now: number): void {
    const due: Array<[GatewayFlow, string]> = [];
    for (const [, flow] of this.table.entries()) {
      if (KEYING_STATES.has(flow.state) && now >= flow.deadline) due.push([flow, 'keying-timeout']);
      else if ((flow.lingering || flow.state === 'refused') && now >= flow.deadline) due.push([flow, flow.lingering ? 'linger' : 'tombstone']);
      else if (now - flow.lastActivity > this.config.timers.idleTimeoutMs) due.push([flow, 'idle']);
    }
    for (const [flow, why] of due) {
      if (why === 'keying-timeout') {
        flow.lastActivity = now;
        this.refuse(flow, why);
      } else this.discard(flow, why);
    }
  }

  // ---- operations -----------------------------------------------------------------------

  /**
   * Takes a reloaded config (SIGHUP): new services, keys, timers and option apply to flows that
   * start from now on; flows already keyed keep their ciphers. The flow-table size stays.
   */
  reconfigure(next: GatewayEngineConfig): void {
    this.config = next;
    this.services = new EndpointSet(next.services);
  }

  // ---- introspection --------------------------------------------------------------------

  get pendingKeyingCount(): number {
    return this.pendingKeyings;
  }

  flows(now: number): GatewayFlowStatus[] {
    return [...this.table.entries()].map(([, f]) => ({ ...describeFlow(f, now), clientPrincipal: f.clientPrincipal }));
  }

  // ---- helpers --------------------------------------------------------------------------

  private pass(): Verdict {
    this.passCounter.value++;
    return PASS;
  }

  private malformed(layer: string): Verdict {
    // Malformed traffic that touches no protected service is not ours to judge: it passes.
    this.counters.inc('malformed');
    this.counters.inc(`malformed:${layer}`);
    return this.pass();
  }

  private drop(counter: GatewayCounter, reason: string): Verdict {
    this.counters.inc(counter);
    return { kind: 'drop', reason };
  }
}
