// The KDC service: one request frame in, one answer frame out, around the pure issuing core
// (kdc/issuer.ts). Transport-free (kdc/server.ts carries it over TCP), so tests and the bench can
// drive it directly too.
//
// Per request, in order:
//   1. decode; a frame that is not a well-formed ISSUE_REQUEST gets `version`/`malformed` and the
//      connection closes;
//   2. `busy` at once when maxInFlight requests are being worked on (DESIGN rule 8);
//   3. `store-unavailable` at once while the store is known to be down (StoreHealth);
//   4. both principals through the directory (cached, unsealed keys) and the policy;
//      `rate-limited` when the gateway's bucket is empty (peek only: see kdc/rate-limit.ts);
//   5. issue(): authenticator, skew, address, policy, then the tickets;
//   6. an authenticated outcome takes a token, and is stored with putIssuedIfAbsent under its
//      requestId as digest || answer BEFORE it is sent (digest: authenticatedDigest() in
//      kdc/issuer.ts, the request's verified authenticator). When a record already exists
//      (a retry, possibly to another KDC process), the fresh outcome is thrown away unsent and
//      the stored answer goes out byte for byte (same digest) or `replay` (other digest): a
//      retried request never mints a second session key;
//   7. an audit event for every issue and refusal, through the async AuditWriter.
// Every store operation on this path has a deadline (storeDeadlineMs), so a dead or failing-over
// store gives `store-unavailable` quickly, and StoreHealth probes until it answers again.
import { performance } from 'node:perf_hooks';
import type { CryptoBackend } from '../common/crypto/backend';
import { zeroize } from '../common/crypto/compare';
import type { RandomSource } from '../common/crypto/random';
import { type ProtocolError, bytesEqual, fitStr } from '../common/protocol/codec';
import { FRAME_HEADER_LEN, type Frame, decodeFrame } from '../common/protocol/framing';
import {
  type IssueRequestMsg,
  KDC_ERROR_NAMES,
  KdcErrorCode,
  KdcType,
  decodeKdcFrame,
  encodeIssueResponse,
  encodeKdcMessage,
  kdcErrorCodeFor,
} from '../common/protocol/kdc-messages';
import { REQUEST_ID_LEN } from '../common/protocol/ticket';
import { ipAddressToString as formatAddr } from '../common/wire/address';
import { AuditWriter } from './audit-writer';
import {
  DEFAULT_MAX_SKEW_MS,
  DEFAULT_TICKET_LIFETIME_MS,
  type IssueOutcome,
  type PrincipalKey,
  type PrincipalRecord,
  type ServiceRef,
  authenticate,
  issueAuthenticated,
  authenticatedDigest,
} from './issuer';
import type { KdcMetrics, RequestResult } from './metrics';
import { TokenBucketLimiter } from './rate-limit';
import { type AuditEvent, type AuditValue, type KdcStore, StoreUnavailableError } from './store/store';

const DIGEST_LEN = 32;

/** Structured log sink: one JSON line per event. Never pass key bytes. */
export type LogFn = (level: 'info' | 'warn' | 'error', event: string, fields?: Record<string, unknown>) => void;
export const silentLog: LogFn = () => undefined;

/**
 * What the service reads about principals and policy: cached views over the store (kdc/principals.ts,
 * kdc/policy.ts). Either may throw StoreUnavailableError when the store cannot be reached.
 */
export interface IssueDirectory {
  /** The principal with its keys unsealed (copies the service zeroizes), or null when unknown. */
  principal(name: string, now: number): Promise<PrincipalRecord | null>;
  /** The policy check as of `now` (synchronous once loaded). */
  policy(now: number): Promise<PolicyCheck>;
  /**
   * Optional fast path: principal() answered from a fresh cache without waiting, or undefined
   * when that needs a store read. The keys are the cache's own: used only within the current
   * synchronous turn, never zeroized by the service.
   */
  cachedPrincipal?(name: string, now: number): PrincipalRecord | null | undefined;
  /** Optional fast path: policy() from a fresh cache, or undefined. */
  cachedPolicy?(now: number): PolicyCheck | undefined;
}

