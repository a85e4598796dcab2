// `ciphergate kdc-admin` end to end: in process through runKdcAdmin (embedded and Redis
// stores), key files, master-key rotation, usage errors; and once as the built binary.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getBackend } from '../../common/crypto';
import { systemRandom } from '../../common/crypto/random';
import { type AdminIo, runKdcAdmin } from '../../cli/commands/kdc-admin';
import { UsageError } from '../../cli/command';
import { loadKdcConfig } from '../../kdc/config';
import { SecretFileError, encodeKeyFile, loadKeyFile, parseKeyFile, writeKeyFile } from '../../kdc/key-file';
import { loadMasterKeyRing } from '../../kdc/master-key';
import { PrincipalDirectory } from '../../kdc/principals';
import { openStore } from '../../kdc/store';
import { ChangeWatcher } from '../../kdc/store/watch';
import { redisAvailable, startRedisStandalone, type RedisStandalone } from '../helpers/redis';

const ROOT = path.resolve(__dirname, '../..');
let tmp = '';
let out: string[] = [];
const io = (env: NodeJS.ProcessEnv = {}): AdminIo => ({ out: (t) => out.push(t), env, now: Date.now, random: systemRandom, user: 'tester' });

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-admin-'));
  out = [];
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

function writeConfig(cfg: object, name = 'kdc.json'): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, JSON.stringify(cfg));
  return file;
}

const embeddedConfig = () => writeConfig({ store: { embedded: { path: 'store' } }, masterKey: { file: 'master.key' }, graceMs: 60_000 });

async function admin(config: string, ...argv: string[]): Promise<string> {
  out = [];
  expect(await runKdcAdmin(['--config', config, ...argv], io())).toBe(0);
  return out.join('\n');
}
const adminJson = async (config: string, ...argv: string[]) => JSON.parse(await admin(config, '--json', ...argv)) as Record<string, unknown>;

