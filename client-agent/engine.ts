// The client-agent role as a state machine (DESIGN section 2, steps 1, 4-8). Pure: adapters feed
// packets from the client host (outbound) and from the network (inbound), key-delivery messages
// and timer ticks.
//
// Per flow:  syn-sent -> keying -> keyed -> established -> (linger) -> gone
//                    \-> plaintext (opportunistic destination, SYN-ACK without the gateway's mark)
import { zeroize } from '../common/crypto/compare';
import { PASS, type Verdict } from '../common/engine/actions';
import { EndpointSet, type EndpointRule } from '../common/engine/endpoints';
import { FlowCipher } from '../common/engine/flow-cipher';
import { FlowEngine } from '../common/engine/flow-engine';
import { type EngineDeps, type FlowStatus, type KeyedFlow, describeFlow, endsFlow } from '../common/engine/keyed-flow';

export type { EngineDeps } from '../common/engine/keyed-flow';
import { admit } from '../common/engine/admission';
import { resetInstead, resetReplyTo } from '../common/engine/reset';
import { clampMss } from '../common/engine/syn-options';
import { type FlowTuple, bytesEqual, tupleEqual } from '../common/protocol/codec';
import { type WorkerSlot, drawConnId } from '../common/protocol/conn-id';
import { agentConfirm, transcriptHash, verifyGatewayConfirm } from '../common/protocol/confirm';
import { KdErrorCode, type KdHello, type KdMessage, type KdTicket, KdType, encodeKdMessage } from '../common/protocol/kd-messages';
import { deriveFlowKeys } from '../common/protocol/key-schedule';
import { type OptionConfig, Suite, TAG_OPTION_LEN, encodeRequestOption, scanOptions, suiteBit } from '../common/protocol/options';
import { type VersionedKey, openTicket } from '../common/protocol/ticket';
import { canonicalFlowKey } from '../common/wire/flow-key';
import type { IpView } from '../common/wire/ip';
import { rewriteTcp } from '../common/wire/packet';
import { TCP_FLAGS, type TcpView } from '../common/wire/tcp';

const EMPTY = new Uint8Array(0);

export type DestinationMode = 'require' | 'opportunistic';

export interface Destination {
  mode: DestinationMode;
  /** When set, only a ticket naming this gateway principal is accepted for the destination. */
  gateway?: string;
}

export interface AgentEngineConfig {
  principal: string;
  /** The agent's long-term keys, current first (a previous kvno stays usable while rotating). */
  keys: readonly VersionedKey[];
  destinations: readonly EndpointRule<Destination>[];
  option: OptionConfig;
  limits: { maxFlows: number };
  timers: { lingerMs: number; idleTimeoutMs: number; maxClockSkewMs: number };
}

export type AgentFlowState = 'syn-sent' | 'keying' | 'keyed' | 'established' | 'plaintext';

interface AgentFlow extends KeyedFlow<AgentFlowState> {
  destination: Destination;
  clientIsn: number;
  /** The SYN as we sent it (with our option), re-sent unchanged when the client resends. */
  sentSyn: Uint8Array;
  hello: KdHello | null;
  helloFrame: Uint8Array | null;
  helloReplyFrame: Uint8Array | null;
  agentNonce: Uint8Array | null;
}

export type AgentCounter =
  | 'packets'
  | 'pass'
  | 'malformed'
  | 'fragment-dropped'
  | 'syn-marked'
  | 'syn-resent'
  | 'flows-keyed'
  | 'flows-established'
  | 'flows-plaintext'
  | 'require-refused'
  | 'segments-protected'
  | 'segments-unprotected'
  | 'auth-failed'
  | 'no-flow-dropped'
  | 'not-established-dropped'
  | 'probe-payload-stripped'
  | 'keys-discarded'
  | 'limit-flows'
  | 'kd-rejected'
  | 'gateway-reset';