type PolicyCheck = (client: string, groups: readonly string[], gateway: string, service: ServiceRef) => boolean;

/** Copies of a principal's key material, so that it outlives an await (the caller zeroizes). */
function detachKey(k: PrincipalKey): PrincipalKey {
  return {
    kvno: k.kvno,
    key: new Uint8Array(k.key),
    validUntil: k.validUntil ?? null,
    ...(k.ticketKey ? { ticketKey: new Uint8Array(k.ticketKey) } : {}),
    ...(k.requestKey ? { requestKey: new Uint8Array(k.requestKey) } : {}),
  };
}

function zeroizeKeys(p: PrincipalRecord): void {
  for (const k of p.keys) zeroize(k.key, k.ticketKey, k.requestKey);
}

export interface KdcServiceOptions {
  store: KdcStore;
  directory: IssueDirectory;
  backend: CryptoBackend;
  random: RandomSource;
  metrics: KdcMetrics;
  log?: LogFn;
  ticketLifetimeMs?: number;
  maxSkewMs?: number;
  /** Requests worked on at once; more get `busy`. Default 1024. */
  maxInFlight?: number;
  /** Per gateway principal; absent = no limit. */
  rateLimit?: { ratePerSec: number; burst: number };
  /** Deadline of each store operation on the issue path. Default 100 ms. */
  storeDeadlineMs?: number;
  /** Store probe period while it is down (and, slower, while up). Default 200 ms. */
  storeProbeMs?: number;
  audit?: { maxQueue?: number; batchSize?: number };
  /** Injected clock (ms), for tests. Default Date.now. */
  clock?: () => number;
}

export interface ServiceAnswer {
  answer: Uint8Array;
  /** Close the connection after this answer (the request did not decode). */
  close: boolean;
}

class Deadline extends Error {}

/** Races `p` against `ms`; the loser's rejection is swallowed so nothing goes unhandled. */
function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Deadline(`${what}: no answer within ${ms} ms`)), ms);
  });
  p.catch(() => undefined);
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

interface Pending {
  at: number;
  settled: boolean;
  /** Rejects with Deadline; dropped once settled, so the slot does not keep the request's promise and answer alive until the sweep (a slot waits up to `ms` in the queue). */
  expire: (() => void) | null;
}

/**
 * withDeadline for the many operations of the issue path, with one timer for all of them: they
 * share one duration, so they expire in the order they started. An operation that settles in
 * time leaves its slot to be dropped when the sweep reaches it.
 */
export class DeadlineQueue {
  private q: Pending[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly ms: number,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  /** `p`, or a Deadline rejection after `ms`; `onError` sees every failure first. */
  race<T>(p: Promise<T>, what: string, onError: (e: unknown) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const slot: Pending = {
        at: this.clock() + this.ms,
        settled: false,
        expire: () => {
          const e = new Deadline(`${what}: no answer within ${this.ms} ms`);
          onError(e);
          reject(e);
        },
      };
      this.q.push(slot);
      if (this.timer === null) this.arm(this.ms);
      p.then(
        (v) => {
          if (slot.settled) return;
          slot.settled = true;
          slot.expire = null;
          resolve(v);
        },
        (e: unknown) => {
          if (slot.settled) return;
          slot.settled = true;
          slot.expire = null;
          onError(e);
          reject(e);
        },
      );
    });
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => this.sweep(), Math.max(1, Math.ceil(ms)));
  }

  private sweep(): void {
    this.timer = null;
    const now = this.clock();
    while (this.head < this.q.length) {
      const slot = this.q[this.head] as Pending;
      if (!slot.settled && slot.at > now) break;
      if (!slot.settled) {
        slot.settled = true;
        const expire = slot.expire;
        slot.expire = null;
        expire?.();
      }
      this.head++;
    }
    if (this.head === this.q.length) {
      this.q = [];
      this.head = 0;
      return;
    }
    if (this.head > 1024) {
      this.q = this.q.slice(this.head);
      this.head = 0;
    }
    this.arm((this.q[this.head] as Pending).at - now);
  }

  /** Stops the timer; operations still waiting get no deadline rejection. */
  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}

