// Simulated connections through the whole path (DESIGN section 7):
//
//   client endpoint -> agent -> impaired wire -> gateway -> server endpoint   (and back)
//
// The agent sits on the client host (packets reach it at once); the agent-client and
// gateway-server links are clean; the agent-gateway wire loses, duplicates and reorders by seed.
// Every packet an engine puts on the wire is checked against the rules of DESIGN section 3 as
// it is sent; the run returns the violations it saw (empty on success) and some figures.
import { nodeBackend } from '../../common/crypto/node-backend';
import type { FlowCipher } from '../../common/engine/flow-cipher';
import { parseEndpoint } from '../../common/engine/endpoints';
import { DEFAULT_OPTION_CONFIG, REQUEST_OPTION_LEN, TAG_OPTION_LEN, encodeRequestOption } from '../../common/protocol/options';
import { type IpTcpRepr, emitIpTcp, parseIpTcp } from '../../common/wire/packet';
import { TCP_FLAGS } from '../../common/wire/tcp';
import { TCP_OPTION, type TcpOption, decodeSackBlocks, experimentId, timestampsOption } from '../../common/wire/tcp-options';
import { Pipeline, type PipelineSinks, type WireDirection } from '../../pipeline/pipeline';
import { DEFAULT_TIMERS, createTrio } from '../../pipeline/setup';
import { AsyncPath } from './async-path';
import { plaintextRuns } from './leaks';
import { TcpEndpoint } from './tcp-endpoint';
import { CLEAN, EventQueue, type Impairment, Link, Rng } from './wire';

const LINK_MTU = 1500;
/** Without an MSS option a peer assumes 536 / 1220 bytes (RFC 9293), i.e. these IP packet sizes. */
const DEFAULT_PATH_MTU = { 4: 576, 6: 1280 } as const;
const START_MS = 1_750_000_000_000;
/** A run that has not finished by then (virtual time) is a failure, not a hang. */
const MAX_VIRTUAL_MS = 5 * 60_000;
const MAX_EVENTS = 2_000_000;
const OPTION = DEFAULT_OPTION_CONFIG;

export interface Scenario {
  name: string;
  version: 4 | 6;
  wire: Impairment;
  /** Both ISNs within a few KB below 2^32, so sequence numbers wrap mid-transfer. */
  isnNearWrap: boolean;
  ecn: boolean;
  /** Stream sizes (client->server, server->client) for a seed. */
  sizes(rng: Rng): [number, number];
  shortSegmentChance: number;
  probeChance: number;
  /**
   * Forged segments (right 4-tuple, in-window seq, no valid tag) the wire injects toward both
   * engines: 'mid-transfer' RST, FIN, data and tampered replays once data flows (see
   * forgeMidTransfer); 'before-synack' a RST toward the agent
   * after keying, before the server's SYN-ACK arrives; 'before-keying' a RST toward the agent
   * whose ACK does not acknowledge the SYN (the client's TCP would ignore it), while the SYN is
   * still on its way to the gateway; 'syn-during-linger' a SYN with an encryption request (new
   * ISN, random connection id) toward the gateway as soon as its flow starts to linger.
   */
  forge?: 'mid-transfer' | 'before-synack' | 'before-keying' | 'syn-during-linger';
  /**
   * Key delivery and KDC answers take [min, max] ms per hop (five hops per keying) instead of
   * happening at once: the client resends its SYN while the gateway holds the first.
   */
  keyingHopMs?: [number, number];
  /**
   * 'refused': keying cannot finish in time, so the gateway must refuse (rule 7): the client gets
   * a RST, the server never hears of the connection, nothing else crosses. 'plaintext': the
   * server port is not protected, so every packet must pass both engines byte for byte (rule 7).
   */
  expect?: 'refused' | 'plaintext';
  /** The wire loses every FIN-carrying segment in `dir` for `ms` after the first (an outage at close). */
  finOutage?: { dir: WireDirection; ms: number };
  /**
   * The wire loses the client's final ACK (of the server's FIN), then everything toward the
   * client for `ms`: the server sits in LAST_ACK resending, and needs the client (in TIME_WAIT)
   * to ACK again once a resend gets through.
   */
  finalAckLost?: { ms: number };
  /**
   * Connections one after another on the same 4-tuple (default 1): each next one starts shortly
   * after the previous one finished, while its flow still lingers in both engines.
   */
  connections?: number;
  /** Connections at once from this many client ports (default 1), sharing the engines and the wire. */
  parallel?: number;
  /** Handshakes without any TCP option (the engines must add a clamped MSS option). */
  bareHandshake?: boolean;
  /** This endpoint aborts with a RST halfway through its stream (an authenticated RST ends the flow at once). */
  abort?: 'client' | 'server';
  /** Keepalive probes carry a garbage byte (BSD style) instead of the acknowledged true one. */
  garbageProbes?: boolean;
  /**
   * For testing the checks themselves: replaces what an engine puts on the wire (`source` is the
   * endpoint's packet it came from), as a broken engine would.
   */
  tamperWire?(packet: Uint8Array, dir: WireDirection, source: Uint8Array | null): Uint8Array;
}

export interface SimReport {
  violations: string[];
  figures: Record<string, number>;
}

type Event =
  | { kind: 'wire'; dir: WireDirection; packet: Uint8Array }
  | { kind: 'to-client'; packet: Uint8Array }
  | { kind: 'to-server'; packet: Uint8Array }
  | { kind: 'inject'; dir: WireDirection; packet: Uint8Array }
  | { kind: 'call'; run: (now: number) => void };

/** What the simulation drives: pipeline/Pipeline (keying at once) or AsyncPath (keying delayed). */
type Path = Pick<Pipeline, 'agent' | 'gateway' | 'clientSends' | 'serverSends' | 'deliver' | 'tick'>;

