// The embedded store's answered request ids on disk, so that a KDC process restarted after a
// crash still knows every id it answered within the idempotency window, and refuses a retry of
// one (`replay`) instead of minting a second session key for it. Only ids and expiries are
// kept: full answers stay in memory (answer-ring.ts), so after a restart a retry is refused,
// never answered differently.
//
// Segments: `issued-<startMs>-<pid>.ids` in the store directory, a new one per process every
// generationMs (a minute, as the id table's generations). Each holds the 8-byte header
// "cg-ids1\n", then 28-byte records:
//   16 id fingerprint | 8 expiry, ms since the epoch (float64 BE) | 4 CRC-32 of the 24 before.
//
// Records are batched: the ids appended while the KDC works through one chunk of requests go
// out in one write(2), from a microtask, before any of their puts resolves. So each is in the
// kernel before its answer leaves, and survives the KDC process dying in any way. (A write
// per id cost the KDC 18 us per issue under load, a quarter of its throughput.)
//
// Not fsynced: at 10k/s, O_DSYNC writes cost the KDC about half again its CPU and more than
// doubled its median latency (0.6 to 1.4-1.7 ms). A host crash takes longer to come back from
// than any gateway waits to retry (a flow's keying times out in seconds), so the ids it can
// lose are ids no gateway retries. A new segment's header and directory entry are fsynced
// once, at creation.
//
// Replay: a bad or short record at the very end of a segment is a write the crash cut, never
// acknowledged, and is ignored; a bad record with a good one after it is corruption. A segment
// is deleted once no process can append to it (it is older than one generation) and every
// record in it has expired.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import { GENERATION_MS } from './request-id-table';

const HEADER = Buffer.from('cg-ids1\n', 'latin1');
const ID_LEN = 16;
const EXPIRY_AT = ID_LEN;
const CRC_AT = ID_LEN + 8;
export const JOURNAL_RECORD_BYTES = CRC_AT + 4;
const SEGMENT_NAME = /^issued-(\d+)-(\d+)\.ids$/;

/** A segment file that cannot be read as records: names the file and the byte offset. */
export class JournalCorruptError extends Error {}

interface Segment {
  file: string;
  startedAt: number;
  maxExpiry: number;
}

/** Reads one segment's records, calling `onRecord` for each; returns the latest expiry in it. */
function readSegment(file: string, bytes: Buffer, onRecord: (id: Uint8Array, expiresAtMs: number) => void): number {
  if (bytes.length < HEADER.length) return 0; // created, header never written: nothing acknowledged
  if (!bytes.subarray(0, HEADER.length).equals(HEADER)) throw new JournalCorruptError(`${file}: not a request id journal (bad header)`);
  let maxExpiry = 0;
  const good = (at: number) => crc32(bytes.subarray(at, at + CRC_AT)) === bytes.readUInt32BE(at + CRC_AT);
  for (let at = HEADER.length; at + JOURNAL_RECORD_BYTES <= bytes.length; at += JOURNAL_RECORD_BYTES) {
    if (!good(at)) {
      for (let later = at + JOURNAL_RECORD_BYTES; later + JOURNAL_RECORD_BYTES <= bytes.length; later += JOURNAL_RECORD_BYTES) {
        if (good(later)) throw new JournalCorruptError(`${file}: damaged record at byte ${at} followed by good records`);
      }
      break; // a torn tail
    }
    const expiresAtMs = bytes.readDoubleBE(at + EXPIRY_AT);
    if (expiresAtMs > maxExpiry) maxExpiry = expiresAtMs;
    onRecord(bytes.subarray(at, at + ID_LEN), expiresAtMs);
  }
  return maxExpiry;
}

interface Batch {
  done: Promise<void>;
  resolve(): void;
  reject(e: Error): void;
}

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const done = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  done.catch(() => undefined); // a batch nobody awaits must not be an unhandled rejection
  return { done, resolve, reject };
}

export class RequestIdJournal {
  /** Records not yet written, and the promise of the write that will carry them. */
  private fill = Buffer.allocUnsafe(256 * JOURNAL_RECORD_BYTES);
  private fillLen = 0;
  private batch: Batch | null = null;
  private scheduled = false;
  private current: (Segment & { fd: number }) | null = null;
  private closed = false;

  private constructor(
    private readonly dir: string,
    private readonly generationMs: number,
    private readonly clock: () => number,
    /** Segments of ours and of earlier processes, for deletion once dead. */
    private readonly known: Segment[],
  ) {}

