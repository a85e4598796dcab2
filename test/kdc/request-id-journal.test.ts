// The request id journal on a real filesystem: what is appended is replayed by the next open
// (expired ids left out), a torn tail is a crash's cut write and is ignored, damage before good
// records is corruption, and segments rotate per generation and are deleted once dead.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { JOURNAL_RECORD_BYTES, JournalCorruptError, RequestIdJournal } from '../../kdc/store/request-id-journal';

let dir = '';
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-journal-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const id = (i: number): Uint8Array => Uint8Array.from({ length: 16 }, (_, k) => (k < 4 ? (i >>> (8 * k)) & 0xff : 0xa5));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Opens the journal in `dir` at `now`; returns it and what it replayed, as hex id -> expiry. */
function reopen(now: number, generationMs = 60_000): { journal: RequestIdJournal; replayed: Map<string, number> } {
  const replayed = new Map<string, number>();
  const journal = RequestIdJournal.open(dir, (i, exp) => replayed.set(hex(i), exp), generationMs, () => now);
  return { journal, replayed };
}

const segments = (): string[] => fs.readdirSync(dir).filter((f) => f.endsWith('.ids')).sort();

test('appended ids are written in one batch, and replayed by the next open with their expiries; expired ones are left out', async () => {
  const t0 = 1_000_000;
  const { journal } = reopen(t0);
  for (let i = 0; i < 100; i++) journal.append(id(i), t0 + (i < 10 ? 500 : 720_000));
  expect(journal.busy).toBe(true);
  expect(segments()).toHaveLength(0); // nothing written until the batch goes out
  await journal.written();
  expect(journal.busy).toBe(false);
  // No close(): once written() resolved, a process that dies keeps nothing the file lacks.
  const { replayed } = reopen(t0 + 1000);
  expect(replayed.size).toBe(90);
  expect(replayed.get(hex(id(10)))).toBe(t0 + 720_000);
  expect(replayed.has(hex(id(9)))).toBe(false);
  const file = path.join(dir, segments()[0] as string);
  expect(fs.statSync(file).size).toBe(8 + 100 * JOURNAL_RECORD_BYTES);
  expect(fs.statSync(file).mode & 0o777).toBe(0o600);
});

test.each([
  ['half a record', (b: Buffer) => b.subarray(0, 14)],
  ['a whole record with a bad checksum', (b: Buffer) => Buffer.concat([b.subarray(0, 24), Buffer.alloc(4)])],
  ['zeros after a crash', () => Buffer.alloc(3 * JOURNAL_RECORD_BYTES)],
])('a torn tail (%s) is ignored and everything before it replayed', (_what, tail) => {
  const { journal } = reopen(1000);
  for (let i = 0; i < 5; i++) journal.append(id(i), 900_000);
  journal.close();
  const file = path.join(dir, segments()[0] as string);
  const record = fs.readFileSync(file).subarray(8, 8 + JOURNAL_RECORD_BYTES);
  fs.appendFileSync(file, tail(Buffer.from(record)));
  expect(reopen(2000).replayed.size).toBe(5);
});

test('a damaged record followed by good ones is corruption, named with file and offset; a bad header too', () => {
  const { journal } = reopen(1000);
  for (let i = 0; i < 5; i++) journal.append(id(i), 900_000);
  journal.close();
  const file = path.join(dir, segments()[0] as string);
  const bytes = fs.readFileSync(file);
  bytes[8 + JOURNAL_RECORD_BYTES + 3]! ^= 1; // the second record's id
  fs.writeFileSync(file, bytes);
  expect(() => reopen(2000)).toThrow(JournalCorruptError);
  expect(() => reopen(2000)).toThrow(`${file}: damaged record at byte ${8 + JOURNAL_RECORD_BYTES} followed by good records`);
  fs.writeFileSync(file, Buffer.concat([Buffer.from('not-ids\n'), bytes.subarray(8)]));
  expect(() => reopen(2000)).toThrow(/bad header/);
});

test('a new segment per generation; a segment is deleted once no one can append to it and all of it expired', async () => {
  let now = 10_000;
  const journal = RequestIdJournal.open(dir, () => undefined, 1000, () => now);
  journal.append(id(1), now + 1500); // segment A: dead at 11_500
  await journal.written();
  now += 1000;
  journal.append(id(2), now + 5000); // segment B: dead at 16_000
  await journal.written();
  expect(segments()).toHaveLength(2);
  now += 1000; // 12_000: A is past its generation and expired
  journal.append(id(3), now + 5000); // segment C; rotating deletes A
  await journal.written();
  expect(segments()).toHaveLength(2);
  expect(journal.segments).toBe(2);
  journal.close();
  // The next process replays B and C, and deletes B once it has expired.
  expect(reopen(12_500, 1000).replayed.size).toBe(2);
  expect(segments()).toHaveLength(2);
  const later = reopen(16_500, 1000);
  expect([...later.replayed.keys()]).toEqual([hex(id(3))]);
  expect(segments()).toHaveLength(1);
});

test('two processes on one directory write separate segments, and the next open replays both', async () => {
  const a = reopen(5000).journal;
  const b = RequestIdJournal.open(dir, () => undefined, 60_000, () => 5000);
  a.append(id(1), 900_000);
  b.append(id(2), 900_000);
  await Promise.all([a.written(), b.written()]);
  // Same start time and pid here, so the second segment takes the next free name.
  expect(segments()).toHaveLength(2);
  expect(reopen(6000).replayed.size).toBe(2);
});

test('bad arguments and use after close are errors, not silent records', () => {
  const { journal } = reopen(1000);
  expect(() => journal.append(new Uint8Array(15), 2000)).toThrow(/16 bytes/);
  journal.close();
  expect(() => journal.append(id(1), 2000)).toThrow(/closed/);
  expect(segments()).toHaveLength(0);
});

test('a write that fails rejects its batch and keeps its ids; the next write carries them to a new segment', async () => {
  const { journal } = reopen(1000);
  journal.append(id(1), 900_000);
  await journal.written();
  // Take the segment away under the journal: its descriptor now fails every write.
  const seg = (journal as unknown as { current: { fd: number } }).current;
  fs.closeSync(seg.fd);
  fs.openSync('/dev/null', 'r'); // reuses the number, read-only: write(2) fails with EBADF
  journal.append(id(2), 900_000);
  await expect(journal.written()).rejects.toThrow(/EBADF/);
  expect(journal.busy).toBe(true);
  await journal.written(); // written again, to a fresh segment
  expect(journal.busy).toBe(false);
  expect(segments()).toHaveLength(2);
  expect(reopen(2000).replayed.size).toBe(2);
});