interface Source {
  dir: WireDirection;
  packet: Uint8Array;
  seq: number;
  ack: number;
  flags: number;
  payloadLength: number;
  /** Rel position just past the payload, in the sender's stream. */
  payloadEndRel: number;
  used: boolean;
}

const ADDRS = {
  4: { client: Uint8Array.of(10, 0, 0, 1), server: Uint8Array.of(10, 0, 1, 1), protect: '10.0.1.0/24:443' },
  6: {
    client: Uint8Array.of(0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1),
    server: Uint8Array.of(0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1),
    protect: '[fd00:1::/64]:443',
  },
} as const;

/** Runs the connection(s) for (scenario, seed) to completion and reports every rule they saw broken. */
export function runSim(scenario: Scenario, seed: number): SimReport {
  const first = new Sim(scenario, seed, undefined);
  const report: SimReport = { violations: [], figures: {} };
  const add = (one: SimReport, label: string | null): void => {
    report.violations.push(...one.violations.map((v) => (label === null ? v : `${label}: ${v}`)));
    for (const [k, v] of Object.entries(one.figures)) report.figures[k] = (report.figures[k] ?? 0) + v;
  };
  const parallel = scenario.parallel ?? 1;
  if (parallel > 1) {
    const sims = [first];
    for (let i = 1; i < parallel; i++) sims.push(new Sim(scenario, seed, { world: first.world, index: i, port: first.world.clientPort + i }));
    sims.forEach((sim, i) => first.world.queue.after(i * PARALLEL_STAGGER_MS, { kind: 'call', run: (now) => sim.connect(now) }));
    Sim.drive(first.world, sims);
    sims.forEach((sim, i) => add(sim.finish(i === sims.length - 1), `connection ${i + 1} (port ${first.world.clientPort + i})`));
    return report;
  }
  const count = scenario.connections ?? 1;
  let sim = first;
  for (let i = 0; ; i++) {
    const last = i === count - 1;
    const one = sim.run(last);
    add(one, count > 1 ? `connection ${i + 1}` : null);
    if (last || one.violations.length > 0) return report;
    sim = new Sim(scenario, seed, { world: first.world, index: i + 1, port: first.world.clientPort });
  }
}

/** Client port of a packet from or to the client (IPv4 without options' surprises, IPv6 without extension headers). */
function clientPortOf(packet: Uint8Array, fromClient: boolean): number | null {
  const version = (packet[0] ?? 0) >> 4;
  const at = version === 4 ? ((packet[0] as number) & 0x0f) * 4 : 40;
  if (packet.length < at + 4) return null;
  const src = ((packet[at] as number) << 8) | (packet[at + 1] as number);
  const dst = ((packet[at + 2] as number) << 8) | (packet[at + 3] as number);
  return fromClient ? src : dst;
}

/** What the connections of one run share: the clock and the engines (and for reuse the 4-tuple). */
interface World {
  queue: EventQueue<Event>;
  path: Path;
  /** The latest connection on each client port: where the engines' output for it goes. */
  byPort: Map<number, Sim>;
  /** The latest connection created (for packets without a readable port). */
  current: Sim;
  clientPort: number;
  /** Most flows the gateway held at once. */
  maxFlows: number;
  /** Every flow cipher seen, for the rule 5 check at the very end. */
  ciphers: Set<FlowCipher>;
}

/** The next connection reuses the 4-tuple this long after the previous one finished (ms), within the linger. */
const REUSE_GAP_MS = 200;
/** Parallel connections start this far apart (ms). */
const PARALLEL_STAGGER_MS = 3;

class Sim {
  private readonly violations: string[] = [];
  private readonly rng: Rng;
  private readonly queue: EventQueue<Event>;
  private readonly pipeline: Path;
  readonly world: World;
  /** 0 for the first connection of the run. */
  private readonly index: number;
  private readonly client: TcpEndpoint;
  private readonly server: TcpEndpoint;
  private readonly links: Record<WireDirection, Link<Event>>;
  private readonly toClient: Link<Event>;
  private readonly toServer: Link<Event>;
  private readonly streams: Record<WireDirection, Uint8Array>;
  private readonly isn: Record<WireDirection, number>;
  /** Rule 2: the ciphertext byte seen at each stream position (-1: none yet). */
  private readonly cipherAt: Record<WireDirection, Int16Array>;
  private readonly wirePayloads: Uint8Array[] = [];
  /** Highest ACK (rel to the protected direction's ISN) each engine has passed to its host. */
  private readonly ackKnown: Record<WireDirection, number> = { c2s: 0, s2c: 0 };
  /** Last seq/ack seen on the wire per direction (for forging in-window segments). */
  private readonly lastOnWire: Partial<Record<WireDirection, { seq: number; ack: number; packet: Uint8Array }>> = {};
  private readonly ciphers = new Set<FlowCipher>();
  /** Wire packets of exactly the MTU: the endpoints filled the clamped MSS. */
  private readonly fullSize: Record<WireDirection, number> = { c2s: 0, s2c: 0 };
  private source: Source | null = null;
  /** Every packet each endpoint sent, to check the far host gets exactly those (transparency). */
  private readonly sent: Record<WireDirection, Set<string>> = { c2s: new Set(), s2c: new Set() };
  private readonly sentBySeq: Record<WireDirection, Map<string, IpTcpRepr[]>> = { c2s: new Map(), s2c: new Map() };
  private readonly clientPort: number;
  /** 443 is protected on both engines; 8443 is not (a plaintext flow, which must pass unchanged). */
  private readonly serverPort: number;
  private firstFinAt: number | undefined;
  private finalAckDroppedAt: number | undefined;
  /** The largest IP packet the endpoints' MSS allows: every packet must fit, full ones must reach it. */
  private readonly mtu: number;
  private forged = { agent: 0, gateway: 0 };
  private forgedDone = false;
  private readonly figures: Record<string, number> = {};

