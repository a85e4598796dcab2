// The key-delivery session over TCP (docs/PROTOCOL.md): the gateway dials the agent of a flow
// (default port 7390) and both sides exchange framed messages tagged with the flow's connId.
// One persistent connection per agent address carries the sessions of all its flows, so keying
// a new flow costs no TCP handshake once the agent is known.
//
// Transport only: the engines judge every message. A peer that sends a frame that does not
// decode loses its connection, and every flow keyed over it is told it failed.
import * as net from 'node:net';
import { FrameDecoder } from '../common/protocol/framing';
import { type KdMessage, decodeKdFrame, encodeKdMessage } from '../common/protocol/kd-messages';
import { ipAddressToString } from '../common/wire/address';
import { writeCoalesced } from '../kdc/client';

/** Largest key-delivery frame we accept: a TICKET with a maximal ticket is well under this. */
const KD_FRAME_MAX_LENGTH = 4096;

export interface KdEvents {
  message(connId: bigint, message: KdMessage): void;
  /** The session of this flow cannot continue (connect failed, peer closed, bad frame). */
  failure(connId: bigint, reason: string): void;
}

/** One TCP connection carrying the sessions of many flows. */
class KdLink {
  private readonly decoder = new FrameDecoder({ maxLength: KD_FRAME_MAX_LENGTH });
  readonly flows = new Set<bigint>();
  private connected: boolean;
  private pendingWrites: Uint8Array[] = [];
  closed = false;
  lastUsed: number;

  constructor(
    readonly socket: net.Socket,
    readonly name: string,
    private readonly events: KdEvents,
    private readonly onClose: (link: KdLink, reason: string) => void,
    connected: boolean,
  ) {
    this.connected = connected;
    this.lastUsed = Date.now();
    socket.setNoDelay(true);
    socket.on('connect', () => {
      this.connected = true;
      for (const w of this.pendingWrites) writeCoalesced(socket, w);
      this.pendingWrites = [];
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (e: NodeJS.ErrnoException) => this.fail(e.code === 'ECONNREFUSED' ? 'connection refused' : e.code === 'ETIMEDOUT' ? 'timed out' : e.message));
    socket.on('close', () => this.fail('connection closed'));
  }

  send(connId: bigint, message: KdMessage): void {
    this.flows.add(connId);
    this.lastUsed = Date.now();
    const bytes = encodeKdMessage(message);
    if (this.connected) writeCoalesced(this.socket, bytes);
    else this.pendingWrites.push(bytes);
  }

  private onData(chunk: Buffer): void {
    this.lastUsed = Date.now();
    const r = this.decoder.push(chunk);
    if (!r.ok) return this.fail(`bad frame from ${this.name}: ${r.error.detail}`);
    for (const frame of r.value) {
      const m = decodeKdFrame(frame);
      if (!m.ok) return this.fail(`bad message from ${this.name}: ${m.error.detail}`);
      this.flows.add(m.value.connId);
      this.events.message(m.value.connId, m.value);
      if (this.closed) return;
    }
  }

  fail(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.onClose(this, reason);
    for (const connId of this.flows) this.events.failure(connId, reason);
    this.flows.clear();
  }
}

/** Which connection carries each flow's session: the part both ends share. */
abstract class KdSessions {
  protected readonly byFlow = new Map<bigint, KdLink>();

  constructor(protected readonly events: KdEvents) {}

  send(connId: bigint, message: KdMessage): void {
    const link = this.byFlow.get(connId);
    if (link === undefined || link.closed) return this.events.failure(connId, 'no key-delivery session');
    link.send(connId, message);
  }

  /** The flow's session is over; the connection stays for other flows. */
  close(connId: bigint): void {
    this.byFlow.get(connId)?.flows.delete(connId);
    this.byFlow.delete(connId);
  }

  /** The flows with a session now that `pick` selects (e.g. those of a worker that died). */
  flowsWhere(pick: (connId: bigint) => boolean): bigint[] {
    return [...this.byFlow.keys()].filter(pick);
  }
}

export interface KdDialerOptions {
  connectTimeoutMs: number;
  /** A connection with no traffic for this long is closed. */
  idleMs: number;
}

/** The gateway's side: dials agents, one pooled connection per agent address and port. */
export class KdDialer extends KdSessions {
  private readonly links = new Map<string, KdLink>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    events: KdEvents,
    private readonly opts: KdDialerOptions,
  ) {
    super(events);
    this.sweeper = setInterval(() => this.closeIdle(), Math.max(1000, opts.idleMs / 2));
    this.sweeper.unref();
  }

  open(connId: bigint, agent: { addr: Uint8Array; port: number }, hello: KdMessage): void {
    const host = ipAddressToString(agent.addr);
    const key = net.isIPv6(host) ? `[${host}]:${agent.port}` : `${host}:${agent.port}`;
    let link = this.links.get(key);
    if (link === undefined || link.closed) {
      const socket = net.connect({ host, port: agent.port });
      socket.setTimeout(this.opts.connectTimeoutMs, () => {
        if (socket.connecting) link?.fail(`connect to ${key} timed out after ${this.opts.connectTimeoutMs} ms`);
      });
      socket.once('connect', () => socket.setTimeout(0));
      link = new KdLink(socket, `agent ${key}`, this.wrapEvents(), (l, reason) => this.dropLink(key, l, reason), false);
      this.links.set(key, link);
    }
    this.byFlow.set(connId, link);
    link.send(connId, hello);
  }



  get connections(): number {
    return this.links.size;
  }

  private wrapEvents(): KdEvents {
    return {
      message: (connId, m) => this.events.message(connId, m),
      failure: (connId, reason) => {
        this.byFlow.delete(connId);
        this.events.failure(connId, reason);
      },
    };
  }

  private dropLink(key: string, link: KdLink, _reason: string): void {
    if (this.links.get(key) === link) this.links.delete(key);
  }

  private closeIdle(): void {
    const cutoff = Date.now() - this.opts.idleMs;
    for (const link of this.links.values()) if (link.flows.size === 0 && link.lastUsed < cutoff) link.fail('idle');
  }

  closeAll(): void {
    clearInterval(this.sweeper);
    for (const link of [...this.links.values()]) link.fail('shutting down');
  }
}

/** The agent's side: accepts gateways' connections and answers on the one a flow spoke on. */
export class KdListener extends KdSessions {
  private readonly server: net.Server;
  private readonly links = new Set<KdLink>();

  constructor(
    events: KdEvents,
    private readonly maxConnections = 1024,
  ) {
    super(events);
    this.server = net.createServer((socket) => this.accept(socket));
  }

  private accept(socket: net.Socket): void {
    if (this.links.size >= this.maxConnections) {
      socket.destroy();
      return;
    }
    const name = `gateway ${socket.remoteAddress}:${socket.remotePort}`;
    const link = new KdLink(
      socket,
      name,
      {
        message: (connId, m) => {
          this.byFlow.set(connId, link);
          this.events.message(connId, m);
        },
        failure: (connId, reason) => {
          if (this.byFlow.get(connId) === link) this.byFlow.delete(connId);
          this.events.failure(connId, reason);
        },
      },
      (l) => this.links.delete(l),
      true,
    );
    this.links.add(link);
  }

  listen(host: string, port: number): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }



  get connections(): number {
    return this.links.size;
  }

  closeAll(): Promise<void> {
    for (const link of [...this.links]) link.fail('shutting down');
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