/**
 * Whether the store answers. A failed operation on the issue path marks it suspect and probes
 * at once; a failed probe marks it down, and while down every request is refused without
 * touching the store. Probes continue (every probeMs while down, 5 x probeMs while up) and the
 * first success marks it up again: recovery needs no operator.
 */
export class StoreHealth {
  up = true;
  lastError = '';
  private probing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly store: Pick<KdcStore, 'ping'>,
    private readonly deadlineMs: number,
    private readonly probeMs: number,
    private readonly onChange: (up: boolean, reason: string) => void,
  ) {}

  start(): void {
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.probe(), this.up ? this.probeMs * 5 : this.probeMs);
    this.timer.unref();
  }

  /** A store operation failed: probe now (once at a time). */
  suspect(reason: string): void {
    this.lastError = reason;
    void this.probe();
  }

  probe(): Promise<void> {
    if (this.probing === null && !this.stopped) {
      this.probing = withDeadline(this.store.ping(), this.deadlineMs, 'ping')
        .then(
          () => this.set(true, 'store answered'),
          (e: unknown) => this.set(false, e instanceof Error ? e.message : String(e)),
        )
        .finally(() => {
          this.probing = null;
          this.schedule();
        });
    }
    return this.probing ?? Promise.resolve();
  }

  private set(up: boolean, reason: string): void {
    if (!up) this.lastError = reason;
    if (up === this.up) return;
    this.up = up;
    this.onChange(up, reason);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
  }
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

const denyAll: PolicyCheck = () => false;

function serviceName(m: IssueRequestMsg): string {
  const a = formatAddr(m.tuple.serverAddr);
  return a.includes(':') ? `[${a}]:${m.tuple.serverPort}` : `${a}:${m.tuple.serverPort}`;
}

/** The requestId of a frame that did not decode: its first 16 body bytes when present, else zeros. */
function requestIdOf(raw: Uint8Array): Uint8Array {
  const body = raw.subarray(FRAME_HEADER_LEN + 2);
  return body.length >= REQUEST_ID_LEN ? body.slice(0, REQUEST_ID_LEN) : new Uint8Array(REQUEST_ID_LEN);
}

function errorFrame(requestId: Uint8Array, code: KdcErrorCode, reason: string): Uint8Array {
  return encodeKdcMessage({ type: KdcType.IssueError, requestId, code, reason: fitStr(reason) });
}

/** The result label of an answer frame (ours, so it decodes). */
function resultOf(answer: Uint8Array): RequestResult {
  if (answer[5] === KdcType.IssueResponse) return 'ok';
  const at = FRAME_HEADER_LEN + 2 + REQUEST_ID_LEN;
  const code = (((answer[at] as number) << 8) | (answer[at + 1] as number)) as KdcErrorCode;
  return KDC_ERROR_NAMES[code] ?? 'internal';
}

export class KdcService {
  readonly health: StoreHealth;
  readonly audit: AuditWriter;
  private readonly o: Required<Omit<KdcServiceOptions, 'rateLimit' | 'audit' | 'log'>> & { log: LogFn };
  private readonly limiter: TokenBucketLimiter | null;
  private readonly idempotencyTtlMs: number;
  private readonly deadlines: DeadlineQueue;
  private inFlight = 0;