  constructor(
    private readonly scenario: Scenario,
    seed: number,
    /** For a later connection of the run: the world of the first, and its number. */
    shared: { world: World; index: number; port: number } | undefined,
  ) {
    this.index = shared?.index ?? 0;
    // Names of this connection's random streams (the first connection's are the plain seed's).
    const tag = shared === undefined ? `${scenario.name}:${seed}` : `${scenario.name}:${seed}:${shared.index}`;
    this.rng = new Rng(`sim:${tag}`);
    const [c2sSize, s2cSize] = scenario.sizes(this.rng);
    this.streams = { c2s: this.rng.bytes(c2sSize), s2c: this.rng.bytes(s2cSize) };
    const isnFor = (): number => (scenario.isnNearWrap ? 0x1_0000_0000 - this.rng.int(1, 6000) : this.rng.u32());
    this.isn = { c2s: isnFor(), s2c: isnFor() };
    this.cipherAt = { c2s: new Int16Array(c2sSize).fill(-1), s2c: new Int16Array(s2cSize).fill(-1) };
    const addrs = ADDRS[scenario.version];
    const protect = parseEndpoint(addrs.protect);
    if (typeof protect === 'string') throw new Error(protect);
    if (shared === undefined) {
      this.queue = new EventQueue<Event>(START_MS);
      const trio = createTrio({ backend: nodeBackend, random: this.rng.bytes.bind(this.rng), protect: [protect] });
      // The engines' output goes to whichever connection is current.
      const of = (p: Uint8Array, fromClient: boolean): Sim => this.world.byPort.get(clientPortOf(p, fromClient) ?? -1) ?? this.world.current;
      const sinks: PipelineSinks = {
        client: (p) => of(p, false).fromAgentToClient(p),
        server: (p) => of(p, true).fromGatewayToServer(p),
        wire: (p, dir) => of(p, dir === 'c2s').onWire(p, dir),
      };
      const hop = scenario.keyingHopMs;
      if (hop === undefined) this.pipeline = new Pipeline(trio.agent, trio.gateway, trio.kdc, sinks);
      else {
        const hopRng = new Rng(`keying:${scenario.name}:${seed}`);
        this.pipeline = new AsyncPath(trio.agent, trio.gateway, trio.kdc, sinks, {
          later: (delay, run) => this.queue.after(delay, { kind: 'call', run }),
          hopDelay: () => hopRng.int(hop[0], hop[1]),
        });
      }
    } else {
      this.queue = shared.world.queue;
      this.pipeline = shared.world.path;
    }
    const wireRng = new Rng(`wire:${tag}`);
    this.links = {
      c2s: new Link(this.queue, wireRng, scenario.wire, (packet) => ({ kind: 'wire', dir: 'c2s', packet })),
      s2c: new Link(this.queue, wireRng, scenario.wire, (packet) => ({ kind: 'wire', dir: 's2c', packet })),
    };
    this.toClient = new Link(this.queue, wireRng, CLEAN, (packet) => ({ kind: 'to-client', packet }));
    this.toServer = new Link(this.queue, wireRng, CLEAN, (packet) => ({ kind: 'to-server', packet }));
    this.serverPort = scenario.expect === 'plaintext' ? 8443 : 443;
    const mss = scenario.bareHandshake ? null : scenario.version === 4 ? 1460 : 1440;
    this.mtu = scenario.bareHandshake ? DEFAULT_PATH_MTU[scenario.version] : LINK_MTU;
    const window = this.rng.pick([8, 16, 32, 44]) * 1400;
    this.clientPort = 40_000 + this.rng.int(0, 20_000);
    if (shared !== undefined) {
      this.clientPort = shared.port;
      this.world = shared.world;
      this.world.current = this;
    } else this.world = { queue: this.queue, path: this.pipeline, byPort: new Map(), current: this, clientPort: this.clientPort, maxFlows: 0, ciphers: new Set() };
    this.world.byPort.set(this.clientPort, this);
    const common = {
      version: scenario.version,
      mss,
      ecn: scenario.ecn,
      window,
      shortSegmentChance: scenario.shortSegmentChance,
      probeChance: scenario.probeChance,
      garbageProbes: scenario.garbageProbes ?? false,
      foreignOption: OPTION,
    };
    const abortAt = (dir: WireDirection): number | undefined => (scenario.abort === (dir === 'c2s' ? 'client' : 'server') ? Math.floor(this.streams[dir].length / 2) + 1 : undefined);
    this.client = new TcpEndpoint({
      ...common,
      role: 'client',
      localAddr: addrs.client,
      localPort: this.clientPort,
      remoteAddr: addrs.server,
      remotePort: this.serverPort,
      isn: this.isn.c2s,
      data: this.streams.c2s,
      abortAt: abortAt('c2s'),
      rng: new Rng(`client:${tag}`),
      send: (p) => this.endpointSends('c2s', p),
    });
    this.server = new TcpEndpoint({
      ...common,
      role: 'server',
      localAddr: addrs.server,
      localPort: this.serverPort,
      remoteAddr: addrs.client,
      remotePort: this.clientPort,
      isn: this.isn.s2c,
      data: this.streams.s2c,
      abortAt: abortAt('s2c'),
      rng: new Rng(`server:${tag}`),
      send: (p) => this.endpointSends('s2c', p),
    });
    Object.assign(this.figures, { c2sBytes: c2sSize, s2cBytes: s2cSize, window });
  }

  private finishing = false;

  /** Records a violation; during the run at most 20 (the run stops there), the end checks always. */
  private fail(what: string): void {
    if (this.finishing || this.violations.length < 20) this.violations.push(`[t=${this.queue.now - START_MS}ms] ${what}`);
  }

  /** Runs this connection until nothing is left to happen; `last`: also the engines' end checks. */
  run(last: boolean): SimReport {
    if (this.index > 0) this.queue.now += REUSE_GAP_MS;
    this.connect(this.queue.now);
    Sim.drive(this.world, [this]);
    return this.finish(last);
  }