export type AgentFlowStatus = FlowStatus<AgentFlowState>;

export class AgentEngine extends FlowEngine<AgentFlow, AgentCounter | `kd-rejected:${string}` | `discarded:${string}` | `dropped:${string}`> {
  private destinations: EndpointSet<Destination>;
  private readonly byConnId = new Map<bigint, AgentFlow>();

  constructor(
    private config: AgentEngineConfig,
    private readonly deps: EngineDeps,
    /** As one of several worker processes: every connId names this worker (conn-id.ts). */
    private readonly slot?: WorkerSlot,
  ) {
    super(config.limits.maxFlows);
    if (config.keys.length === 0) throw new RangeError('agent needs at least one long-term key');
    this.destinations = new EndpointSet(config.destinations);
  }

  // ---- packets --------------------------------------------------------------------------

  /** A packet from the client host (outbound) or from the network (inbound). */
  handlePacket(packet: Uint8Array, now: number): Verdict {
    this.packetsCounter.value++;
    const a = admit(packet, this.destinations);
    switch (a.kind) {
      case 'pass':
        return a.malformed === null ? this.pass() : this.malformed();
      case 'drop':
        return this.drop(a.reason === 'fragment' ? 'fragment-dropped' : 'malformed', a.reason);
      case 'to':
        return this.outbound(packet, a.ip, a.tcp, a.meta, now);
      case 'from':
        return this.inbound(packet, a.ip, a.tcp, a.meta, now);
    }
  }

  private outbound(packet: Uint8Array, ip: IpView, tcp: TcpView, destination: Destination, now: number): Verdict {
    const key = canonicalFlowKey(ip, tcp.srcPort, tcp.dstPort);
    const flow = this.table.get(key);
    if ((tcp.flags & (TCP_FLAGS.SYN | TCP_FLAGS.ACK)) === TCP_FLAGS.SYN) return this.syn(packet, ip, tcp, destination, key, flow, now);
    if (flow === undefined) return destination.mode === 'require' ? this.drop('no-flow-dropped', 'no-flow') : this.pass();
    flow.lastActivity = now;
    if (flow.state === 'plaintext') return this.pass();
    if (flow.state !== 'established') return this.drop('not-established-dropped', flow.state);
    const out = (flow.cipher as FlowCipher).protect('c2s', packet, ip, tcp);
    if (!out.ok) return this.drop('dropped:protect', out.error);
    this.protectedCounter.value++;
    if (out.value.strippedPayload) this.counters.inc('probe-payload-stripped');
    this.afterSegment(flow, out.value.rst, now);
    return { kind: 'rewrite', packet: out.value.packet };
  }

  private syn(packet: Uint8Array, ip: IpView, tcp: TcpView, destination: Destination, key: string, flow: AgentFlow | undefined, now: number): Verdict {
    if (flow !== undefined) {
      if (flow.clientIsn === tcp.seq) {
        // The client's kernel resent its SYN: send the same marked SYN (same connection id).
        flow.lastActivity = now;
        this.counters.inc('syn-resent');
        return { kind: 'rewrite', packet: flow.sentSyn };
      }
      this.discard(flow, 'reused-tuple');
    }
    if (this.table.full) {
      this.counters.inc('limit-flows');
      return destination.mode === 'require' ? this.refuseClient(ip, tcp, 'limit-flows') : this.pass();
    }
    const connId = drawConnId(this.deps.random(8), this.slot);
    const request = encodeRequestOption({ version: 1, suites: suiteBit(Suite.CG1), connId }, this.config.option);
    const options = clampMss(tcp.optionBytes, TAG_OPTION_LEN, ip.version, [request]);
    // SYN data (TCP Fast Open) cannot be encrypted before there is a key: it is left out, and the
    // client's stack sends it again after the handshake because the SYN-ACK does not cover it.
    const marked = options.ok ? rewriteTcp(packet, ip, tcp, { options: options.value, payload: EMPTY }) : null;
    if (marked === null || !marked.ok) {
      // No room for the request: never silently downgrade a required destination.
      return destination.mode === 'require' ? this.refuseClient(ip, tcp, 'no-option-space') : this.pass();
    }
    // Copies, not views: an adapter may hand us a Buffer it reuses (Buffer#slice is a view).
    const tuple: FlowTuple = { clientAddr: new Uint8Array(ip.src), clientPort: tcp.srcPort, serverAddr: new Uint8Array(ip.dst), serverPort: tcp.dstPort };
    const created: AgentFlow = {
      key,
      state: 'syn-sent',
      destination,
      connId,
      tuple,
      clientIsn: tcp.seq,
      createdAt: now,
      lastActivity: now,
      sentSyn: marked.value,
      hello: null,
      helloFrame: null,
      helloReplyFrame: null,
      agentNonce: null,
      cipher: null,
      lingering: false,
      deadline: 0,
    };
    this.table.insert(key, created);
    this.byConnId.set(connId, created);
    this.counters.inc('syn-marked');
    return { kind: 'rewrite', packet: marked.value };
  }

