// Embedded store specifics: crash safety (SIGKILL mid write loop), torn tails, corruption,
// the per-write lock, and readers following another process's compaction.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openEmbeddedStore, encodeLine } from '../../kdc/store/embedded';
import { type PrincipalRecord, StoreCorruptError, StoreUnavailableError } from '../../kdc/store/store';

const ROOT = path.resolve(__dirname, '../..');
let tmp = '';
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-embedded-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

function principal(name: string, kvno = 1): PrincipalRecord {
  return {
    name,
    kvno,
    keys: [{ kvno, masterKeyId: 'mk', nonce: '00'.repeat(12), sealed: 'cd'.repeat(48), createdAt: 1, validUntil: null }],
    disabled: false,
    allowedNets: [],
    groups: [],
    createdAt: 1,
    updatedAt: 1,
  };
}

// A child that loads the TypeScript store through swc and writes until killed, printing one
// line per acknowledged write: new principals, and CAS updates of one counter principal.
const CHILD = `
const fs = require('fs');
const { transformSync } = require(require.resolve('@swc/core', { paths: [process.env.CG_ROOT] }));
require.extensions['.ts'] = (module, filename) => {
  const out = transformSync(fs.readFileSync(filename, 'utf8'), {
    filename, jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' },
  });
  module._compile(out.code, filename);
};
const { openEmbeddedStore } = require(process.env.CG_ROOT + '/kdc/store/embedded.ts');
const rec = (name, kvno) => ({ name, kvno, keys: [{ kvno, masterKeyId: 'mk', nonce: '00', sealed: 'ab', createdAt: 1, validUntil: null }],
  disabled: false, allowedNets: [], groups: [], createdAt: 1, updatedAt: 1 });
(async () => {
  const store = await openEmbeddedStore({ dir: process.env.CG_DIR, compactAfterRecords: 25 });
  const round = process.env.CG_ROUND;
  let ctr = await store.getPrincipal('ctr');
  if (!ctr) { const r = await store.putPrincipal(rec('ctr', 1), null); ctr = { value: rec('ctr', 1), revision: r.value.revision }; }
  for (let i = 0; ; i++) {
    const name = 'r' + round + '-' + i;
    const r = await store.putPrincipal(rec(name, 1), null);
    if (r.ok) process.stdout.write('ack ' + name + '\\n');
    const kvno = ctr.value.kvno + 1;
    const u = await store.putPrincipal(rec('ctr', kvno), ctr.revision);
    if (!u.ok) throw new Error('unexpected CAS conflict');
    ctr = { value: rec('ctr', kvno), revision: u.value.revision };
    process.stdout.write('ctr ' + kvno + '\\n');
  }
})().catch((e) => { console.error(e); process.exit(3); });
`;

test('SIGKILL during a write loop: every acknowledged write survives, across compactions', async () => {
  const script = path.join(tmp, 'child.js');
  fs.writeFileSync(script, CHILD);
  const dir = path.join(tmp, 'store');
  const acked: string[] = [];
  let lastCtr = 0;
  for (let round = 0; round < 3; round++) {
    const child = spawn(process.execPath, [script], { env: { ...process.env, CG_ROOT: ROOT, CG_DIR: dir, CG_ROUND: String(round) }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let errText = '';
    child.stderr.on('data', (d: Buffer) => (errText += d.toString()));
    const target = 40 + round * 37;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if ((out.match(/^ack /gm)?.length ?? 0) >= target) resolve();
      });
      void exited.then((code) => reject(new Error(`child exited early (${code}): ${errText}`)));
    });
    child.kill('SIGKILL');
    await exited;
    for (const line of out.split('\n')) {
      // Only complete lines count: a line cut by the kill was not seen as acknowledged.
      const m = /^(ack|ctr) (\S+)$/.exec(line);
      if (!m || !out.includes(line + '\n')) continue;
      if (m[1] === 'ack') acked.push(m[2]!);
      else lastCtr = Number(m[2]);
    }
    const store = await openEmbeddedStore({ dir });
    const names = new Set((await store.listPrincipals()).map((p) => p.value.name));
    for (const n of acked) expect(names.has(n) ? n : `missing ${n}`).toBe(n);
    const ctr = await store.getPrincipal('ctr');
    expect(ctr!.value.kvno).toBeGreaterThanOrEqual(lastCtr);
    expect(ctr!.value.kvno).toBeLessThanOrEqual(lastCtr + 1); // at most the one write in flight
    await store.close();
  }
  expect(acked.length).toBeGreaterThan(100);
}, 60_000);