  connect(now: number): void {
    this.client.connect(now);
  }

  /** Advances the virtual clock over events and endpoint timers until nothing is left to happen. */
  static drive(world: World, sims: readonly Sim[]): void {
    const { queue, path } = world;
    const first = sims[0] as Sim;
    let events = 0;
    for (;;) {
      let t = queue.peekTime();
      for (const sim of sims) t = Math.min(t, sim.client.timerAt ?? Infinity, sim.server.timerAt ?? Infinity);
      // Nothing left to happen: finish() judges where the endpoints got to.
      if (t === Infinity) break;
      if (t - START_MS > MAX_VIRTUAL_MS || ++events > MAX_EVENTS) {
        for (const sim of sims) sim.fail(`did not finish in ${MAX_VIRTUAL_MS} virtual ms / ${MAX_EVENTS} events. ${sim.client.describe()}; ${sim.server.describe()}`);
        break;
      }
      if (queue.peekTime() === t) first.handle(queue.pop());
      else {
        queue.now = t;
        for (const sim of sims) {
          sim.client.onTimer(t);
          sim.server.onTimer(t);
        }
      }
      path.tick(queue.now);
      world.maxFlows = Math.max(world.maxFlows, path.gateway.flowCount);
      first.maybeForgeDuringLinger();
      const ciphers = [...path.agent.debugCiphers(), ...path.gateway.debugCiphers()];
      for (const sim of sims) for (const c of ciphers) sim.ciphers.add(c);
      for (const c of ciphers) world.ciphers.add(c);
      if (sims.some((sim) => sim.violations.length >= 20)) break;
    }
  }

  private maybeForgeDuringLinger(): void {
    if (this.scenario.forge !== 'syn-during-linger' || this.forgedDone || this.pipeline.gateway.flows(this.queue.now)[0]?.lingering !== true) return;
    this.forgedDone = true;
    const request = { kind: OPTION.kind, data: encodeRequestOption({ version: 1, suites: 1, connId: 0x5eed_0000_0000_0001n }, OPTION).subarray(2) };
    // Not an auth failure: a SYN carries no tag; the gateway starts keying it (and must not let
    // that cost the lingering flow its keys).
    this.inject('c2s', this.forgedSegment('c2s', this.rng.u32(), 0, TCP_FLAGS.SYN, false, new Uint8Array(0), [request]), false);
  }

  private simOf(packet: Uint8Array, fromClient: boolean): Sim {
    return this.world.byPort.get(clientPortOf(packet, fromClient) ?? -1) ?? this.world.current;
  }

  private handle(event: Event): void {
    const now = this.queue.now;
    switch (event.kind) {
      case 'wire':
        this.pipeline.deliver(event.packet, event.dir, now);
        return;
      case 'inject': {
        this.pipeline.deliver(event.packet, event.dir, now);
        // Rule 5: a forged RST or FIN leaves both keys in place.
        const { agent, gateway } = this.pipeline;
        if (this.scenario.forge === 'mid-transfer' && (agent.keyedFlowCount !== 1 || gateway.keyedFlowCount !== 1)) {
          this.fail(`rule 5: after a forged segment toward the ${event.dir === 'c2s' ? 'gateway' : 'agent'}, keyed flows agent ${agent.keyedFlowCount}, gateway ${gateway.keyedFlowCount}`);
        }
        return;
      }
      case 'to-client':
        this.simOf(event.packet, false).client.onPacket(event.packet, now);
        return;
      case 'to-server':
        this.simOf(event.packet, true).server.onPacket(event.packet, now);
        return;
      case 'call':
        event.run(now);
        return;
    }
  }

  // ---- what the endpoints send and the engines emit --------------------------------------

  /** An endpoint's packet meets its engine at once; what the engine puts on the wire is checked against it. */
  private endpointSends(dir: WireDirection, packet: Uint8Array): void {
    const now = this.queue.now;
    if (packet.length > this.mtu) this.fail(`${dir} endpoint sent ${packet.length} bytes > MTU ${this.mtu}`);
    const parsed = parseIpTcp(packet);
    if (!parsed.ok) throw new Error(`endpoint emitted an unparsable packet: ${parsed.error.detail}`);
    const t = parsed.value.tcp;
    const rel = (t.seq - this.isn[dir]) >>> 0;
    this.sent[dir].add(Buffer.from(packet).toString('base64'));
    const key = `${t.seq}:${t.ack}:${t.flags}`;
    const same = this.sentBySeq[dir].get(key);
    if (same === undefined) this.sentBySeq[dir].set(key, [parsed.value]);
    else same.push(parsed.value);
    this.source = { dir, packet, seq: t.seq, ack: t.ack, flags: t.flags, payloadLength: t.payload.length, payloadEndRel: rel + t.payload.length, used: false };
    if (dir === 'c2s') this.pipeline.clientSends(packet, now);
    else this.pipeline.serverSends(packet, now);
    // After an abort the engines have no flow: what the other endpoint still sends is dropped.
    const aborted = this.client.wasReset || this.server.wasReset;
    if (!this.source.used && !aborted) this.fail(`${dir} engine put nothing on the wire for ${describeTcp(t)} (agent ${JSON.stringify(this.pipeline.agent.counters.snapshot())}, gateway ${JSON.stringify(this.pipeline.gateway.counters.snapshot())})`);
    this.source = null;
  }

  private fromAgentToClient(packet: Uint8Array): void {
    this.checkHostPacket(packet, 's2c');
    this.checkTransparent(packet, 's2c');
    this.toClient.send(packet);
  }

