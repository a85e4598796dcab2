// Principals: validation, the admin operations (add, rotate, disable/enable, modify, delete,
// show, list, export, master-key re-wrap), and PrincipalDirectory, the issuer's cached view with
// unsealed keys. Every write is a compare-and-set on the record's revision, retried on conflict,
// so two admins never lose each other's change. Nothing here prints or returns key bytes except
// exportKey() and the directory.
import type { CryptoBackend } from '../common/crypto/backend';
import type { RandomSource } from '../common/crypto/random';
import { deriveRequestAuthKey } from '../common/protocol/kdc-request-auth';
import { deriveTicketKey } from '../common/protocol/ticket';
import { parseCidr } from '../common/protocol/cidr';
import { ipAddressToString } from '../common/wire/address';
import type { PrincipalKey, PrincipalRecord as IssuerPrincipal } from './issuer';
import { type MasterKeyRing, PRINCIPAL_KEY_LEN } from './master-key';
import type { KdcStore, PrincipalRecord, SealedKey, Versioned } from './store/store';
import type { ChangeWatcher } from './store/watch';

export const MAX_KVNO = 0xffff_ffff;
/** Keys kept per principal: the current one and previous ones still in grace. */
export const MAX_KEYS = 8;
export const MAX_GROUPS = 64;
export const MAX_NETS = 64;
const NAME_RE = /^[A-Za-z0-9._@/-]+$/;
const GROUP_RE = /^[A-Za-z0-9._-]{1,64}$/;

/** Why `name` is not a valid principal name, or null. */
export function principalNameProblem(name: string): string | null {
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes < 1 || bytes > 255) return `principal name must be 1..255 bytes, got ${bytes}`;
  if (!NAME_RE.test(name)) return `principal name ${JSON.stringify(name)} may contain only A-Z a-z 0-9 . _ @ / -`;
  return null;
}

export function groupNameProblem(name: string): string | null {
  return GROUP_RE.test(name) ? null : `group name ${JSON.stringify(name)} must be 1..64 of A-Z a-z 0-9 . _ -`;
}

/** Canonical `addr/prefix` for a CIDR (host bits cleared), or an error naming the input. */
export function canonicalCidr(text: string): { ok: true; value: string } | { ok: false; error: string } {
  const c = parseCidr(text.trim());
  if (!c.ok) return { ok: false, error: `${c.error} (expected e.g. 10.0.0.0/8 or 2001:db8::/32)` };
  return { ok: true, value: `${ipAddressToString(c.value.network)}/${c.value.prefix}` };
}

export type PrincipalErrorCode = 'invalid' | 'not-found' | 'exists' | 'conflict' | 'limit';

export class PrincipalError extends Error {
  constructor(
    readonly code: PrincipalErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'PrincipalError';
  }
}

/** What `show` and `list` print: everything but key material. */
export interface PrincipalInfo {
  name: string;
  kvno: number;
  disabled: boolean;
  groups: string[];
  allowedNets: string[];
  createdAt: number;
  updatedAt: number;
  revision: number;
  keys: { kvno: number; createdAt: number; validUntil: number | null; masterKeyId: string }[];
}

export function principalInfo(v: Versioned<PrincipalRecord>): PrincipalInfo {
  const r = v.value;
  return {
    name: r.name,
    kvno: r.kvno,
    disabled: r.disabled,
    groups: [...r.groups],
    allowedNets: [...r.allowedNets],
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    revision: v.revision,
    keys: r.keys.map((k) => ({ kvno: k.kvno, createdAt: k.createdAt, validUntil: k.validUntil, masterKeyId: k.masterKeyId })),
  };
}

function checkName(name: string): void {
  const p = principalNameProblem(name);
  if (p) throw new PrincipalError('invalid', p);
}

function normalizeGroups(groups: readonly string[]): string[] {
  const out = [...new Set(groups.map((g) => g.trim()))].sort();
  for (const g of out) {
    const p = groupNameProblem(g);
    if (p) throw new PrincipalError('invalid', p);
  }
  if (out.length > MAX_GROUPS) throw new PrincipalError('limit', `at most ${MAX_GROUPS} groups, got ${out.length}`);
  return out;
}

function normalizeNets(nets: readonly string[]): string[] {
  const out: string[] = [];
  for (const n of nets) {
    const c = canonicalCidr(n);
    if (!c.ok) throw new PrincipalError('invalid', `allowed net: ${c.error}`);
    if (!out.includes(c.value)) out.push(c.value);
  }
  if (out.length > MAX_NETS) throw new PrincipalError('limit', `at most ${MAX_NETS} allowed nets, got ${out.length}`);
  return out;
}

