// Policy: service patterns, rule validation, default deny, groups, wildcards, families, the
// compiled index against a naive reference (property test), and the cache's invalidation.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { seededRandom } from '../../common/crypto/random';
import { parseIpAddress } from '../../common/wire/address';
import { CompiledPolicy, PolicyAdmin, PolicyCache, makeRule, parseServicePattern, serviceMatches } from '../../kdc/policy';
import { openEmbeddedStore } from '../../kdc/store/embedded';
import type { PolicyRule } from '../../kdc/store/store';
import { ChangeWatcher } from '../../kdc/store/watch';

const ip = (s: string) => {
  const r = parseIpAddress(s);
  if (!r.ok) throw new Error(s);
  return r.value;
};
const svc = (addr: string, port: number) => ({ addr: ip(addr), port });
const rnd = seededRandom('policy');

describe('service patterns', () => {
  test.each([
    ['*', '*'],
    ['*:443', '*:443'],
    ['10.0.0.5:*', '10.0.0.5:*'],
    ['10.0.0.5:5432', '10.0.0.5:5432'],
    ['[2001:DB8:0::1]:22', '[2001:db8::1]:22'],
    ['[::ffff:10.0.0.1]:*', '[::ffff:10.0.0.1]:*'],
  ])('%s parses to %s', (text, canonical) => {
    const p = parseServicePattern(text);
    expect(p.ok && p.canonical).toBe(canonical);
  });

  test.each([
    ['10.0.0.5', /expected ADDR:PORT/],
    ['10.0.0.5:0', /port "0" must be 1..65535 or \*/],
    ['10.0.0.5:65536', /must be 1..65535/],
    ['2001:db8::1:22', /brackets/],
    ['[2001:db8::1]22', /expected \[IPv6\]:PORT/],
    ['host.example:80', /"host.example" is not an IP address/],
    ['10.0.0.256:80', /not an IP address/],
  ])('%s is refused: %s', (text, why) => {
    const p = parseServicePattern(text);
    expect(p.ok).toBe(false);
    if (!p.ok) expect(p.error).toMatch(why);
  });

  test('matching: wildcards, exact, and families never cross', () => {
    const m = (pat: string, addr: string, port: number) => {
      const p = parseServicePattern(pat);
      if (!p.ok) throw new Error(p.error);
      return serviceMatches(p.value, svc(addr, port));
    };
    expect(m('*', '10.0.0.1', 1)).toBe(true);
    expect(m('*:443', '2001:db8::1', 443)).toBe(true);
    expect(m('*:443', '10.0.0.1', 444)).toBe(false);
    expect(m('10.0.0.1:*', '10.0.0.1', 9)).toBe(true);
    expect(m('10.0.0.1:*', '10.0.0.2', 9)).toBe(false);
    expect(m('[::ffff:10.0.0.1]:80', '10.0.0.1', 80)).toBe(false);
    expect(m('[2001:db8::1]:80', '2001:db8:0:0:0:0:0:1', 80)).toBe(true);
  });
});

