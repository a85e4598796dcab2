// The KDC's TCP side: persistent, pipelined gateway connections carrying KDC frames.
//
// - Many requests per connection may be in flight at once; each answer is written as soon as it
//   is ready, so answers can overtake each other (gateways match them by requestId).
// - Bounded per connection: the FrameDecoder holds at most one frame of maxFrameLength (2048)
//   bytes; when answers pile up unread (writableLength over writeHighWaterMark) or too many
//   requests of this connection are in flight, the socket stops being read until it drains, so
//   TCP flow control pushes back on the gateway instead of our memory growing.
// - A frame that does not decode is answered (malformed/version) and the connection closes.
// - Idle connections (no bytes either way, nothing in flight) close after idleTimeoutMs.
// - More than maxConnections: new connections are closed at once (counted, logged).
// - drain(): stop accepting, stop reading, answer what is in flight, close (SIGTERM).
import { randomFillSync } from 'node:crypto';
import * as net from 'node:net';
import { type Frame, FrameDecoder } from '../common/protocol/framing';
import { KDC_FRAME_MAX_LENGTH, writeCoalesced } from './client';
import { getBackend } from '../common/crypto';
import { type RandomSource, systemRandom } from '../common/crypto/random';
import { type HostPort, type KdcConfig, formatHostPort } from './config';
import { KdcHttpServer, type Readiness } from './http';
import { MasterKeyError, loadMasterKeyRing } from './master-key';
import { KdcMetrics } from './metrics';
import { PolicyCache } from './policy';
import { PrincipalDirectory } from './principals';
import { KdcService, type LogFn, silentLog } from './service';
import { type KdcStore, StoreUnavailableError, openStore } from './store';
import { ChangeWatcher } from './store/watch';

export interface KdcTcpServerOptions {
  /** Addresses to listen on (port 0: any free port). */
  listen: readonly HostPort[];
  /** Default 1024. */
  maxConnections?: number;
  /** Default 60000 ms. */
  idleTimeoutMs?: number;
  /** Default 2048 (an ISSUE_REQUEST is at most 600-odd bytes). */
  maxFrameLength?: number;
  /** Requests of one connection in flight before it stops being read. Default 256. */
  maxPendingPerConnection?: number;
  /** Unsent answer bytes before a connection stops being read. Default 256 KiB. */
  writeHighWaterMark?: number;
}

/**
 * Frames handled per turn of the event loop before the rest of a read waits for the next turn.
 * A read can hold hundreds of pipelined requests; handling them all at once would hold their
 * store writes and answers (and every other connection) until the last is sealed. In slices,
 * the store works on one slice's writes while the next is sealed, and answers leave sooner.
 */
const FRAMES_PER_TURN = 32;

interface Conn {
  socket: net.Socket;
  decoder: FrameDecoder;
  /** Frames read but not yet handled (counted in pending). */
  backlog: Frame[];
  /** A turn is scheduled to handle the backlog. */
  scheduled: boolean;
  /** Requests read and not yet answered. */
  pending: number;
  closing: boolean;
  /** A frame did not decode: nothing after it is handled. */
  refusing: boolean;
  paused: boolean;
  peer: string;
}

export class KdcTcpServer {
  private readonly servers: net.Server[];
  private readonly conns = new Set<Conn>();
  private readonly o: Required<KdcTcpServerOptions>;
  private draining = false;
  private refusedLogAt = 0;

  constructor(
    private readonly service: KdcService,
    private readonly metrics: KdcMetrics,
    private readonly log: LogFn,
    opts: KdcTcpServerOptions,
  ) {
    this.o = {
      maxConnections: 1024,
      idleTimeoutMs: 60_000,
      maxFrameLength: KDC_FRAME_MAX_LENGTH,
      maxPendingPerConnection: 256,
      writeHighWaterMark: 256 * 1024,
      ...opts,
    };
    if (this.o.listen.length === 0) throw new RangeError('KdcTcpServer: nothing to listen on');
    // allowHalfOpen: a gateway that shuts down its sending side still gets the answers in flight.
    this.servers = this.o.listen.map(() => net.createServer({ noDelay: true, allowHalfOpen: true }, (s) => this.accept(s)));
  }

  /** Listens on every address; resolves with the bound addresses (in order). */
  async listen(): Promise<net.AddressInfo[]> {
    const out: net.AddressInfo[] = [];
    for (const [i, server] of this.servers.entries()) {
      const at = this.o.listen[i] as HostPort;
      out.push(
        await new Promise<net.AddressInfo>((resolve, reject) => {
          server.once('error', reject);
          server.listen(at.port, at.host, () => {
            server.off('error', reject);
            server.on('error', (e) => this.log('error', 'kdc-listener-error', { error: e.message }));
            resolve(server.address() as net.AddressInfo);
          });
        }),
      );
    }
    return out;
  }