  private fromGatewayToServer(packet: Uint8Array): void {
    this.checkHostPacket(packet, 'c2s');
    this.checkTransparent(packet, 'c2s');
    this.toServer.send(packet);
    if (this.scenario.forge === 'before-synack' && !this.forgedDone) {
      const parsed = parseIpTcp(packet);
      // The released SYN: the agent is keyed, the server has not answered yet.
      if (parsed.ok && parsed.value.tcp.flags & TCP_FLAGS.SYN) this.forgeBeforeSynAck();
    }
  }

  /** A packet an engine hands to its plaintext host: within the MTU; its ACK tells what the peer acknowledged. */
  private checkHostPacket(packet: Uint8Array, dir: WireDirection): void {
    if (packet.length > this.mtu) this.fail(`engine handed a ${packet.length}-byte packet (> MTU ${this.mtu}) to the ${dir === 'c2s' ? 'server' : 'client'}`);
    const parsed = parseIpTcp(packet);
    if (!parsed.ok) {
      this.fail(`engine handed an unparsable packet to the host: ${parsed.error.detail}`);
      return;
    }
    const t = parsed.value.tcp;
    // An ACK travelling in `dir` acknowledges the other direction's stream.
    const acked = dir === 'c2s' ? 's2c' : 'c2s';
    if (t.flags & TCP_FLAGS.ACK && !(t.flags & TCP_FLAGS.RST)) {
      const rel = (t.ack - this.isn[acked]) >>> 0;
      if (rel <= this.streams[acked].length + 2 && rel > this.ackKnown[acked]) this.ackKnown[acked] = rel;
    }
  }

  /**
   * Rules 1 and 3 end to end: what reaches a host is byte-for-byte a packet its peer sent (tag
   * gone, payload decrypted, checksums restored), except the handshake segments whose options
   * the engines edit, and probes whose acknowledged payload was stripped.
   */
  private checkTransparent(packet: Uint8Array, dir: WireDirection): void {
    if (this.sent[dir].has(Buffer.from(packet).toString('base64'))) return;
    const parsed = parseIpTcp(packet);
    if (!parsed.ok) return; // reported by checkHostPacket
    const t = parsed.value.tcp;
    if (t.flags & TCP_FLAGS.SYN) return;
    if (this.scenario.expect === 'refused' && t.flags & TCP_FLAGS.RST) return; // the gateway's refusal
    const candidates = this.sentBySeq[dir].get(`${t.seq}:${t.ack}:${t.flags}`) ?? [];
    for (const c of candidates) {
      const how = derivation(parsed.value, c);
      if (how === null) continue;
      if (how.stripped && (this.figures.strippedProbes ?? 0) === 0) continue; // no strip was seen on the wire
      if (how.trimmed) this.figures.sackTrimmed = (this.figures.sackTrimmed ?? 0) + 1;
      return;
    }
    this.fail(`${dir} packet handed to the ${dir === 'c2s' ? 'server' : 'client'} is not one its peer sent: ${describeTcp(t)}`);
  }

  /** Every packet an engine puts on the agent-gateway wire, before the wire impairs it. */
  private onWire(emitted: Uint8Array, dir: WireDirection): void {
    const packet = this.scenario.tamperWire?.(emitted, dir, this.source?.packet ?? null) ?? emitted;
    this.checkWirePacket(packet, dir);
    const lost = this.scenario.finalAckLost;
    if (lost !== undefined) {
      const parsed = parseIpTcp(packet);
      if (parsed.ok) {
        const t = parsed.value.tcp;
        const serverFinAcked = (this.isn.s2c + this.streams.s2c.length + 2) >>> 0;
        if (dir === 'c2s' && this.finalAckDroppedAt === undefined && t.payload.length === 0 && !(t.flags & TCP_FLAGS.FIN) && t.ack === serverFinAcked) {
          this.finalAckDroppedAt = this.queue.now;
          return;
        }
        if (dir === 's2c' && this.finalAckDroppedAt !== undefined && this.queue.now < this.finalAckDroppedAt + lost.ms) return;
      }
    }
    const outage = this.scenario.finOutage;
    if (outage !== undefined && outage.dir === dir) {
      const parsed = parseIpTcp(packet);
      if (parsed.ok && parsed.value.tcp.flags & TCP_FLAGS.FIN) {
        this.firstFinAt ??= this.queue.now;
        if (this.queue.now < this.firstFinAt + outage.ms) return;
      }
    }
    this.links[dir].send(packet);
  }