describe('rules', () => {
  test('validation names the field', () => {
    const base = { clients: ['alice'], gateways: ['gw'], services: ['*:22'] };
    expect(() => makeRule({ ...base, clients: [] }, 0, rnd)).toThrow('clients: at least one entry is required');
    expect(() => makeRule({ ...base, clients: ['*'] }, 0, rnd)).toThrow(/clients: wildcards are not allowed/);
    expect(() => makeRule({ ...base, clients: ['group:a b'] }, 0, rnd)).toThrow(/clients: group name "a b"/);
    expect(() => makeRule({ ...base, gateways: ['bad gw'] }, 0, rnd)).toThrow(/gateways: principal name "bad gw"/);
    expect(() => makeRule({ ...base, gateways: ['*'] }, 0, rnd)).toThrow(/gateways: wildcards are not allowed/);
    expect(() => makeRule({ ...base, services: ['x'] }, 0, rnd)).toThrow(/services: service "x"/);
    expect(() => makeRule({ ...base, id: 'has space' }, 0, rnd)).toThrow(/id "has space"/);
    expect(() => makeRule({ ...base, comment: 'x'.repeat(600) }, 0, rnd)).toThrow(/comment: at most 512 bytes/);
  });

  test('canonical and deduplicated; generated ids', () => {
    const r = makeRule({ clients: ['a', 'a', 'group:ops'], gateways: ['gw'], services: ['[2001:DB8::1]:22', '[2001:db8::1]:22'], comment: 'db' }, 7, rnd);
    expect(r).toMatchObject({ clients: ['a', 'group:ops'], gateways: ['gw'], services: ['[2001:db8::1]:22'], createdAt: 7, comment: 'db' });
    expect(r.id).toMatch(/^r-[0-9a-f]{8}$/);
  });

  test('default deny; clients by name or group; gateway and service must match', () => {
    const p = new CompiledPolicy([
      makeRule({ id: 'db', clients: ['alice', 'group:dba'], gateways: ['gw1'], services: ['10.0.0.5:5432'] }, 0, rnd),
      makeRule({ id: 'ssh', clients: ['group:ops'], gateways: ['gw1', 'gw2'], services: ['*:22'] }, 0, rnd),
    ]);
    expect(new CompiledPolicy([]).allows('alice', [], 'gw1', svc('10.0.0.5', 5432))).toBe(false);
    expect(p.match('alice', [], 'gw1', svc('10.0.0.5', 5432))).toBe('db');
    expect(p.allows('bob', ['dba'], 'gw1', svc('10.0.0.5', 5432))).toBe(true);
    expect(p.allows('bob', ['dev'], 'gw1', svc('10.0.0.5', 5432))).toBe(false);
    expect(p.allows('alice', [], 'gw2', svc('10.0.0.5', 5432))).toBe(false);
    expect(p.allows('alice', [], 'gw1', svc('10.0.0.5', 5433))).toBe(false);
    expect(p.allows('alice', [], 'gw1', svc('10.0.0.6', 5432))).toBe(false);
    expect(p.match('carol', ['ops'], 'gw2', svc('2001:db8::9', 22))).toBe('ssh');
    expect(p.allows('carol', ['ops'], 'gw2', svc('2001:db8::9', 23))).toBe(false);
    // A group name is not a principal name and vice versa.
    expect(p.allows('ops', [], 'gw2', svc('10.0.0.1', 22))).toBe(false);
    expect(p.allows('x', ['alice'], 'gw1', svc('10.0.0.5', 5432))).toBe(false);
  });

  test('a stored rule with a damaged service pattern matches nothing', () => {
    const bad: PolicyRule = { id: 'bad', clients: ['a'], gateways: ['g'], services: ['nonsense'], createdAt: 0 };
    expect(new CompiledPolicy([bad]).allows('a', [], 'g', svc('10.0.0.1', 1))).toBe(false);
  });

  test('property: the compiled index agrees with a naive reading of the rules', () => {
    const names = ['a', 'b', 'c'];
    const groups = ['g1', 'g2'];
    const addrs = ['10.0.0.1', '10.0.0.2', '2001:db8::1'];
    const pattern = fc.oneof(
      fc.constant('*'),
      fc.constantFrom(1, 2).map((p) => `*:${p}`),
      fc.constantFrom(...addrs).map((a) => `${a.includes(':') ? `[${a}]` : a}:*`),
      fc.tuple(fc.constantFrom(...addrs), fc.constantFrom(1, 2)).map(([a, p]) => `${a.includes(':') ? `[${a}]` : a}:${p}`),
    );
    const ruleArb = fc.record({
      clients: fc.uniqueArray(fc.constantFrom(...names, ...groups.map((g) => `group:${g}`)), { minLength: 1 }),
      gateways: fc.uniqueArray(fc.constantFrom('gw1', 'gw2'), { minLength: 1 }),
      services: fc.array(pattern, { minLength: 1, maxLength: 3 }),
    });
    const request = fc.record({
      client: fc.constantFrom(...names),
      groups: fc.subarray(groups),
      gateway: fc.constantFrom('gw1', 'gw2', 'gw3'),
      addr: fc.constantFrom(...addrs),
      port: fc.constantFrom(1, 2, 3),
    });
    fc.assert(
      fc.property(fc.array(ruleArb, { maxLength: 5 }), fc.array(request, { minLength: 1, maxLength: 10 }), (inputs, reqs) => {
        const rules = inputs.map((r, i) => makeRule({ ...r, id: `r${i}` }, 0, rnd));
        const compiled = new CompiledPolicy(rules);
        for (const q of reqs) {
          const s = svc(q.addr, q.port);
          const naive = rules.some(
            (r) =>
              r.gateways.includes(q.gateway) &&
              (r.clients.includes(q.client) || q.groups.some((g) => r.clients.includes(`group:${g}`))) &&
              r.services.some((p) => {
                const parsed = parseServicePattern(p);
                return parsed.ok && serviceMatches(parsed.value, s);
              }),
          );
          expect(compiled.allows(q.client, q.groups, q.gateway, s)).toBe(naive);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('admin and cache', () => {
  let tmp = '';
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-policy-'));
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('add, duplicate id, remove; a KDC process sees each change within 1 s', async () => {
    const adminStore = await openEmbeddedStore({ dir: tmp });
    const kdcStore = await openEmbeddedStore({ dir: tmp });
    const admin = new PolicyAdmin(adminStore, { now: () => 5, random: rnd });
    const watcher = new ChangeWatcher(kdcStore, { pollMs: 100 });
    watcher.start();
    const cache = new PolicyCache(kdcStore, watcher);
    try {
      const check = await cache.policy(0);
      expect(check('alice', [], 'gw', svc('10.0.0.5', 22))).toBe(false);
      await admin.add({ id: 'ssh', clients: ['alice'], gateways: ['gw'], services: ['*:22'] });
      await expect(admin.add({ id: 'ssh', clients: ['x'], gateways: ['gw'], services: ['*'] })).rejects.toThrow('policy rule ssh already exists');
      const t0 = Date.now();
      for (;;) {
        if ((await cache.policy(0))('alice', [], 'gw', svc('10.0.0.5', 22))) break;
        expect(Date.now() - t0).toBeLessThan(1000);
        await new Promise((r) => setTimeout(r, 10));
      }
      expect((await admin.list()).map((r) => r.id)).toEqual(['ssh']);
      await admin.remove('ssh');
      await expect(admin.remove('ssh')).rejects.toThrow('no policy rule with id ssh');
      const t1 = Date.now();
      while ((await cache.policy(0))('alice', [], 'gw', svc('10.0.0.5', 22))) {
        expect(Date.now() - t1).toBeLessThan(1000);
        await new Promise((r) => setTimeout(r, 10));
      }
    } finally {
      watcher.stop();
      cache.close();
      await adminStore.close();
      await kdcStore.close();
    }
  });
});