async function storeWith(n: number, dir = path.join(tmp, 's')) {
  const store = await openEmbeddedStore({ dir });
  for (let i = 0; i < n; i++) expect((await store.putPrincipal(principal(`p${i}`), null)).ok).toBe(true);
  await store.close();
  return path.join(dir, 'store.log');
}

test.each([
  ['an incomplete last record', 'deadbeef {"t":"p","v":4,"rec":{"na'],
  ['a complete last record with a bad checksum', '00000000 {"t":"pd","v":4,"name":"p0"}\n'],
  ['zeros after a crash', '\0'.repeat(300)],
])('replay truncates a torn tail: %s', async (_what, tail) => {
  const log = await storeWith(3);
  const good = fs.statSync(log).size;
  fs.appendFileSync(log, tail);
  const store = await openEmbeddedStore({ dir: path.dirname(log) });
  expect((await store.listPrincipals()).map((p) => p.value.name)).toEqual(['p0', 'p1', 'p2']);
  expect(fs.statSync(log).size).toBe(good);
  const r = await store.putPrincipal(principal('p3'), null);
  expect(r).toEqual({ ok: true, value: { revision: 4 } });
  await store.close();
  const again = await openEmbeddedStore({ dir: path.dirname(log) });
  expect((await again.listPrincipals()).length).toBe(4);
  await again.close();
});

test('a damaged record followed by good ones is corruption, reported with its offset', async () => {
  const log = await storeWith(3);
  const lines = fs.readFileSync(log, 'utf8').split('\n');
  lines[1] = lines[1]!.replace('"p0"', '"pX"');
  fs.writeFileSync(log, lines.join('\n'));
  await expect(openEmbeddedStore({ dir: path.dirname(log) })).rejects.toThrow(StoreCorruptError);
  await expect(openEmbeddedStore({ dir: path.dirname(log) })).rejects.toThrow(/damaged record at byte \d+ followed by good records/);
});

test('a record with a good checksum but an out-of-order version is corruption', async () => {
  const log = await storeWith(1);
  fs.appendFileSync(log, encodeLine({ t: 'pd', v: 9, name: 'p0' }));
  await expect(openEmbeddedStore({ dir: path.dirname(log) })).rejects.toThrow(/record version 9 after 1/);
});

test('a lock held by a live process makes writes fail fast with a message naming it; a dead holder is taken over', async () => {
  const dir = path.join(tmp, 'l');
  const store = await openEmbeddedStore({ dir, lockTimeoutMs: 200 });
  const lock = path.join(dir, 'store.lock');
  fs.writeFileSync(lock, `${os.hostname()} ${process.pid} someone-else`);
  const t0 = Date.now();
  const e = await store.putPrincipal(principal('a'), null).catch((x: unknown) => x);
  expect(e).toBeInstanceOf(StoreUnavailableError);
  expect((e as Error).message).toMatch(new RegExp(`locked by pid ${process.pid} on .* remove .*store\\.lock`));
  expect(Date.now() - t0).toBeLessThan(1000);
  // Reads do not need the lock.
  expect(await store.listPrincipals()).toEqual([]);

  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
  fs.writeFileSync(lock, `${os.hostname()} ${dead} crashed`);
  expect((await store.putPrincipal(principal('a'), null)).ok).toBe(true);
  expect(fs.existsSync(lock)).toBe(false);
  await store.close();
});