describe('kdc-admin on the embedded store', () => {
  test('init creates the stash (0600) and initializes the store once', async () => {
    const cfg = embeddedConfig();
    const r = await adminJson(cfg, 'init');
    expect(r).toMatchObject({ stashCreated: true, masterKeyId: expect.stringMatching(/^[0-9a-f]{16}$/) });
    expect(fs.statSync(path.join(tmp, 'master.key')).mode & 0o777).toBe(0o600);
    await expect(runKdcAdmin(['--config', cfg, 'init'], io())).rejects.toThrow(`is already initialized (master key ${r.masterKeyId as string})`);
  });

  test('commands before init say to run init', async () => {
    const cfg = embeddedConfig();
    fs.writeFileSync(path.join(tmp, 'master.key'), '11'.repeat(32), { mode: 0o600 });
    await expect(runKdcAdmin(['--config', cfg, 'principal', 'list'], io())).rejects.toThrow(/is not initialized; run `ciphergate kdc-admin init`/);
  });

  test('principals: add, show, list, rotate, disable, enable, modify, delete', async () => {
    const cfg = embeddedConfig();
    await admin(cfg, 'init');
    const added = await adminJson(cfg, 'principal', 'add', 'alice', '--group', 'ops', '--group=dev,qa', '--allow-net', '10.1.2.0/24');
    expect(added).toMatchObject({ name: 'alice', kvno: 1, groups: ['dev', 'ops', 'qa'], allowedNets: ['10.1.2.0/24'], disabled: false });
    await admin(cfg, 'principal', 'add', 'gw1.example', '--disabled');
    expect(await admin(cfg, 'principal', 'show', 'alice')).toMatch(/^principal {2}alice\nkvno {7}1\ndisabled {3}no\ngroups {5}dev, ops, qa\nallowed {4}10\.1\.2\.0\/24/);
    expect(await admin(cfg, 'principal', 'list')).toMatch(/^NAME +KVNO +DISABLED +GROUPS +ALLOWED\nalice +1 +no +dev,ops,qa +10\.1\.2\.0\/24\ngw1\.example +1 +yes +- +any$/);

    const rotated = await adminJson(cfg, 'principal', 'rotate', 'alice');
    expect(rotated.kvno).toBe(2);
    expect((rotated.keys as { validUntil: number | null }[])[1]!.validUntil).toBeGreaterThan(Date.now() + 50_000);
    // Grace 0 (compromise): every previous key goes at once.
    expect((await adminJson(cfg, 'principal', 'rotate', 'alice', '--grace-ms', '0')).keys).toHaveLength(1);
    expect(await admin(cfg, 'principal', 'show', 'alice')).toMatch(/kvno 3 current/);

    expect((await adminJson(cfg, 'principal', 'enable', 'gw1.example')).disabled).toBe(false);
    expect((await adminJson(cfg, 'principal', 'disable', 'gw1.example')).disabled).toBe(true);
    expect(await adminJson(cfg, 'principal', 'modify', 'alice', '--clear-groups', '--allow-net', '2001:db8::1/64')).toMatchObject({ groups: [], allowedNets: ['2001:db8::/64'] });
    expect(await admin(cfg, 'principal', 'delete', 'gw1.example')).toBe('deleted principal gw1.example');
    expect(await adminJson(cfg, 'principal', 'list')).toHaveLength(1);
    await expect(runKdcAdmin(['--config', cfg, 'principal', 'show', 'gw1.example'], io())).rejects.toThrow('no principal named gw1.example');
    await expect(runKdcAdmin(['--config', cfg, 'principal', 'add', 'alice'], io())).rejects.toThrow('principal alice already exists');
  });

  test('export writes a 0600 key file that the loader accepts and that holds the KDC view of the key', async () => {
    const cfg = embeddedConfig();
    await admin(cfg, 'init');
    await admin(cfg, 'principal', 'add', 'agent1');
    await admin(cfg, 'principal', 'rotate', 'agent1');
    const file = path.join(tmp, 'agent1.key');
    expect(await admin(cfg, 'principal', 'export', 'agent1', '--out', file, '--kdc', '10.0.0.5:7391,[2001:db8::5]:7391')).toBe(`wrote key file ${file} for agent1 kvno 2 (mode 0600)`);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const kf = loadKeyFile(file);
    expect(kf).toMatchObject({ principal: 'agent1', kvno: 2, kdc: ['10.0.0.5:7391', '[2001:db8::5]:7391'] });

    // The KDC's directory unseals the same key.
    const config = loadKdcConfig(cfg);
    const store = await openStore(config.store);
    const dir = new PrincipalDirectory(store, loadMasterKeyRing(getBackend('node'), config.masterKey), new ChangeWatcher(store));
    expect((await dir.lookupForIssue('agent1', Date.now()))!.keys[0]!.key).toEqual(kf.key);
    dir.close();
    await store.close();

    await expect(runKdcAdmin(['--config', cfg, 'principal', 'export', 'agent1', '--out', file], io())).rejects.toThrow(`key file ${file}: already exists (not overwritten)`);
    await admin(cfg, 'principal', 'export', 'agent1', '--out', file, '--force');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    // Nothing but the key file ever shows key bytes.
    const shown = await admin(cfg, '--json', 'principal', 'show', 'agent1');
    expect(shown).not.toContain(Buffer.from(kf.key).toString('hex'));
  });

  test('policy add, list, remove; audit tail shows every admin action', async () => {
    const cfg = embeddedConfig();
    await admin(cfg, 'init');
    const rule = await adminJson(cfg, 'policy', 'add', '--client', 'alice,group:ops', '--gateway', 'gw1', '--service', '10.0.0.5:5432', '--service', '[2001:db8::5]:*', '--id', 'db', '--comment', 'payroll db');
    expect(rule).toMatchObject({ id: 'db', clients: ['alice', 'group:ops'], gateways: ['gw1'], services: ['10.0.0.5:5432', '[2001:db8::5]:*'], comment: 'payroll db' });
    await expect(runKdcAdmin(['--config', cfg, 'policy', 'add', '--client', 'x', '--gateway', 'g', '--service', '*', '--id', 'db'], io())).rejects.toThrow('policy rule db already exists');
    expect(await admin(cfg, 'policy', 'list')).toMatch(/^ID +CLIENTS +GATEWAYS +SERVICES +COMMENT\ndb +alice,group:ops +gw1 +10\.0\.0\.5:5432,\[2001:db8::5\]:\* +payroll db$/);
    expect(await admin(cfg, 'policy', 'remove', 'db')).toBe('removed policy rule db');
    expect(await admin(cfg, 'policy', 'list')).toBe('no policy rules (everything is denied)');
    await admin(cfg, 'principal', 'add', 'bob');

    const tail = (await admin(cfg, 'audit', 'tail', '-n', '3')).split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(tail.map((e) => e.action)).toEqual(['policy.add', 'policy.remove', 'principal.add']);
    expect(tail[2]).toMatchObject({ type: 'admin', by: 'tester', principal: 'bob', kvno: 1 });
    expect(((await adminJson(cfg, 'audit', 'tail')) as unknown as unknown[]).length).toBe(4); // init too
  });

  test('master key rotation: re-seal, record, then the old key alone is refused with a clear message', async () => {
    const cfg = embeddedConfig();
    const init = await adminJson(cfg, 'init');
    for (const n of ['a', 'b']) await admin(cfg, 'principal', 'add', n);
    await admin(cfg, 'principal', 'rotate', 'b');
    const keyA = (await exportKey(cfg, 'a')).key;

    const newKey = path.join(tmp, 'master2.key');
    const r = await adminJson(cfg, 'master-key', 'rotate', '--new-key-file', newKey);
    expect(r).toMatchObject({ from: init.masterKeyId, version: 2, principals: 2, keys: 3, created: true });
    expect(fs.statSync(newKey).mode & 0o777).toBe(0o600);

    // The old config no longer matches the store, and says why.
    await expect(runKdcAdmin(['--config', cfg, 'principal', 'list'], io())).rejects.toThrow(new RegExp(`sealed under master key ${r.to as string}, but the loaded master key is ${init.masterKeyId as string}`));
    // During the roll-out: new key current, old one additional.
    const during = writeConfig({ store: { embedded: { path: 'store' } }, masterKey: { file: 'master2.key', additional: [{ file: 'master.key' }] } }, 'during.json');
    const status = await adminJson(during, 'master-key', 'status');
    expect(status).toMatchObject({ masterKeyId: r.to, masterKeyVersion: 2, keysPerMasterKey: { [r.to as string]: 3 } });
    const after = writeConfig({ store: { embedded: { path: 'store' } }, masterKey: { file: 'master2.key' } }, 'after.json');
    expect((await exportKey(after, 'a')).key).toEqual(keyA);
    // Running it again is harmless.
    expect(await adminJson(after, 'master-key', 'rotate', '--new-key-file', newKey)).toMatchObject({ principals: 0, version: 2 });
  });

  async function exportKey(cfg: string, name: string) {
    const file = path.join(tmp, `${name}-${Math.random().toString(16).slice(2)}.key`);
    await admin(cfg, 'principal', 'export', name, '--out', file);
    return loadKeyFile(file);
  }

  test('master key from the environment', async () => {
    const cfg = writeConfig({ store: { embedded: { path: 'envstore' } }, masterKey: { env: 'CG_MK' } });
    const env = { CG_MK: 'ab'.repeat(32) };
    await expect(runKdcAdmin(['--config', cfg, 'init'], io())).rejects.toThrow('environment variable CG_MK is not set');
    out = [];
    expect(await runKdcAdmin(['--config', cfg, 'init'], io(env))).toBe(0);
    expect(await runKdcAdmin(['--config', cfg, 'principal', 'add', 'x'], io(env))).toBe(0);
    expect(fs.existsSync(path.join(tmp, 'master.key'))).toBe(false);
  });

  test('usage errors name the problem (exit 2) before anything is opened', async () => {
    const missing = path.join(tmp, 'missing.json');
    const usage = async (argv: string[], msg: string | RegExp) => {
      const e = await runKdcAdmin(['--config', missing, ...argv], io()).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(UsageError);
      expect((e as Error).message).toMatch(msg);
    };
    await usage([], 'missing command (init, principal, policy, audit, master-key)');
    await usage(['frob'], 'unknown command "frob"');
    await usage(['principal'], 'principal: missing subcommand');
    await usage(['principal', 'add'], 'principal add: missing NAME');
    await usage(['principal', 'add', 'a', 'b'], 'principal add: unexpected argument "b"');
    await usage(['principal', 'add', 'bad name'], /principal add: principal name "bad name" may contain only/);
    await usage(['principal', 'add', 'a', '--allow-net', '10.0.0.0/40'], /--allow-net: invalid prefix length in CIDR '10.0.0.0\/40'/);
    await usage(['principal', 'add', 'a', '--group', 'x,'], /--group: empty entry/);
    await usage(['principal', 'add', 'a', '--grace-ms', '5'], 'principal add does not take --grace-ms');
    await usage(['principal', 'rotate', 'a', '--grace-ms', '-5'], /--grace-ms: expected an integer/);
    await usage(['principal', 'export', 'a'], 'principal export: --out FILE is required');
    await usage(['principal', 'export', 'a', '--out', 'f', '--kdc', 'nohost'], /--kdc: "nohost": expected host:port/);
    await usage(['principal', 'modify', 'a'], /nothing to change/);
    await usage(['policy', 'add', '--client', 'a', '--gateway', 'g'], 'policy add: --service is required');
    await usage(['policy', 'add', '--client', 'a', '--gateway', 'g', '--service', '1.2.3.4:0'], /policy add: services: service "1.2.3.4:0": port "0" must be 1..65535/);
    await usage(['audit', 'tail', '-n', '0'], /--count: expected an integer 1..100000/);
    await usage(['master-key', 'rotate'], '--new-key-file FILE is required');
    await usage(['principal', 'list', '--bogus'], 'unknown option --bogus');
  });

  test('a missing or invalid config file is a failure that names the file and field', async () => {
    await expect(runKdcAdmin(['--config', path.join(tmp, 'nope.json'), 'principal', 'list'], io())).rejects.toThrow(/config .*nope\.json: no such file/);
    const bad = writeConfig({ store: { redis: { mode: 'sentinel', masterName: 'm', sentinels: [{ host: 'a', port: 99999 }] } } }, 'bad.json');
    await expect(runKdcAdmin(['--config', bad, 'principal', 'list'], io())).rejects.toThrow('store.redis.sentinels[0].port: expected integer 1..65535');
  });
});

