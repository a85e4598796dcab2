// Offline throughput of the gateway data path on one core: no sockets, no kernel, just the
// engines' handlePacket on pre-built packets, timed over a fixed duration per case.
//
// Cases (payloads of 64 and 1460 bytes):
//   memcpy          Buffer.copy of the packet: what "touch every byte once" costs on this machine.
//   pass-through    a packet to an unprotected service through GatewayEngine.handlePacket.
//   protected-c2s   agent protects a client segment, gateway unprotects it (per backend).
//   protected-s2c   gateway protects a server segment, agent unprotects it (per backend).
// The keyed flow is set up by a real handshake (agent-marked SYN, gateway hold, key delivery
// and KDC through the in-process Pipeline, tagged SYN-ACK). Every timed segment advances the
// sequence number by its length, as a real stream does, so each one is a new stream offset.
// Every case pays the same per-packet sequence bump (a few ns), the baseline included.
import { readFileSync } from 'node:fs';
import type { BackendName } from '../common/crypto/backend';
import { getBackend } from '../common/crypto';
import { type RandomSource, systemRandom } from '../common/crypto/random';
import type { Verdict } from '../common/engine/actions';
import type { AgentEngine } from '../client-agent/engine';
import type { GatewayEngine } from '../gateway/engine';
import { parseCidr } from '../common/protocol/cidr';
import { read16, write16, write32 } from '../common/wire/bytes';
import { checksumAdjust32 } from '../common/wire/checksum';
import { emitIpTcp, parseIpTcp } from '../common/wire/packet';
import { TCP_FLAGS } from '../common/wire/tcp';
import { TCP_OPTION, type TcpOption, mssOption, sackPermittedOption, timestampsOption, windowScaleOption } from '../common/wire/tcp-options';
import { createPipeline, createTrio } from '../pipeline/setup';
import { machineInfo } from './report';

export type EngineCaseName = 'memcpy' | 'pass-through' | 'protected-c2s' | 'protected-s2c';

export interface EngineCase {
  name: EngineCaseName;
  /** The crypto backend, or 'none' where no crypto is involved. */
  backend: BackendName | 'none';
  payloadBytes: number;
  /** Packets (protected cases: segments, each protected and unprotected) in the timed run. */
  packets: number;
  seconds: number;
  packetsPerSecond: number;
  /** Payload bits per second / 1e9 (headers not counted). */
  gbitPerSecond: number;
  nsPerPacket: number;
  /**
   * On-CPU time of the main thread / wall time over the timed run (Linux schedstat; elsewhere
   * process CPU time, which GC helper threads can push over 1). Well under 1 means other work
   * shared the core, and every figure of the case is low by that much.
   */
  cpuShare: number;
}

export const ENGINE_TARGETS = {
  /** Every pass-through case. */
  passThroughPacketsPerSecond: 1_000_000,
  /** Protect + unprotect, both directions, at protectedPayloadBytes. */
  protectedGbitPerSecond: 1,
  protectedPayloadBytes: 1460,
} as const;

export interface EngineBenchResult {
  bench: 'engine';
  date: string;
  node: string;
  cpu: string;
  cases: EngineCase[];
  targets: typeof ENGINE_TARGETS;
  meets: { passThrough: boolean; protected: Partial<Record<BackendName, boolean>> };
}

export interface EngineBenchOptions {
  /** Timed seconds per case (> 0). */
  seconds: number;
  backends: readonly BackendName[];
  /** Untimed seconds per case before the timed run; default min(0.5, max(0.01, seconds / 4)). */
  warmupSeconds?: number;
  payloads?: readonly number[];
  random?: RandomSource;
  /** Called before each case (progress on stderr, say). */
  onCase?: (name: EngineCaseName, backend: string, payloadBytes: number) => void;
}

export const DEFAULT_PAYLOADS: readonly number[] = [64, 1460];

// A fixed clock: nothing in the timed path depends on time passing.
const NOW = 1_700_000_000_000;
const CLIENT = Uint8Array.of(10, 0, 0, 1);
const SERVER = Uint8Array.of(10, 0, 1, 1);
const OTHER = Uint8Array.of(10, 0, 9, 9);
const SERVICE_PORT = 5432;
const CLIENT_PORT = 40_000;
const CLIENT_ISN = 0x1234_5678;
const SERVER_ISN = 0xfedc_ba98;
const IPV4_HEADER = 20;
// Packets between clock reads: a read costs tens of ns, a packet at least a few hundred.
const BATCH = 64;

