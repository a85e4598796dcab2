// The default single-node store: an append-only, checksummed log in a directory.
//
// store.log  one record per line: `<crc32 hex> <json>\n`. The first record is a snapshot; each
//            later one is a single write. A write is fsynced before it is acknowledged. Replay
//            stops at a torn last record and truncates it (while holding the lock); a damaged
//            record with good ones after it is corruption and is reported, never skipped.
// store.lock held only for the few milliseconds of a write, so `kdc-admin` can write while a KDC
//            process reads. A lock left by a dead process on this host is taken over.
// audit.log  JSON lines, plus audit.log.1 after a rotation: bounded to about 2 x auditMaxLen.
//
// Other processes' writes become visible through refresh(): a stat per changeVersion() poll, and
// reading only the new bytes. Compaction writes a new file, fsyncs it, renames it over store.log
// and fsyncs the directory; readers see the new inode and reload.
//
// Issued-response records live in memory, off the JS heap: full answers for the newest
// `issuedMaxEntries` (they serve retries; answer-ring.ts), and every answered request id until
// its record would expire (request-id-table.ts), so an id whose answer was dropped is refused,
// never answered with a second key. Each id is also written to a journal (request-id-journal.ts)
// before its put resolves, so a KDC restarted after a crash refuses retries of what it answered
// before, where it would otherwise mint a second key.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { ok, err } from '../../common/result';
import { AnswerRing } from './answer-ring';
import { RequestIdTable } from './request-id-table';
import { JournalCorruptError, RequestIdJournal } from './request-id-journal';
import {
  type AuditEntry,
  type AuditEvent,
  type CasResult,
  type IssuedPut,
  type KdcStore,
  type PolicyRule,
  type PrincipalRecord,
  type StoreMeta,
  type Versioned,
  StoreCorruptError,
  StoreUnavailableError,
  checkIssuedArgs,
  checkTailCount,
  encodeAuditEvent,
  isAuditEvent,
  isPolicyRule,
  isPrincipalRecord,
  isStoreMeta,
  sortById,
  sortByName,
} from './store';

export interface EmbeddedStoreOptions {
  /** Directory for store.log, store.lock and audit.log (created 0700 if missing). */
  dir: string;
  /** Audit events kept: between auditMaxLen and 2 x auditMaxLen. Default 10000. */
  auditMaxLen?: number;
  /** Compact after this many records past the snapshot. Default 1000. */
  compactAfterRecords?: number;
  /** How long a write waits for another process's lock. Default 2000 ms. */
  lockTimeoutMs?: number;
  /**
   * Full answers kept for retries, newest first. Default 100000, in one ring of 512 bytes per
   * entry (51 MB) reserved at open; answers larger than typical (long names) lower the count.
   */
  issuedMaxEntries?: number;
  /**
   * Bound on request id slots held until they expire (32 bytes each, in per-minute tables of
   * at most 75% load, grown on demand). Default 2^24 (512 MB at most): about 12k issues/s
   * sustained over the default 720 s window. When full, requests are refused (store
   * unavailable) until ids expire.
   */
  issuedIdsMax?: number;
  /**
   * Journal answered request ids to disk (issued-*.ids, 28 bytes each, written before the
   * answer goes out), so that idempotency survives a KDC crash. Default true; processes that
   * never issue (kdc-admin) open the store without it.
   */
  issuedJournal?: boolean;
}

type LogRecord =
  | { t: 'snap'; v: number; principals: [PrincipalRecord, number][]; policy: PolicyRule[]; meta: [StoreMeta, number] | null }
  | { t: 'p'; v: number; rec: PrincipalRecord }
  | { t: 'pd'; v: number; name: string }
  | { t: 'r'; v: number; rule: PolicyRule }
  | { t: 'rd'; v: number; id: string }
  | { t: 'm'; v: number; meta: StoreMeta };

// Distributive so that `v` can be left out of each variant.
type NewRecord = LogRecord extends infer R ? (R extends LogRecord ? Omit<R, 'v'> : never) : never;