  /**
   * Replays every segment in `dir`, calling `onRecord` for each id not expired at the clock's
   * now, and deletes dead segments. Synchronous: it runs while the store opens.
   */
  static open(dir: string, onRecord: (id: Uint8Array, expiresAtMs: number) => void, generationMs = GENERATION_MS, clock: () => number = Date.now): RequestIdJournal {
    const now = clock();
    const known: Segment[] = [];
    for (const name of fs.readdirSync(dir).sort()) {
      const m = SEGMENT_NAME.exec(name);
      if (m === null) continue;
      const file = path.join(dir, name);
      const maxExpiry = readSegment(file, fs.readFileSync(file), (id, exp) => {
        if (exp > now) onRecord(id, exp);
      });
      known.push({ file, startedAt: Number(m[1]), maxExpiry });
    }
    const journal = new RequestIdJournal(dir, generationMs, clock, known);
    journal.deleteDead(now);
    return journal;
  }

  /** Segment files this journal knows of (its own and those it replayed, not yet deleted). */
  get segments(): number {
    return this.known.length;
  }

  /** True while some appended id is not yet written. */
  get busy(): boolean {
    return this.batch !== null;
  }

  /** Queues `id` (16 bytes) until `expiresAtMs`; `written()` tells when it is in the file. */
  append(id: Uint8Array, expiresAtMs: number): void {
    if (this.closed) throw new Error('request id journal is closed');
    if (id.length !== ID_LEN) throw new TypeError(`request id fingerprint must be ${ID_LEN} bytes`);
    if (this.fillLen + JOURNAL_RECORD_BYTES > this.fill.length) {
      const bigger = Buffer.allocUnsafe(this.fill.length * 2);
      this.fill.copy(bigger, 0, 0, this.fillLen);
      this.fill = bigger;
    }
    const at = this.fillLen;
    this.fill.set(id, at);
    this.fill.writeDoubleBE(expiresAtMs, at + EXPIRY_AT);
    this.fill.writeUInt32BE(crc32(this.fill.subarray(at, at + CRC_AT)), at + CRC_AT);
    this.fillLen += JOURNAL_RECORD_BYTES;
    this.batch ??= newBatch();
    this.schedule();
  }

  /**
   * Resolves once every id appended so far is written; rejects when that write failed. The ids
   * of a failed write stay queued and go out with the next append or written() call.
   */
  written(): Promise<void> {
    if (this.batch === null) return Promise.resolve();
    this.schedule();
    return this.batch.done;
  }

  /** Writes what is queued (one try), then stops taking ids. */
  close(): void {
    this.flush();
    this.closed = true;
    this.closeCurrent();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const batch = this.batch;
    if (batch === null || this.closed) return;
    const data = this.fill.subarray(0, this.fillLen);
    try {
      const now = this.clock();
      if (this.current === null || now - this.current.startedAt >= this.generationMs) this.rotate(now);
      const seg = this.current as Segment & { fd: number };
      const n = fs.writeSync(seg.fd, data);
      if (n !== data.length) throw new Error(`short write (${n} of ${data.length} bytes)`);
      for (let at = 0; at < data.length; at += JOURNAL_RECORD_BYTES) seg.maxExpiry = Math.max(seg.maxExpiry, data.readDoubleBE(at + EXPIRY_AT));
    } catch (e) {
      // The segment may end in part of these records: they go again to a new segment, so that
      // a torn record stays a tail (a whole one written twice replays as one id).
      this.closeCurrent();
      this.batch = newBatch();
      batch.reject(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    this.fillLen = 0;
    this.batch = null;
    batch.resolve();
  }

  private closeCurrent(): void {
    if (this.current === null) return;
    try {
      fs.closeSync(this.current.fd);
    } catch {
      // closing a descriptor whose writes failed may fail too; it is released either way
    }
    this.current = null;
  }

  /** Starts a new segment; its header and directory entry are durable before any record. */
  private rotate(now: number): void {
    this.closeCurrent();
    let fd = -1;
    let file = '';
    for (let t = now; fd < 0; t++) {
      file = path.join(this.dir, `issued-${t}-${process.pid}.ids`);
      try {
        fd = fs.openSync(file, 'ax', 0o600);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
    try {
      fs.writeSync(fd, HEADER);
      fs.fsyncSync(fd);
      const d = fs.openSync(this.dir, 'r');
      try {
        fs.fsyncSync(d);
      } finally {
        fs.closeSync(d);
      }
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    const seg = { file, startedAt: now, maxExpiry: 0, fd };
    this.known.push(seg);
    this.current = seg;
    this.deleteDead(now);
  }

  /** Deletes segments nobody appends to any more whose every record has expired. */
  private deleteDead(now: number): void {
    for (let i = this.known.length - 1; i >= 0; i--) {
      const s = this.known[i] as Segment;
      if (s === this.current || now - s.startedAt < this.generationMs || s.maxExpiry > now) continue;
      try {
        fs.unlinkSync(s.file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') continue; // left for the next try
      }
      this.known.splice(i, 1);
    }
  }
}