  private checkWirePacket(packet: Uint8Array, dir: WireDirection): void {
    if (packet.length === this.mtu) this.fullSize[dir]++;
    if (this.scenario.expect === 'plaintext') {
      const src = this.source;
      if (src === null || src.used || Buffer.compare(packet, src.packet) !== 0) this.fail(`rule 7: a ${dir} packet of an unprotected flow did not pass unchanged`);
      if (src !== null) src.used = true;
      return;
    }
    // Rule 4.
    if (packet.length > this.mtu) this.fail(`rule 4: ${dir} wire packet of ${packet.length} bytes > MTU ${this.mtu}`);
    const parsed = parseIpTcp(packet);
    if (!parsed.ok) {
      this.fail(`${dir} wire packet does not parse: ${parsed.error.detail}`);
      return;
    }
    const t = parsed.value.tcp;
    this.lastOnWire[dir] = { seq: t.seq, ack: t.ack, packet };
    if (this.scenario.forge === 'before-keying' && !this.forgedDone && t.flags & TCP_FLAGS.SYN) {
      this.forgedDone = true;
      // Not an auth failure: before keying the agent has no key to check it against.
      this.inject('s2c', this.forgedSegment('s2c', this.rng.u32(), (this.isn.c2s + 1 + 0x8000_0000) >>> 0, TCP_FLAGS.RST | TCP_FLAGS.ACK, false), false);
    }
    // Rule 3: the segment it came from, seq/ack/flags as they were, payload length kept.
    const src = this.source;
    // The gateway's fail-closed RST carries no tag: there is no key to make one with. Expected
    // when keying fails, and when it refuses the keying a forged SYN started.
    const refusing = this.scenario.expect === 'refused' || this.scenario.forge === 'syn-during-linger';
    if (refusing && src === null && dir === 's2c' && (t.flags & TCP_FLAGS.RST) !== 0) {
      this.figures.refusalRsts = (this.figures.refusalRsts ?? 0) + 1;
      return;
    } else if (src === null || src.dir !== dir || src.used) {
      this.fail(`rule 3: ${dir} wire packet ${describeTcp(t)} does not come from an endpoint segment (originated?)`);
    } else {
      src.used = true;
      if (t.seq !== src.seq || t.ack !== src.ack) this.fail(`rule 3: ${dir} seq/ack ${t.seq}/${t.ack} != endpoint's ${src.seq}/${src.ack}`);
      if (t.flags !== src.flags) this.fail(`rule 3: ${dir} flags ${t.flags} != endpoint's ${src.flags}`);
      const stripped = t.payload.length === 0 && src.payloadLength > 0;
      if (stripped) {
        this.figures.strippedProbes = (this.figures.strippedProbes ?? 0) + 1;
        if (src.payloadEndRel > this.ackKnown[dir]) this.fail(`rule 3: ${dir} payload stripped from a segment ending at ${src.payloadEndRel}, not acknowledged (ack ${this.ackKnown[dir]})`);
      } else if (t.payload.length !== src.payloadLength) this.fail(`rule 3: ${dir} payload ${t.payload.length} bytes != endpoint's ${src.payloadLength}`);
    }
    // Rule 1: the tag on everything but the client's SYN, which carries the request instead.
    const ours = t.options.filter((o) => o.kind === OPTION.kind && experimentId(o) === OPTION.exid);
    const isSyn = (t.flags & (TCP_FLAGS.SYN | TCP_FLAGS.ACK)) === TCP_FLAGS.SYN;
    const want = isSyn ? REQUEST_OPTION_LEN : TAG_OPTION_LEN;
    if (ours.length !== 1 || (ours[0] as TcpOption).data.length + 2 !== want) {
      this.fail(`rule 1: ${dir} wire segment ${describeTcp(t)} carries ${ours.map((o) => o.data.length + 2).join(',') || 'no'} option(s) of ours, wants one of length ${want}`);
    }
    // Rule 2: one ciphertext byte per (direction, stream position).
    if (t.payload.length > 0) {
      if (t.seq < this.isn[dir]) this.figures.seqWrapped = 1;
      if (t.payload.length >= 16) this.wirePayloads.push(t.payload.slice());
      const firstIndex = ((t.seq - this.isn[dir]) >>> 0) - 1;
      const seen = this.cipherAt[dir];
      for (let i = 0; i < t.payload.length; i++) {
        const at = firstIndex + i;
        if (at < 0 || at >= seen.length) {
          this.fail(`${dir} wire payload byte at stream index ${at} is outside the stream (0..${seen.length})`);
          break;
        }
        const b = t.payload[i] as number;
        const before = seen[at] as number;
        if (before === -1) seen[at] = b;
        else if (before !== b) {
          this.fail(`rule 2: ${dir} stream offset ${at + 1} carried ciphertext ${before} and later ${b}`);
          break;
        }
      }
      if (this.scenario.forge === 'mid-transfer' && !this.forgedDone && dir === 'c2s' && firstIndex >= this.streams.c2s.length / 3) this.forgeMidTransfer();
    }
  }

  // ---- forged segments -------------------------------------------------------------------

  /**
   * Toward the gateway and toward the agent: RST, RST|ACK, FIN|ACK and a data segment, each
   * without a tag and with a random one; and the last genuine wire segment replayed with one
   * payload (or window) byte changed. None may be accepted.
   */
  private forgeMidTransfer(): void {
    this.forgedDone = true;
    for (const dir of ['c2s', 's2c'] as const) {
      const last = this.lastOnWire[dir];
      if (last === undefined) continue;
      for (const flags of [TCP_FLAGS.RST | TCP_FLAGS.ACK, TCP_FLAGS.FIN | TCP_FLAGS.ACK, TCP_FLAGS.RST, TCP_FLAGS.ACK | TCP_FLAGS.PSH]) {
        const payload = flags & TCP_FLAGS.PSH ? this.rng.bytes(200) : new Uint8Array(0);
        for (const tagged of [false, true]) {
          this.inject(dir, this.forgedSegment(dir, last.seq, last.ack, flags, tagged, payload));
        }
      }
      const replay = parseIpTcp(last.packet);
      if (replay.ok) {
        const { ip, tcp } = replay.value;
        const payload = tcp.payload.slice();
        if (payload.length > 0) payload[0] = (payload[0] as number) ^ 0x80;
        const out = emitIpTcp({ ip, tcp: { ...tcp, payload, window: payload.length > 0 ? tcp.window : tcp.window ^ 1 } });
        if (out.ok) this.inject(dir, out.value);
      }
    }
    this.figures.forged = this.forged.agent + this.forged.gateway;
  }

  /** A forged RST toward the agent, arriving before the server's SYN-ACK. */
  private forgeBeforeSynAck(): void {
    this.forgedDone = true;
    this.inject('s2c', this.forgedSegment('s2c', this.rng.u32(), (this.isn.c2s + 1) >>> 0, TCP_FLAGS.RST | TCP_FLAGS.ACK, false));
  }

  /** Schedules a forged packet onto the wire; `authFails`: the engine must count it as an auth failure. */
  private inject(dir: WireDirection, packet: Uint8Array, authFails = true): void {
    if (authFails && dir === 'c2s') this.forged.gateway++;
    else if (authFails) this.forged.agent++;
    this.queue.after(0, { kind: 'inject', dir, packet });
  }