test('two handles on one directory: each sees the other, across compaction by either', async () => {
  const dir = path.join(tmp, 'm');
  const a = await openEmbeddedStore({ dir, compactAfterRecords: 5 });
  const b = await openEmbeddedStore({ dir, compactAfterRecords: 1000 });
  for (let i = 0; i < 12; i++) expect((await a.putPrincipal(principal(`a${i}`), null)).ok).toBe(true);
  const log = path.join(dir, 'store.log');
  expect(fs.readFileSync(log, 'utf8').split('\n').filter(Boolean).length).toBeLessThan(5); // compacted
  expect((await b.listPrincipals()).length).toBe(12);
  const got = await b.getPrincipal('a3');
  expect((await b.putPrincipal(principal('a3', 2), got!.revision)).ok).toBe(true);
  expect((await a.getPrincipal('a3'))!.value.kvno).toBe(2);
  expect((await a.putPrincipal(principal('a3', 3), got!.revision)).ok).toBe(false);
  expect(await a.changeVersion()).toBe(await b.changeVersion());
  await b.compactNow();
  expect((await a.listPrincipals()).length).toBe(12);
  expect((await a.putPrincipal(principal('late'), null)).ok).toBe(true);
  expect((await b.getPrincipal('late'))?.value.name).toBe('late');
  await a.close();
  await b.close();
  const c = await openEmbeddedStore({ dir });
  expect((await c.listPrincipals()).length).toBe(13);
  await c.close();
});

test('files are private: directory 0700, log 0600', async () => {
  const log = await storeWith(1, path.join(tmp, 'perm'));
  expect(fs.statSync(path.dirname(log)).mode & 0o777).toBe(0o700);
  expect(fs.statSync(log).mode & 0o777).toBe(0o600);
});

test('an id whose answer was dropped for room is still known until it expires: refused, never stored again', async () => {
  const store = await openEmbeddedStore({ dir: tmp, issuedMaxEntries: 10 });
  try {
    const ids = Array.from({ length: 50 }, (_, i) => Uint8Array.from({ length: 16 }, (_, k) => (k === 0 ? i : 0x5a)));
    for (const [i, id] of ids.entries()) expect((await store.putIssuedIfAbsent(id, Uint8Array.of(i + 1), 60_000)).stored).toBe(true);
    // The newest 10 answers are held; the first 40 ids are known without their answers.
    expect(await store.putIssuedIfAbsent(ids[49]!, Uint8Array.of(0xee), 60_000)).toEqual({ stored: false, bytes: Uint8Array.of(50) });
    expect(await store.putIssuedIfAbsent(ids[0]!, Uint8Array.of(0xee), 60_000)).toEqual({ stored: false, bytes: new Uint8Array(0) });
    expect(await store.getIssued(ids[0]!)).toBeNull();
    // Ids of other lengths are held by digest, alike.
    const long = new Uint8Array(40).fill(7);
    expect((await store.putIssuedIfAbsent(long, Uint8Array.of(1), 60_000)).stored).toBe(true);
    for (const id of ids.slice(0, 20)) await store.putIssuedIfAbsent(Uint8Array.from(id, (b) => b ^ 0xff), Uint8Array.of(2), 60_000);
    expect(await store.putIssuedIfAbsent(long, Uint8Array.of(3), 60_000)).toEqual({ stored: false, bytes: new Uint8Array(0) });
  } finally {
    await store.close();
  }
});

test('with no room for one more live request id, puts fail as the store being unavailable, not by forgetting', async () => {
  const store = await openEmbeddedStore({ dir: tmp, issuedMaxEntries: 4, issuedIdsMax: 16 });
  try {
    const id = (i: number) => Uint8Array.from({ length: 16 }, (_, k) => (k === 0 ? i : 0x33));
    for (let i = 0; i < 12; i++) expect((await store.putIssuedIfAbsent(id(i), Uint8Array.of(1), 60_000)).stored).toBe(true);
    await expect(store.putIssuedIfAbsent(id(12), Uint8Array.of(1), 60_000)).rejects.toThrow(StoreUnavailableError);
    await expect(store.putIssuedIfAbsent(id(12), Uint8Array.of(1), 60_000)).rejects.toThrow(/request ids held until they expire.*issuedIdsMax/);
    expect((await store.putIssuedIfAbsent(id(0), Uint8Array.of(9), 60_000)).stored).toBe(false);
  } finally {
    await store.close();
  }
});