(redisAvailable() ? describe : describe.skip)('kdc-admin on Redis', () => {
  let redis: RedisStandalone;
  beforeAll(async () => {
    redis = await startRedisStandalone();
  });
  afterAll(() => redis?.stop());

  test('init, principal, policy and audit through a Redis store', async () => {
    const cfg = writeConfig({ store: { redis: { mode: 'standalone', host: redis.host, port: redis.port, keyPrefix: 'admintest' } }, masterKey: { file: 'mk' } });
    await admin(cfg, 'init');
    await admin(cfg, 'principal', 'add', 'gw', '--group', 'gws');
    await admin(cfg, 'policy', 'add', '--client', 'group:staff', '--gateway', 'gw', '--service', '*:443', '--id', 'web');
    expect((await adminJson(cfg, 'principal', 'rotate', 'gw')).kvno).toBe(2);
    expect(((await adminJson(cfg, 'audit', 'tail', '-n', '10')) as unknown as { event: { action: string } }[]).map((e) => e.event.action)).toEqual(['init', 'principal.add', 'policy.add', 'principal.rotate']);
  });

  test('Redis down: a failure that names the store, quickly', async () => {
    const cfg = writeConfig({ store: { redis: { mode: 'standalone', host: '127.0.0.1', port: 1, timeoutMs: 300 } }, masterKey: { file: 'mk2' } });
    fs.writeFileSync(path.join(tmp, 'mk2'), '22'.repeat(32), { mode: 0o600 });
    const t0 = Date.now();
    await expect(runKdcAdmin(['--config', cfg, 'principal', 'list'], io())).rejects.toThrow(/store unavailable: redis 127\.0\.0\.1:1: getMeta: not connected within 300 ms/);
    expect(Date.now() - t0).toBeLessThan(1500);
  });
});