  private inbound(packet: Uint8Array, ip: IpView, tcp: TcpView, destination: Destination, now: number): Verdict {
    const flow = this.table.get(canonicalFlowKey(ip, tcp.srcPort, tcp.dstPort));
    if (flow === undefined) return destination.mode === 'require' ? this.drop('no-flow-dropped', 'no-flow') : this.pass();
    flow.lastActivity = now;
    if (flow.state === 'plaintext') return this.pass();
    const isSynAck = (tcp.flags & (TCP_FLAGS.SYN | TCP_FLAGS.ACK)) === (TCP_FLAGS.SYN | TCP_FLAGS.ACK);
    if (flow.cipher === null) return this.inboundUnkeyed(flow, packet, ip, tcp, isSynAck);
    const out = flow.cipher.unprotect('s2c', packet, ip, tcp);
    if (!out.ok) return this.drop('auth-failed', out.error);
    this.unprotectedCounter.value++;
    if (isSynAck && flow.state === 'keyed') {
      flow.state = 'established';
      this.counters.inc('flows-established');
    }
    this.afterSegment(flow, out.value.rst, now);
    return { kind: 'rewrite', packet: out.value.packet };
  }

  /** Inbound before any key: either no gateway is there, or the gateway is refusing the flow. */
  private inboundUnkeyed(flow: AgentFlow, packet: Uint8Array, ip: IpView, tcp: TcpView, isSynAck: boolean): Verdict {
    if (tcp.flags & TCP_FLAGS.RST) {
      // The gateway's fail-closed RST has no key to sign with yet. Like the client's own TCP
      // (RFC 9293 3.10.7.3), accept it only if it acknowledges the SYN; a blind one is dropped.
      if (!(tcp.flags & TCP_FLAGS.ACK) || tcp.ack !== ((flow.clientIsn + 1) >>> 0)) return this.drop('dropped:blind-rst', 'blind-rst');
      this.counters.inc('gateway-reset');
      this.discard(flow, 'gateway-reset');
      return this.pass();
    }
    if (!isSynAck) return this.drop('not-established-dropped', flow.state);
    const ours = scanOptions(packet.subarray(tcp.optionsStart, tcp.optionsEnd), this.config.option);
    if (!ours.ok || ours.value.tag !== null) return this.drop('dropped:mark-without-key', 'mark-without-key');
    if (flow.destination.mode === 'opportunistic') {
      // No gateway on the path: the destination allows plaintext.
      flow.state = 'plaintext';
      this.counters.inc('flows-plaintext');
      this.forgetKeying(flow);
      return this.pass();
    }
    // Required, and nobody encrypts: reset both ends (fail closed, rule 7).
    const rstClient = resetInstead(ip, tcp);
    const rstServer = resetReplyTo(ip, tcp);
    if (rstClient !== null) this.actions.push({ kind: 'originate', packet: rstClient, toward: 'client', why: 'require-unmarked' });
    if (rstServer !== null) this.actions.push({ kind: 'originate', packet: rstServer, toward: 'server', why: 'require-unmarked' });
    this.counters.inc('require-refused');
    this.discard(flow, 'require-unmarked');
    return { kind: 'drop', reason: 'require-unmarked' };
  }

