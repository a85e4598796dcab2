// The KDC client gateways use: persistent, pipelined TCP connections to one or more KDC
// endpoints, answers matched by requestId (they may come back out of order).
//
// - Spreading: each request goes to the endpoint with the fewest requests in flight (ties go
//   round-robin), skipping endpoints that failed recently while any other is usable.
// - Failover: on a connect error, a closed connection, a timeout or a `busy` answer, the SAME
//   request bytes go to the next endpoint not yet tried. The KDC is idempotent by requestId,
//   so a retry can never mint a second session key: at worst it returns the stored answer.
// - Every other ISSUE_ERROR is an answer, returned like a response: the caller decodes it.
// - When every attempt fails, request() rejects with KdcUnreachableError naming each endpoint
//   tried and why ("127.0.0.1:7391 connection refused; 127.0.0.1:7392 timed out after 500 ms").
// - Bounded: requests pending across all endpoints are capped (DESIGN rule 8), and a connection
//   decodes frames with a small maxLength, so a bad KDC cannot make us buffer much.
import * as net from 'node:net';
import { FRAME_HEADER_LEN, FrameDecoder } from '../common/protocol/framing';
import { KdcErrorCode, KdcType } from '../common/protocol/kdc-messages';
import { REQUEST_ID_LEN } from '../common/protocol/ticket';

/** Largest KDC answer: an ISSUE_RESPONSE is at most 1932 bytes (docs/PROTOCOL.md section 9). */
export const KDC_FRAME_MAX_LENGTH = 2048;

const corked = new WeakSet<net.Socket>();

/**
 * Writes `bytes` to `socket`, coalescing every write made in this turn of the event loop into
 * one writev: many small frames in flight cost one syscall, not one each. end() flushes.
 */
export function writeCoalesced(socket: net.Socket, bytes: Uint8Array): void {
  if (!corked.has(socket)) {
    corked.add(socket);
    socket.cork();
    setImmediate(() => {
      corked.delete(socket);
      socket.uncork();
    });
  }
  socket.write(bytes);
}

export interface KdcClientOptions {
  /** 'host:port' or '[v6addr]:port', at least one. */
  endpoints: readonly string[];
  /** Per attempt: connecting plus waiting for the answer. Default 1000 ms. */
  timeoutMs?: number;
  /** Further attempts after the first, each on the next endpoint. Default endpoints - 1 (at least 1). */
  retries?: number;
  /** How long an endpoint that failed is passed over while another is usable. Default 1000 ms. */
  downMs?: number;
  /** Requests pending at once across all endpoints. Default 10000. */
  maxPending?: number;
}

export interface Endpoint {
  host: string;
  port: number;
}

/** Parses 'host:port' or '[v6]:port'; throws a RangeError that quotes the bad text. */
export function parseEndpoint(text: string): Endpoint {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]\s]+):(\d+)$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`endpoint '${text}' is not HOST:PORT`);
  return { host: m[1] as string, port };
}

export function formatEndpoint(e: Endpoint): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

export interface AttemptFailure {
  endpoint: string;
  reason: string;
}

export class KdcUnreachableError extends Error {
  constructor(readonly attempts: readonly AttemptFailure[]) {
    super(`KDC unreachable: ${attempts.map((a) => `${a.endpoint} ${a.reason}`).join('; ')}`);
    this.name = 'KdcUnreachableError';
  }
}

/** Why one attempt failed; `down` marks the endpoint as failing for a while. */
class AttemptError extends Error {
  constructor(
    readonly reason: string,
    readonly down: boolean,
  ) {
    super(reason);
  }
}

function describeSocketError(e: NodeJS.ErrnoException): string {
  switch (e.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'connection reset';
    case 'EPIPE': // written to after the KDC closed its end (it died between our writes)
      return 'connection closed by the KDC';
    case 'EHOSTUNREACH':
      return 'host unreachable';
    case 'ENETUNREACH':
      return 'network unreachable';
    case 'ENOTFOUND':
      return 'host not found';
    default:
      return e.code !== undefined ? `${e.code.toLowerCase()} (${e.message})` : e.message;
  }
}