  constructor(opts: KdcServiceOptions) {
    this.o = {
      ticketLifetimeMs: DEFAULT_TICKET_LIFETIME_MS,
      maxSkewMs: DEFAULT_MAX_SKEW_MS,
      maxInFlight: 1024,
      storeDeadlineMs: 100,
      storeProbeMs: 200,
      clock: Date.now,
      ...opts,
      log: opts.log ?? silentLog,
    };
    this.limiter = opts.rateLimit ? new TokenBucketLimiter(opts.rateLimit) : null;
    this.deadlines = new DeadlineQueue(this.o.storeDeadlineMs);
    // A request stays fresh for 2 x maxSkew of KDC time (timestamp +- skew); keep its record for
    // that long plus a ticket lifetime, so no fresh request can be answered twice differently.
    this.idempotencyTtlMs = 2 * this.o.maxSkewMs + this.o.ticketLifetimeMs;
    const m = this.o.metrics;
    m.inFlightNow = () => this.inFlight;
    m.storeUp.set(1);
    this.health = new StoreHealth(opts.store, this.o.storeDeadlineMs, this.o.storeProbeMs, (up, reason) => {
      m.storeUp.set(up ? 1 : 0);
      this.o.log(up ? 'info' : 'error', up ? 'store-up' : 'store-down', { store: opts.store.description, reason });
    });
    this.audit = new AuditWriter(opts.store, {
      ...opts.audit,
      onDrop: (n) => m.auditDropped.inc(n),
      onWriteError: (e) => {
        m.auditWriteErrors.inc();
        m.storeErrors.inc({ operation: 'appendAudit' });
        this.o.log('warn', 'audit-write-failed', { error: e instanceof Error ? e.message : String(e) });
      },
    });
  }

  start(): void {
    this.health.start();
  }

  get working(): number {
    return this.inFlight;
  }

  /** Answers one complete frame as received (length prefix included). */
  handle(raw: Uint8Array): ServiceAnswer | Promise<ServiceAnswer> {
    const f = decodeFrame(raw);
    if (!f.ok) return this.frameError(f.error, raw);
    return this.handleFrame(f.value);
  }

  /**
   * Answers one frame from a FrameDecoder. Synchronous when the answer needs no work (the frame
   * does not decode, busy, store down), so the transport can act on it before the next frame.
   */
  handleFrame(frame: Frame): ServiceAnswer | Promise<ServiceAnswer> {
    const t0 = performance.now();
    const d = decodeKdcFrame(frame);
    if (!d.ok) return this.frameError(d.error, frame.raw);
    if (d.value.type !== KdcType.IssueRequest) {
      return this.frameError({ kind: 'unknown-type', field: 'frame.type', offset: 5, detail: `message type 0x${frame.type.toString(16)} is not ISSUE_REQUEST` }, frame.raw);
    }
    const m = d.value;
    if (this.inFlight >= this.o.maxInFlight) return this.done(t0, this.refuse(m, KdcErrorCode.Busy, `${this.inFlight} requests in flight`));
    if (!this.health.up) return this.done(t0, this.refuse(m, KdcErrorCode.StoreUnavailable, 'store unavailable'));
    return this.work(m, frame.raw, t0);
  }

  private async work(m: IssueRequestMsg, raw: Uint8Array, t0: number): Promise<ServiceAnswer> {
    this.inFlight++;
    let answer: Uint8Array;
    try {
      answer = await this.process(m, raw);
    } catch (e) {
      answer = this.failed(m, e);
    } finally {
      this.inFlight--;
    }
    return this.done(t0, answer);
  }

  private done(t0: number, answer: Uint8Array): ServiceAnswer {
    this.o.metrics.answered(resultOf(answer));
    this.o.metrics.latency.observe((performance.now() - t0) / 1000);
    return { answer, close: false };
  }

