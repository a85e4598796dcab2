// The KDC's decision core: one authenticated ISSUE_REQUEST in, one ISSUE_RESPONSE or
// ISSUE_ERROR out. Synchronous and pure: the caller passes the clock, the random source, the
// crypto backend and read-only views of the principal store and policy.
//
// What the service wrapper adds around issue() (it owns the store, the replay cache, metrics):
//   1. Frame/decoder errors -> ISSUE_ERROR with kdcErrorCodeFor(error) (version or malformed),
//      requestId = the first 16 body bytes if present, else zeros; then close.
//   2. Idempotency and replay, keyed by requestId. Either look up first (cache.get(requestId)
//      -> same digest (requestDigest(raw); authenticatedDigest(raw) for a request that passed
//      the authenticator, as kdc/service.ts uses): resend the stored message unchanged; different
//      digest: ISSUE_ERROR replay, without calling issue()), or, as kdc/service.ts does in one
//      store round trip, call issue() and then put-if-absent { digest, message }: when a record
//      already exists, answer from it (same digest) or with replay (other digest) and throw the
//      fresh outcome away unsent. Either way a retry never reaches the gateway with a second
//      session key. Store only outcomes marked `cacheable` (the request passed the
//      authenticator), so forged requests cannot claim requestIds, and keep them for
//      2 x maxSkewMs + ticketLifetimeMs (a request stays fresh for 2 x maxSkewMs of KDC time).
//   3. Rate limits, busy, store-unavailable and internal are the wrapper's codes; issue() never
//      returns them except `internal` for an inconsistent call.
import type { CryptoBackend } from '../common/crypto/backend';
import { zeroize } from '../common/crypto/compare';
import type { RandomSource } from '../common/crypto/random';
import { type Result, ok, err } from '../common/result';
import type { Binding } from '../common/protocol/binding';
import { bytesEqual, fitStr, type IpAddr } from '../common/protocol/codec';
import { cidrContains, parseCidr } from '../common/protocol/cidr';
import {
  type IssueErrorMsg,
  type IssueRequestMsg,
  type IssueResponseMsg,
  AUTHENTICATOR_LEN,
  KdcErrorCode,
  KdcType,
  encodeKdcMessage,
  isDecodedFrom,
} from '../common/protocol/kdc-messages';
import { verifyRequestAuthenticator, verifyRequestAuthenticatorWithKey } from '../common/protocol/kdc-request-auth';
import { SESSION_KEY_LEN } from '../common/protocol/key-schedule';
import { TICKET_NONCE_LEN, type VersionedKey, deriveTicketKey, encodeTicketPlaintext, sealTicketPlaintext } from '../common/protocol/ticket';

export const DEFAULT_MAX_SKEW_MS = 300_000;
export const DEFAULT_TICKET_LIFETIME_MS = 120_000;

export interface PrincipalKey extends VersionedKey {
  /** Last instant (ms, inclusive) the key may be used; required for every key but the current one. null = none (as the store holds it). */
  validUntil?: number | null;
  /** deriveTicketKey(key), when the caller caches it (kdc/principals.ts); derived per use otherwise. */
  ticketKey?: Uint8Array;
  /** deriveRequestAuthKey(key), likewise. */
  requestKey?: Uint8Array;
}

export interface PrincipalRecord {
  name: string;
  /** Current key first, then previous keys still in their grace period. */
  keys: readonly PrincipalKey[];
  disabled: boolean;
  /** CIDR strings; empty means any client address. Entries that do not parse match nothing. */
  allowedNets: readonly string[];
  groups: readonly string[];
}

export interface ServiceRef {
  addr: IpAddr;
  port: number;
}

export interface IssuerContext {
  now: number;
  random: RandomSource;
  backend: CryptoBackend;
  lookupPrincipal(name: string): PrincipalRecord | null;
  /** May `client` (or one of `clientGroups`) reach `service` through `gateway`? */
  policyAllows(client: string, clientGroups: readonly string[], gateway: string, service: ServiceRef): boolean;
  ticketLifetimeMs: number;
  maxSkewMs?: number;
}

export interface IssueRequest {
  message: IssueRequestMsg;
  /** The complete frame that decoded to `message` (Frame.raw). */
  raw: Uint8Array;
}

export type IssueOutcome =
  | { ok: true; message: IssueResponseMsg; cacheable: true }
  | { ok: false; message: IssueErrorMsg; cacheable: boolean };