test('answered request ids survive the process: a store opened after one that never closed refuses them (journal), unless the journal is off', async () => {
  const ids = Array.from({ length: 30 }, (_, i) => Uint8Array.from({ length: 16 }, (_, k) => (k === 0 ? i : 0x6b)));
  const first = await openEmbeddedStore({ dir: tmp });
  for (const [i, id] of ids.entries()) expect((await first.putIssuedIfAbsent(id, Uint8Array.of(i + 1), 60_000)).stored).toBe(true);
  // `first` is not closed: what a killed process leaves behind.
  const second = await openEmbeddedStore({ dir: tmp });
  try {
    for (const id of ids) expect(await second.putIssuedIfAbsent(id, Uint8Array.of(0xee), 60_000)).toEqual({ stored: false, bytes: new Uint8Array(0) });
    expect((await second.putIssuedIfAbsent(new Uint8Array(16).fill(1), Uint8Array.of(2), 60_000)).stored).toBe(true);
  } finally {
    await second.close();
  }
  // The check above can fail: without the journal the same ids would be answered again.
  const forgetful = await openEmbeddedStore({ dir: tmp, issuedJournal: false });
  try {
    expect((await forgetful.putIssuedIfAbsent(ids[0]!, Uint8Array.of(0xee), 60_000)).stored).toBe(true);
    expect(fs.readdirSync(tmp).filter((f) => f.endsWith('.ids'))).toHaveLength(2); // it neither writes nor deletes segments
  } finally {
    await forgetful.close();
  }
  await first.close();
});

test('a journal write that fails fails the put (store unavailable); a retry of that id gets the same answer once it is written', async () => {
  const store = await openEmbeddedStore({ dir: tmp });
  try {
    const first = Uint8Array.from({ length: 16 }, (_, k) => k);
    expect((await store.putIssuedIfAbsent(first, Uint8Array.of(1), 60_000)).stored).toBe(true);
    // Break the segment's descriptor: the number now names a read-only /dev/null.
    const journal = (store as unknown as { journal: { current: { fd: number } } }).journal;
    fs.closeSync(journal.current.fd);
    fs.openSync('/dev/null', 'r');
    const id = new Uint8Array(16).fill(9);
    await expect(store.putIssuedIfAbsent(id, Uint8Array.of(7), 60_000)).rejects.toThrow(/store unavailable: .*putIssuedIfAbsent: cannot write the request id journal: .*EBADF/);
    // While the journal cannot write at all, the store's health probe fails too, so the KDC
    // turns unready and stops taking requests rather than queueing their ids without bound.
    const dir = (journal as unknown as { dir: string }).dir;
    (journal as unknown as { dir: string }).dir = path.join(tmp, 'gone');
    await expect(store.ping()).rejects.toThrow(/store unavailable: .*ping: cannot write the request id journal: .*ENOENT/);
    (journal as unknown as { dir: string }).dir = dir;
    await store.ping();
    // The retry neither mints anew nor gets an answer whose id is not on disk: it waits for the write.
    expect(await store.putIssuedIfAbsent(id, Uint8Array.of(8), 60_000)).toEqual({ stored: false, bytes: Uint8Array.of(7) });
  } finally {
    await store.close();
  }
  const reopened = await openEmbeddedStore({ dir: tmp });
  expect(await reopened.putIssuedIfAbsent(new Uint8Array(16).fill(9), Uint8Array.of(8), 60_000)).toEqual({ stored: false, bytes: new Uint8Array(0) });
  await reopened.close();
});
