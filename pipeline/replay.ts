// Replay: the engines driven from a capture, on the capture's clock.
// - pipeline: client-to-server packets enter at the agent, server-to-client packets at the
//   gateway; the wire between them is recorded, as are both plaintext sides.
// - role: one engine over one capture ("what would the gateway do with this?"); there is no
//   agent or KDC to key with, so encryption-requesting flows fail closed as they would live.
import type { CryptoBackend } from '../common/crypto/backend';
import type { RandomSource } from '../common/crypto/random';
import type { Verdict } from '../common/engine/actions';
import type { Cidr } from '../common/protocol/cidr';
import type { CapturedPacket } from '../common/pcap';
import type { PacketToWrite } from '../common/pcap/writer';
import { cidrContains } from '../common/protocol/cidr';
import { parseIp } from '../common/wire/ip';
import { parseLink } from '../common/wire/link';
import { parseTcp } from '../common/wire/tcp';
import { type VerdictTally } from './pipeline';
import { DEFAULT_TIMERS, createPipeline, createTrio } from './setup';
import { type DirectionFilter, type StreamBytes, directionName, plaintextRunsIn, reassemble, sameStream } from './streams';

export interface Endpoint {
  cidr: Cidr;
  port: number;
}

interface Frame {
  packet: CapturedPacket;
  /** Link header bytes (everything before the IP header), or null for non-IP frames. */
  link: Uint8Array | null;
  /** The IP packet without link padding, or null. */
  ip: Uint8Array | null;
}

function splitFrame(packet: CapturedPacket): Frame {
  const link = parseLink(packet.linkType, packet.data);
  if (!link.ok) return { packet, link: null, ip: null };
  const ipOffset = link.value.ipOffset;
  const ip = parseIp(packet.data, ipOffset);
  const end = ip.ok ? Math.min(ipOffset + ip.value.totalLength, packet.data.length) : packet.data.length;
  return { packet, link: packet.data.subarray(0, ipOffset), ip: packet.data.subarray(ipOffset, end) };
}

/** An output frame: the original bytes when the packet passed untouched, else link header + packet. */
function outputFrame(frame: Frame, packet: Uint8Array): PacketToWrite {
  if (packet === frame.ip || frame.link === null) return { data: frame.packet.data, timestampNs: frame.packet.timestampNs, originalLength: frame.packet.originalLength };
  const data = new Uint8Array(frame.link.length + packet.length);
  data.set(frame.link);
  data.set(packet, frame.link.length);
  return { data, timestampNs: frame.packet.timestampNs };
}

function matches(endpoints: readonly Endpoint[], addr: Uint8Array, port: number): boolean {
  return endpoints.some((e) => e.port === port && cidrContains(e.cidr, addr));
}

/** Which side sent an IP packet: toward a protected endpoint is the client. */
function sideOf(endpoints: readonly Endpoint[], ipPacket: Uint8Array): 'client' | 'server' {
  const ip = parseIp(ipPacket);
  if (!ip.ok || ip.value.protocol !== 6 || ip.value.isFragment) return 'client';
  const tcp = parseTcp(ipPacket, ip.value.payloadOffset, ip.value.payloadLength);
  if (!tcp.ok) return 'client';
  return matches(endpoints, ip.value.src, tcp.value.srcPort) ? 'server' : 'client';
}

const TICK_MS = 100;

export interface PipelineReplayOptions {
  packets: readonly CapturedPacket[];
  protect: readonly Endpoint[];
  backend: CryptoBackend;
  random: RandomSource;
  verify?: boolean;
}

export interface ReplaySummary {
  packets: number;
  nonIpFrames: number;
  flows: number;
  protectedFlows: number;
  /** Flows holding keys (agent + gateway) when the capture ends, and once every timer has fired. */
  keyedFlows: { atEndOfCapture: number; afterTimers: number };
  verdicts: { agent: VerdictTally; gateway: VerdictTally };
  bytes: { input: number; client: number; wire: number; server: number };
  messages: { keyDelivery: number; kdc: number };
  counters: { agent: Record<string, number>; gateway: Record<string, number> };
  verification?: Verification;
}

export interface Verification {
  /** Per protected direction: did the far side receive exactly what was sent? */
  streams: Array<{ direction: string; bytes: number; equal: boolean }>;
  /** 16-byte runs of protected plaintext found on the wire (must be 0). */
  plaintextRunsOnWire: number;
  ok: boolean;
}