const NOP: TcpOption = { kind: TCP_OPTION.NOP, data: new Uint8Array(0) };

/** A TCP sender: one packet buffer whose sequence number (and checksum) advance in place. */
class Sender {
  private seq: number;

  constructor(
    readonly packet: Uint8Array,
    seq: number,
    private readonly step: number,
  ) {
    this.seq = seq;
  }

  /** The next segment of the stream (the same buffer, rewritten). */
  next(): Uint8Array {
    const p = this.packet;
    const old = this.seq;
    const seq = (old + this.step) >>> 0;
    write32(p, IPV4_HEADER + 4, seq);
    write16(p, IPV4_HEADER + 16, checksumAdjust32(read16(p, IPV4_HEADER + 16), old, seq));
    this.seq = seq;
    return p;
  }
}

function payloadOf(bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) out[i] = (i * 31 + 7) & 0xff;
  return out;
}

interface Segment {
  src: Uint8Array;
  dst: Uint8Array;
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  options: TcpOption[];
  payload: Uint8Array;
}

function packet(s: Segment): Uint8Array {
  const out = emitIpTcp({
    ip: { version: 4, src: s.src, dst: s.dst, ttl: 64, tos: 0, id: 0, dontFragment: true, flowLabel: 0 },
    tcp: { srcPort: s.srcPort, dstPort: s.dstPort, seq: s.seq, ack: s.ack, flags: s.flags, window: 502, urgent: 0, options: s.options, payload: s.payload },
  });
  if (!out.ok) throw new Error(`bench: cannot build packet: ${out.error.detail}`);
  return out.value;
}

const synOptions = (): TcpOption[] => [mssOption(1460), sackPermittedOption(), timestampsOption(1000, 0), NOP, windowScaleOption(7)];
// Linux data segments carry timestamps; the tag option fits beside them (DESIGN section 4).
const dataOptions = (): TcpOption[] => [NOP, NOP, timestampsOption(2000, 1000)];

/** A Sender for the stream whose next sequence number is `seq` (so the first next() gives it). */
function sender(seg: Omit<Segment, 'seq' | 'flags' | 'options'> & { seq: number }): Sender {
  const step = seg.payload.length;
  const first = (seg.seq - step) >>> 0;
  return new Sender(packet({ ...seg, seq: first, flags: TCP_FLAGS.ACK | TCP_FLAGS.PSH, options: dataOptions() }), first, step);
}

interface KeyedFlow {
  agent: AgentEngine;
  gateway: GatewayEngine;
}

/** A keyed, established flow between CLIENT:CLIENT_PORT and SERVER:SERVICE_PORT, by a real handshake. */
export function establishFlow(backendName: BackendName, random: RandomSource = systemRandom): KeyedFlow {
  const cidr = parseCidr('10.0.1.1/32');
  if (!cidr.ok) throw new Error(cidr.error);
  const seen = { server: [] as Uint8Array[], client: [] as Uint8Array[] };
  const pipeline = createPipeline(
    { backend: getBackend(backendName), random, protect: [{ cidr: cidr.value, port: SERVICE_PORT }] },
    {
      client: (p) => seen.client.push(p),
      server: (p) => seen.server.push(p),
      wire: (p, dir, now) => pipeline.deliver(p, dir, now),
    },
  );
  const c2s = { src: CLIENT, dst: SERVER, srcPort: CLIENT_PORT, dstPort: SERVICE_PORT, payload: new Uint8Array(0) };
  const s2c = { src: SERVER, dst: CLIENT, srcPort: SERVICE_PORT, dstPort: CLIENT_PORT, payload: new Uint8Array(0) };
  pipeline.clientSends(packet({ ...c2s, seq: CLIENT_ISN, ack: 0, flags: TCP_FLAGS.SYN, options: synOptions() }), NOW);
  if (seen.server.length !== 1) throw new Error(`bench: the held SYN was not released to the server (gateway: ${JSON.stringify(pipeline.gateway.counters)})`);
  pipeline.serverSends(packet({ ...s2c, seq: SERVER_ISN, ack: (CLIENT_ISN + 1) >>> 0, flags: TCP_FLAGS.SYN | TCP_FLAGS.ACK, options: synOptions() }), NOW);
  const synAck = seen.client[0];
  const parsed = synAck === undefined ? null : parseIpTcp(synAck);
  if (parsed === null || !parsed.ok || parsed.value.tcp.flags !== (TCP_FLAGS.SYN | TCP_FLAGS.ACK)) {
    throw new Error('bench: the SYN-ACK did not reach the client through gateway and agent');
  }
  return { agent: pipeline.agent, gateway: pipeline.gateway };
}