interface Waiter {
  resolve(frame: Uint8Array): void;
  reject(e: AttemptError): void;
}

/** One persistent connection to one endpoint; answers matched to waiters by requestId. */
class Connection {
  private readonly socket: net.Socket;
  private readonly decoder = new FrameDecoder({ maxLength: KDC_FRAME_MAX_LENGTH });
  private readonly waiters = new Map<string, Waiter[]>();
  private connected = false;
  closed = false;

  constructor(
    endpoint: Endpoint,
    private readonly onClose: (c: Connection) => void,
  ) {
    this.socket = net.connect({ host: endpoint.host, port: endpoint.port });
    this.socket.setNoDelay(true);
    this.socket.on('connect', () => {
      this.connected = true;
    });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (e: NodeJS.ErrnoException) => this.fail(describeSocketError(e), true));
    this.socket.on('close', () => this.fail(this.connected ? 'connection closed by the KDC' : 'connection closed', true));
  }

  get pending(): number {
    return this.waiters.size;
  }

  send(id: string, frame: Uint8Array, w: Waiter): void {
    const list = this.waiters.get(id);
    if (list !== undefined) list.push(w);
    else {
      this.waiters.set(id, [w]);
      writeCoalesced(this.socket, frame);
    }
  }

  forget(id: string, w: Waiter): void {
    const list = this.waiters.get(id);
    if (list === undefined) return;
    const i = list.indexOf(w);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.waiters.delete(id);
  }

  private onData(chunk: Buffer): void {
    const r = this.decoder.push(chunk);
    if (!r.ok) {
      this.fail(`sent a bad frame (${r.error.detail})`, true);
      return;
    }
    for (const f of r.value) {
      if ((f.type !== KdcType.IssueResponse && f.type !== KdcType.IssueError) || f.body.length < REQUEST_ID_LEN) {
        this.fail(`sent an unexpected frame (type 0x${f.type.toString(16)})`, true);
        return;
      }
      const id = Buffer.from(f.body.subarray(0, REQUEST_ID_LEN)).toString('hex');
      const list = this.waiters.get(id);
      if (list === undefined) continue; // the attempt timed out meanwhile
      this.waiters.delete(id);
      for (const w of list) w.resolve(f.raw);
    }
  }

  private fail(reason: string, down: boolean): void {
    if (!this.closed) {
      this.closed = true;
      this.socket.destroy();
      this.onClose(this);
    }
    const all = [...this.waiters.values()].flat();
    this.waiters.clear();
    for (const w of all) w.reject(new AttemptError(reason, down));
  }

  destroy(reason: string): void {
    this.fail(reason, false);
  }
}

interface EndpointState {
  endpoint: Endpoint;
  name: string;
  conn: Connection | null;
  inFlight: number;
  downUntil: number;
}

export class KdcClient {
  private readonly endpoints: EndpointState[];
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly downMs: number;
  private readonly maxPending: number;
  private pending = 0;
  private next = 0;
  private closed = false;

  constructor(opts: KdcClientOptions) {
    if (opts.endpoints.length === 0) throw new RangeError('KdcClient: at least one endpoint is required');
    this.endpoints = opts.endpoints.map((text) => {
      const endpoint = parseEndpoint(text);
      return { endpoint, name: formatEndpoint(endpoint), conn: null, inFlight: 0, downUntil: 0 };
    });
    this.timeoutMs = opts.timeoutMs ?? 1000;
    this.retries = opts.retries ?? Math.max(1, this.endpoints.length - 1);
    this.downMs = opts.downMs ?? 1000;
    this.maxPending = opts.maxPending ?? 10_000;
    if (!(this.timeoutMs > 0)) throw new RangeError(`KdcClient: timeoutMs must be positive, got ${this.timeoutMs}`);
    if (!Number.isInteger(this.retries) || this.retries < 0) throw new RangeError(`KdcClient: retries must be a non-negative integer, got ${this.retries}`);
  }

  /** Requests in flight per endpoint, for metrics and tests. */
  inFlight(): Record<string, number> {
    return Object.fromEntries(this.endpoints.map((e) => [e.name, e.inFlight]));
  }