/** Digest of a request frame, for the wrapper's "same requestId, same bytes" test. */
export function requestDigest(backend: CryptoBackend, raw: Uint8Array): Uint8Array {
  return backend.sha256(raw);
}

/**
 * The same test for a request that passed authenticate() (the only ones the wrapper records),
 * at no cost: its authenticator, HMAC-SHA256 over every byte of the frame but the length
 * prefix, which those bytes imply. Two authenticated frames with equal authenticators are equal
 * (else HMAC-SHA256 would have a collision), and each differing frame has its own. A view of
 * `raw`: 32 bytes.
 */
export function authenticatedDigest(raw: Uint8Array): Uint8Array {
  return raw.subarray(raw.length - AUTHENTICATOR_LEN);
}

/** The key with `kvno` if it is usable at `now`: the current key unless it has expired, an older one only within its validUntil. */
export function usableKey(keys: readonly PrincipalKey[], kvno: number, now: number): PrincipalKey | null {
  const i = keys.findIndex((k) => k.kvno === kvno);
  if (i < 0) return null;
  const k = keys[i] as PrincipalKey;
  if (k.validUntil === undefined || k.validUntil === null) return i === 0 ? k : null; // no open-ended grace for old keys
  return now <= k.validUntil ? k : null;
}

/** The principal's current key, if usable at `now`. */
export function currentKey(keys: readonly PrincipalKey[], now: number): PrincipalKey | null {
  const first = keys[0];
  return first === undefined ? null : usableKey(keys, first.kvno, now);
}

export function addressAllowed(allowedNets: readonly string[], addr: IpAddr): boolean {
  if (allowedNets.length === 0) return true;
  return allowedNets.some((text) => {
    const c = parseCidr(text);
    return c.ok && cidrContains(c.value, addr);
  });
}

function refuse(m: IssueRequestMsg, code: KdcErrorCode, reason: string, authenticated: boolean): IssueOutcome {
  return { ok: false, message: { type: KdcType.IssueError, requestId: m.requestId, code, reason: fitStr(reason) }, cacheable: authenticated };
}

/** A request whose authenticator verified under the gateway key it names (see authenticate()). */
export interface AuthenticatedRequest {
  request: IssueRequest;
  gateway: PrincipalRecord;
  gatewayKey: PrincipalKey;
}

/**
 * The checks that need only the gateway: known and enabled, kvno current or within grace, and
 * the authenticator. A refusal here is never cacheable. Callers that load principals lazily
 * (kdc/service.ts) look up the client only after this passes, so that unauthenticated requests
 * cannot make the KDC read or cache arbitrary client names.
 */
export function authenticate(request: IssueRequest, ctx: Pick<IssuerContext, 'now' | 'backend' | 'lookupPrincipal'>): Result<AuthenticatedRequest, IssueOutcome> {
  const m = request.message;
  // The fields decided on must be the bytes the authenticator covers: by identity when the
  // message was decoded from this very frame (the decoder is canonical), else by re-encoding.
  if (!isDecodedFrom(m, request.raw) && !bytesEqual(encodeKdcMessage(m), request.raw)) {
    return err(refuse(m, KdcErrorCode.Internal, 'request bytes do not match the decoded request', false));
  }
  const gateway = ctx.lookupPrincipal(m.gatewayPrincipal);
  if (gateway === null) return err(refuse(m, KdcErrorCode.UnknownPrincipal, 'unknown gateway principal', false));
  if (gateway.disabled) return err(refuse(m, KdcErrorCode.PrincipalDisabled, 'gateway principal disabled', false));
  const gatewayKey = usableKey(gateway.keys, m.gatewayKvno, ctx.now);
  if (gatewayKey === null) return err(refuse(m, KdcErrorCode.BadAuthenticator, `gateway kvno ${m.gatewayKvno} is not current or in grace`, false));
  const verified =
    gatewayKey.requestKey !== undefined
      ? verifyRequestAuthenticatorWithKey(ctx.backend, gatewayKey.requestKey, request.raw)
      : verifyRequestAuthenticator(ctx.backend, gatewayKey.key, request.raw);
  if (!verified) {
    return err(refuse(m, KdcErrorCode.BadAuthenticator, 'authenticator does not verify', false));
  }
  return ok({ request, gateway, gatewayKey });
}