  /**
   * The answer to bytes that are not a well-formed ISSUE_REQUEST (`raw` = the frame, when there
   * is one): ISSUE_ERROR version or malformed, requestId = first 16 body bytes or zeros; close.
   */
  frameError(error: ProtocolError, raw: Uint8Array | null): ServiceAnswer {
    const code = kdcErrorCodeFor(error);
    this.o.metrics.requests.inc({ result: KDC_ERROR_NAMES[code] });
    const detail = `${error.field}: ${error.detail}`;
    this.o.log('warn', 'request-undecodable', { code: KDC_ERROR_NAMES[code], detail });
    this.auditEvent('deny', null, 'result', KDC_ERROR_NAMES[code], fitStr(detail));
    const requestId = raw === null ? new Uint8Array(REQUEST_ID_LEN) : requestIdOf(raw);
    return { answer: errorFrame(requestId, code, code === KdcErrorCode.Version ? 'unsupported protocol version' : 'malformed request'), close: true };
  }

  /** A store-backed step under the deadline; unavailability is counted and makes StoreHealth probe. */
  private store<T>(op: string, p: Promise<T>): Promise<T> {
    return this.deadlines.race(p, op, (e) => {
      if (!(e instanceof StoreUnavailableError || e instanceof Deadline)) return; // not the store's fault: internal
      this.o.metrics.storeErrors.inc({ operation: op });
      this.health.suspect(e.message);
    });
  }

  private async process(m: IssueRequestMsg, raw: Uint8Array): Promise<Uint8Array> {
    const now = this.o.clock();
    const dir = this.o.directory;
    // Copies of key material taken for an await; zeroed at the end. Cached views (the fast
    // path) are used only synchronously and are the cache's to zero.
    const held: PrincipalRecord[] = [];
    try {
      let gateway = dir.cachedPrincipal?.(m.gatewayPrincipal, now);
      if (gateway === undefined) {
        gateway = await this.store('lookup', dir.principal(m.gatewayPrincipal, now));
        if (gateway !== null) held.push(gateway);
      }
      if (gateway !== null && this.limiter !== null && !this.limiter.allowed(gateway.name, now)) {
        return this.refuse(m, KdcErrorCode.RateLimited, 'gateway over its request rate');
      }
      const ctx = {
        now,
        random: this.o.random,
        backend: this.o.backend,
        ticketLifetimeMs: this.o.ticketLifetimeMs,
        maxSkewMs: this.o.maxSkewMs,
        lookupPrincipal: (): PrincipalRecord | null => gateway,
        policyAllows: denyAll,
      };
      const a = authenticate({ message: m, raw }, ctx);
      if (!a.ok) return this.answered(m, a.error);
      let authenticated = a.value;
      // Only an authenticated request gets the client looked up (kdc/issuer.ts, authenticate()).
      let client = dir.cachedPrincipal?.(m.clientPrincipal, now);
      let policyAllows = client === undefined ? undefined : dir.cachedPolicy?.(now);
      if (client === undefined || policyAllows === undefined) {
        if (!held.includes(authenticated.gateway)) {
          // The gateway key is the cache's: take a copy of it before waiting.
          const gatewayKey = detachKey(authenticated.gatewayKey);
          held.push({ ...authenticated.gateway, keys: [gatewayKey] });
          authenticated = { ...authenticated, gatewayKey };
        }
        [client, policyAllows] = await this.store('lookup', Promise.all([dir.principal(m.clientPrincipal, now), dir.policy(now)]));
        if (client !== null) held.push(client);
      }
      const found = client;
      ctx.lookupPrincipal = () => found;
      ctx.policyAllows = policyAllows;
      const outcome = issueAuthenticated(authenticated, ctx);
      return await this.record(m, raw, outcome, now);
    } finally {
      for (const p of held) zeroizeKeys(p);
    }
  }