/** Keys still usable at `now`: the current one, and previous ones with now <= validUntil. */
function liveKeys(keys: readonly SealedKey[], now: number): SealedKey[] {
  return keys.filter((k, i) => i === 0 || (k.validUntil !== null && now <= k.validUntil));
}

export interface PrincipalAdminDeps {
  now: () => number;
  random: RandomSource;
  /** Default grace for previous keys after a rotation. */
  graceMs: number;
}

const CAS_ATTEMPTS = 8;

export class PrincipalAdmin {
  constructor(
    private readonly store: KdcStore,
    private readonly ring: MasterKeyRing,
    private readonly deps: PrincipalAdminDeps,
  ) {}

  private newKey(name: string, kvno: number, now: number): SealedKey {
    const key = this.deps.random(PRINCIPAL_KEY_LEN);
    try {
      return this.ring.seal(name, kvno, key, this.deps.random, now);
    } finally {
      key.fill(0);
    }
  }

  async add(name: string, opts: { groups?: readonly string[]; allowedNets?: readonly string[]; disabled?: boolean } = {}): Promise<PrincipalInfo> {
    checkName(name);
    const groups = normalizeGroups(opts.groups ?? []);
    const allowedNets = normalizeNets(opts.allowedNets ?? []);
    const now = this.deps.now();
    const record: PrincipalRecord = {
      name,
      kvno: 1,
      keys: [this.newKey(name, 1, now)],
      disabled: opts.disabled ?? false,
      allowedNets,
      groups,
      createdAt: now,
      updatedAt: now,
    };
    const r = await this.store.putPrincipal(record, null);
    if (!r.ok) throw new PrincipalError('exists', `principal ${name} already exists`);
    return principalInfo({ value: record, revision: r.value.revision });
  }

  /** Read-modify-CAS, retried on conflict. `change` returns the new record (or throws). */
  private async update(name: string, change: (cur: PrincipalRecord, now: number) => PrincipalRecord): Promise<PrincipalInfo> {
    checkName(name);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const cur = await this.store.getPrincipal(name);
      if (!cur) throw new PrincipalError('not-found', `no principal named ${name}`);
      const now = this.deps.now();
      const next = { ...change(cur.value, now), updatedAt: now };
      const r = await this.store.putPrincipal(next, cur.revision);
      if (r.ok) return principalInfo({ value: next, revision: r.value.revision });
    }
    throw new PrincipalError('conflict', `principal ${name} kept changing under concurrent writers; try again`);
  }

  /**
   * New key at kvno+1. Previous keys stay valid for at most graceMs from now (older keys keep a
   * shorter grace they already had); graceMs 0 revokes every previous key at once (compromise).
   */
  async rotate(name: string, graceMs = this.deps.graceMs): Promise<PrincipalInfo> {
    if (!Number.isSafeInteger(graceMs) || graceMs < 0) throw new PrincipalError('invalid', `grace must be a non-negative integer of ms, got ${graceMs}`);
    return this.update(name, (cur, now) => {
      if (cur.kvno >= MAX_KVNO) throw new PrincipalError('limit', `principal ${name} is at kvno ${cur.kvno}, the largest there is; delete and re-add it`);
      const kvno = cur.kvno + 1;
      const until = now + graceMs;
      const previous =
        graceMs === 0
          ? []
          : liveKeys(cur.keys, now).map((k, i) => ({ ...k, validUntil: i === 0 || k.validUntil === null ? until : Math.min(k.validUntil, until) }));
      return { ...cur, kvno, keys: [this.newKey(name, kvno, now), ...previous].slice(0, MAX_KEYS) };
    });
  }

  setDisabled(name: string, disabled: boolean): Promise<PrincipalInfo> {
    return this.update(name, (cur) => ({ ...cur, disabled }));
  }

  /** Replaces groups and/or allowed nets (an empty list clears them). */
  async modify(name: string, opts: { groups?: readonly string[]; allowedNets?: readonly string[] }): Promise<PrincipalInfo> {
    const groups = opts.groups && normalizeGroups(opts.groups);
    const allowedNets = opts.allowedNets && normalizeNets(opts.allowedNets);
    return this.update(name, (cur) => ({ ...cur, ...(groups ? { groups } : {}), ...(allowedNets ? { allowedNets } : {}) }));
  }

  async delete(name: string): Promise<void> {
    checkName(name);
    const r = await this.store.deletePrincipal(name);
    if (!r.ok) throw new PrincipalError('not-found', `no principal named ${name}`);
  }

  async show(name: string): Promise<PrincipalInfo> {
    checkName(name);
    const cur = await this.store.getPrincipal(name);
    if (!cur) throw new PrincipalError('not-found', `no principal named ${name}`);
    return principalInfo(cur);
  }

  async list(): Promise<PrincipalInfo[]> {
    return (await this.store.listPrincipals()).map(principalInfo);
  }

  /** The current key, unsealed, for a key file. The caller zeroes it. */
  async exportKey(name: string): Promise<{ name: string; kvno: number; key: Uint8Array }> {
    checkName(name);
    const cur = await this.store.getPrincipal(name);
    if (!cur) throw new PrincipalError('not-found', `no principal named ${name}`);
    const sk = cur.value.keys[0]!;
    return { name, kvno: sk.kvno, key: this.ring.unseal(name, sk) };
  }

  /**
   * Re-seals every principal key not yet under the ring's current master key (master-key
   * rotation). Idempotent: a crash part way is finished by running it again.
   */
  async rewrapAll(): Promise<{ principals: number; keys: number }> {
    let principals = 0;
    let keys = 0;
    for (const p of await this.store.listPrincipals()) {
      if (p.value.keys.every((k) => k.masterKeyId === this.ring.current.id)) continue;
      let n = 0;
      await this.update(p.value.name, (cur) => {
        n = cur.keys.filter((k) => k.masterKeyId !== this.ring.current.id).length;
        return { ...cur, keys: cur.keys.map((k) => this.ring.reseal(cur.name, k, this.deps.random)) };
      });
      principals++;
      keys += n;
    }
    return { principals, keys };
  }
}