function rewritten(v: Verdict, who: string): Uint8Array {
  if (v.kind !== 'rewrite') throw new Error(`bench: ${who} gave '${v.kind}'${v.kind === 'drop' ? ` (${v.reason})` : ''}, expected a rewrite`);
  return v.packet;
}

const SCHEDSTAT = `/proc/self/task/${process.pid}/schedstat`;

/** Nanoseconds the main thread has run (Linux), else the whole process's CPU time. */
function cpuNs(): number {
  try {
    return Number(readFileSync(SCHEDSTAT, 'utf8').split(' ')[0]);
  } catch {
    const used = process.cpuUsage();
    return (used.user + used.system) * 1000;
  }
}

/** Runs `step` in batches until `seconds` have passed (at least one batch). */
function timeLoop(seconds: number, step: () => void): { packets: number; seconds: number; cpuShare: number } {
  const budget = BigInt(Math.round(seconds * 1e9));
  const cpu = cpuNs();
  const start = process.hrtime.bigint();
  let packets = 0;
  let elapsed: bigint;
  do {
    for (let i = 0; i < BATCH; i++) step();
    packets += BATCH;
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < budget);
  const wall = Number(elapsed) / 1e9;
  return { packets, seconds: wall, cpuShare: (cpuNs() - cpu) / 1e9 / wall };
}

interface CaseSpec {
  name: EngineCaseName;
  backend: BackendName | 'none';
  payloadBytes: number;
  /** Builds the state, checks one step by hand, and returns the step to time. */
  prepare(): () => void;
}

function memcpyCase(payloadBytes: number): CaseSpec {
  return {
    name: 'memcpy',
    backend: 'none',
    payloadBytes,
    prepare() {
      const s = sender({ src: CLIENT, dst: SERVER, srcPort: CLIENT_PORT, dstPort: SERVICE_PORT, seq: CLIENT_ISN + 1, ack: 0, payload: payloadOf(payloadBytes) });
      const from = Buffer.from(s.packet.buffer, s.packet.byteOffset, s.packet.byteLength);
      const to = Buffer.alloc(from.length);
      return () => {
        s.next();
        from.copy(to);
      };
    },
  };
}

function passThroughCase(payloadBytes: number, random: RandomSource): CaseSpec {
  return {
    name: 'pass-through',
    backend: 'none',
    payloadBytes,
    prepare() {
      const cidr = parseCidr('10.0.1.1/32');
      if (!cidr.ok) throw new Error(cidr.error);
      const { gateway } = createTrio({ backend: getBackend('node'), random, protect: [{ cidr: cidr.value, port: SERVICE_PORT }] });
      const s = sender({ src: CLIENT, dst: OTHER, srcPort: CLIENT_PORT + 1, dstPort: 80, seq: 1, ack: 1, payload: payloadOf(payloadBytes) });
      const step = (): void => {
        const v = gateway.handlePacket(s.next(), NOW);
        if (v.kind !== 'pass') throw new Error(`bench: pass-through packet got '${v.kind}'`);
      };
      step();
      return step;
    },
  };
}

