// The KDC service end to end over real TCP: kdc-admin-populated stores (embedded, and a real
// redis-server), the real PrincipalDirectory/PolicyCache/ChangeWatcher, real sockets.
import { nodeBackend } from '../../common/crypto/node-backend';
import { encodeFrame } from '../../common/protocol/framing';
import { KDC_ERROR_NAMES, KdcErrorCode, KdcType, type KdcMessage } from '../../common/protocol/kdc-messages';
import { openTicket } from '../../common/protocol/ticket';
import type { KeyFile } from '../../kdc/key-file';
import type { KdcInstance } from '../../kdc/server';
import { type RedisStandalone, redisAvailable, startRedisStandalone } from '../helpers/redis';
import { type Lab, RawConn, SERVICE, ask, decodeAnswer, endpointOf, httpGet, makeLab, request } from './service.fixture';

const hasRedis = redisAvailable();
if (!hasRedis) console.warn('redis-server not found: the Redis half of the KDC service suite is skipped');

const code = (m: KdcMessage): string => (m.type === KdcType.IssueError ? KDC_ERROR_NAMES[m.code] : m.type === KdcType.IssueResponse ? 'ok' : 'request?');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

let redis: RedisStandalone | null = null;
beforeAll(async () => {
  if (hasRedis) redis = await startRedisStandalone();
});
afterAll(async () => {
  await redis?.stop();
});

const kinds = hasRedis ? (['embedded', 'redis'] as const) : (['embedded'] as const);