  private forgedSegment(dir: WireDirection, seq: number, ack: number, flags: number, tagged: boolean, payload: Uint8Array = new Uint8Array(0), extra: TcpOption[] = []): Uint8Array {
    const addrs = ADDRS[this.scenario.version];
    const clientPort = this.clientPort;
    const fromClient = dir === 'c2s';
    const options: TcpOption[] = [timestampsOption(this.rng.u32(), this.rng.u32()), ...extra];
    if (tagged) {
      const data = new Uint8Array(TAG_OPTION_LEN - 2);
      data[0] = OPTION.exid >> 8;
      data[1] = OPTION.exid & 0xff;
      data.set(this.rng.bytes(12), 2);
      options.push({ kind: OPTION.kind, data });
    }
    const out = emitIpTcp({
      ip: { version: this.scenario.version, src: fromClient ? addrs.client : addrs.server, dst: fromClient ? addrs.server : addrs.client, ttl: 64, tos: 0, id: 0, dontFragment: true, flowLabel: 0 },
      tcp: { srcPort: fromClient ? clientPort : this.serverPort, dstPort: fromClient ? this.serverPort : clientPort, seq, ack, flags, window: 0xffff, urgent: 0, options, payload },
    });
    if (!out.ok) throw new Error(out.error.detail);
    return out.value;
  }

  // ---- the end ---------------------------------------------------------------------------

  finish(last: boolean): SimReport {
    this.finishing = true;
    const { agent, gateway } = this.pipeline;
    if (this.scenario.expect === 'refused') this.checkRefused();
    else this.checkDelivered();
    // Rule 1: no 16-byte run of either stream on the wire.
    const runs = plaintextRuns([this.streams.c2s, this.streams.s2c], this.wirePayloads);
    if (runs > 0) this.fail(`rule 1: ${runs} 16-byte runs of plaintext on the wire`);
    // Forged segments fail authentication (and nothing else does).
    const authFailed = { agent: agent.counters.get('auth-failed'), gateway: gateway.counters.get('auth-failed') };
    // A refusal RST that reaches an agent still holding the flow's key fails authentication there.
    const refusalsAtAgent = this.scenario.forge === 'syn-during-linger' ? (this.figures.refusalRsts ?? 0) : 0;
    const agentOk = authFailed.agent >= this.forged.agent && authFailed.agent <= this.forged.agent + refusalsAtAgent;
    if (!agentOk || authFailed.gateway !== this.forged.gateway) {
      this.fail(`auth failures agent ${authFailed.agent} / gateway ${authFailed.gateway}, want ${this.forged.agent}${refusalsAtAgent ? `..${this.forged.agent + refusalsAtAgent}` : ''} / ${this.forged.gateway} (the forged segments)`);
    }
    // Rule 5: after the linger, no flows and every key zeroed (once the last connection is done;
    // before that the next one reuses the 4-tuple while this one lingers).
    if (last) {
      const end = this.queue.now + DEFAULT_TIMERS.lingerMs + 1;
      this.pipeline.tick(end);
      if (agent.flowCount !== 0 || gateway.flowCount !== 0) this.fail(`rule 5: after linger agent has ${agent.flowCount} flows, gateway ${gateway.flowCount}`);
      const live = [...this.world.ciphers].filter((c) => !c.keysAreZero()).length;
      if (live > 0) this.fail(`rule 5: ${live} flow ciphers still hold key bytes after discard`);
      this.figures.reusedTuple = agent.counters.get('discarded:reused-tuple') + gateway.counters.get('discarded:reused-tuple');
      // Flows in the engines at the same time (parallel runs): only counts when more than one.
      this.figures.concurrentFlows = this.world.maxFlows > 1 ? this.world.maxFlows : 0;
    }
    const link = this.links;
    Object.assign(this.figures, {
      virtualMs: this.queue.now - START_MS,
      wireLost: link.c2s.stats.lost + link.s2c.stats.lost,
      wireDuplicated: link.c2s.stats.duplicated + link.s2c.stats.duplicated,
      wireReordered: link.c2s.stats.reordered + link.s2c.stats.reordered,
      ceMarked: link.c2s.stats.ceMarked + link.s2c.stats.ceMarked,
      ceReceived: this.client.stats.ceReceived + this.server.stats.ceReceived,
      retransmits: this.client.stats.retransmittedSegments + this.server.stats.retransmittedSegments,
      rtoFires: this.client.stats.rtoFires + this.server.stats.rtoFires,
      fastRetransmits: this.client.stats.fastRetransmits + this.server.stats.fastRetransmits,
      sackBlocks: this.client.stats.sackBlocksSent + this.server.stats.sackBlocksSent,
      probes: this.client.stats.probes + this.server.stats.probes,
      synResentWhileKeying: gateway.counters.get('syn-duplicate-absorbed'),
      authFailed: authFailed.agent + authFailed.gateway,
    });
    return { violations: this.violations, figures: this.figures };
  }

