// deploy/: the example configs load with the real validators and agree with the systemd units
// (config paths, runtime and state directories, ports); the units pass `systemd-analyze
// verify` and a security exposure bound, and keep the hardening the daemons need.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseAgentConfig } from '../../client-agent/config';
import type { LoadedKey } from '../../common/config/daemon';
import { parseGatewayConfig } from '../../gateway/config';
import { validateKdcConfig } from '../../kdc/config';

const DEPLOY = path.join(__dirname, '..', '..', 'deploy');
const UNITS = ['gateway', 'agent', 'kdc'] as const;
const example = (name: string): unknown => JSON.parse(fs.readFileSync(path.join(DEPLOY, 'examples', name), 'utf8'));
const unitText = (u: string) => fs.readFileSync(path.join(DEPLOY, 'systemd', `ciphergate-${u}.service`), 'utf8');

/** Directive values of a unit file (comments skipped), every occurrence. */
function directives(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) out.set(m[1] as string, [...(out.get(m[1] as string) ?? []), m[2] as string]);
  }
  return out;
}
const one = (d: Map<string, string[]>, k: string) => d.get(k)?.join(' ');

const keyOf = (principal: string, kvno: number): LoadedKey => ({ principal, kvno, key: new Uint8Array(32).fill(kvno), kdc: ['10.0.3.2:7391'] });
const KEYS: Record<string, LoadedKey> = {
  '/etc/ciphergate/gateway.key': keyOf('gw1.example', 1),
  '/etc/ciphergate/agent.key': keyOf('client1.example', 2),
  '/etc/ciphergate/agent.previous.key': keyOf('client1.example', 1),
};
const readKey = (file: string) => {
  const k = KEYS[file];
  if (!k) throw new Error(`unexpected key file ${file}`);
  return k;
};

describe('example configs', () => {
  test('gateway.json and gateway-bridge.json validate', () => {
    const router = parseGatewayConfig(example('gateway.json'), '/etc/ciphergate', readKey);
    expect(router).toMatchObject({ principal: 'gw1.example', mode: 'router', nfqueue: { queue: 0, workers: 2 }, dataInterfaces: ['eth1', 'eth2'] });
    expect(router.services.map((s) => s.endpoint)).toEqual(['10.0.2.0/24:80', '10.0.2.5:5432', '[fd00:2::5]:6379']);
    const bridge = parseGatewayConfig(example('gateway-bridge.json'), '/etc/ciphergate', readKey);
    expect(bridge).toMatchObject({ mode: 'bridge', nfqueue: null, dataInterfaces: ['eth1', 'eth2'], kdc: { endpoints: [{ host: '10.0.3.2', port: 7391 }] } });
  });

  test('agent.json validates, with a previous key for rotation, and listens where the gateway connects', () => {
    const agent = parseAgentConfig(example('agent.json'), '/etc/ciphergate', readKey);
    expect(agent.keys.map((k) => k.kvno)).toEqual([2, 1]);
    expect(agent.destinations.map((d) => d.meta)).toEqual([{ mode: 'require', gateway: 'gw1.example' }, { mode: 'require', gateway: 'gw1.example' }, { mode: 'opportunistic' }]);
    const gateway = parseGatewayConfig(example('gateway.json'), '/etc/ciphergate', readKey);
    expect(agent.listen.port).toBe(gateway.agentPort);
    // Both may run on one lab host: their NFQUEUE numbers and metrics ports must not collide.
    const gwQueues = [gateway.nfqueue!.queue, gateway.nfqueue!.queue + gateway.nfqueue!.workers - 1];
    expect(agent.nfqueue.queue < gwQueues[0]! || agent.nfqueue.queue > gwQueues[1]!).toBe(true);
    expect(agent.metrics?.port).not.toBe(gateway.metrics?.port);
  });

  test('kdc.json and kdc-redis.json validate; the embedded store lives in the unit StateDirectory', () => {
    const kdc = validateKdcConfig(example('kdc.json'), { baseDir: '/etc/ciphergate', env: {} });
    const state = one(directives(unitText('kdc')), 'StateDirectory');
    expect(kdc.store).toMatchObject({ type: 'embedded', dir: `/var/lib/${state}` });
    expect(kdc.masterKey.current).toEqual({ file: '/etc/ciphergate/kdc/master.key' });
    const redis = validateKdcConfig(example('kdc-redis.json'), { baseDir: '/etc/ciphergate', env: { CIPHERGATE_REDIS_PASSWORD: 'x' } });
    expect(redis.store).toMatchObject({ type: 'redis', mode: 'sentinel', password: 'x', waitForReplicas: 1 });
  });

  test('each unit starts its daemon with the example config installed under /etc/ciphergate', () => {
    for (const u of UNITS) {
      expect(one(directives(unitText(u)), 'ExecStart')).toBe(`/usr/bin/ciphergate ${u} --config /etc/ciphergate/${u}.json`);
      expect(fs.existsSync(path.join(DEPLOY, 'examples', `${u}.json`))).toBe(true);
    }
    // Control sockets live in the datapath units' RuntimeDirectory.
    for (const [u, file] of [['gateway', 'gateway.json'], ['agent', 'agent.json']] as const) {
      const control = (example(file) as { control: string }).control;
      expect(path.dirname(control)).toBe(`/run/${one(directives(unitText(u)), 'RuntimeDirectory')}`);
    }
  });
});

