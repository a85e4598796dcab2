// The gateway's bridge mode (DESIGN section 5): a bump in the wire between two Ethernet
// interfaces that have no IP address. Frames are captured with the `cap` addon (libpcap) on both
// interfaces and sent out of the other one. Only IP/TCP goes to the engine; everything else
// (ARP, LLDP, UDP, ICMP...) crosses unchanged. VLAN tags are part of the link header, which is
// kept as captured, so tagged frames cross with their tags.
//
// Capture is inbound only (BPF `inbound`, the kernel's packet type): without it the capture on
// an interface would see what the host's own stack transmits there. libpcap quirk: after it
// installs a kernel filter it re-runs the filter in userland over the ring slots that might
// predate it (at least one), and userland cannot evaluate the packet type, so the first one or
// two frames after start are lost, as if they had arrived before start.
import type { Toward, Verdict } from '../common/engine/actions';
import { parseIp } from '../common/wire/ip';
import { LINKTYPE, parseLink } from '../common/wire/link';
import type { GatewayConfig } from '../gateway/config';
import type { Datapath, EngineDriver } from './engine-driver';
import { packetFlowKey } from './nfqueue-datapath';

/** Ethernet minimum frame without FCS: shorter frames are padded with zeros. */
export const MIN_FRAME = 60;
/** libpcap's buffer per interface: room for bursts while the event loop is busy. */
const CAPTURE_BUFFER_BYTES = 32 * 1024 * 1024;
/** cap's snaplen is fixed at 65535; one byte more tells a truncated frame apart. */
const FRAME_BUFFER_BYTES = 65536;
/** A flow's link-header entry moves to the young end of the table at most this often. */
const REFRESH_MS = 1000;
/** At most one datapath-error report per interval; the rest are counted. */
const REPORT_INTERVAL_MS = 1000;
const TCP = 6;

interface CapHandle {
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
  close(): boolean;
  send(buffer: Buffer, nBytes?: number): void;
  on(event: 'packet', listener: (nbytes: number, truncated: boolean) => void): void;
}

interface CapModule {
  Cap: { new (): CapHandle; deviceList(): { name: string }[] };
}

function loadCap(): CapModule {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a native addon, loaded only in bridge mode
    return require('cap') as CapModule;
  } catch (e) {
    throw new Error(
      `the cap addon does not load (${(e as Error).message}); install with npm and allowScripts so it is built, with libpcap-dev present`,
    );
  }
}

type Side = 'client' | 'server';

/** One bridge interface: its capture handle and the buffer cap copies each frame into. */
interface Port {
  readonly side: Side;
  readonly name: string;
  readonly cap: CapHandle;
  readonly buffer: Buffer;
}

/** The link headers (Ethernet + VLAN tags) a flow's frames last carried, per direction. */
interface LinkHeaders {
  c2s: Uint8Array | null;
  s2c: Uint8Array | null;
  seenAt: number;
}

/** The header with source and destination MAC swapped (VLAN tags and ethertype kept). */
export function swapMacs(header: Uint8Array): Uint8Array {
  const out = new Uint8Array(header);
  out.set(header.subarray(0, 6), 6);
  out.set(header.subarray(6, 12), 0);
  return out;
}