export interface PipelineReplayResult {
  client: PacketToWrite[];
  wire: PacketToWrite[];
  server: PacketToWrite[];
  summary: ReplaySummary;
}

export function replayPipeline(options: PipelineReplayOptions): PipelineReplayResult {
  const out = { client: [] as PacketToWrite[], wire: [] as PacketToWrite[], server: [] as PacketToWrite[] };
  const raw = { client: [] as Uint8Array[], wire: [] as Uint8Array[], server: [] as Uint8Array[] };
  let current: Frame | null = null;
  const record = (side: 'client' | 'wire' | 'server', packet: Uint8Array): void => {
    out[side].push(outputFrame(current as Frame, packet));
    raw[side].push(packet);
  };
  const pipeline = createPipeline(
    { backend: options.backend, random: options.random, protect: options.protect },
    {
      client: (p) => record('client', p),
      server: (p) => record('server', p),
      wire: (p, dir, now) => {
        record('wire', p);
        pipeline.deliver(p, dir, now);
      },
    },
  );
  let nonIp = 0;
  let lastTick = -Infinity;
  const input: Uint8Array[] = [];
  for (const packet of options.packets) {
    const frame = splitFrame(packet);
    current = frame;
    const now = packet.timestampMs;
    if (now - lastTick >= TICK_MS) {
      pipeline.tick(now);
      lastTick = now;
    }
    if (frame.ip === null) {
      // Not IP (ARP, LLDP, ...): nothing to protect; it crosses every segment as it is.
      nonIp++;
      for (const side of ['client', 'wire', 'server'] as const) out[side].push(outputFrame(frame, packet.data));
      continue;
    }
    input.push(frame.ip);
    if (sideOf(options.protect, frame.ip) === 'server') {
      record('server', frame.ip);
      pipeline.serverSends(frame.ip, now);
    } else {
      record('client', frame.ip);
      pipeline.clientSends(frame.ip, now);
    }
  }
  // The capture is over: let every timer run out (linger, idle) and see what keys remain.
  const keyedAtEnd = pipeline.agent.keyedFlowCount + pipeline.gateway.keyedFlowCount;
  pipeline.tick(lastTick + DEFAULT_TIMERS.idleTimeoutMs + DEFAULT_TIMERS.lingerMs + 1);
  const summary: ReplaySummary = {
    packets: options.packets.length,
    keyedFlows: { atEndOfCapture: keyedAtEnd, afterTimers: pipeline.agent.keyedFlowCount + pipeline.gateway.keyedFlowCount },
    nonIpFrames: nonIp,
    flows: countFlows(input),
    protectedFlows: pipeline.gateway.counters.get('flows-established'),
    verdicts: pipeline.tally,
    bytes: {
      input: options.packets.reduce((n, p) => n + p.data.length, 0),
      client: out.client.reduce((n, p) => n + p.data.length, 0),
      wire: out.wire.reduce((n, p) => n + p.data.length, 0),
      server: out.server.reduce((n, p) => n + p.data.length, 0),
    },
    messages: pipeline.messages,
    counters: { agent: pipeline.agent.counters.snapshot(), gateway: pipeline.gateway.counters.snapshot() },
  };
  if (options.verify) summary.verification = verify(options.protect, input, raw);
  return { ...out, summary };
}

function countFlows(packets: readonly Uint8Array[]): number {
  const names = new Set<string>();
  for (const p of packets) {
    const ip = parseIp(p);
    if (!ip.ok || ip.value.protocol !== 6 || ip.value.isFragment) continue;
    const tcp = parseTcp(p, ip.value.payloadOffset, ip.value.payloadLength);
    if (!tcp.ok) continue;
    const a = directionName(ip.value.src, tcp.value.srcPort, ip.value.dst, tcp.value.dstPort);
    const b = directionName(ip.value.dst, tcp.value.dstPort, ip.value.src, tcp.value.srcPort);
    names.add(a < b ? a : b);
  }
  return names.size;
}

/** Runs of bytes actually seen (holes split them). */
function seenRuns(s: StreamBytes): Uint8Array[] {
  const runs: Uint8Array[] = [];
  let start = -1;
  for (let i = 0; i <= s.data.length; i++) {
    if (i < s.data.length && s.seen[i]) {
      if (start < 0) start = i;
    } else if (start >= 0) {
      runs.push(s.data.subarray(start, i));
      start = -1;
    }
  }
  return runs;
}