  /**
   * Sends one complete ISSUE_REQUEST frame (from sealIssueRequest) and resolves with the KDC's
   * answer frame (ISSUE_RESPONSE or ISSUE_ERROR, with the same requestId).
   */
  async request(frame: Uint8Array): Promise<Uint8Array> {
    if (this.closed) throw new Error('KdcClient is closed');
    if (frame.length < FRAME_HEADER_LEN + 2 + REQUEST_ID_LEN || frame[5] !== KdcType.IssueRequest) {
      throw new RangeError('KdcClient.request: not an ISSUE_REQUEST frame');
    }
    if (this.pending >= this.maxPending) throw new KdcUnreachableError([{ endpoint: 'client', reason: `${this.pending} requests already pending (maxPending)` }]);
    const id = Buffer.from(frame.subarray(FRAME_HEADER_LEN + 2, FRAME_HEADER_LEN + 2 + REQUEST_ID_LEN)).toString('hex');
    const failures: AttemptFailure[] = [];
    const tried = new Set<EndpointState>();
    this.pending++;
    try {
      for (let attempt = 0; attempt <= this.retries; attempt++) {
        if (this.closed) break;
        const ep = this.pick(tried);
        tried.add(ep);
        try {
          const answer = await this.attempt(ep, id, frame);
          if (attempt < this.retries && isBusy(answer)) {
            failures.push({ endpoint: ep.name, reason: 'answered busy' });
            continue;
          }
          return answer;
        } catch (e) {
          if (!(e instanceof AttemptError)) throw e;
          failures.push({ endpoint: ep.name, reason: e.reason });
          if (e.down) ep.downUntil = Date.now() + this.downMs;
        }
      }
    } finally {
      this.pending--;
    }
    throw new KdcUnreachableError(failures.length > 0 ? failures : [{ endpoint: 'client', reason: 'closed' }]);
  }

  /** Least in flight among endpoints usable now and not yet tried; round-robin on ties. */
  private pick(tried: Set<EndpointState>): EndpointState {
    const now = Date.now();
    const n = this.endpoints.length;
    const start = this.next++ % n;
    let best: EndpointState | null = null;
    let bestScore = Infinity;
    for (let i = 0; i < n; i++) {
      const ep = this.endpoints[(start + i) % n] as EndpointState;
      // Untried first, then endpoints not known to be down, then fewest in flight.
      const score = (tried.has(ep) ? 2e9 : 0) + (ep.downUntil > now ? 1e9 : 0) + ep.inFlight;
      if (score < bestScore) {
        best = ep;
        bestScore = score;
      }
    }
    return best as EndpointState;
  }

  private connection(ep: EndpointState): Connection {
    if (ep.conn === null || ep.conn.closed) {
      ep.conn = new Connection(ep.endpoint, (c) => {
        if (ep.conn === c) ep.conn = null;
      });
    }
    return ep.conn;
  }

  private attempt(ep: EndpointState, id: string, frame: Uint8Array): Promise<Uint8Array> {
    const conn = this.connection(ep);
    ep.inFlight++;
    return new Promise<Uint8Array>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        ep.inFlight--;
      };
      const w: Waiter = {
        resolve: (f) => {
          done();
          ep.downUntil = 0;
          resolve(f);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        conn.forget(id, w);
        w.reject(new AttemptError(`timed out after ${this.timeoutMs} ms`, true));
      }, this.timeoutMs);
      conn.send(id, frame, w);
    });
  }

  /** Closes every connection; pending requests fail. */
  close(): void {
    this.closed = true;
    for (const ep of this.endpoints) {
      ep.conn?.destroy('client closed');
      ep.conn = null;
    }
  }
}

function isBusy(frame: Uint8Array): boolean {
  const codeAt = FRAME_HEADER_LEN + 2 + REQUEST_ID_LEN;
  return frame[5] === KdcType.IssueError && frame.length >= codeAt + 2 && ((frame[codeAt] as number) << 8 | (frame[codeAt + 1] as number)) === KdcErrorCode.Busy;
}