function protectedCase(name: 'protected-c2s' | 'protected-s2c', backend: BackendName, payloadBytes: number, random: RandomSource): CaseSpec {
  return {
    name,
    backend,
    payloadBytes,
    prepare() {
      const { agent, gateway } = establishFlow(backend, random);
      const plain = payloadOf(payloadBytes);
      const c2s = name === 'protected-c2s';
      const s = c2s
        ? sender({ src: CLIENT, dst: SERVER, srcPort: CLIENT_PORT, dstPort: SERVICE_PORT, seq: CLIENT_ISN + 1, ack: SERVER_ISN + 1, payload: plain })
        : sender({ src: SERVER, dst: CLIENT, srcPort: SERVICE_PORT, dstPort: CLIENT_PORT, seq: SERVER_ISN + 1, ack: CLIENT_ISN + 1, payload: plain });
      const [first, second] = c2s ? [agent, gateway] : [gateway, agent];
      const [firstName, secondName] = c2s ? ['agent protect', 'gateway unprotect'] : ['gateway protect', 'agent unprotect'];
      // One segment by hand: encrypted and tagged on the wire, the plaintext back at the far end.
      const wire = rewritten(first.handlePacket(s.next(), NOW), firstName);
      const out = rewritten(second.handlePacket(wire, NOW), secondName);
      const wireSeg = parseIpTcp(wire);
      const outSeg = parseIpTcp(out);
      if (!wireSeg.ok || !outSeg.ok) throw new Error('bench: protected segment does not parse');
      if (Buffer.compare(wireSeg.value.tcp.payload, plain) === 0 || wire.length !== s.packet.length + 16) {
        throw new Error('bench: the wire segment is not encrypted and tagged');
      }
      if (Buffer.compare(outSeg.value.tcp.payload, plain) !== 0) throw new Error('bench: unprotected payload differs from the plaintext');
      return () => {
        rewritten(second.handlePacket(rewritten(first.handlePacket(s.next(), NOW), firstName), NOW), secondName);
      };
    },
  };
}

export function runEngineBench(options: EngineBenchOptions): EngineBenchResult {
  if (!(options.seconds > 0) || !Number.isFinite(options.seconds)) throw new RangeError(`seconds must be a positive number, got ${options.seconds}`);
  const warmup = options.warmupSeconds ?? Math.min(0.5, Math.max(0.01, options.seconds / 4));
  const random = options.random ?? systemRandom;
  const payloads = options.payloads ?? DEFAULT_PAYLOADS;
  const date = new Date();
  const specs: CaseSpec[] = [];
  for (const bytes of payloads) specs.push(memcpyCase(bytes));
  for (const bytes of payloads) specs.push(passThroughCase(bytes, random));
  for (const backend of options.backends) {
    for (const bytes of payloads) {
      specs.push(protectedCase('protected-c2s', backend, bytes, random));
      specs.push(protectedCase('protected-s2c', backend, bytes, random));
    }
  }
  const cases: EngineCase[] = [];
  for (const spec of specs) {
    options.onCase?.(spec.name, spec.backend, spec.payloadBytes);
    const step = spec.prepare();
    timeLoop(warmup, step);
    const run = timeLoop(options.seconds, step);
    const packetsPerSecond = run.packets / run.seconds;
    cases.push({
      name: spec.name,
      backend: spec.backend,
      payloadBytes: spec.payloadBytes,
      packets: run.packets,
      seconds: run.seconds,
      packetsPerSecond,
      gbitPerSecond: (packetsPerSecond * spec.payloadBytes * 8) / 1e9,
      nsPerPacket: (run.seconds * 1e9) / run.packets,
      cpuShare: run.cpuShare,
    });
  }
  return { bench: 'engine', date: date.toISOString(), ...machineInfo(), cases, targets: ENGINE_TARGETS, meets: judge(cases, options.backends) };
}

function judge(cases: readonly EngineCase[], backends: readonly BackendName[]): EngineBenchResult['meets'] {
  const pass = cases.filter((c) => c.name === 'pass-through');
  const meets: EngineBenchResult['meets'] = {
    passThrough: pass.length > 0 && pass.every((c) => c.packetsPerSecond >= ENGINE_TARGETS.passThroughPacketsPerSecond),
    protected: {},
  };
  for (const backend of backends) {
    const full = cases.filter((c) => c.backend === backend && c.name.startsWith('protected-') && c.payloadBytes === ENGINE_TARGETS.protectedPayloadBytes);
    meets.protected[backend] = full.length > 0 && full.every((c) => c.gbitPerSecond >= ENGINE_TARGETS.protectedGbitPerSecond);
  }
  return meets;
}
