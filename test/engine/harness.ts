// A hand-driven pipeline for rule tests: build segments by hand, push them through the real
// agent and gateway engines, and see what reaches the client, the wire and the server.
import { nodeBackend } from '../../common/crypto/node-backend';
import { seededRandom } from '../../common/crypto/random';
import { parseEndpoint } from '../../common/engine/endpoints';
import type { DestinationMode } from '../../client-agent/engine';
import type { ServiceMode } from '../../gateway/engine';
import { emitIpTcp, parseIpTcp, type IpTcpRepr } from '../../common/wire/packet';
import { TCP_FLAGS } from '../../common/wire/tcp';
import { mssOption, sackPermittedOption, timestampsOption, type TcpOption } from '../../common/wire/tcp-options';
import { Pipeline, type WireDirection } from '../../pipeline/pipeline';
import { createPipeline, type PipelineSetup } from '../../pipeline/setup';

export const CLIENT = Uint8Array.of(10, 0, 0, 1);
export const SERVER = Uint8Array.of(10, 0, 0, 2);
export const CPORT = 40000;
export const SPORT = 5432;

export interface Seg {
  seq: number;
  ack?: number;
  flags?: number;
  payload?: Uint8Array | string;
  options?: TcpOption[];
  tos?: number;
  /** Client port (default CPORT). */
  cport?: number;
}

export function segment(from: 'client' | 'server', s: Seg): Uint8Array {
  const payload = typeof s.payload === 'string' ? new TextEncoder().encode(s.payload) : (s.payload ?? new Uint8Array(0));
  const repr: IpTcpRepr = {
    ip: { version: 4, src: from === 'client' ? CLIENT : SERVER, dst: from === 'client' ? SERVER : CLIENT, ttl: 64, tos: s.tos ?? 0, id: 1, dontFragment: true, flowLabel: 0 },
    tcp: {
      srcPort: from === 'client' ? (s.cport ?? CPORT) : SPORT,
      dstPort: from === 'client' ? SPORT : (s.cport ?? CPORT),
      seq: s.seq >>> 0,
      ack: (s.ack ?? 0) >>> 0,
      flags: s.flags ?? TCP_FLAGS.ACK,
      window: 65535,
      urgent: 0,
      options: s.options ?? [],
      payload,
    },
  };
  const out = emitIpTcp(repr);
  if (!out.ok) throw new Error(out.error.detail);
  return out.value;
}

export const SYN_OPTIONS = (): TcpOption[] => [mssOption(1460), sackPermittedOption(), timestampsOption(1, 0)];

export function decode(packet: Uint8Array): IpTcpRepr {
  const r = parseIpTcp(packet);
  if (!r.ok) throw new Error(r.error.detail);
  return r.value;
}

export class Lab {
  readonly client: Uint8Array[] = [];
  readonly server: Uint8Array[] = [];
  readonly wire: Array<{ packet: Uint8Array; dir: WireDirection }> = [];
  /** When set, the wire holds packets here instead of delivering them (tests deliver by hand). */
  hold = false;
  readonly held: Array<{ packet: Uint8Array; dir: WireDirection }> = [];
  readonly pipeline: Pipeline;
  now = 1_000_000;

  constructor(opts: { agentMode?: DestinationMode; serviceMode?: ServiceMode; seed?: string; setup?: Partial<PipelineSetup> } = {}) {
    const e = parseEndpoint(`10.0.0.2:${SPORT}`);
    if (typeof e === 'string') throw new Error(e);
    this.pipeline = createPipeline(
      { backend: nodeBackend, random: seededRandom(opts.seed ?? 'lab'), protect: [e], agentMode: opts.agentMode, serviceMode: opts.serviceMode, ...opts.setup },
      {
        client: (p) => this.client.push(p),
        server: (p) => this.server.push(p),
        wire: (p, dir, now) => {
          this.wire.push({ packet: p, dir });
          if (this.hold) this.held.push({ packet: p, dir });
          else this.pipeline.deliver(p, dir, now);
        },
      },
    );
  }

  fromClient(s: Seg): void {
    this.pipeline.clientSends(segment('client', s), this.now);
  }

  fromServer(s: Seg): void {
    this.pipeline.serverSends(segment('server', s), this.now);
  }

  /** Injects a packet straight onto the wire (an attacker or a stale copy). */
  inject(packet: Uint8Array, dir: WireDirection): void {
    this.pipeline.deliver(packet, dir, this.now);
  }

  /** SYN, SYN-ACK and ACK with the given ISNs; returns the next sequence numbers. */
  handshake(cIsn = 1000, sIsn = 5000, synFlags: number = TCP_FLAGS.SYN): { c: number; s: number } {
    this.fromClient({ seq: cIsn, flags: synFlags, options: SYN_OPTIONS() });
    this.fromServer({ seq: sIsn, ack: cIsn + 1, flags: TCP_FLAGS.SYN | TCP_FLAGS.ACK, options: SYN_OPTIONS() });
    this.fromClient({ seq: cIsn + 1, ack: sIsn + 1 });
    return { c: (cIsn + 1) >>> 0, s: (sIsn + 1) >>> 0 };
  }

  advance(ms: number): void {
    this.now += ms;
    this.pipeline.tick(this.now);
  }

  get agent() {
    return this.pipeline.agent;
  }

  get gateway() {
    return this.pipeline.gateway;
  }
}

export const text = (b: Uint8Array): string => new TextDecoder().decode(b);
