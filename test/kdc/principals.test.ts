// Master key handling, sealed principal keys, principal admin operations, rotation grace, and
// the issuer's cached directory (invalidation across processes within 1 s).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getBackend } from '../../common/crypto';
import { seededRandom, systemRandom } from '../../common/crypto/random';
import {
  MASTER_KEY_ENV,
  MasterKeyError,
  MasterKeyRing,
  decodeMasterKey,
  loadMasterKeyEnv,
  loadMasterKeyFile,
  makeMasterKey,
  writeMasterKeyFile,
} from '../../kdc/master-key';
import { MAX_KVNO, PrincipalAdmin, PrincipalDirectory, PrincipalError, canonicalCidr, principalNameProblem } from '../../kdc/principals';
import { openEmbeddedStore, type EmbeddedStore } from '../../kdc/store/embedded';
import { RedisKdcStore } from '../../kdc/store/redis';
import type { KdcStore, StoreMeta } from '../../kdc/store/store';
import { ChangeWatcher } from '../../kdc/store/watch';
import { redisAvailable, startRedisStandalone, type RedisStandalone, waitFor } from '../helpers/redis';

const backend = getBackend('node');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const mk = (seed: string) => makeMasterKey(backend, seededRandom(seed)(32));

let tmp = '';
const open: { close(): unknown }[] = [];
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-principals-'));
});
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});
async function store(dir = path.join(tmp, 'store')): Promise<EmbeddedStore> {
  const s = await openEmbeddedStore({ dir });
  open.push(s);
  return s;
}

describe('master key sources', () => {
  const key = seededRandom('mk')(32);

  test('hex, base64, base64url and raw bytes decode to the same key; anything else is refused with its source', () => {
    for (const form of [hex(key), `  ${hex(key).toUpperCase()}\n`, Buffer.from(key).toString('base64'), Buffer.from(key).toString('base64url'), key]) {
      expect(decodeMasterKey(form, 'test')).toEqual(key);
    }
    expect(() => decodeMasterKey('abcd', 'env CG')).toThrow(/^env CG: expected a 32-byte master key/);
    expect(() => decodeMasterKey(hex(key).slice(2), 'x')).toThrow(MasterKeyError);
  });

  test('stash file: written 0600, never overwritten, refused when group/other can read it', () => {
    const file = path.join(tmp, 'master.key');
    writeMasterKeyFile(file, key);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(loadMasterKeyFile(backend, file).key).toEqual(key);
    expect(() => writeMasterKeyFile(file, key)).toThrow(/already exists/);
    fs.chmodSync(file, 0o644);
    expect(() => loadMasterKeyFile(backend, file)).toThrow(`master key file ${file}: mode 0644 lets group or others read it; run chmod 600 ${file}`);
    expect(() => loadMasterKeyFile(backend, path.join(tmp, 'nope'))).toThrow(/no such file/);
  });

  test('environment variable, named in the error when missing or bad', () => {
    expect(loadMasterKeyEnv(backend, { [MASTER_KEY_ENV]: hex(key) }).key).toEqual(key);
    expect(() => loadMasterKeyEnv(backend, {})).toThrow(`environment variable ${MASTER_KEY_ENV} is not set`);
    expect(() => loadMasterKeyEnv(backend, { [MASTER_KEY_ENV]: 'zz' })).toThrow(`environment variable ${MASTER_KEY_ENV}: expected`);
  });

  test('the id is a stable fingerprint that differs between keys', () => {
    expect(mk('a').id).toMatch(/^[0-9a-f]{16}$/);
    expect(mk('a').id).toBe(mk('a').id);
    expect(mk('a').id).not.toBe(mk('b').id);
  });
});