function kill(e: Entry): void {
  e.dead = true;
  for (const k of e.keys) {
    k.key.fill(0);
    k.ticketKey?.fill(0);
    k.requestKey?.fill(0);
  }
}

export interface PrincipalDirectoryOptions {
  /** Bound on cached principals (unknown names included). Default 10000. */
  maxEntries?: number;
  /**
   * When given, each cached key also carries its derived ticket and request keys (the HKDFs of
   * docs/PROTOCOL.md sections 8 and 11), so issuing does not derive them per request. They are
   * invalidated and zeroed with the key.
   */
  backend?: CryptoBackend;
}

interface Entry {
  record: PrincipalRecord | null;
  /** Unsealed keys (and derived keys), parallel to record.keys; zeroed on eviction. */
  keys: PrincipalKey[];
  /** Set when evicted and zeroed: a lookup that was waiting on it reads again. */
  dead: boolean;
  /** The issuer's view (keys usable at the time it was built), reused while `viewUntil` holds. */
  view: IssuerPrincipal | null;
  /** Last instant the view's key list is right for: the earliest validUntil among its older keys. */
  viewUntil: number;
  viewFrom: number;
}

/**
 * The issuer's view of principals: unsealed keys cached in memory, dropped (and zeroed) when the
 * store's change counter moves. Implements IssueDirectory.principal (kdc/service.ts).
 */
