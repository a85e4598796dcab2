// The KDC's storage contract. Every backend (embedded file log, Redis standalone / Sentinel /
// Cluster) implements KdcStore and passes the same contract suite (test/kdc/store.contract.test.ts).
// Records are plain JSON-able objects; key material inside them is always sealed under the
// master key (kdc/master-key.ts), so a store never sees a usable key.
import type { Result } from '../../common/result';

/** One long-term key of a principal, sealed under the master key. */
export interface SealedKey {
  kvno: number;
  /** Fingerprint of the master key this key is sealed under (kdc/master-key.ts). */
  masterKeyId: string;
  /** AEAD nonce, hex (12 bytes). */
  nonce: string;
  /** AEAD ciphertext || tag, hex. */
  sealed: string;
  createdAt: number;
  /** null for the current key; for a previous key, the ms time after which it is refused. */
  validUntil: number | null;
}

export interface PrincipalRecord {
  name: string;
  /** kvno of the current key (== keys[0].kvno). */
  kvno: number;
  /** Current key first, then previous keys still in their grace period, newest first. */
  keys: SealedKey[];
  disabled: boolean;
  /** Canonical CIDRs the principal may connect from; empty means any address. */
  allowedNets: string[];
  groups: string[];
  createdAt: number;
  updatedAt: number;
}

/**
 * Policy rule. clients: principal names or `group:NAME`; gateways: principal names;
 * services: `ADDR:PORT` | `*:PORT` | `ADDR:*` | `*` (IPv6 as `[ADDR]:PORT`). See kdc/policy.ts.
 */
export interface PolicyRule {
  id: string;
  clients: string[];
  gateways: string[];
  services: string[];
  createdAt: number;
  comment?: string;
}

/** Store-wide metadata written by `kdc-admin init` and master-key rotation. */
export interface StoreMeta {
  format: 1;
  /** Fingerprint of the master key every principal key should be sealed under. */
  masterKeyId: string;
  /** Incremented by each master-key rotation. */
  masterKeyVersion: number;
  /** A known constant sealed under the master key: proves a loaded key is the right one. */
  masterKeyCheck: { nonce: string; sealed: string };
  createdAt: number;
  updatedAt: number;
}

export interface Versioned<T> {
  value: T;
  /** Opaque, strictly increasing per store; pass it back to a CAS write. */
  revision: number;
}

/** ok: the write happened at `revision`. err: the record's revision was not the expected one. */
export type CasResult = Result<{ revision: number }, { currentRevision: number | null }>;

export type AuditValue = string | number | boolean | null | readonly string[];
/** A structured audit event. `type` e.g. 'issue' | 'deny' | 'admin'. No key bytes, ever. */
export interface AuditEvent {
  ts: number;
  type: string;
  [field: string]: AuditValue;
}
export interface AuditEntry {
  /** Store-assigned id, ordered (Redis stream id, or `ms-seq` for the embedded store). */
  id: string;
  event: AuditEvent;
}

export interface IssuedPut {
  /**
   * true when this call stored `bytes`; false when a record existed (returned in `bytes`, or
   * empty when the store still knows the id but no longer holds its answer: refuse, never re-issue).
   */
  stored: boolean;
  bytes: Uint8Array;
}

export interface KdcStore {
  /** Human description for messages, e.g. `redis sentinel mymaster via 127.0.0.1:26379`. */
  readonly description: string;

  getPrincipal(name: string): Promise<Versioned<PrincipalRecord> | null>;
  /** Compare-and-set: expectedRevision null means "must not exist yet". */
  putPrincipal(record: PrincipalRecord, expectedRevision: number | null): Promise<CasResult>;
  /** Deletes when the revision matches (any revision when omitted); err when absent or changed. */
  deletePrincipal(name: string, expectedRevision?: number): Promise<CasResult>;
  /** All principals, sorted by name. */
  listPrincipals(): Promise<Versioned<PrincipalRecord>[]>;

  /** All rules, sorted by id. */
  listPolicyRules(): Promise<PolicyRule[]>;
  /** Upsert; with onlyIfAbsent, returns false and writes nothing when the id exists. */
  putPolicyRule(rule: PolicyRule, onlyIfAbsent?: boolean): Promise<boolean>;
  /** Returns false when no rule had that id. */
  removePolicyRule(id: string): Promise<boolean>;

  getMeta(): Promise<Versioned<StoreMeta> | null>;
  putMeta(meta: StoreMeta, expectedRevision: number | null): Promise<CasResult>;

  /** A counter bumped by every principal, policy or meta write. Cheap: poll it to invalidate caches. */
  changeVersion(): Promise<number>;

  /** Appends to a bounded log (Redis: XADD MAXLEN ~ N). Callers on the issue path go through AuditWriter. */
  appendAudit(events: readonly AuditEvent[]): Promise<void>;
  /** The last `count` events, oldest first. */
  tailAudit(count: number): Promise<AuditEntry[]>;

  /**
   * Idempotency record for an issued response: stores `bytes` under requestId for ttlMs unless a
   * record exists; returns whichever bytes are now stored. Bytes are opaque to the store, which
   * may keep the caller's array as it is: do not modify it afterwards.
   */
  putIssuedIfAbsent(requestId: Uint8Array, bytes: Uint8Array, ttlMs: number): Promise<IssuedPut>;
  getIssued(requestId: Uint8Array): Promise<Uint8Array | null>;