/**
 * Checks, in this order: gateway principal known and enabled; gateway kvno current or within
 * grace; authenticator; client principal known, enabled, with a usable key; |now - timestamp|
 * <= maxSkewMs; client address in the client's allowed nets; policy. The client checks come
 * after the authenticator so that an unauthenticated caller cannot probe for client principal
 * names: without a valid authenticator every answer about the client is bad-authenticator.
 * Then mints a session key and seals it with the binding into two tickets.
 * Random draws, in order: session key (32), gateway ticket nonce (12), client ticket nonce (12).
 */
export function issue(request: IssueRequest, ctx: IssuerContext): IssueOutcome {
  const a = authenticate(request, ctx);
  return a.ok ? issueAuthenticated(a.value, ctx) : a.error;
}

/** issue() after authenticate(): the client, skew, address and policy checks, then the tickets. */
export function issueAuthenticated(a: AuthenticatedRequest, ctx: IssuerContext): IssueOutcome {
  const m = a.request.message;
  const now = ctx.now;
  const { gateway, gatewayKey } = a;
  // From here the request is authenticated: its refusals may be cached by requestId.
  const client = ctx.lookupPrincipal(m.clientPrincipal);
  if (client === null) return refuse(m, KdcErrorCode.UnknownPrincipal, 'unknown client principal', true);
  if (client.disabled) return refuse(m, KdcErrorCode.PrincipalDisabled, 'client principal disabled', true);
  const clientKey = currentKey(client.keys, now);
  if (clientKey === null) return refuse(m, KdcErrorCode.PrincipalDisabled, 'client principal has no usable key', true);
  const maxSkew = ctx.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
  if (Math.abs(now - m.timestampMs) > maxSkew) return refuse(m, KdcErrorCode.ClockSkew, `timestamp off by more than ${maxSkew} ms`, true);
  if (!addressAllowed(client.allowedNets, m.tuple.clientAddr)) {
    return refuse(m, KdcErrorCode.AddressNotAllowed, 'client address outside the client principal’s allowed networks', true);
  }
  const service: ServiceRef = { addr: m.tuple.serverAddr, port: m.tuple.serverPort };
  if (!ctx.policyAllows(client.name, client.groups, gateway.name, service)) {
    return refuse(m, KdcErrorCode.PolicyDenied, 'policy does not allow this client to this service', true);
  }

  const binding: Binding = {
    suite: m.suite,
    connId: m.connId,
    clientPrincipal: m.clientPrincipal,
    gatewayPrincipal: m.gatewayPrincipal,
    tuple: m.tuple,
    clientIsn: m.clientIsn,
    gatewayNonce: m.gatewayNonce,
    agentNonce: m.agentNonce,
    issuedAtMs: now,
    expiresAtMs: now + ctx.ticketLifetimeMs,
  };
  const sessionKey = draw(ctx.random, SESSION_KEY_LEN);
  // Both tickets seal the same plaintext (session key || binding): encode it once.
  let plaintext: Uint8Array;
  try {
    plaintext = encodeTicketPlaintext(sessionKey, binding);
  } finally {
    zeroize(sessionKey);
  }
  try {
    // The gateway's ticket is sealed under the key version it proved it holds.
    const gatewayTicket = seal(ctx.backend, m.gatewayPrincipal, gatewayKey, m.requestId, draw(ctx.random, TICKET_NONCE_LEN), plaintext);
    const clientTicket = seal(ctx.backend, m.clientPrincipal, clientKey, m.requestId, draw(ctx.random, TICKET_NONCE_LEN), plaintext);
    return {
      ok: true,
      message: { type: KdcType.IssueResponse, requestId: m.requestId, expiresAtMs: binding.expiresAtMs, gatewayTicket, clientTicket },
      cacheable: true,
    };
  } finally {
    zeroize(plaintext);
  }
}

/** One ticket, under the owner's cached ticket key when there is one. */
function seal(backend: CryptoBackend, owner: string, key: PrincipalKey, requestId: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const ticketKey = key.ticketKey ?? deriveTicketKey(backend, key.key);
  try {
    return sealTicketPlaintext(backend, { owner, kvno: key.kvno, ticketKey, requestId, nonce, plaintext });
  } finally {
    if (ticketKey !== key.ticketKey) zeroize(ticketKey);
  }
}

function draw(random: RandomSource, n: number): Uint8Array {
  const b = random(n);
  if (b.length !== n) throw new RangeError(`random source returned ${b.length} bytes, wanted ${n}`);
  return b;
}