export class PrincipalDirectory {
  private readonly cache = new Map<string, Entry>();
  private readonly loading = new Map<string, { version: number; p: Promise<Entry> }>();
  private readonly maxEntries: number;
  private readonly backend: CryptoBackend | null;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly store: Pick<KdcStore, 'getPrincipal'>,
    private readonly ring: MasterKeyRing,
    private readonly watcher: ChangeWatcher,
    opts: PrincipalDirectoryOptions = {},
  ) {
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.backend = opts.backend ?? null;
    this.unsubscribe = watcher.onChange(() => this.clear());
  }

  /**
   * The principal as the issuer needs it: keys usable at `now` (current first), unsealed, as
   * fresh copies the caller may zeroize. null when unknown. Throws StoreUnavailableError when
   * the store cannot confirm freshness within the staleness bound; MasterKeyError when a key
   * does not unseal (tampering, or a master key that is not loaded).
   */
  async lookupForIssue(name: string, now: number): Promise<IssuerPrincipal | null> {
    let entry: Entry | undefined;
    for (let attempt = 0; !entry || entry.dead; attempt++) {
      if (attempt === 3) throw new Error(`principal ${name}: the store kept changing while it was read`);
      const version = await this.watcher.ensureFresh();
      entry = this.cache.get(name);
      if (!entry) {
        // Share a read in progress, unless it started before the latest change.
        let l = this.loading.get(name);
        if (l?.version !== version) {
          const mine = { version, p: this.load(name, version) };
          void mine.p
            .finally(() => {
              if (this.loading.get(name) === mine) this.loading.delete(name);
            })
            .catch(() => undefined);
          this.loading.set(name, mine);
          l = mine;
        }
        entry = await l.p;
      }
    }
    const v = viewOf(entry, now);
    if (v === null) return null;
    const copy = (k: PrincipalKey): PrincipalKey => ({
      kvno: k.kvno,
      key: new Uint8Array(k.key),
      validUntil: k.validUntil ?? null,
      ...(k.ticketKey ? { ticketKey: new Uint8Array(k.ticketKey) } : {}),
      ...(k.requestKey ? { requestKey: new Uint8Array(k.requestKey) } : {}),
    });
    return { ...v, keys: v.keys.map(copy) };
  }

  /** IssueDirectory.principal. */
  principal(name: string, now: number): Promise<IssuerPrincipal | null> {
    return this.lookupForIssue(name, now);
  }

  /**
   * IssueDirectory.cachedPrincipal: lookupForIssue without a store read or a copy, when the
   * cache can answer (fresh within the staleness bound, name cached); undefined otherwise. The
   * keys are the cache's own: the caller must not zeroize them nor keep them past its current
   * synchronous turn (a change seen by the next poll zeroes them).
   */
  cachedPrincipal(name: string, now: number): IssuerPrincipal | null | undefined {
    if (!this.watcher.isFresh()) return undefined;
    const entry = this.cache.get(name);
    if (entry === undefined || entry.dead) return undefined;
    return viewOf(entry, now);
  }

  private async load(name: string, version: number): Promise<Entry> {
    const v = await this.store.getPrincipal(name);
    const entry: Entry = { record: v?.value ?? null, keys: [], dead: false, view: null, viewUntil: -Infinity, viewFrom: Infinity };
    if (v) {
      try {
        for (const k of v.value.keys) {
          const key = this.ring.unseal(name, k);
          const pk: PrincipalKey = { kvno: k.kvno, key, validUntil: k.validUntil };
          entry.keys.push(pk);
          if (this.backend !== null) {
            pk.ticketKey = deriveTicketKey(this.backend, key);
            pk.requestKey = deriveRequestAuthKey(this.backend, key);
          }
        }
      } catch (e) {
        kill(entry);
        throw e;
      }
    }
    // Cache only if nothing changed while we read; otherwise the next lookup reads again.
    if (this.watcher.current === version) {
      if (this.cache.size >= this.maxEntries) this.evictOldest();
      this.cache.set(name, entry);
    }
    return entry;
  }

  private evictOldest(): void {
    const first = this.cache.keys().next();
    if (first.done) return;
    const e = this.cache.get(first.value);
    if (e) kill(e);
    this.cache.delete(first.value);
  }

  /** Drops every cached key (zeroed). */
  clear(): void {
    for (const e of this.cache.values()) kill(e);
    this.cache.clear();
  }

  close(): void {
    this.unsubscribe();
    this.clear();
  }
}

/**
 * The entry as the issuer sees it at `now`: the current key and older keys still within their
 * validUntil. Built once and reused while `now` stays in the span where that key list holds.
 */
function viewOf(e: Entry, now: number): IssuerPrincipal | null {
  const r = e.record;
  if (r === null) return null;
  if (e.view !== null && now >= e.viewFrom && now <= e.viewUntil) return e.view;
  const keys: PrincipalKey[] = [];
  let until = Infinity;
  for (let i = 0; i < e.keys.length; i++) {
    const k = e.keys[i] as PrincipalKey;
    const vu = k.validUntil ?? null;
    if (i === 0 || (vu !== null && now <= vu)) keys.push(k);
    if (i > 0 && vu !== null && now <= vu) until = Math.min(until, vu);
  }
  e.view = { name: r.name, keys, disabled: r.disabled, allowedNets: r.allowedNets, groups: r.groups };
  // Keys already past their validUntil stay excluded as time goes on; going back in time rebuilds.
  e.viewFrom = now;
  e.viewUntil = until;
  return e.view;
}