  /** The connection ran: byte-exact both ways and both FINs (or, after an abort, the RST). */
  private checkDelivered(): void {
    const { agent, gateway } = this.pipeline;
    const abort = this.scenario.abort;
    // Byte-exact delivery both ways, both FINs through (after an abort: a prefix, and the RST).
    for (const [name, got, want] of [
      ['server application', this.server.received(), this.streams.c2s],
      ['client application', this.client.received(), this.streams.s2c],
    ] as const) {
      const expected = abort === undefined ? want : want.subarray(0, got.length);
      if (Buffer.compare(got, expected) !== 0) this.fail(`${name} got ${got.length} bytes, ${firstDifference(got, want)}; the sender sent ${want.length}`);
    }
    if (abort === undefined && (!this.client.done || !this.server.done)) this.fail(`FINs not completed: ${this.client.describe()}; ${this.server.describe()}`);
    for (const [name, e] of [['client', this.client], ['server', this.server]] as const) {
      const s = e.stats;
      if (s.conflicts) this.fail(`${name} received ${s.conflicts} bytes that differ from bytes it already had`);
      if (s.badPackets) this.fail(`${name} received ${s.badPackets} unparsable / bad-checksum / misaddressed packets`);
      if (s.foreignOptions) this.fail(`${name} saw our TCP option ${s.foreignOptions} times (must be stripped)`);
      const resets = abort !== undefined && abort !== name ? 1 : 0;
      if (s.resets !== resets) this.fail(`${name} received ${s.resets} RSTs, want ${resets}`);
      if (abort !== undefined && !e.wasReset) this.fail(`${name} did not end by the abort: ${e.describe()}`);
    }
    if (abort !== undefined) {
      // Rule 5: an authenticated RST ends the flow on both sides at once, no linger.
      if (agent.flowCount !== 0 || gateway.flowCount !== 0) this.fail(`rule 5: after the authenticated RST agent has ${agent.flowCount} flows, gateway ${gateway.flowCount}`);
    }
    // Rule 4: the endpoints learnt a clamped MSS and filled it.
    const offered = this.scenario.bareHandshake ? (this.scenario.version === 4 ? 536 : 1220) : this.scenario.version === 4 ? 1460 : 1440;
    const clamped = this.scenario.expect === 'plaintext' ? offered : offered - TAG_OPTION_LEN;
    if (this.client.learntMss !== clamped || this.server.learntMss !== clamped) {
      this.fail(`rule 4: MSS learnt client ${this.client.learntMss}, server ${this.server.learntMss}, want ${clamped}`);
    }
    for (const dir of ['c2s', 's2c'] as const) {
      if (this.streams[dir].length >= 20_000 && this.fullSize[dir] === 0) this.fail(`rule 4: no ${dir} wire packet reached the MTU: the endpoint did not fill the clamped MSS`);
    }
    if (this.scenario.expect === 'plaintext') {
      // Rule 7 / rule 8: a flow that asked for nothing is not tracked, keyed or clamped.
      if (this.ciphers.size !== 0 || agent.counters.get('syn-marked') !== 0) this.fail(`rule 7: the unprotected flow was keyed or marked`);
    } else if (this.ciphers.size < 2) this.fail(`rule 5: saw ${this.ciphers.size} flow ciphers, want one per engine`);
  }

  /** Rule 7: keying failed, so the client got a RST, the server nothing, and no data crossed. */
  private checkRefused(): void {
    const { agent, gateway } = this.pipeline;
    if (!this.client.wasReset || this.client.stats.resets === 0) this.fail(`refused: the client was not reset: ${this.client.describe()}`);
    if (!this.server.untouched) this.fail(`refused: the server heard of the connection: ${this.server.describe()}`);
    if ((this.figures.refusalRsts ?? 0) === 0) this.fail('refused: no RST from the gateway crossed the wire');
    if (gateway.counters.get('refused') === 0) this.fail(`refused: the gateway did not refuse (${JSON.stringify(gateway.counters.snapshot())})`);
    if (agent.keyedFlowCount !== 0) this.fail(`refused: the agent still holds keys for ${agent.keyedFlowCount} flows`);
  }
}

/**
 * How `got` can be `sent` after the engines: SACK blocks dropped from the end to make room for
 * the tag (advisory, RFC 2018; all of them with their NOPs at most), and/or the payload stripped
 * (a probe of acknowledged bytes). Every other header field and option must be equal. Null when
 * it is not derived from `sent`.
 */
function derivation(got: IpTcpRepr, sent: IpTcpRepr): { trimmed: boolean; stripped: boolean } | null {
  const a = got.tcp;
  const b = sent.tcp;
  const stripped = a.payload.length === 0 && b.payload.length > 0;
  if (a.window !== b.window || a.urgent !== b.urgent || (!stripped && Buffer.compare(a.payload, b.payload) !== 0)) return null;
  // A router between agent and gateway may mark CE (RFC 3168): the ECN field may go ECT -> CE.
  const ceMarked = (sent.ip.tos & 3) !== 0 && got.ip.tos === (sent.ip.tos | 3);
  if (got.ip.ttl !== sent.ip.ttl || (got.ip.tos !== sent.ip.tos && !ceMarked) || got.ip.id !== sent.ip.id) return null;
  const real = (o: readonly TcpOption[]) => o.filter((x) => x.kind !== TCP_OPTION.NOP && x.kind !== TCP_OPTION.EOL);
  const ga = real(a.options).filter((o) => o.kind !== TCP_OPTION.SACK);
  const sb = real(b.options).filter((o) => o.kind !== TCP_OPTION.SACK);
  if (ga.length !== sb.length || ga.some((o, i) => o.kind !== sb[i]!.kind || Buffer.compare(o.data, sb[i]!.data) !== 0)) return null;
  const blocks = (o: readonly TcpOption[]) => o.flatMap((x) => (x.kind === TCP_OPTION.SACK ? (decodeSackBlocks(x) ?? []) : []));
  const gotBlocks = blocks(a.options);
  const sentBlocks = blocks(b.options);
  if (gotBlocks.length > sentBlocks.length || gotBlocks.some((x, i) => x.left !== sentBlocks[i]!.left || x.right !== sentBlocks[i]!.right)) return null;
  const trimmed = gotBlocks.length < sentBlocks.length;
  return trimmed || stripped || ceMarked ? { trimmed, stripped } : null;
}

function describeTcp(t: { seq: number; ack: number; flags: number; payload: Uint8Array }): string {
  return `seq=${t.seq} ack=${t.ack} flags=0x${t.flags.toString(16)} len=${t.payload.length}`;
}

function firstDifference(got: Uint8Array, want: Uint8Array): string {
  const n = Math.min(got.length, want.length);
  for (let i = 0; i < n; i++) if (got[i] !== want[i]) return `first difference at byte ${i}`;
  return got.length === want.length ? 'identical' : `identical for the first ${n}`;
}