  /** Resolves when the store answers; StoreUnavailableError otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The store could not be reached or did not answer in time. Fast: never a hang. */
export class StoreUnavailableError extends Error {
  constructor(
    readonly store: string,
    readonly operation: string,
    readonly reason: string,
  ) {
    super(`store unavailable: ${store}: ${operation}: ${reason}`);
    this.name = 'StoreUnavailableError';
  }
}

/** The store answered with data that does not decode: damaged file or foreign keys. */
export class StoreCorruptError extends Error {
  constructor(
    readonly store: string,
    readonly detail: string,
  ) {
    super(`store corrupt: ${store}: ${detail}`);
    this.name = 'StoreCorruptError';
  }
}

// ---- limits shared by the backends (checked before any I/O) ----
export const MAX_ISSUED_BYTES = 256 * 1024;
export const MAX_ISSUED_TTL_MS = 24 * 3600 * 1000;
export const MAX_AUDIT_EVENT_BYTES = 16 * 1024;
export const MAX_AUDIT_TAIL = 100_000;

export function checkIssuedArgs(requestId: Uint8Array, bytes: Uint8Array | null, ttlMs: number | null): void {
  if (requestId.length < 1 || requestId.length > 64) throw new RangeError(`requestId: expected 1..64 bytes, got ${requestId.length}`);
  if (bytes !== null && (bytes.length < 1 || bytes.length > MAX_ISSUED_BYTES)) {
    throw new RangeError(`issued bytes: expected 1..${MAX_ISSUED_BYTES} bytes, got ${bytes.length}`);
  }
  if (ttlMs !== null && (!Number.isInteger(ttlMs) || ttlMs < 1 || ttlMs > MAX_ISSUED_TTL_MS)) {
    throw new RangeError(`ttlMs: expected integer 1..${MAX_ISSUED_TTL_MS}, got ${ttlMs}`);
  }
}

export function checkTailCount(count: number): void {
  if (!Number.isInteger(count) || count < 0 || count > MAX_AUDIT_TAIL) throw new RangeError(`audit tail count: expected integer 0..${MAX_AUDIT_TAIL}, got ${count}`);
}

/** Serializes an audit event, refusing oversized ones (a bug upstream, not input). */
export function encodeAuditEvent(event: AuditEvent): string {
  const s = JSON.stringify(event);
  if (Buffer.byteLength(s) > MAX_AUDIT_EVENT_BYTES) throw new RangeError(`audit event of type ${event.type} exceeds ${MAX_AUDIT_EVENT_BYTES} bytes`);
  return s;
}

// ---- decoding of stored JSON: a store hands out only well-formed records ----

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
const isStrArr = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === 'string');
const isInt = (x: unknown): x is number => Number.isSafeInteger(x);

function isSealedKey(x: unknown): x is SealedKey {
  return (
    isObj(x) &&
    isInt(x.kvno) &&
    typeof x.masterKeyId === 'string' &&
    typeof x.nonce === 'string' &&
    typeof x.sealed === 'string' &&
    isInt(x.createdAt) &&
    (x.validUntil === null || isInt(x.validUntil))
  );
}

export function isPrincipalRecord(x: unknown): x is PrincipalRecord {
  return (
    isObj(x) &&
    typeof x.name === 'string' &&
    isInt(x.kvno) &&
    Array.isArray(x.keys) &&
    x.keys.length >= 1 &&
    x.keys.every(isSealedKey) &&
    typeof x.disabled === 'boolean' &&
    isStrArr(x.allowedNets) &&
    isStrArr(x.groups) &&
    isInt(x.createdAt) &&
    isInt(x.updatedAt)
  );
}

export function isPolicyRule(x: unknown): x is PolicyRule {
  return (
    isObj(x) &&
    typeof x.id === 'string' &&
    isStrArr(x.clients) &&
    isStrArr(x.gateways) &&
    isStrArr(x.services) &&
    isInt(x.createdAt) &&
    (x.comment === undefined || typeof x.comment === 'string')
  );
}

export function isStoreMeta(x: unknown): x is StoreMeta {
  return (
    isObj(x) &&
    x.format === 1 &&
    typeof x.masterKeyId === 'string' &&
    isInt(x.masterKeyVersion) &&
    isObj(x.masterKeyCheck) &&
    typeof x.masterKeyCheck.nonce === 'string' &&
    typeof x.masterKeyCheck.sealed === 'string' &&
    isInt(x.createdAt) &&
    isInt(x.updatedAt)
  );
}

export function isAuditEvent(x: unknown): x is AuditEvent {
  return isObj(x) && isInt(x.ts) && typeof x.type === 'string';
}

/** Parses stored JSON and checks its shape, or throws StoreCorruptError naming what was read. */
export function decodeStored<T>(store: string, what: string, text: string, check: (x: unknown) => x is T): T {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new StoreCorruptError(store, `${what}: not JSON`);
  }
  if (!check(parsed)) throw new StoreCorruptError(store, `${what}: unexpected shape`);
  return parsed;
}

export function sortByName<T extends { value: { name: string } }>(xs: T[]): T[] {
  return xs.sort((a, b) => (a.value.name < b.value.name ? -1 : a.value.name > b.value.name ? 1 : 0));
}

export function sortById<T extends { id: string }>(xs: T[]): T[] {
  return xs.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