describe.each(kinds)('KDC service over TCP (%s store)', (kind) => {
  let lab: Lab;
  let kdc: KdcInstance;
  let ep: string;
  let gw1: KeyFile;
  let alice: KeyFile;

  beforeAll(async () => {
    lab = await makeLab(kind === 'embedded' ? { kind } : { kind, redis: redis as RedisStandalone });
    gw1 = await lab.key('gw1');
    alice = await lab.key('alice');
    kdc = await lab.start();
    ep = endpointOf(kdc);
  });
  afterAll(async () => {
    await lab.cleanup();
  });

  test('issues two tickets with one session key, bound to the request', async () => {
    const m = await ask(ep, request(gw1, 'alice'));
    if (m.type !== KdcType.IssueResponse) throw new Error(`refused: ${code(m)}`);
    const g = openTicket(nodeBackend, m.gatewayTicket, 'gw1', [gw1]);
    const c = openTicket(nodeBackend, m.clientTicket, 'alice', [alice]);
    if (!g.ok || !c.ok) throw new Error('tickets do not open');
    expect(g.value.sessionKey).toEqual(c.value.sessionKey);
    expect(g.value.binding).toEqual(c.value.binding);
    expect(m.expiresAtMs - g.value.binding.issuedAtMs).toBe(lab.config.ticketLifetimeMs);
  });

  test('every refusal maps to its error code', async () => {
    const gw2 = await lab.key('gw2');
    const gwOff = await lab.key('gwOff');
    const cases: [string, Uint8Array, string][] = [
      ['unknown gateway', request({ ...gw1, principal: 'nobody' }, 'alice'), 'unknown-principal'],
      ['disabled gateway', request(gwOff, 'alice'), 'principal-disabled'],
      ['unknown client', request(gw1, 'mallory'), 'unknown-principal'],
      ['disabled client', request(gw1, 'bob'), 'principal-disabled'],
      ['no policy for this gateway', request(gw2, 'alice'), 'policy-denied'],
      ['no policy for this service', request(gw1, 'alice', { tuple: { clientAddr: Uint8Array.of(10, 1, 2, 3), clientPort: 1, serverAddr: SERVICE.addr, serverPort: 22 } }), 'policy-denied'],
      ['client by group', request(gw1, 'dave'), 'ok'],
      ['bad authenticator', request(gw1, 'alice', {}, new Uint8Array(32).fill(7)), 'bad-authenticator'],
      ['unknown kvno', request({ ...gw1, kvno: gw1.kvno + 5 }, 'alice'), 'bad-authenticator'],
      ['timestamp 301 s behind', request(gw1, 'alice', { timestampMs: Date.now() - 301_000 }), 'clock-skew'],
      ['timestamp 301 s ahead', request(gw1, 'alice', { timestampMs: Date.now() + 301_000 }), 'clock-skew'],
      ['timestamp 250 s ahead', request(gw1, 'alice', { timestampMs: Date.now() + 250_000 }), 'ok'],
      ['client address outside its nets', request(gw1, 'nora', { tuple: { clientAddr: Uint8Array.of(172, 16, 0, 1), clientPort: 1, serverAddr: SERVICE.addr, serverPort: SERVICE.port } }), 'address-not-allowed'],
      ['client address inside its nets', request(gw1, 'nora', { tuple: { clientAddr: Uint8Array.of(10, 200, 0, 1), clientPort: 1, serverAddr: SERVICE.addr, serverPort: SERVICE.port } }), 'ok'],
    ];
    for (const [what, frame, want] of cases) expect([what, code(await ask(ep, frame))]).toEqual([what, want]);
  });

  test('unauthenticated callers cannot tell client names apart', async () => {
    const bad = new Uint8Array(32).fill(9);
    for (const client of ['alice', 'bob', 'mallory']) expect(code(await ask(ep, request(gw1, client, {}, bad)))).toBe('bad-authenticator');
  });

  test('a retry with the same bytes gets byte-identical tickets; the same id with other bytes is replay', async () => {
    const frame = request(gw1, 'alice');
    const c = await RawConn.open(ep);
    c.send(frame);
    const [first] = await c.read(1);
    c.send(frame);
    const [again] = await c.read(1);
    c.close();
    expect(decodeAnswer(first as Uint8Array).type).toBe(KdcType.IssueResponse);
    expect(hex(again as Uint8Array)).toBe(hex(first as Uint8Array));
    // Concurrent duplicates on separate connections: still one answer.
    const dup = request(gw1, 'alice');
    const answers = await Promise.all([1, 2, 3, 4].map(async () => {
      const d = await RawConn.open(ep);
      d.send(dup);
      const [a] = await d.read(1);
      d.close();
      return hex(a as Uint8Array);
    }));
    expect(new Set(answers).size).toBe(1);
    // Same requestId, different content (another connId): replay, and the original still answers the same.
    const requestId = decodeAnswer(first as Uint8Array).requestId;
    const other = request(gw1, 'alice', { requestId });
    expect(code(await ask(ep, other))).toBe('replay');
    expect(hex((await RawConn.open(ep).then(async (d) => (d.send(frame), (await d.read(1))[0]))) as Uint8Array)).toBe(hex(first as Uint8Array));
  });

  test('a forged request cannot claim a request id', async () => {
    const requestId = new Uint8Array(16).fill(0x42);
    const forged = request(gw1, 'alice', { requestId }, new Uint8Array(32).fill(3));
    expect(code(await ask(ep, forged))).toBe('bad-authenticator');
    expect(code(await ask(ep, request(gw1, 'alice', { requestId })))).toBe('ok');
  });

  test('pipelining: many requests in flight on one connection, answers matched by requestId', async () => {
    const frames = Array.from({ length: 50 }, (_, i) => request(gw1, i % 2 ? 'alice' : 'dave'));
    const c = await RawConn.open(ep);
    c.send(...frames);
    const answers = (await c.read(50)).map(decodeAnswer);
    c.close();
    expect(answers.every((a) => a.type === KdcType.IssueResponse)).toBe(true);
    const want = frames.map((f) => hex(f.subarray(6, 22))).sort();
    expect(answers.map((a) => hex(a.requestId)).sort()).toEqual(want);
  });

  test('a frame that does not decode gets malformed (or version) and the connection closes', async () => {
    const good = request(gw1, 'alice');
    const truncatedBody = encodeFrame(KdcType.IssueRequest, (w) => w.bytes(good.subarray(6, 40), 34));
    const c = await RawConn.open(ep);
    c.send(truncatedBody, request(gw1, 'alice'));
    const [a] = await c.read(1);
    const m = decodeAnswer(a as Uint8Array);
    expect(code(m)).toBe('malformed');
    expect(hex(m.requestId)).toBe(hex(good.subarray(6, 22)));
    await c.closedByPeer();

    const v2 = good.slice();
    v2[4] = 2;
    const d = await RawConn.open(ep);
    d.send(v2);
    expect(code(decodeAnswer(((await d.read(1))[0]) as Uint8Array))).toBe('version');
    await d.closedByPeer();

    const huge = await RawConn.open(ep);
    huge.send(Uint8Array.of(0, 0, 0x10, 0, 1, 0x10)); // length 4096 > 2048: answered with zeros, closed
    const h = decodeAnswer(((await huge.read(1))[0]) as Uint8Array);
    expect([code(h), hex(h.requestId)]).toEqual(['malformed', '00'.repeat(16)]);
    await huge.closedByPeer();
  });

  test('/metrics counts by result without principal names; /healthz, /readyz; audit records issues and denials', async () => {
    const metrics = await httpGet(kdc, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/ciphergate_kdc_requests_total\{result="ok"\} [1-9]/);
    expect(metrics.body).toMatch(/ciphergate_kdc_requests_total\{result="policy-denied"\} [1-9]/);
    expect(metrics.body).toContain('ciphergate_kdc_request_duration_seconds_bucket');
    expect(metrics.body).toContain('ciphergate_kdc_in_flight');
    expect(metrics.body).toMatch(/ciphergate_kdc_principal_lookups_total [1-9]/);
    for (const name of ['gw1', 'alice', 'dave', 'nora', 'mallory']) expect(metrics.body).not.toContain(name);
    expect((await httpGet(kdc, '/healthz')).status).toBe(200);
    const ready = await httpGet(kdc, '/readyz');
    expect([ready.status, JSON.parse(ready.body)]).toEqual([200, { status: 'ready', problems: [] }]);

    await kdc.service.audit.flush();
    const events = (await kdc.store.tailAudit(1000)).map((e) => e.event);
    expect(events.some((e) => e.type === 'issue' && e.gateway === 'gw1' && e.client === 'alice' && e.service === '10.9.9.9:5432')).toBe(true);
    expect(events.some((e) => e.type === 'deny' && e.result === 'policy-denied')).toBe(true);
    expect(events.some((e) => e.type === 'deny' && e.result === 'bad-authenticator')).toBe(true);
    // Never key bytes: no 64-hex-digit runs anywhere in the audit log.
    expect(JSON.stringify(events)).not.toMatch(/[0-9a-f]{64}/);
  });
});