  /** Takes the token, stores the authenticated outcome under its requestId, answers (see header, step 6). */
  private async record(m: IssueRequestMsg, raw: Uint8Array, outcome: IssueOutcome, now: number): Promise<Uint8Array> {
    if (!outcome.cacheable) return this.answered(m, outcome);
    // Authenticated: it costs the gateway a token, then it is recorded before it is sent.
    if (this.limiter !== null && !this.limiter.take(m.gatewayPrincipal, now)) {
      return this.refuse(m, KdcErrorCode.RateLimited, 'gateway over its request rate');
    }
    // The record is digest || answer in one buffer; the answer sent is a view of it.
    let record: Uint8Array;
    if (outcome.ok) record = encodeIssueResponse(outcome.message, DIGEST_LEN);
    else {
      const frame = encodeKdcMessage(outcome.message);
      record = new Uint8Array(DIGEST_LEN + frame.length);
      record.set(frame, DIGEST_LEN);
    }
    const digest = authenticatedDigest(raw);
    record.set(digest);
    const answer = record.subarray(DIGEST_LEN);
    const put = await this.store('putIssuedIfAbsent', this.o.store.putIssuedIfAbsent(m.requestId, record, this.idempotencyTtlMs));
    if (put.stored) return this.answered(m, outcome, answer);
    const stored = put.bytes;
    if (stored.length === 0) return this.refuse(m, KdcErrorCode.Replay, 'request id already answered; the answer is no longer held');
    if (stored.length > DIGEST_LEN && bytesEqual(stored.subarray(0, DIGEST_LEN), digest)) {
      this.o.metrics.idempotentReplies.inc();
      this.auditEvent('retry', m, 'result', resultOf(stored.subarray(DIGEST_LEN)));
      return stored.slice(DIGEST_LEN);
    }
    return this.refuse(m, KdcErrorCode.Replay, 'request id already used by another request');
  }

  private answered(m: IssueRequestMsg, outcome: IssueOutcome, encoded?: Uint8Array): Uint8Array {
    if (outcome.ok) {
      this.auditEvent('issue', m, 'expiresAt', outcome.message.expiresAtMs);
      return encoded ?? encodeKdcMessage(outcome.message);
    }
    const e = outcome.message;
    this.auditEvent('deny', m, 'result', KDC_ERROR_NAMES[e.code], e.reason);
    return encoded ?? encodeKdcMessage(e);
  }

  private refuse(m: IssueRequestMsg, code: KdcErrorCode, reason: string): Uint8Array {
    this.auditEvent('deny', m, 'result', KDC_ERROR_NAMES[code], reason);
    return errorFrame(m.requestId, code, reason);
  }

  private failed(m: IssueRequestMsg, e: unknown): Uint8Array {
    if (e instanceof StoreUnavailableError || e instanceof Deadline) {
      return this.refuse(m, KdcErrorCode.StoreUnavailable, 'store unavailable');
    }
    this.o.log('error', 'issue-failed', { requestId: hex(m.requestId), error: e instanceof Error ? e.message : String(e) });
    return this.refuse(m, KdcErrorCode.Internal, 'internal error');
  }

  /**
   * 'issue', 'deny' (every refusal) or 'retry' (answered from the idempotency record): who asked
   * for what (when `m` decoded), then one field (`result` or `expiresAt`) and the reason of a
   * denial. Built as one object literal: this runs for every request.
   */
  private auditEvent(type: 'issue' | 'deny' | 'retry', m: IssueRequestMsg | null, key: 'result' | 'expiresAt', value: AuditValue, reason?: string): void {
    this.o.metrics.auditQueued.inc();
    const event: Record<string, AuditValue> =
      m === null
        ? {}
        : {
            requestId: hex(m.requestId),
            gateway: m.gatewayPrincipal,
            gatewayKvno: m.gatewayKvno,
            client: m.clientPrincipal,
            connId: m.connId.toString(16).padStart(16, '0'),
            clientAddr: formatAddr(m.tuple.clientAddr),
            service: serviceName(m),
          };
    event[key] = value;
    if (reason !== undefined) event.reason = reason;
    event.ts = this.o.clock();
    event.type = type;
    this.audit.enqueue(event as AuditEvent);
  }

  /** Stops probing and flushes the audit queue. The store is the caller's to close. */
  async close(): Promise<void> {
    this.health.stop();
    this.deadlines.stop();
    await this.audit.close();
  }
}