function verify(protect: readonly Endpoint[], input: Uint8Array[], raw: { client: Uint8Array[]; wire: Uint8Array[]; server: Uint8Array[] }): Verification {
  const c2s: DirectionFilter = (_s, _sp, dst, dstPort) => matches(protect, dst, dstPort);
  const s2c: DirectionFilter = (src, srcPort) => matches(protect, src, srcPort);
  const streams: Verification['streams'] = [];
  const compare = (sent: Map<string, StreamBytes>, received: Map<string, StreamBytes>): void => {
    for (const [direction, bytes] of sent) {
      const got = received.get(direction);
      streams.push({ direction, bytes: bytes.data.length, equal: got !== undefined && sameStream(bytes, got) });
    }
  };
  const originalC2s = reassemble(input, c2s);
  const originalS2c = reassemble(input, s2c);
  compare(originalC2s, reassemble(raw.server, c2s));
  compare(originalS2c, reassemble(raw.client, s2c));
  const wirePayloads: Uint8Array[] = [];
  for (const p of raw.wire) {
    const ip = parseIp(p);
    if (!ip.ok || ip.value.protocol !== 6 || ip.value.isFragment) continue;
    const tcp = parseTcp(p, ip.value.payloadOffset, ip.value.payloadLength);
    if (!tcp.ok || tcp.value.payloadLength === 0) continue;
    // Only protected flows' segments: plaintext flows may legitimately carry the same bytes.
    if (c2s(ip.value.src, tcp.value.srcPort, ip.value.dst, tcp.value.dstPort) || s2c(ip.value.src, tcp.value.srcPort, ip.value.dst, tcp.value.dstPort)) {
      wirePayloads.push(tcp.value.payload);
    }
  }
  const plaintextRunsOnWire = plaintextRunsIn([...originalC2s.values(), ...originalS2c.values()].flatMap(seenRuns), wirePayloads);
  return { streams, plaintextRunsOnWire, ok: plaintextRunsOnWire === 0 && streams.every((s) => s.equal) };
}

// ---- one role ---------------------------------------------------------------------------

export interface RoleReplayOptions {
  packets: readonly CapturedPacket[];
  role: 'gateway' | 'agent';
  protect: readonly Endpoint[];
  backend: CryptoBackend;
  random: RandomSource;
}

export interface RoleReplayResult {
  output: PacketToWrite[];
  summary: { role: string; packets: number; nonIpFrames: number; verdicts: Record<Verdict['kind'] | 'originated' | 'released', number>; counters: Record<string, number> };
}

export function replayRole(options: RoleReplayOptions): RoleReplayResult {
  const { agent, gateway } = createTrio({ backend: options.backend, random: options.random, protect: options.protect });
  const engine = options.role === 'gateway' ? gateway : agent;
  const output: PacketToWrite[] = [];
  const verdicts = { pass: 0, rewrite: 0, drop: 0, hold: 0, originated: 0, released: 0 };
  let nonIp = 0;
  let lastTick = -Infinity;
  for (const packet of options.packets) {
    const frame = splitFrame(packet);
    const now = packet.timestampMs;
    if (now - lastTick >= TICK_MS) {
      engine.handleTimer(now);
      lastTick = now;
    }
    if (frame.ip === null) {
      nonIp++;
      output.push(outputFrame(frame, packet.data));
      continue;
    }
    const verdict = engine.handlePacket(frame.ip, now);
    verdicts[verdict.kind]++;
    if (verdict.kind === 'pass') output.push(outputFrame(frame, frame.ip));
    else if (verdict.kind === 'rewrite') output.push(outputFrame(frame, verdict.packet));
    for (const action of engine.takeActions()) {
      if (action.kind === 'open-key-delivery') {
        // No agent on a capture: keying fails as it would with the agent unreachable.
        gateway.handleKdFailure(action.connId, 'no agent in single-role replay');
      } else if (action.kind === 'originate' || action.kind === 'release') {
        verdicts[action.kind === 'originate' ? 'originated' : 'released']++;
        output.push(outputFrame(frame, action.packet));
      }
    }
    // Failures above queue further actions (the refusing RST): flush them too.
    for (const action of engine.takeActions()) {
      if (action.kind === 'originate') {
        verdicts.originated++;
        output.push(outputFrame(frame, action.packet));
      }
    }
  }
  return { output, summary: { role: options.role, packets: options.packets.length, nonIpFrames: nonIp, verdicts, counters: engine.counters.snapshot() } };
}