describe('KDC service limits (embedded store)', () => {
  let lab: Lab;
  let gw1: KeyFile;
  beforeAll(async () => {
    lab = await makeLab({ kind: 'embedded' });
    gw1 = await lab.key('gw1');
  });
  afterAll(async () => {
    await lab.cleanup();
  });

  test('rate limit per gateway: burst, then rate-limited; forged requests take no tokens', async () => {
    const limited = await makeLab({ kind: 'embedded' }, { config: { rateLimit: { ratePerSec: 1, burst: 3 } } });
    try {
      const g = await limited.key('gw1');
      const kdc = await limited.start();
      const ep = endpointOf(kdc);
      const bad = new Uint8Array(32).fill(5);
      for (let i = 0; i < 10; i++) expect(code(await ask(ep, request(g, 'alice', {}, bad)))).toBe('bad-authenticator');
      const got: string[] = [];
      for (let i = 0; i < 5; i++) got.push(code(await ask(ep, request(g, 'alice'))));
      expect(got.slice(0, 3)).toEqual(['ok', 'ok', 'ok']);
      expect(got.slice(3)).toEqual(['rate-limited', 'rate-limited']);
      // Another gateway has its own bucket (gw2 has no policy: policy-denied, not rate-limited).
      expect(code(await ask(ep, request(await limited.key('gw2'), 'alice')))).toBe('policy-denied');
    } finally {
      await limited.cleanup();
    }
  });

  test('busy beyond maxInFlight, answered at once and out of order', async () => {
    const busyLab = await makeLab({ kind: 'embedded' }, { config: { maxInFlight: 1 } });
    try {
      const g = await busyLab.key('gw1');
      const kdc = await busyLab.start();
      const frames = Array.from({ length: 10 }, () => request(g, 'alice'));
      const c = await RawConn.open(endpointOf(kdc));
      c.send(...frames);
      const answers = (await c.read(10)).map(decodeAnswer);
      c.close();
      const first = hex(frames[0]!.subarray(6, 22));
      const byId = new Map(answers.map((a) => [hex(a.requestId), code(a)]));
      expect(byId.get(first)).toBe('ok');
      expect([...byId.values()].filter((x) => x === 'busy').length).toBeGreaterThan(0);
      // The first request was sent first but answered after the busy ones (out of order).
      expect(hex(answers[0]!.requestId)).not.toBe(first);
    } finally {
      await busyLab.cleanup();
    }
  });

  test('max connections and idle timeout', async () => {
    const kdc = await lab.start({ maxConnections: 2, idleTimeoutMs: 300 });
    const ep = endpointOf(kdc);
    const a = await RawConn.open(ep);
    const b = await RawConn.open(ep);
    const c = await RawConn.open(ep);
    await c.closedByPeer();
    a.send(request(gw1, 'alice'));
    expect(code(decodeAnswer(((await a.read(1))[0]) as Uint8Array))).toBe('ok');
    // Idle for 300 ms: closed by the KDC.
    await a.closedByPeer(3000);
    await b.closedByPeer(3000);
    const metrics = await httpGet(kdc, '/metrics');
    expect(metrics.body).toMatch(/ciphergate_kdc_connections_refused_total\{reason="max-connections"\} 1/);
    expect(metrics.body).toMatch(/ciphergate_kdc_connections_refused_total\{reason="idle"\} 2/);
    await kdc.close();
  });
});

describe('KDC error codes are complete', () => {
  test('every ISSUE_ERROR code has a metric label', () => {
    for (const c of Object.values(KdcErrorCode).filter((x) => typeof x === 'number')) expect(KDC_ERROR_NAMES[c as KdcErrorCode]).toMatch(/^[a-z-]+$/);
  });
});

describe('KDC service, embedded store holding few answers', () => {
  test('a retry whose answer was dropped for room is refused as replay, never given a second session key', async () => {
    const lab = await makeLab({ kind: 'embedded' }, { config: { store: { embedded: { path: 'store', issuedMaxEntries: 3 } } } });
    try {
      const gw1 = await lab.key('gw1');
      const kdc = await lab.start();
      const ep = endpointOf(kdc);
      const first = request(gw1, 'alice');
      expect(code(await ask(ep, first))).toBe('ok');
      expect(code(await ask(ep, first))).toBe('ok'); // held: the same answer again
      for (let i = 0; i < 5; i++) expect(code(await ask(ep, request(gw1, 'alice')))).toBe('ok');
      const late = await ask(ep, first);
      expect(code(late)).toBe('replay');
      expect(late.type === KdcType.IssueError && late.reason).toMatch(/no longer held/);
    } finally {
      await lab.cleanup();
    }
  });
});