describe('sealed principal keys', () => {
  const ring = new MasterKeyRing(backend, mk('m1'));
  const key = seededRandom('k')(32);
  const sealed = ring.seal('alice', 3, key, seededRandom('n'), 1000);

  test('round trip; the sealed form holds no key bytes', () => {
    expect(ring.unseal('alice', sealed)).toEqual(key);
    expect(JSON.stringify(sealed)).not.toContain(hex(key));
    expect(sealed.masterKeyId).toBe(ring.current.id);
  });

  test('swapped to another principal or kvno, or tampered: refused', () => {
    expect(() => ring.unseal('bob', sealed)).toThrow(/principal bob kvno 3: sealed key does not verify/);
    expect(() => ring.unseal('alice', { ...sealed, kvno: 4 })).toThrow(/does not verify/);
    const flipped = (Buffer.from(sealed.sealed, 'hex')[0]! ^ 1).toString(16).padStart(2, '0') + sealed.sealed.slice(2);
    expect(() => ring.unseal('alice', { ...sealed, sealed: flipped })).toThrow(/does not verify/);
    expect(() => ring.unseal('alice', { ...sealed, nonce: '00' })).toThrow(/does not verify/);
  });

  test('sealed under an unknown master key: says which; a relabelled master key id does not verify', () => {
    const other = new MasterKeyRing(backend, mk('m2'));
    expect(() => other.unseal('alice', sealed)).toThrow(new RegExp(`sealed under master key ${ring.current.id}, which is not loaded`));
    const both = new MasterKeyRing(backend, mk('m2'), [mk('m1')]);
    expect(both.unseal('alice', sealed)).toEqual(key);
    expect(() => both.unseal('alice', { ...sealed, masterKeyId: both.current.id })).toThrow(/does not verify/);
  });

  test('reseal moves a key to the current master key', () => {
    const next = new MasterKeyRing(backend, mk('m2'), [mk('m1')]);
    const moved = next.reseal('alice', sealed, systemRandom);
    expect(moved.masterKeyId).toBe(next.current.id);
    expect(new MasterKeyRing(backend, mk('m2')).unseal('alice', moved)).toEqual(key);
  });

  test('store meta check: the right key verifies; another key, or an altered record, does not', () => {
    const meta: StoreMeta = { format: 1, masterKeyId: ring.current.id, masterKeyVersion: 1, masterKeyCheck: ring.makeCheck(systemRandom), createdAt: 0, updatedAt: 0 };
    expect(() => ring.verifyMeta(meta)).not.toThrow();
    expect(() => new MasterKeyRing(backend, mk('m2')).verifyMeta(meta)).toThrow(new RegExp(`sealed under master key ${ring.current.id}, but the loaded master key is`));
    const other = new MasterKeyRing(backend, mk('m2'));
    expect(() => ring.verifyMeta({ ...meta, masterKeyCheck: other.makeCheck(systemRandom) })).toThrow(/does not open the store's check value/);
  });
});

describe('names and networks', () => {
  test.each([
    ['alice', null],
    ['host/gw-1.example.com@CORP', null],
    ['a'.repeat(255), null],
    ['', /1..255 bytes/],
    ['a'.repeat(256), /1..255 bytes, got 256/],
    ['bad name', /may contain only/],
    ['ünï', /may contain only/],
  ])('principal name %j', (name, want) => {
    const p = principalNameProblem(name);
    if (want === null) expect(p).toBeNull();
    else expect(p).toMatch(want);
  });

  test('CIDRs are canonical with host bits cleared; bad ones are named', () => {
    expect(canonicalCidr('10.1.2.3/8')).toEqual({ ok: true, value: '10.0.0.0/8' });
    expect(canonicalCidr('2001:0DB8:0:0::1/32')).toEqual({ ok: true, value: '2001:db8::/32' });
    expect(canonicalCidr('192.0.2.7')).toEqual({ ok: true, value: '192.0.2.7/32' });
    expect(canonicalCidr('10.0.0.0/33')).toMatchObject({ ok: false, error: expect.stringContaining("'10.0.0.0/33'") });
    expect(canonicalCidr('10.0.0/8')).toMatchObject({ ok: false });
  });
});

describe('principal admin', () => {
  let now = 1_000_000;
  const ring = new MasterKeyRing(backend, mk('admin'));
  const admin = (s: KdcStore, graceMs = 60_000) => new PrincipalAdmin(s, ring, { now: () => now, random: systemRandom, graceMs });
  beforeEach(() => {
    now = 1_000_000;
  });

  test('add, then rotate with grace: previous key valid until now + grace, then gone', async () => {
    const s = await store();
    const a = admin(s);
    const added = await a.add('alice', { groups: ['ops', 'dev', 'ops'], allowedNets: ['10.1.2.3/24'] });
    expect(added).toMatchObject({ name: 'alice', kvno: 1, disabled: false, groups: ['dev', 'ops'], allowedNets: ['10.1.2.0/24'] });
    await expect(a.add('alice')).rejects.toThrow(new PrincipalError('exists', 'principal alice already exists'));

    const k1 = (await a.exportKey('alice')).key;
    now += 10;
    const rotated = await a.rotate('alice');
    expect(rotated.kvno).toBe(2);
    expect(rotated.keys.map((k) => [k.kvno, k.validUntil])).toEqual([
      [2, null],
      [1, now + 60_000],
    ]);
    const k2 = (await a.exportKey('alice')).key;
    expect(k2).not.toEqual(k1);

    const watcher = new ChangeWatcher(s);
    const dir = new PrincipalDirectory(s, ring, watcher);
    open.push(dir);
    const within = await dir.lookupForIssue('alice', now + 60_000);
    expect(within!.keys.map((k) => [k.kvno, hex(k.key)])).toEqual([
      [2, hex(k2)],
      [1, hex(k1)],
    ]);
    expect((await dir.lookupForIssue('alice', now + 60_001))!.keys.map((k) => k.kvno)).toEqual([2]);

    // A rotation with no grace drops the old key at once; expired keys are pruned.
    now += 120_000;
    const again = await a.rotate('alice', 0);
    expect(again.keys.map((k) => k.kvno)).toEqual([3]);
  });

  test('a later rotation caps the grace of older keys; grace 0 revokes every previous key', async () => {
    const s = await store();
    const a = admin(s, 60_000);
    await a.add('gus');
    await a.rotate('gus'); // kvno 1 valid until now + 60 s
    now += 1000;
    const r = await a.rotate('gus', 10_000);
    expect(r.keys.map((k) => [k.kvno, k.validUntil])).toEqual([
      [3, null],
      [2, now + 10_000],
      [1, now + 10_000],
    ]);
    now += 1000;
    expect((await a.rotate('gus', 0)).keys.map((k) => k.kvno)).toEqual([4]);
  });

  test('keys kept are bounded, newest first', async () => {
    const s = await store();
    const a = admin(s, 3_600_000);
    await a.add('bob');
    for (let i = 0; i < 12; i++) await a.rotate('bob');
    const p = await a.show('bob');
    expect(p.kvno).toBe(13);
    expect(p.keys.map((k) => k.kvno)).toEqual([13, 12, 11, 10, 9, 8, 7, 6]);
  });

  test('disable, enable, modify, delete, and errors that name the principal', async () => {
    const s = await store();
    const a = admin(s);
    await a.add('carol');
    expect((await a.setDisabled('carol', true)).disabled).toBe(true);
    expect((await a.setDisabled('carol', false)).disabled).toBe(false);
    expect(await a.modify('carol', { groups: ['x'], allowedNets: ['::1/128'] })).toMatchObject({ groups: ['x'], allowedNets: ['::1/128'] });
    expect(await a.modify('carol', { allowedNets: [] })).toMatchObject({ groups: ['x'], allowedNets: [] });
    await expect(a.modify('carol', { allowedNets: ['nope'] })).rejects.toThrow(/allowed net: invalid address in CIDR 'nope'/);
    await expect(a.modify('carol', { groups: ['a b'] })).rejects.toThrow(/group name "a b"/);
    await a.delete('carol');
    await expect(a.show('carol')).rejects.toThrow('no principal named carol');
    await expect(a.delete('carol')).rejects.toThrow('no principal named carol');
    await expect(a.rotate('carol')).rejects.toThrow('no principal named carol');
    await expect(a.add('bad name')).rejects.toThrow(/may contain only/);
  });

  test('show and list never carry key material', async () => {
    const s = await store();
    const a = admin(s);
    await a.add('dave');
    await a.rotate('dave');
    const key = (await a.exportKey('dave')).key;
    const shown = JSON.stringify([await a.show('dave'), await a.list()]);
    expect(shown).not.toContain(hex(key));
    expect(shown).not.toMatch(/sealed|nonce/);
  });

  test('kvno cannot pass 2^32 - 1', async () => {
    const s = await store();
    const a = admin(s);
    await a.add('eve');
    const cur = await s.getPrincipal('eve');
    await s.putPrincipal({ ...cur!.value, kvno: MAX_KVNO, keys: [ring.seal('eve', MAX_KVNO, new Uint8Array(32), systemRandom, 0)] }, cur!.revision);
    await expect(a.rotate('eve')).rejects.toThrow(/kvno 4294967295, the largest there is/);
  });

  test('concurrent rotations from two processes: both land (CAS retry), none lost', async () => {
    const dir = path.join(tmp, 'shared');
    const s1 = await store(dir);
    const s2 = await store(dir);
    await admin(s1).add('frank');
    await Promise.all([admin(s1).rotate('frank'), admin(s2).rotate('frank'), admin(s1).rotate('frank'), admin(s2).setDisabled('frank', true)]);
    const p = await admin(s2).show('frank');
    expect(p.kvno).toBe(4);
    expect(p.disabled).toBe(true);
  });

  test('re-wrap under a new master key, resumable; old keys then no longer needed', async () => {
    const s = await store();
    const a = admin(s);
    for (const n of ['p1', 'p2', 'p3']) await a.add(n);
    await a.rotate('p2');
    const before = (await a.exportKey('p2')).key;
    const next = new MasterKeyRing(backend, mk('next'), [ring.current]);
    const a2 = new PrincipalAdmin(s, next, { now: () => now, random: systemRandom, graceMs: 60_000 });
    expect(await a2.rewrapAll()).toEqual({ principals: 3, keys: 4 });
    expect(await a2.rewrapAll()).toEqual({ principals: 0, keys: 0 });
    const onlyNew = new PrincipalAdmin(s, new MasterKeyRing(backend, mk('next')), { now: () => now, random: systemRandom, graceMs: 0 });
    expect((await onlyNew.exportKey('p2')).key).toEqual(before);
    await expect(a.exportKey('p2')).rejects.toThrow(/not loaded/);
  });
});

describe('directory: a change reaches every KDC process within 1 s', () => {
  const ring = new MasterKeyRing(backend, mk('dir'));

  async function scenario(openStore: () => Promise<KdcStore>) {
    const adminStore = await openStore();
    const kdcStore = await openStore();
    const a = new PrincipalAdmin(adminStore, ring, { now: Date.now, random: systemRandom, graceMs: 0 });
    await a.add('gw');
    const watcher = new ChangeWatcher(kdcStore, { pollMs: 200, maxStalenessMs: 1000 });
    watcher.start();
    open.push({ close: () => watcher.stop() });
    const dir = new PrincipalDirectory(kdcStore, ring, watcher);
    open.push(dir);
    expect((await dir.lookupForIssue('gw', Date.now()))!.disabled).toBe(false);
    expect(await dir.lookupForIssue('nobody', Date.now())).toBeNull();

    const t0 = Date.now();
    await a.setDisabled('gw', true);
    await waitFor('disable to reach the directory', async () => (await dir.lookupForIssue('gw', Date.now()))!.disabled, 1000, 10);
    const t1 = Date.now();
    await a.rotate('gw');
    await waitFor('rotation to reach the directory', async () => (await dir.lookupForIssue('gw', Date.now()))!.keys[0]!.kvno === 2, 1000, 10);
    await a.add('nobody');
    await waitFor('a new principal to replace the cached unknown', async () => (await dir.lookupForIssue('nobody', Date.now())) !== null, 1000, 10);
    return [t1 - t0, Date.now() - t1];
  }

  test('embedded (two handles on one directory)', async () => {
    const dir = path.join(tmp, 'dir');
    const [disableMs, rotateMs] = await scenario(() => store(dir));
    expect(disableMs).toBeLessThan(1000);
    expect(rotateMs).toBeLessThan(2000);
  });

  (redisAvailable() ? describe : describe.skip)('redis', () => {
    let redis: RedisStandalone;
    beforeAll(async () => {
      redis = await startRedisStandalone();
    });
    afterAll(() => redis?.stop());
    test('two clients', async () => {
      const prefix = `dir${Date.now()}`;
      const [disableMs] = await scenario(async () => {
        const s = new RedisKdcStore({ mode: 'standalone', host: redis.host, port: redis.port, keyPrefix: prefix });
        open.push(s);
        return s;
      });
      expect(disableMs).toBeLessThan(1000);
    });
  });

  test('even when no poll runs, a lookup re-reads once the last confirmation is older than the bound', async () => {
    const dir = path.join(tmp, 'stale');
    const s1 = await store(dir);
    const s2 = await store(dir);
    let clock = 0;
    const watcher = new ChangeWatcher(s2, { pollMs: 200, maxStalenessMs: 1000, clock: () => clock }); // never started
    const d = new PrincipalDirectory(s2, ring, watcher);
    open.push(d);
    const a = new PrincipalAdmin(s1, ring, { now: Date.now, random: systemRandom, graceMs: 0 });
    await a.add('g');
    expect((await d.lookupForIssue('g', 0))!.disabled).toBe(false);
    await a.setDisabled('g', true);
    clock = 1000;
    expect((await d.lookupForIssue('g', 0))!.disabled).toBe(false); // still within the bound
    clock = 1001;
    expect((await d.lookupForIssue('g', 0))!.disabled).toBe(true);
  });

  test('returned keys are copies: zeroing them does not hurt the cache', async () => {
    const s = await store();
    const a = new PrincipalAdmin(s, ring, { now: Date.now, random: systemRandom, graceMs: 0 });
    await a.add('h');
    const d = new PrincipalDirectory(s, ring, new ChangeWatcher(s));
    open.push(d);
    const first = await d.lookupForIssue('h', Date.now());
    const copy = new Uint8Array(first!.keys[0]!.key);
    first!.keys[0]!.key.fill(0);
    expect((await d.lookupForIssue('h', Date.now()))!.keys[0]!.key).toEqual(copy);
  });
});