  private closeListeners(): Promise<void> {
    return Promise.all(this.servers.map((s) => new Promise<void>((r) => (s.listening ? s.close(() => r()) : r())))).then(() => undefined);
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  private accept(socket: net.Socket): void {
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    if (this.draining || this.conns.size >= this.o.maxConnections) {
      const reason = this.draining ? 'draining' : 'max-connections';
      this.metrics.connectionsRefused.inc({ reason });
      const now = Date.now();
      if (now - this.refusedLogAt > 1000) {
        this.refusedLogAt = now;
        this.log('warn', 'connection-refused', { peer, reason, open: this.conns.size });
      }
      socket.destroy();
      return;
    }
    const c: Conn = { socket, decoder: new FrameDecoder({ maxLength: this.o.maxFrameLength }), backlog: [], scheduled: false, pending: 0, closing: false, refusing: false, paused: false, peer };
    this.conns.add(c);
    this.metrics.connections.set(this.conns.size);
    socket.setTimeout(this.o.idleTimeoutMs);
    socket.on('timeout', () => {
      if (c.pending > 0) return;
      this.metrics.connectionsRefused.inc({ reason: 'idle' });
      socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => this.onData(c, chunk));
    socket.on('drain', () => this.maybeResume(c));
    socket.on('error', () => undefined); // 'close' follows
    socket.on('end', () => {
      // The gateway finished sending: answer what is in flight, then close our side.
      c.closing = true;
      if (c.pending === 0) socket.end();
    });
    socket.on('close', () => {
      this.conns.delete(c);
      this.metrics.connections.set(this.conns.size);
    });
  }

  private onData(c: Conn, chunk: Buffer): void {
    if (c.closing) return;
    const r = c.decoder.push(chunk);
    if (!r.ok) {
      // A bad length prefix: no frame to take a requestId from. Answer (zeros), then close.
      this.reply(c, this.service.frameError(r.error, null));
      return;
    }
    for (const frame of r.value) c.backlog.push(frame);
    c.pending += r.value.length;
    if (!c.scheduled) this.handleBacklog(c);
  }

  /** Handles up to FRAMES_PER_TURN frames of the backlog, then yields if more are waiting. */
  private handleBacklog(c: Conn): void {
    c.scheduled = false;
    const n = Math.min(c.backlog.length, FRAMES_PER_TURN);
    const slice = c.backlog.splice(0, n);
    for (const frame of slice) {
      if (c.refusing || c.socket.destroyed) {
        // A frame before this one did not decode: nothing after it counts.
        c.pending--;
        continue;
      }
      const a = this.service.handleFrame(frame);
      if (a instanceof Promise) {
        a.then(
          (answer) => this.reply(c, answer, true),
          (e: unknown) => {
            // handleFrame answers every failure itself; this is a bug, not input.
            this.log('error', 'handler-threw', { error: e instanceof Error ? e.message : String(e) });
            this.reply(c, { answer: null, close: true }, true);
          },
        );
      } else {
        this.reply(c, a, true);
      }
    }
    if (c.refusing) {
      c.pending -= c.backlog.length;
      c.backlog.length = 0;
      if (c.pending === 0 && !c.socket.destroyed) c.socket.end();
    }
    if (c.backlog.length > 0) {
      c.scheduled = true;
      setImmediate(() => this.handleBacklog(c));
    }
    this.maybePause(c);
  }

  private reply(c: Conn, a: { answer: Uint8Array | null; close: boolean }, counted = false): void {
    if (counted) c.pending--;
    if (c.socket.destroyed) return;
    if (a.close && !c.refusing) {
      this.metrics.connectionsRefused.inc({ reason: 'malformed' });
      c.refusing = true;
      c.closing = true;
    }
    if (a.answer !== null) writeCoalesced(c.socket, a.answer);
    if (c.closing && c.pending === 0) c.socket.end();
    else this.maybeResume(c);
  }

  private maybePause(c: Conn): void {
    if (!c.paused && (c.pending >= this.o.maxPendingPerConnection || c.socket.writableLength > this.o.writeHighWaterMark)) {
      c.paused = true;
      c.socket.pause();
    }
  }

  private maybeResume(c: Conn): void {
    if (c.paused && !this.draining && c.pending < this.o.maxPendingPerConnection && c.socket.writableLength <= this.o.writeHighWaterMark) {
      c.paused = false;
      c.socket.resume();
    }
  }

  /**
   * Stops accepting and reading, waits (up to graceMs) for answers in flight to be written,
   * then closes every connection. Gateways whose unread requests are lost retry elsewhere with
   * the same bytes, which is safe (idempotent by requestId).
   */
  async drain(graceMs = 10_000): Promise<void> {
    this.draining = true;
    const closed = this.closeListeners();
    for (const c of this.conns) {
      c.socket.pause();
      c.paused = true;
    }
    const deadline = Date.now() + graceMs;
    while ([...this.conns].some((c) => c.pending > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const c of this.conns) c.socket.end();
    // Give peers a moment to read the last answers and close, then cut what is left.
    const ends = [...this.conns].map((c) => new Promise<void>((r) => (c.socket.destroyed ? r() : c.socket.once('close', () => r()))));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(ends), new Promise((r) => (timer = setTimeout(r, Math.max(100, Math.min(1000, deadline - Date.now())))))]);
    clearTimeout(timer);
    for (const c of this.conns) c.socket.destroy();
    await closed;
  }

  /** Closes at once: every connection is cut (tests, fatal errors). */
  async close(): Promise<void> {
    this.draining = true;
    const closed = this.closeListeners();
    for (const c of this.conns) c.socket.destroy();
    await closed;
  }
}

// ---- the KDC process: config in, listening service out ----

export interface StartKdcOptions {
  log?: LogFn;
  /** Default 1024. */
  maxConnections?: number;
  /** Default 60000 ms. */
  idleTimeoutMs?: number;
  /** Override the configured listen addresses (tests: port 0). */
  listenKdc?: readonly HostPort[];
  listenHttp?: HostPort | null;
  random?: RandomSource;
  env?: NodeJS.ProcessEnv;
}

export interface KdcInstance {
  readonly config: KdcConfig;
  readonly service: KdcService;
  readonly metrics: KdcMetrics;
  readonly store: KdcStore;
  /** Bound KDC protocol addresses, in config order. */
  readonly kdcAddresses: net.AddressInfo[];
  readonly httpAddress: net.AddressInfo | null;
  readiness(): Readiness;
  /** SIGTERM: stop accepting, answer what is in flight, close everything. */
  drain(graceMs?: number): Promise<void>;
  /** Immediate stop (tests). */
  close(): Promise<void>;
}

/** Writes one JSON line per event to `out` (stdout by default). */
export function jsonLog(out: NodeJS.WritableStream = process.stdout, minLevel: 'info' | 'warn' | 'error' = 'info'): LogFn {
  const rank = { info: 0, warn: 1, error: 2 };
  return (level, event, fields = {}) => {
    if (rank[level] < rank[minLevel]) return;
    out.write(`${JSON.stringify({ ts: new Date().toISOString(), level, event, ...fields })}\n`);
  };
}

const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/**
 * The system CSPRNG through a pool refilled a few KiB at a time: one call into the kernel
 * serves ~70 issues instead of three calls per issue. Each byte is handed out once and zeroed
 * in the pool as it is.
 */
export function pooledRandom(poolBytes = 4096): RandomSource {
  const pool = new Uint8Array(poolBytes);
  let pos = poolBytes;
  return (n) => {
    if (n > poolBytes) return systemRandom(n);
    if (pos + n > poolBytes) {
      randomFillSync(pool);
      pos = 0;
    }
    const out = pool.slice(pos, pos + n);
    pool.fill(0, pos, pos + n);
    pos += n;
    return out;
  };
}

/**
 * Opens the store, loads the master key ring and checks it against the store's meta record,
 * then serves. A store that cannot be reached at start is not fatal (the instance reports
 * unready and checks the master key once the store answers); a store that answers with no meta
 * record or another master key is: the error says what to do.
 */
export async function startKdc(config: KdcConfig, opts: StartKdcOptions = {}): Promise<KdcInstance> {
  const log = opts.log ?? silentLog;
  const backend = getBackend(config.cryptoBackend);
  const ring = loadMasterKeyRing(backend, config.masterKey, opts.env ?? process.env);
  const store = await openStore(config.store);
  const cleanup: (() => unknown)[] = [() => store.close()];
  try {
    let masterKeyChecked = false;
    const checkMeta = async (): Promise<void> => {
      const meta = await store.getMeta();
      if (meta === null) throw new MasterKeyError(`${store.description} is not initialized: run \`ciphergate kdc-admin init\` first`);
      ring.verifyMeta(meta.value);
      masterKeyChecked = true;
    };
    try {
      await checkMeta();
    } catch (e) {
      if (!(e instanceof StoreUnavailableError)) throw e;
      log('warn', 'store-unavailable-at-start', { store: store.description, error: e.message });
    }

    const metrics = new KdcMetrics();
    const watcher = new ChangeWatcher(store, { pollMs: config.cache.pollMs, maxStalenessMs: config.cache.maxStalenessMs });
    watcher.start();
    cleanup.unshift(() => watcher.stop());
    // Count the directory's store reads: those are the cache misses.
    const counted: Pick<KdcStore, 'getPrincipal'> = {
      getPrincipal: (name) => {
        metrics.principalCacheMisses.inc();
        return store.getPrincipal(name);
      },
    };
    const principals = new PrincipalDirectory(counted, ring, watcher, { backend });
    const policy = new PolicyCache(store, watcher);
    cleanup.unshift(
      () => principals.close(),
      () => policy.close(),
    );
    const service = new KdcService({
      store,
      directory: {
        principal: (name, now) => {
          metrics.principalLookups.inc();
          return principals.lookupForIssue(name, now);
        },
        policy: (now) => policy.policy(now),
        cachedPrincipal: (name, now) => {
          const p = principals.cachedPrincipal(name, now);
          if (p !== undefined) metrics.principalLookups.inc(); // a miss is counted by principal()
          return p;
        },
        cachedPolicy: (now) => policy.cachedPolicy(now),
      },
      backend,
      random: opts.random ?? pooledRandom(),
      metrics,
      log,
      ticketLifetimeMs: config.ticketLifetimeMs,
      maxSkewMs: config.maxSkewMs,
      maxInFlight: config.maxInFlight,
      ...(config.rateLimit ? { rateLimit: config.rateLimit } : {}),
      storeDeadlineMs: config.storeDeadlineMs,
      audit: { maxQueue: config.audit.queueMax },
    });
    service.start();
    cleanup.unshift(() => service.close());

    // Until the master key has been checked against a reachable store, keep trying.
    const metaTimer = setInterval(() => {
      if (masterKeyChecked || !service.health.up) return;
      checkMeta().then(
        () => log('info', 'master-key-verified', { masterKeyId: ring.current.id }),
        (e: unknown) => log(e instanceof StoreUnavailableError ? 'warn' : 'error', 'master-key-check-failed', { error: errText(e) }),
      );
    }, 500);
    metaTimer.unref();
    cleanup.unshift(() => clearInterval(metaTimer));

    let draining = false;
    const readiness = (): Readiness => {
      const problems: string[] = [];
      if (draining) problems.push('shutting down');
      if (!service.health.up) problems.push(`store unavailable: ${service.health.lastError}`);
      if (!masterKeyChecked) problems.push('master key not yet verified against the store');
      return { ready: problems.length === 0, problems };
    };

    const tcp = new KdcTcpServer(service, metrics, log, {
      listen: opts.listenKdc ?? config.listen.kdc,
      ...(opts.maxConnections !== undefined ? { maxConnections: opts.maxConnections } : {}),
      ...(opts.idleTimeoutMs !== undefined ? { idleTimeoutMs: opts.idleTimeoutMs } : {}),
    });
    const kdcAddresses = await tcp.listen();
    cleanup.unshift(() => tcp.close());
    const httpAt = opts.listenHttp !== undefined ? opts.listenHttp : config.listen.metrics;
    let http: KdcHttpServer | null = null;
    let httpAddress: net.AddressInfo | null = null;
    if (httpAt !== null) {
      http = new KdcHttpServer({ host: httpAt.host, port: httpAt.port, metrics, readiness });
      httpAddress = await http.listen();
      const h = http;
      cleanup.unshift(() => h.close());
    }
    log('info', 'kdc-started', {
      kdc: kdcAddresses.map((a) => formatHostPort({ host: a.address, port: a.port })),
      http: httpAddress ? formatHostPort({ host: httpAddress.address, port: httpAddress.port }) : null,
      store: store.description,
      masterKeyId: ring.current.id,
      masterKeyVerified: masterKeyChecked,
    });

    let stopped: Promise<void> | null = null;
    const stop = (how: () => Promise<void>): Promise<void> => {
      stopped ??= (async () => {
        draining = true;
        await how();
        // Newest first: http, tcp, then service (audit flush) and caches, the store last.
        for (const fn of cleanup) await Promise.resolve(fn()).catch(() => undefined);
        log('info', 'kdc-stopped', {});
      })();
      return stopped;
    };
    return {
      config,
      service,
      metrics,
      store,
      kdcAddresses,
      httpAddress,
      readiness,
      drain: (graceMs) => stop(() => tcp.drain(graceMs)),
      close: () => stop(() => tcp.close()),
    };
  } catch (e) {
    for (const fn of cleanup) await Promise.resolve(fn()).catch(() => undefined);
    throw e;
  }
}