describe('key files', () => {
  const good = { principal: 'gw1', kvno: 7, key: new Uint8Array(32).fill(9), kdc: ['kdc1:7391'] };

  test('round trip; written 0600 even under a permissive umask', () => {
    const file = path.join(tmp, 'k.json');
    const old = process.umask(0);
    try {
      writeKeyFile(file, good);
    } finally {
      process.umask(old);
    }
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(loadKeyFile(file)).toEqual(good);
  });

  test.each([
    [{ format: 'x' }, 'format: expected "ciphergate-key/1"'],
    [{ principal: 'a b' }, 'principal: principal name "a b" may contain only'],
    [{ kvno: 0 }, 'kvno: expected integer 1..4294967295'],
    [{ key: 'abcd' }, 'key: expected 64 hex digits (32 bytes)'],
    [{ kdc: ['x'] }, 'kdc[0]: "x": expected host:port'],
    [{ kdc: 'kdc1:7391' }, 'kdc: expected an array'],
    [{ extra: 1 }, 'extra: unknown field'],
  ])('%j is refused: %s', (patch, msg) => {
    const text = JSON.stringify({ ...JSON.parse(encodeKeyFile(good)), ...patch });
    expect(() => parseKeyFile(text, 'f.json')).toThrow(`key file f.json: ${msg}`);
  });

  test('not JSON, too open, missing', () => {
    expect(() => parseKeyFile('{', 'f')).toThrow(/key file f: not JSON/);
    const file = path.join(tmp, 'open.json');
    fs.writeFileSync(file, encodeKeyFile(good), { mode: 0o640 });
    fs.chmodSync(file, 0o640);
    expect(() => loadKeyFile(file)).toThrow(new SecretFileError(`key file ${file}: mode 0640 lets group or others read it; run chmod 600 ${file}`));
    expect(() => loadKeyFile(path.join(tmp, 'none'))).toThrow(/no such file/);
  });
});