  private afterSegment(flow: AgentFlow, rst: boolean, now: number): void {
    if (endsFlow(flow, rst, now, this.config.timers.lingerMs)) this.discard(flow, 'rst');
  }

  // ---- key delivery ---------------------------------------------------------------------

  /** A key-delivery message from a gateway. Replies go out as kd-send side actions. */
  handleKdMessage(connId: bigint, message: KdMessage, now: number): void {
    const flow = this.byConnId.get(connId);
    if (message.type === KdType.Error) {
      this.counters.inc('kd-rejected');
      return;
    }
    if (flow === undefined) return this.reject(connId, KdErrorCode.UnknownConnection, 'no flow with this connection id');
    flow.lastActivity = now;
    if (message.type === KdType.Hello && flow.state === 'syn-sent') return this.hello(flow, message);
    if (message.type === KdType.Ticket && flow.state === 'keying') return this.ticket(flow, message, now);
    this.reject(connId, KdErrorCode.Malformed, `unexpected message in state ${flow.state}`);
  }

  private hello(flow: AgentFlow, hello: KdHello): void {
    // The gateway must describe the very SYN we sent (rule 6).
    if (!tupleEqual(hello.tuple, flow.tuple) || hello.clientIsn !== flow.clientIsn) {
      return this.reject(flow.connId, KdErrorCode.BindingMismatch, 'hello does not match the SYN');
    }
    if (hello.suite !== Suite.CG1) return this.reject(flow.connId, KdErrorCode.BindingMismatch, 'unsupported suite');
    if (flow.destination.gateway !== undefined && hello.gatewayPrincipal !== flow.destination.gateway) {
      return this.reject(flow.connId, KdErrorCode.BindingMismatch, 'gateway not allowed for this destination');
    }
    flow.hello = hello;
    // The transcript covers the canonical encodings, which both sides compute alike.
    flow.helloFrame = encodeKdMessage(hello);
    flow.agentNonce = this.deps.random(16);
    flow.state = 'keying';
    const reply: KdMessage = { type: KdType.HelloReply, connId: flow.connId, clientPrincipal: this.config.principal, agentNonce: flow.agentNonce };
    flow.helloReplyFrame = encodeKdMessage(reply);
    this.actions.push({ kind: 'kd-send', connId: flow.connId, message: reply });
  }