const LOG = 'store.log';
const LOCK = 'store.lock';
const AUDIT = 'audit.log';
const AUDIT_OLD = 'audit.log.1';
const NL = 0x0a;

export function encodeLine(rec: object): Buffer {
  const json = JSON.stringify(rec);
  const crc = crc32(json).toString(16).padStart(8, '0');
  return Buffer.from(`${crc} ${json}\n`);
}

/** Decodes one line (without its newline): the record, or null when the checksum/JSON fails. */
function decodeLine(line: Buffer): unknown | null {
  if (line.length < 10 || line[8] !== 0x20) return null;
  const crcText = line.subarray(0, 8).toString('latin1');
  if (!/^[0-9a-f]{8}$/.test(crcText)) return null;
  const body = line.subarray(9);
  if (crc32(body) !== parseInt(crcText, 16)) return null;
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return null;
  }
}

function isLogRecord(x: unknown): x is LogRecord {
  if (typeof x !== 'object' || x === null) return false;
  const r = x as Record<string, unknown>;
  if (!Number.isSafeInteger(r.v)) return false;
  switch (r.t) {
    case 'snap':
      return (
        Array.isArray(r.principals) &&
        r.principals.every((p) => Array.isArray(p) && p.length === 2 && isPrincipalRecord(p[0]) && Number.isSafeInteger(p[1])) &&
        Array.isArray(r.policy) &&
        r.policy.every(isPolicyRule) &&
        (r.meta === null || (Array.isArray(r.meta) && r.meta.length === 2 && isStoreMeta(r.meta[0]) && Number.isSafeInteger(r.meta[1])))
      );
    case 'p':
      return isPrincipalRecord(r.rec);
    case 'pd':
      return typeof r.name === 'string';
    case 'r':
      return isPolicyRule(r.rule);
    case 'rd':
      return typeof r.id === 'string';
    case 'm':
      return isStoreMeta(r.meta);
    default:
      return false;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function errMsg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes a file atomically: create 0600 exclusive, fsync, rename over, fsync the directory. */
function writeFileAtomic(file: string, data: Buffer): void {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    fs.writeSync(fd, data, 0, data.length, 0);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(path.dirname(file));
}

/** Cross-process lock: a file created O_EXCL holding `host pid token`, held only during a write. */
class FileLock {
  private token: string | null = null;
  constructor(
    private readonly file: string,
    private readonly timeoutMs: number,
    private readonly desc: string,
  ) {}

  async acquire(): Promise<void> {
    const token = `${os.hostname()} ${process.pid} ${randomBytes(8).toString('hex')}`;
    const deadline = Date.now() + this.timeoutMs;
    let delay = 1;
    let holder = '';
    for (;;) {
      try {
        this.create(token);
        this.token = token;
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new StoreUnavailableError(this.desc, 'lock', `cannot create ${this.file}: ${errMsg(e)}`);
      }
      holder = this.readHolder() ?? holder;
      if (this.isStale()) continue;
      if (Date.now() >= deadline) {
        const [host, pid] = holder.split(' ');
        throw new StoreUnavailableError(
          this.desc,
          'lock',
          `locked by pid ${pid ?? '?'} on ${host ?? '?'} for more than ${this.timeoutMs} ms; if that process is gone, remove ${this.file}`,
        );
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 20);
    }
  }

  /**
   * Creates the lock file with `token` in it in one step: written under a private name, then
   * hard-linked to the lock's name (EEXIST when held). A holder killed at any point leaves either
   * no lock or one that names it, never an empty one that others must wait out.
   */
  private create(token: string): void {
    const tmp = `${this.file}.new-${process.pid}-${randomBytes(4).toString('hex')}`;
    fs.writeFileSync(tmp, token, { mode: 0o600 });
    try {
      fs.linkSync(tmp, this.file);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }

  release(): void {
    if (this.token === null) return;
    if (this.readHolder() === this.token) fs.rmSync(this.file, { force: true });
    this.token = null;
  }

  private readHolder(): string | null {
    try {
      return fs.readFileSync(this.file, 'utf8');
    } catch {
      return null;
    }
  }

  /** Takes over a lock whose holder died; true when the lock file is gone afterwards. */
  private isStale(): boolean {
    let text: string;
    let mtimeMs: number;
    try {
      text = fs.readFileSync(this.file, 'utf8');
      mtimeMs = fs.statSync(this.file).mtimeMs;
    } catch {
      return true; // vanished: retry at once
    }
    const [host, pidText] = text.split(' ');
    const pid = Number(pidText);
    const dead = text === '' ? Date.now() - mtimeMs > 5000 : host === os.hostname() && Number.isSafeInteger(pid) && pid > 0 && !pidAlive(pid);
    if (!dead) return false;
    // Move it aside first: if a live process re-created the lock meanwhile, put that one back.
    const aside = `${this.file}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      fs.renameSync(this.file, aside);
    } catch {
      return true;
    }
    try {
      if (fs.readFileSync(aside, 'utf8') !== text) fs.linkSync(aside, this.file);
    } catch {
      // someone else holds it now; they win
    }
    fs.rmSync(aside, { force: true });
    return true;
  }
}

interface State {
  principals: Map<string, Versioned<PrincipalRecord>>;
  policy: Map<string, PolicyRule>;
  meta: Versioned<StoreMeta> | null;
  version: number;
}

const emptyState = (): State => ({ principals: new Map(), policy: new Map(), meta: null, version: 0 });

export class EmbeddedStore implements KdcStore {
  readonly description: string;
  private readonly logPath: string;
  private readonly auditPath: string;
  private readonly auditOldPath: string;
  private readonly lock: FileLock;
  private readonly auditMaxLen: number;
  private readonly compactAfter: number;

  private fd = -1;
  private ino = -1;
  private offset = 0;
  private recordsSinceSnap = 0;
  private state: State = emptyState();
  private closed = false;
  private chain: Promise<unknown> = Promise.resolve();

  /** Every answered request id until it expires, with where its answer lies in `answers`. */
  private readonly issuedIds: RequestIdTable;
  private readonly answers: AnswerRing;
  private journal: RequestIdJournal | null = null;
  private auditSeq = 0;
  private audit = { ino: -1, scanned: 0, lines: 0 };

  private constructor(opts: EmbeddedStoreOptions) {
    const dir = path.resolve(opts.dir);
    this.description = `embedded ${dir}`;
    this.logPath = path.join(dir, LOG);
    this.auditPath = path.join(dir, AUDIT);
    this.auditOldPath = path.join(dir, AUDIT_OLD);
    this.lock = new FileLock(path.join(dir, LOCK), opts.lockTimeoutMs ?? 2000, this.description);
    this.auditMaxLen = opts.auditMaxLen ?? 10_000;
    this.compactAfter = opts.compactAfterRecords ?? 1000;
    this.answers = new AnswerRing(opts.issuedMaxEntries ?? 100_000);
    this.issuedIds = new RequestIdTable(opts.issuedIdsMax ?? 2 ** 24, 4096, randomBytes(4).readUInt32LE(0));
  }

  static async open(opts: EmbeddedStoreOptions): Promise<EmbeddedStore> {
    const store = new EmbeddedStore(opts);
    const dir = path.dirname(store.logPath);
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new StoreUnavailableError(store.description, 'open', `cannot create directory: ${errMsg(e)}`);
    }
    if (!fs.existsSync(store.logPath)) {
      await store.withLock(() => {
        if (!fs.existsSync(store.logPath)) writeFileAtomic(store.logPath, encodeLine({ t: 'snap', v: 0, principals: [], policy: [], meta: null }));
      });
    }
    // A torn tail seen without the lock may be a write in progress: repair it under the lock.
    if (!store.refresh(false)) await store.withLock(() => store.refresh(true));
    if (opts.issuedJournal ?? true) store.openJournal(dir);
    return store;
  }

  /** Replays the ids answered before this process (they get no answer: a retry is `replay`). */
  private openJournal(dir: string): void {
    const now = Date.now();
    try {
      this.journal = RequestIdJournal.open(dir, (id, expiresAtMs) => {
        if (this.issuedIds.add(id, expiresAtMs, now, -1) === 'full') throw new RangeError('journal holds more live request ids than issuedIdsMax');
      });
    } catch (e) {
      if (e instanceof JournalCorruptError) throw new StoreCorruptError(this.description, e.message);
      throw new StoreUnavailableError(this.description, 'open', `request id journal: ${errMsg(e)}`);
    }
  }

  // ---- log replay ----

  /**
   * Reads records appended since the last refresh (reloading after another process compacted).
   * Returns false when the file ends in a torn record that was left in place (no lock held).
   */
  private refresh(holdingLock: boolean): boolean {
    let st: fs.Stats;
    try {
      st = fs.statSync(this.logPath);
    } catch (e) {
      throw new StoreUnavailableError(this.description, 'read', `cannot stat ${this.logPath}: ${errMsg(e)}`);
    }
    if (st.ino !== this.ino || st.size < this.offset) {
      if (this.fd >= 0) fs.closeSync(this.fd);
      this.fd = -1;
      try {
        this.fd = fs.openSync(this.logPath, 'r+');
      } catch (e) {
        throw new StoreUnavailableError(this.description, 'read', `cannot open ${this.logPath}: ${errMsg(e)}`);
      }
      // Stat the opened file itself: a compaction between the two calls must not mix files.
      st = fs.fstatSync(this.fd);
      this.ino = st.ino;
      this.offset = 0;
      this.recordsSinceSnap = 0;
      this.state = emptyState();
    }
    if (st.size === this.offset) return true;
    const buf = Buffer.alloc(st.size - this.offset);
    let got = 0;
    while (got < buf.length) {
      const n = fs.readSync(this.fd, buf, got, buf.length - got, this.offset + got);
      if (n === 0) break;
      got += n;
    }
    return this.replay(buf.subarray(0, got), holdingLock);
  }

  private replay(buf: Buffer, holdingLock: boolean): boolean {
    let pos = 0;
    let tornAt = -1;
    while (pos < buf.length) {
      const nl = buf.indexOf(NL, pos);
      if (nl < 0) {
        tornAt = pos; // incomplete last record
        break;
      }
      const decoded = decodeLine(buf.subarray(pos, nl));
      if (decoded === null) {
        if (this.hasGoodLineAfter(buf, nl + 1)) {
          throw new StoreCorruptError(this.description, `${this.logPath}: damaged record at byte ${this.offset + pos} followed by good records`);
        }
        tornAt = pos;
        break;
      }
      if (!isLogRecord(decoded)) throw new StoreCorruptError(this.description, `${this.logPath}: unknown record at byte ${this.offset + pos}`);
      this.apply(decoded, this.offset + pos);
      pos = nl + 1;
    }
    this.offset += pos;
    if (tornAt < 0) return true;
    if (!holdingLock) return false;
    try {
      fs.ftruncateSync(this.fd, this.offset);
      fs.fsyncSync(this.fd);
    } catch (e) {
      throw new StoreUnavailableError(this.description, 'repair', `cannot truncate torn record: ${errMsg(e)}`);
    }
    return true;
  }

  private hasGoodLineAfter(buf: Buffer, from: number): boolean {
    let pos = from;
    while (pos < buf.length) {
      const nl = buf.indexOf(NL, pos);
      if (nl < 0) return false;
      if (decodeLine(buf.subarray(pos, nl)) !== null) return true;
      pos = nl + 1;
    }
    return false;
  }

  private apply(r: LogRecord, at: number): void {
    const s = this.state;
    if (r.t === 'snap') {
      if (at !== 0) throw new StoreCorruptError(this.description, `${this.logPath}: snapshot at byte ${at}, expected only at 0`);
      s.principals = new Map(r.principals.map(([rec, rev]) => [rec.name, { value: rec, revision: rev }]));
      s.policy = new Map(r.policy.map((rule) => [rule.id, rule]));
      s.meta = r.meta ? { value: r.meta[0], revision: r.meta[1] } : null;
      s.version = r.v;
      return;
    }
    if (at === 0) throw new StoreCorruptError(this.description, `${this.logPath}: does not start with a snapshot`);
    if (r.v !== s.version + 1) throw new StoreCorruptError(this.description, `${this.logPath}: record version ${r.v} after ${s.version}`);
    s.version = r.v;
    this.recordsSinceSnap++;
    switch (r.t) {
      case 'p':
        s.principals.set(r.rec.name, { value: r.rec, revision: r.v });
        break;
      case 'pd':
        s.principals.delete(r.name);
        break;
      case 'r':
        s.policy.set(r.rule.id, r.rule);
        break;
      case 'rd':
        s.policy.delete(r.id);
        break;
      case 'm':
        s.meta = { value: r.meta, revision: r.v };
        break;
    }
  }

  // ---- writing ----

  private check(op: string): void {
    if (this.closed) throw new StoreUnavailableError(this.description, op, 'store is closed');
  }

  /** Serializes this process's writers, then takes the cross-process lock. */
  private withLock<T>(fn: () => T): Promise<T> {
    const run = async (): Promise<T> => {
      await this.lock.acquire();
      try {
        return fn();
      } finally {
        this.lock.release();
      }
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** Under the lock: catch up, let `decide` check the fresh state, append its record durably. */
  private mutate<T>(op: string, decide: (s: State) => { record: NewRecord | null; result: (v: number) => T }): Promise<T> {
    this.check(op);
    return this.withLock(() => {
      this.check(op);
      this.refresh(true);
      const { record, result } = decide(this.state);
      if (record === null) return result(this.state.version);
      const full = { ...record, v: this.state.version + 1 } as LogRecord;
      const line = encodeLine(full);
      try {
        fs.writeSync(this.fd, line, 0, line.length, this.offset);
        fs.fdatasyncSync(this.fd);
      } catch (e) {
        try {
          fs.ftruncateSync(this.fd, this.offset);
        } catch {
          // the torn record is truncated by the next writer's replay
        }
        throw new StoreUnavailableError(this.description, op, `write failed: ${errMsg(e)}`);
      }
      this.apply(full, this.offset);
      this.offset += line.length;
      if (this.recordsSinceSnap >= this.compactAfter) this.compact();
      return result(full.v);
    });
  }

  /** Rewrites the log as one snapshot (under the lock). A failure leaves the old log in place. */
  private compact(): void {
    const s = this.state;
    const snap: LogRecord = {
      t: 'snap',
      v: s.version,
      principals: [...s.principals.values()].map((p) => [p.value, p.revision] as [PrincipalRecord, number]),
      policy: [...s.policy.values()],
      meta: s.meta ? [s.meta.value, s.meta.revision] : null,
    };
    const line = encodeLine(snap);
    try {
      writeFileAtomic(this.logPath, line);
    } catch {
      return; // keep appending to the old log; the next write tries again
    }
    fs.closeSync(this.fd);
    this.fd = fs.openSync(this.logPath, 'r+');
    this.ino = fs.fstatSync(this.fd).ino;
    this.offset = line.length;
    this.recordsSinceSnap = 0;
  }

  /** Forces a compaction now (tests, and `kdc-admin` maintenance). */
  compactNow(): Promise<void> {
    this.check('compact');
    return this.withLock(() => {
      this.refresh(true);
      this.compact();
    });
  }

  // ---- principals, policy, meta ----

  async getPrincipal(name: string): Promise<Versioned<PrincipalRecord> | null> {
    this.check('getPrincipal');
    this.refresh(false);
    return this.state.principals.get(name) ?? null;
  }

  putPrincipal(record: PrincipalRecord, expectedRevision: number | null): Promise<CasResult> {
    return this.mutate<CasResult>('putPrincipal', (s) => {
      const cur = s.principals.get(record.name)?.revision ?? null;
      if (cur !== expectedRevision) return { record: null, result: () => err({ currentRevision: cur }) };
      return { record: { t: 'p', rec: record }, result: (v) => ok({ revision: v }) };
    });
  }

  deletePrincipal(name: string, expectedRevision?: number): Promise<CasResult> {
    return this.mutate<CasResult>('deletePrincipal', (s) => {
      const cur = s.principals.get(name)?.revision ?? null;
      if (cur === null || (expectedRevision !== undefined && cur !== expectedRevision)) {
        return { record: null, result: () => err({ currentRevision: cur }) };
      }
      return { record: { t: 'pd', name }, result: (v) => ok({ revision: v }) };
    });
  }

  async listPrincipals(): Promise<Versioned<PrincipalRecord>[]> {
    this.check('listPrincipals');
    this.refresh(false);
    return sortByName([...this.state.principals.values()]);
  }

  async listPolicyRules(): Promise<PolicyRule[]> {
    this.check('listPolicyRules');
    this.refresh(false);
    return sortById([...this.state.policy.values()]);
  }

  putPolicyRule(rule: PolicyRule, onlyIfAbsent = false): Promise<boolean> {
    return this.mutate('putPolicyRule', (s) => {
      if (onlyIfAbsent && s.policy.has(rule.id)) return { record: null, result: () => false };
      return { record: { t: 'r', rule }, result: () => true };
    });
  }

  removePolicyRule(id: string): Promise<boolean> {
    return this.mutate('removePolicyRule', (s) => {
      if (!s.policy.has(id)) return { record: null, result: () => false };
      return { record: { t: 'rd', id }, result: () => true };
    });
  }

  async getMeta(): Promise<Versioned<StoreMeta> | null> {
    this.check('getMeta');
    this.refresh(false);
    return this.state.meta;
  }

  putMeta(meta: StoreMeta, expectedRevision: number | null): Promise<CasResult> {
    return this.mutate<CasResult>('putMeta', (s) => {
      const cur = s.meta?.revision ?? null;
      if (cur !== expectedRevision) return { record: null, result: () => err({ currentRevision: cur }) };
      return { record: { t: 'm', meta }, result: (v) => ok({ revision: v }) };
    });
  }

  async changeVersion(): Promise<number> {
    this.check('changeVersion');
    this.refresh(false);
    return this.state.version;
  }

  // ---- audit ----

  async appendAudit(events: readonly AuditEvent[]): Promise<void> {
    this.check('appendAudit');
    if (events.length === 0) return;
    const lines = events.map((event) => {
      const id = `${event.ts}-${process.pid}.${++this.auditSeq}`;
      return `{"id":${JSON.stringify(id)},"event":${encodeAuditEvent(event)}}\n`;
    });
    const data = Buffer.from(lines.join(''));
    try {
      // By path, so that a rotation by another process is followed at once (O_APPEND).
      await fs.promises.appendFile(this.auditPath, data, { mode: 0o600 });
    } catch (e) {
      throw new StoreUnavailableError(this.description, 'appendAudit', errMsg(e));
    }
    await this.maybeRotateAudit(data.length, lines.length).catch(() => undefined);
  }

  /**
   * Counts lines incrementally (`bytes`/`lines`: what we just appended, so that the file need
   * not be read back when nobody else wrote); past auditMaxLen, moves audit.log to audit.log.1
   * (under the lock).
   */
  private async maybeRotateAudit(bytes: number, lines: number): Promise<void> {
    const st = await fs.promises.stat(this.auditPath);
    const a = this.audit;
    if (st.ino !== a.ino || st.size < a.scanned) {
      a.ino = st.ino;
      a.scanned = 0;
      a.lines = 0;
    }
    if (st.size === a.scanned + bytes && a.scanned > 0) {
      a.scanned = st.size;
      a.lines += lines;
    } else if (st.size > a.scanned) {
      const fh = await fs.promises.open(this.auditPath, 'r');
      try {
        const buf = Buffer.alloc(st.size - a.scanned);
        const { bytesRead } = await fh.read(buf, 0, buf.length, a.scanned);
        for (let i = 0; i < bytesRead; i++) if (buf[i] === NL) a.lines++;
        a.scanned += bytesRead;
      } finally {
        await fh.close();
      }
    }
    if (a.lines < this.auditMaxLen) return;
    await this.withLock(() => {
      if (fs.statSync(this.auditPath).ino === a.ino) fs.renameSync(this.auditPath, this.auditOldPath);
    });
  }

  async tailAudit(count: number): Promise<AuditEntry[]> {
    this.check('tailAudit');
    checkTailCount(count);
    const out: AuditEntry[] = [];
    for (const file of [this.auditOldPath, this.auditPath]) {
      let text: string;
      try {
        text = await fs.promises.readFile(file, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw new StoreUnavailableError(this.description, 'tailAudit', errMsg(e));
      }
      for (const line of text.split('\n')) {
        if (line === '') continue;
        try {
          const x = JSON.parse(line) as { id?: unknown; event?: unknown };
          if (typeof x.id === 'string' && isAuditEvent(x.event)) out.push({ id: x.id, event: x.event });
        } catch {
          // a torn line from a crash mid-append
        }
      }
    }
    return count === 0 ? [] : out.slice(-count);
  }

  // ---- issued responses (memory) ----

  async putIssuedIfAbsent(requestId: Uint8Array, bytes: Uint8Array, ttlMs: number): Promise<IssuedPut> {
    this.check('putIssuedIfAbsent');
    checkIssuedArgs(requestId, bytes, ttlMs);
    const id = idFingerprint(requestId);
    const now = Date.now();
    const held = this.issuedIds.get(id, now);
    // Answered before: its answer, or nothing when the ring has dropped it (never a second key).
    if (held !== undefined) {
      await this.journaled('putIssuedIfAbsent');
      return { stored: false, bytes: this.answers.read(held) ?? new Uint8Array(0) };
    }
    // The ring copies the answer in; the caller's bytes stay the caller's.
    const at = this.answers.append(bytes);
    if (this.issuedIds.add(id, now + ttlMs, now, at) === 'full') {
      throw new StoreUnavailableError(this.description, 'putIssuedIfAbsent', `${this.issuedIds.capacity} request ids held until they expire, no room for more (issuedIdsMax)`);
    }
    this.journal?.append(id, now + ttlMs);
    await this.journaled('putIssuedIfAbsent');
    return { stored: true, bytes };
  }

  /**
   * Resolves once every answered id is in the journal. An answer must not leave before its id
   * would survive a crash: a retry that finds an id not yet written waits for it too, and when
   * the write fails the put fails (store unavailable) and the id is written again by the next.
   */
  private async journaled(op: string): Promise<void> {
    if (this.journal === null || !this.journal.busy) return;
    try {
      await this.journal.written();
    } catch (e) {
      throw new StoreUnavailableError(this.description, op, `cannot write the request id journal: ${errMsg(e)}`);
    }
  }

  async getIssued(requestId: Uint8Array): Promise<Uint8Array | null> {
    this.check('getIssued');
    checkIssuedArgs(requestId, null, null);
    const held = this.issuedIds.get(idFingerprint(requestId), Date.now());
    if (held === undefined) return null;
    await this.journaled('getIssued');
    return this.answers.read(held);
  }

  async ping(): Promise<void> {
    this.check('ping');
    this.refresh(false);
    // Ids the journal could not write make the store unavailable until they are written: the
    // KDC then refuses at its front door instead of queueing ids without bound (rule 8).
    await this.journaled('ping');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.chain;
    this.journal?.close();
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/** The table's 16-byte key: the id itself (the KDC's ids are 16 random bytes), else a digest of it. */
function idFingerprint(requestId: Uint8Array): Uint8Array {
  return requestId.length === 16 ? requestId : createHash('sha256').update(requestId).digest().subarray(0, 16);
}

export function openEmbeddedStore(opts: EmbeddedStoreOptions): Promise<EmbeddedStore> {
  return EmbeddedStore.open(opts);
}