describe('systemd units', () => {
  test('datapath daemons get exactly CAP_NET_ADMIN and CAP_NET_RAW, the KDC none', () => {
    for (const u of ['gateway', 'agent']) {
      const d = directives(unitText(u));
      expect(one(d, 'CapabilityBoundingSet')).toBe('CAP_NET_ADMIN CAP_NET_RAW');
      expect(one(d, 'AmbientCapabilities')).toBe('CAP_NET_ADMIN CAP_NET_RAW');
      expect(one(d, 'RestrictAddressFamilies')).toContain('AF_NETLINK');
      expect(one(d, 'ExecReload')).toBe('/bin/kill -HUP $MAINPID');
      // A killed daemon cannot install its stopped rules itself (test/e2e/fail-closed.test.ts).
      expect(one(d, 'ExecStopPost')).toBe(`/usr/bin/ciphergate ${u} --config /etc/ciphergate/${u}.json --closed-rules`);
    }
    expect(one(directives(unitText('gateway')), 'RestrictAddressFamilies')).toContain('AF_PACKET');
    expect(one(directives(unitText('agent')), 'RestrictAddressFamilies')).not.toContain('AF_PACKET');
    const kdc = directives(unitText('kdc'));
    expect([one(kdc, 'CapabilityBoundingSet'), one(kdc, 'AmbientCapabilities')]).toEqual(['', '']);
    expect(one(kdc, 'RestrictAddressFamilies')).toBe('AF_UNIX AF_INET AF_INET6');
    // The KDC has no SIGHUP handler: a reload signal would end it.
    expect(kdc.has('ExecReload')).toBe(false);
  });

  test('the common hardening is there, and MemoryDenyWriteExecute is not (V8 JIT)', () => {
    for (const u of UNITS) {
      const d = directives(unitText(u));
      for (const [k, v] of Object.entries({
        NoNewPrivileges: 'yes',
        ProtectSystem: 'strict',
        ProtectHome: 'yes',
        PrivateTmp: 'yes',
        PrivateDevices: 'yes',
        ProtectKernelTunables: 'yes',
        ProtectKernelModules: 'yes',
        ProtectControlGroups: 'yes',
        LockPersonality: 'yes',
        Restart: 'on-failure',
        User: 'ciphergate',
      })) {
        expect([u, k, one(d, k)]).toEqual([u, k, v]);
      }
      expect(d.get('SystemCallFilter')?.[0]).toBe('@system-service');
      expect(d.has('MemoryDenyWriteExecute')).toBe(false);
      expect(unitText(u)).toMatch(/MemoryDenyWriteExecute= must NOT be set: node's V8 JIT/);
      expect(d.has('PrivateNetwork')).toBe(false);
    }
  });

  test('modules-load.d names the modules the start-up checks ask for', () => {
    const mods = fs.readFileSync(path.join(DEPLOY, 'modules-load.d', 'ciphergate.conf'), 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    for (const m of mods) expect(m).toMatch(/^[a-zA-Z0-9_]+$/);
    expect(mods).toEqual(expect.arrayContaining(['nfnetlink_queue', 'nf_conntrack', 'nf_tables', 'nft_queue', 'xt_NFQUEUE', 'af_packet']));
  });

  const analyze = spawnSync('systemd-analyze', ['--version']).status === 0;
  const maybe = analyze ? describe : describe.skip;
  maybe('systemd-analyze', () => {
    let dir: string;
    beforeAll(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-units-'));
      // An executable stands in for /usr/bin/ciphergate, which is not installed here, so that
      // verify checks everything else (it rejects a missing ExecStart binary).
      fs.writeFileSync(path.join(dir, 'ciphergate'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    });
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
    const install = (name: string, text: string) => {
      const file = path.join(dir, name);
      fs.writeFileSync(file, text.replaceAll('/usr/bin/ciphergate', path.join(dir, 'ciphergate')));
      return file;
    };
    const verify = (file: string) => spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8', env: { ...process.env, SYSTEMD_LOG_COLOR: '0' } });

    test.each(UNITS)('ciphergate-%s.service verifies clean and its exposure is at most 2.5', (u) => {
      const file = install(`ciphergate-${u}.service`, unitText(u));
      const r = verify(file);
      expect([r.status, r.stderr.trim(), r.stdout.trim()]).toEqual([0, '', '']);
      const sec = spawnSync('systemd-analyze', ['security', '--offline=yes', '--threshold=25', file], { encoding: 'utf8' });
      expect([sec.status, sec.stdout.match(/Overall exposure level.*/)?.[0]]).toEqual([0, expect.stringMatching(/: [0-2]\.\d/)]);
    });

    test('the lint is real: a mistyped directive and a bad value are reported, an absent binary too', () => {
      const broken = unitText('gateway').replace('ProtectSystem=strict', 'ProtectSystm=strict').replace('RestrictAddressFamilies=AF_UNIX', 'RestrictAddressFamilies=AF_FOO AF_UNIX');
      const r = verify(install('ciphergate-broken.service', broken));
      expect(r.stderr).toMatch(/Unknown key 'ProtectSystm'/);
      expect(r.stderr).toMatch(/Failed to parse address family, ignoring: AF_FOO/);
      const original = path.join(dir, 'ciphergate-original.service');
      fs.writeFileSync(original, unitText('kdc'));
      if (!fs.existsSync('/usr/bin/ciphergate')) expect(verify(original).stderr).toMatch(/Command \/usr\/bin\/ciphergate is not executable/);
    });
  });
});