  private ticket(flow: AgentFlow, msg: KdTicket, now: number): void {
    const opened = openTicket(this.deps.backend, msg.clientTicket, this.config.principal, this.config.keys);
    if (!opened.ok) return this.reject(flow.connId, KdErrorCode.TicketInvalid, opened.error.kind);
    const { sessionKey, binding } = opened.value;
    const hello = flow.hello as KdHello;
    const skew = this.config.timers.maxClockSkewMs;
    const bound =
      binding.connId === flow.connId &&
      binding.suite === Suite.CG1 &&
      binding.clientPrincipal === this.config.principal &&
      binding.gatewayPrincipal === hello.gatewayPrincipal &&
      tupleEqual(binding.tuple, flow.tuple) &&
      binding.clientIsn === flow.clientIsn &&
      bytesEqual(binding.gatewayNonce, hello.gatewayNonce) &&
      bytesEqual(binding.agentNonce, flow.agentNonce as Uint8Array);
    if (!bound) {
      zeroize(sessionKey);
      return this.reject(flow.connId, KdErrorCode.BindingMismatch, 'ticket is bound to another flow');
    }
    if (binding.expiresAtMs + skew <= now || binding.issuedAtMs - skew > now) {
      zeroize(sessionKey);
      return this.reject(flow.connId, KdErrorCode.Expired, 'ticket expired or not yet valid');
    }
    const keys = deriveFlowKeys(this.deps.backend, sessionKey, binding);
    zeroize(sessionKey);
    const transcript = transcriptHash(this.deps.backend, flow.helloFrame as Uint8Array, flow.helloReplyFrame as Uint8Array, msg.clientTicket);
    if (!verifyGatewayConfirm(this.deps.backend, keys, transcript, msg.gatewayConfirm)) {
      Object.values(keys).forEach((k: Uint8Array) => zeroize(k));
      return this.reject(flow.connId, KdErrorCode.ConfirmFailed, 'gateway confirmation does not verify');
    }
    flow.cipher = new FlowCipher(this.deps.backend, this.config.option, keys, flow.clientIsn);
    flow.state = 'keyed';
    this.counters.inc('flows-keyed');
    this.actions.push({ kind: 'kd-send', connId: flow.connId, message: { type: KdType.Confirm, connId: flow.connId, agentConfirm: agentConfirm(this.deps.backend, keys, transcript) } });
    this.actions.push({ kind: 'kd-close', connId: flow.connId });
  }

  private reject(connId: bigint, code: KdErrorCode, reason: string): void {
    this.counters.inc('kd-rejected');
    this.counters.inc(`kd-rejected:${KdErrorCode[code]}`);
    this.actions.push({ kind: 'kd-send', connId, message: { type: KdType.Error, connId, code, reason } });
    this.actions.push({ kind: 'kd-close', connId });
  }

  // ---- discard and timers ---------------------------------------------------------------

  private refuseClient(ip: IpView, tcp: TcpView, why: string): Verdict {
    const rst = resetReplyTo(ip, tcp);
    if (rst !== null) this.actions.push({ kind: 'originate', packet: rst, toward: 'client', why });
    this.counters.inc('require-refused');
    return { kind: 'drop', reason: why };
  }

  private forgetKeying(flow: AgentFlow): void {
    if (this.byConnId.get(flow.connId) === flow) this.byConnId.delete(flow.connId);
  }

  protected discard(flow: AgentFlow, why: string): void {
    this.forgetKeying(flow);
    if (flow.cipher !== null) {
      flow.cipher.zeroize();
      this.counters.inc('keys-discarded');
    }
    this.table.delete(flow.key);
    this.counters.inc(`discarded:${why}`);
  }

  handleTimer(now: number): void {
    const due: Array<[AgentFlow, string]> = [];
    for (const [, flow] of this.table.entries()) {
      if (flow.lingering && now >= flow.deadline) due.push([flow, 'linger']);
      else if (now - flow.lastActivity > this.config.timers.idleTimeoutMs) due.push([flow, 'idle']);
    }
    for (const [flow, why] of due) this.discard(flow, why);
  }

  // ---- operations -----------------------------------------------------------------------

  /**
   * Takes a reloaded config (SIGHUP): new destinations, keys, timers and option apply to flows that
   * start from now on; flows already keyed keep their ciphers. The flow-table size stays.
   */
  reconfigure(next: AgentEngineConfig): void {
    this.config = next;
    this.destinations = new EndpointSet(next.destinations);
  }

  // ---- introspection --------------------------------------------------------------------

  flows(now: number): AgentFlowStatus[] {
    return [...this.table.entries()].map(([, f]) => describeFlow(f, now));
  }

  private pass(): Verdict {
    this.passCounter.value++;
    return PASS;
  }

  private malformed(): Verdict {
    this.counters.inc('malformed');
    return this.pass();
  }

  private drop(counter: AgentCounter | `dropped:${string}`, reason: string): Verdict {
    this.counters.inc(counter);
    return { kind: 'drop', reason };
  }
}