/** A frame of `header` + `packet`, zero-padded to the Ethernet minimum. */
export function buildFrame(header: Uint8Array, packet: Uint8Array): Buffer {
  const n = header.length + packet.length;
  const out = Buffer.allocUnsafe(n < MIN_FRAME ? MIN_FRAME : n);
  out.set(header, 0);
  out.set(packet, header.length);
  if (n < MIN_FRAME) out.fill(0, n);
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array, n: number): boolean {
  if (a.length !== n) return false;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class BridgeDatapath implements Datapath {
  private driver: EngineDriver | null = null;
  private client: Port | null = null;
  private server: Port | null = null;
  /** Canonical flow key -> link headers; insertion order is age order (oldest first). */
  private readonly headers = new Map<string, LinkHeaders>();
  private lastReport = -Infinity;
  private unreported = 0;
  readonly stats = {
    inClient: 0,
    inServer: 0,
    sentClient: 0,
    sentServer: 0,
    passed: 0,
    rewritten: 0,
    dropped: 0,
    held: 0,
    released: 0,
    originated: 0,
    nonIp: 0,
    nonTcp: 0,
    /** Frames whose link header does not parse (runts, truncated VLAN tags): forwarded as they are. */
    malformed: 0,
    /** Frames longer than the capture snaplen: cannot be forwarded whole, so dropped. */
    truncated: 0,
    /** Released or originated packets for a flow whose link headers are unknown (expired). */
    noLinkHeader: 0,
    linkHeadersEvicted: 0,
    engineErrors: 0,
    sendErrors: 0,
  };

  constructor(
    private readonly config: GatewayConfig,
    private readonly onError: (reason: string) => void,
  ) {}

  /** Opens both interfaces; throws with a message that says how to fix it. */
  start(driver: EngineDriver): void {
    const bridge = this.config.bridge;
    if (bridge === null) throw new Error('bridge mode needs "bridge": { "clientInterface": ..., "serverInterface": ... } in the config');
    const cap = loadCap();
    const known = new Set(cap.Cap.deviceList().map((d) => d.name));
    for (const [field, name] of [['clientInterface', bridge.clientInterface], ['serverInterface', bridge.serverInterface]] as const) {
      if (!known.has(name)) {
        throw new Error(`bridge.${field}: interface ${name} does not exist here (see \`ip link show\`; in a namespace, run the gateway inside it)`);
      }
    }
    this.driver = driver;
    try {
      this.client = this.open(cap, 'client', bridge.clientInterface);
      this.server = this.open(cap, 'server', bridge.serverInterface);
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private open(cap: CapModule, side: Side, name: string): Port {
    const handle = new cap.Cap();
    const buffer = Buffer.alloc(FRAME_BUFFER_BYTES);
    let linkType: string;
    try {
      // Promiscuous, snaplen 65535 and immediate mode are what cap always sets.
      linkType = handle.open(name, 'inbound', CAPTURE_BUFFER_BYTES, buffer);
    } catch (e) {
      const m = (e as Error).message;
      const hint = /permi|not permitted|EPERM/i.test(m)
        ? 'capturing needs CAP_NET_RAW (run as root, or AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN in the unit)'
        : /no such device/i.test(m)
          ? 'the interface does not exist (see `ip link show`)'
          : 'check that the interface exists and is up';
      throw new Error(`cannot capture on ${side}-side interface ${name}: ${m}; ${hint}`);
    }
    const port: Port = { side, name, cap: handle, buffer };
    if (linkType !== 'ETHERNET') {
      handle.close();
      throw new Error(`${side}-side interface ${name} has link type ${linkType}; bridge mode needs Ethernet interfaces`);
    }
    handle.on('packet', (nbytes, truncated) => this.onFrame(port, nbytes, truncated));
    return port;
  }

  // ---- per frame: never throws --------------------------------------------------------------

  private onFrame(from: Port, nbytes: number, truncated: boolean): void {
    const fromClient = from.side === 'client';
    if (fromClient) this.stats.inClient++;
    else this.stats.inServer++;
    const to = fromClient ? this.server : this.client;
    if (to === null || this.driver === null) return;
    if (truncated) {
      this.stats.truncated++;
      return;
    }
    const frame = from.buffer.subarray(0, nbytes);
    const link = parseLink(LINKTYPE.ETHERNET, frame);
    if (!link.ok) {
      // We are a bridge: what is not IP crosses unchanged; the engine judges IP/TCP only.
      if (link.error.kind === 'not-ip') this.stats.nonIp++;
      else this.stats.malformed++;
      this.transmit(to, frame);
      return;
    }
    const ipOffset = link.value.ipOffset;
    const ip = parseIp(frame, ipOffset);
    let packet: Uint8Array;
    if (ip.ok) {
      if (ip.value.protocol !== TCP) {
        this.stats.nonTcp++;
        this.transmit(to, frame);
        return;
      }
      // Cut at the IP total length: Ethernet padding is not payload. A copy: `frame` is cap's
      // one receive buffer, and the engine may keep views of its input (addresses of a flow
      // being keyed) past this frame.
      packet = new Uint8Array(frame.subarray(ipOffset, ip.value.end));
    } else {
      // A malformed IP header: the engine decides (it drops what touches a protected service).
      packet = new Uint8Array(frame.subarray(ipOffset));
    }
    let applied = false;
    try {
      this.driver.packet(packet, (v) => {
        applied = true;
        this.apply(fromClient, to, frame, ipOffset, packet, v);
      });
    } catch (e) {
      // A bug, not input: fail closed for this frame, keep bridging the rest.
      this.stats.engineErrors++;
      if (!applied) this.stats.dropped++;
      this.report(`engine error: ${(e as Error).message}`);
    }
  }

  private apply(fromClient: boolean, to: Port, frame: Buffer, ipOffset: number, packet: Uint8Array, v: Verdict): void {
    switch (v.kind) {
      case 'pass':
        this.stats.passed++;
        this.transmit(to, frame);
        return;
      case 'rewrite':
        this.stats.rewritten++;
        this.remember(fromClient, frame, ipOffset, packet);
        this.transmit(to, buildFrame(frame.subarray(0, ipOffset), v.packet));
        return;
      case 'drop':
        this.stats.dropped++;
        // The engine may answer at once (a RST refusing the flow): it needs this flow's headers.
        this.remember(fromClient, frame, ipOffset, packet);
        return;
      case 'hold':
        // The engine keeps a copy; it comes back through release().
        this.stats.held++;
        this.remember(fromClient, frame, ipOffset, packet);
        return;
    }
  }

  /**
   * Records the link header of a frame the engine acts on (plaintext flows the engine passes
   * never need one, so they stay off the table).
   */
  private remember(fromClient: boolean, frame: Uint8Array, ipOffset: number, packet: Uint8Array): void {
    const key = packetFlowKey(packet);
    if (key === null) return;
    const now = (this.driver as EngineDriver).now();
    let entry = this.headers.get(key);
    if (entry === undefined) {
      if (this.headers.size >= this.config.limits.maxFlows) {
        const oldest = this.headers.keys().next();
        if (!oldest.done) {
          this.headers.delete(oldest.value);
          this.stats.linkHeadersEvicted++;
        }
      }
      entry = { c2s: null, s2c: null, seenAt: now };
      this.headers.set(key, entry);
    } else if (now - entry.seenAt >= REFRESH_MS) {
      this.headers.delete(key);
      entry.seenAt = now;
      this.headers.set(key, entry);
    }
    const known = fromClient ? entry.c2s : entry.s2c;
    if (known !== null && sameBytes(known, frame, ipOffset)) return;
    // A copy: the frame is a view into cap's buffer (and Buffer#slice would not copy).
    const header = new Uint8Array(frame.subarray(0, ipOffset));
    if (fromClient) entry.c2s = header;
    else entry.s2c = header;
  }

  /** The link header for a packet going `toward`: as last seen that way, else the reverse with MACs swapped. */
  private headerToward(packet: Uint8Array, toward: Toward): Uint8Array | null {
    const key = packetFlowKey(packet);
    const entry = key === null ? undefined : this.headers.get(key);
    if (entry === undefined) return null;
    const [same, reverse] = toward === 'server' ? [entry.c2s, entry.s2c] : [entry.s2c, entry.c2s];
    if (same !== null) return same;
    return reverse === null ? null : swapMacs(reverse);
  }

  private sendPacket(packet: Uint8Array, toward: Toward): void {
    const port = toward === 'server' ? this.server : this.client;
    if (port === null) return;
    const header = this.headerToward(packet, toward);
    if (header === null) {
      this.stats.noLinkHeader++;
      this.report(`no link header known for a packet toward the ${toward} (flow expired from the table)`);
      return;
    }
    this.transmit(port, buildFrame(header, packet));
  }

  private transmit(port: Port, frame: Uint8Array): void {
    try {
      const buf = Buffer.isBuffer(frame) ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
      port.cap.send(buf, buf.length);
      if (port.side === 'client') this.stats.sentClient++;
      else this.stats.sentServer++;
    } catch (e) {
      this.stats.sendErrors++;
      this.report(`send on ${port.side}-side interface ${port.name}: ${(e as Error).message}`);
    }
  }

  /** Reports a per-packet problem without flooding the log: one report per interval, with a count. */
  private report(reason: string): void {
    const now = Date.now();
    if (now - this.lastReport < REPORT_INTERVAL_MS) {
      this.unreported++;
      return;
    }
    const more = this.unreported > 0 ? ` (and ${this.unreported} more since the last report)` : '';
    this.lastReport = now;
    this.unreported = 0;
    try {
      this.onError(reason + more);
    } catch {
      // The reporter's problem must not become the packet path's.
    }
  }

  // ---- engine side actions ------------------------------------------------------------------

  release(packet: Uint8Array, toward: Toward): void {
    this.stats.released++;
    this.sendPacket(packet, toward);
  }

  originate(packet: Uint8Array, toward: Toward): void {
    this.stats.originated++;
    this.sendPacket(packet, toward);
  }

  /** Forgets the link headers of flows idle longer than the engine keeps them. */
  tick(now: number): void {
    const cutoff = now - this.config.timers.idleTimeoutMs;
    for (const [key, entry] of this.headers) {
      if (entry.seenAt > cutoff) break;
      this.headers.delete(key);
    }
  }

  /** Flows whose link headers are remembered. */
  get linkHeaderCount(): number {
    return this.headers.size;
  }

  /** The engine holds held SYNs itself; the bridge keeps no frames. */
  get heldCount(): number {
    return 0;
  }

  close(): void {
    for (const port of [this.client, this.server]) port?.cap.close();
    this.client = this.server = null;
    this.headers.clear();
  }
}