describe('the built binary', () => {
  const bin = path.join(ROOT, 'dist/cli/ciphergate.js');
  const built = fs.existsSync(bin) && fs.existsSync(path.join(ROOT, 'dist/cli/commands/kdc-admin.js'));
  if (!built) console.warn(`skipping the spawned kdc-admin test: ${bin} or dist/cli/commands/kdc-admin.js is missing; run \`npx tsc -p .\` first`);
  (built ? test : test.skip)('node dist/cli/ciphergate.js kdc-admin: exit codes 0, 1, 2 and JSON output', () => {
    const cfg = embeddedConfig();
    const run = (...argv: string[]) => spawnSync(process.execPath, [bin, 'kdc-admin', '--config', cfg, ...argv], { encoding: 'utf8', timeout: 20_000 });
    const init = run('init', '--json');
    expect(init.stderr).toBe('');
    expect(init.status).toBe(0);
    expect(JSON.parse(init.stdout)).toMatchObject({ stashCreated: true });
    const add = run('principal', 'add', 'alice', '--json');
    expect(add.status).toBe(0);
    expect(JSON.parse(add.stdout)).toMatchObject({ name: 'alice', kvno: 1 });
    const dup = run('principal', 'add', 'alice');
    expect(dup.status).toBe(1);
    expect(dup.stderr).toBe('ciphergate kdc-admin: principal alice already exists\n');
    const bad = run('principal', 'add');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^ciphergate kdc-admin: principal add: missing NAME\n\nusage: ciphergate kdc-admin/);
    const help = spawnSync(process.execPath, [bin, 'kdc-admin', '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/principal export NAME --out FILE/);
  });
});
