import { getBackend } from '../../common/crypto/index';
import { seededRandom } from '../../common/crypto/random';
import { KdcErrorCode, type IssueRequestFields, type IssueRequestMsg, KdcType, decodeKdcMessage } from '../../common/protocol/kdc-messages';
import { sealIssueRequest } from '../../common/protocol/kdc-request-auth';
import { openTicket } from '../../common/protocol/ticket';
import { type IssueOutcome, type IssuerContext, type PrincipalRecord, issue } from '../../kdc/issuer';
import { backends } from './arbitraries';

const NOW = 1_700_000_000_000;
const key = (b: number): Uint8Array => new Uint8Array(32).fill(b);
const G1 = key(0x01);
const G2 = key(0x02);
const A5 = key(0xa5);

const principals: Record<string, PrincipalRecord> = {
  gw1: {
    name: 'gw1',
    keys: [
      { kvno: 2, key: G2 },
      { kvno: 1, key: G1, validUntil: NOW + 1000 },
    ],
    disabled: false,
    allowedNets: [],
    groups: [],
  },
  gwOff: { name: 'gwOff', keys: [{ kvno: 1, key: G1 }], disabled: true, allowedNets: [], groups: [] },
  alice: { name: 'alice', keys: [{ kvno: 5, key: A5 }], disabled: false, allowedNets: ['10.0.0.0/8', '2001:db8::/32'], groups: ['staff'] },
  bob: { name: 'bob', keys: [{ kvno: 1, key: key(0xb0) }], disabled: true, allowedNets: [], groups: [] },
  dave: { name: 'dave', keys: [{ kvno: 1, key: key(0xd0) }], disabled: false, allowedNets: [], groups: ['staff'] },
  erin: { name: 'erin', keys: [{ kvno: 1, key: key(0xe0), validUntil: NOW - 1 }], disabled: false, allowedNets: [], groups: [] },
};

const baseFields: IssueRequestFields = {
  requestId: new Uint8Array(16).fill(0x72),
  gatewayPrincipal: 'gw1',
  gatewayKvno: 2,
  clientPrincipal: 'alice',
  connId: 0xfedcba9876543210n,
  tuple: { clientAddr: Uint8Array.of(10, 1, 2, 3), clientPort: 40001, serverAddr: Uint8Array.of(10, 9, 9, 9), serverPort: 5432 },
  clientIsn: 0xffffff00,
  suite: 1,
  gatewayNonce: new Uint8Array(16).fill(0x67),
  agentNonce: new Uint8Array(16).fill(0x61),
  timestampMs: NOW,
};

describe.each(backends)('KDC issuer (%s backend)', (name) => {
  const backend = getBackend(name);
  const policyCalls: unknown[][] = [];
  const ctx = (over: Partial<IssuerContext> = {}): IssuerContext => ({
    now: NOW,
    random: seededRandom('issuer'),
    backend,
    lookupPrincipal: (n) => principals[n] ?? null,
    policyAllows: (client, groups, gateway, service) => {
      policyCalls.push([client, groups, gateway, service]);
      return gateway === 'gw1' && (client === 'alice' || groups.includes('staff')) && service.port === 5432;
    },
    ticketLifetimeMs: 120_000,
    ...over,
  });
  const request = (over: Partial<IssueRequestFields> = {}, signKey: Uint8Array = G2): { message: IssueRequestMsg; raw: Uint8Array } => {
    const raw = sealIssueRequest(backend, signKey, { ...baseFields, ...over });
    const d = decodeKdcMessage(raw);
    if (!d.ok || d.value.message.type !== KdcType.IssueRequest) throw new Error('bad test request');
    return { message: d.value.message, raw };
  };
  const refusal = (o: IssueOutcome): [KdcErrorCode | null, boolean] => (o.ok ? [null, true] : [o.message.code, o.cacheable]);

  it('issues two tickets holding the same session key and the request binding', () => {
    const drawn: Uint8Array[] = [];
    const rnd = seededRandom('draws');
    const out = issue(request(), ctx({ random: (n) => (drawn.push(rnd(n)), drawn[drawn.length - 1] as Uint8Array) }));
    if (!out.ok) throw new Error(out.message.reason);
    const m = out.message;
    expect(m.requestId).toEqual(baseFields.requestId);
    expect(m.expiresAtMs).toBe(NOW + 120_000);
    const g = openTicket(backend, m.gatewayTicket, 'gw1', [{ kvno: 2, key: G2 }]);
    const c = openTicket(backend, m.clientTicket, 'alice', [{ kvno: 5, key: A5 }]);
    if (!g.ok || !c.ok) throw new Error('tickets do not open');
    expect(g.value.sessionKey).toEqual(c.value.sessionKey);
    expect(g.value.sessionKey.some((b) => b !== 0)).toBe(true);
    expect(g.value.binding).toEqual(c.value.binding);
    const { requestId: _r, gatewayKvno: _k, timestampMs: _t, ...bound } = baseFields;
    expect(g.value.binding).toEqual({ ...bound, issuedAtMs: NOW, expiresAtMs: NOW + 120_000 });
    expect(g.value.requestId).toEqual(baseFields.requestId);
    // Draws: session key, gateway ticket nonce, client ticket nonce; the session key copy is zeroed.
    expect(drawn.map((d) => d.length)).toEqual([32, 12, 12]);
    expect(drawn[0]!.every((b) => b === 0)).toBe(true);
    expect(out.cacheable).toBe(true);
  });

  it('is deterministic for a given random source and clock', () => {
    const a = issue(request(), ctx({ random: seededRandom(7) }));
    const b = issue(request(), ctx({ random: seededRandom(7) }));
    expect(a).toEqual(b);
  });

  it('passes client, groups, gateway and service (server addr:port) to the policy', () => {
    policyCalls.length = 0;
    issue(request(), ctx());
    expect(policyCalls).toEqual([['alice', ['staff'], 'gw1', { addr: Uint8Array.of(10, 9, 9, 9), port: 5432 }]]);
  });

  it.each<[string, Partial<IssueRequestFields>, KdcErrorCode, boolean]>([
    ['unknown gateway', { gatewayPrincipal: 'nobody' }, KdcErrorCode.UnknownPrincipal, false],
    ['disabled gateway', { gatewayPrincipal: 'gwOff', gatewayKvno: 1 }, KdcErrorCode.PrincipalDisabled, false],
    ['unknown client', { clientPrincipal: 'mallory' }, KdcErrorCode.UnknownPrincipal, true],
    ['disabled client', { clientPrincipal: 'bob' }, KdcErrorCode.PrincipalDisabled, true],
    ['client whose only key expired', { clientPrincipal: 'erin' }, KdcErrorCode.PrincipalDisabled, true],
    ['unknown gateway kvno', { gatewayKvno: 9 }, KdcErrorCode.BadAuthenticator, false],
    ['client address outside allowed nets', { tuple: { ...baseFields.tuple, clientAddr: Uint8Array.of(172, 16, 0, 1) } }, KdcErrorCode.AddressNotAllowed, true],
    ['policy: wrong service port', { tuple: { ...baseFields.tuple, serverPort: 22 } }, KdcErrorCode.PolicyDenied, true],
  ])('refuses: %s', (_name, over, code, cacheable) => {
    const out = issue(request(over), ctx());
    expect(refusal(out)).toEqual([code, cacheable]);
    expect(out.message.requestId).toEqual(baseFields.requestId);
  });

  it('refuses a bad authenticator, and any changed byte', () => {
    expect(refusal(issue(request({}, key(0x99)), ctx()))).toEqual([KdcErrorCode.BadAuthenticator, false]);
    const good = request();
    const raw = good.raw.slice();
    raw[raw.length - 1] = (raw[raw.length - 1] as number) ^ 1;
    const d = decodeKdcMessage(raw);
    if (!d.ok || d.value.message.type !== KdcType.IssueRequest) throw new Error('decode');
    expect(refusal(issue({ message: d.value.message, raw }, ctx()))).toEqual([KdcErrorCode.BadAuthenticator, false]);
  });

  it('does not let an unauthenticated caller probe client names: unknown, disabled and known clients all get bad-authenticator', () => {
    for (const clientPrincipal of ['mallory', 'bob', 'erin', 'alice']) {
      const out = issue(request({ clientPrincipal }, key(0x99)), ctx());
      expect(refusal(out)).toEqual([KdcErrorCode.BadAuthenticator, false]);
      expect(out.message).toMatchObject({ reason: 'authenticator does not verify' });
    }
  });

  it('refuses raw bytes that are not the decoded request', () => {
    const a = request();
    const b = request({ clientIsn: 1 });
    expect(refusal(issue({ message: a.message, raw: b.raw }, ctx()))).toEqual([KdcErrorCode.Internal, false]);
  });

  it('accepts a timestamp exactly 300 s off on either side and refuses 1 ms more', () => {
    for (const skew of [-300_000, 300_000, 0]) expect(issue(request({ timestampMs: NOW + skew }), ctx()).ok).toBe(true);
    for (const skew of [-300_001, 300_001]) expect(refusal(issue(request({ timestampMs: NOW + skew }), ctx()))).toEqual([KdcErrorCode.ClockSkew, true]);
    expect(issue(request({ timestampMs: NOW + 10_001 }), ctx({ maxSkewMs: 10_000 })).ok).toBe(false);
  });

  it('allows the client by group, and IPv6 client addresses within its nets', () => {
    expect(issue(request({ clientPrincipal: 'dave' }), ctx()).ok).toBe(true);
    const v6 = { clientAddr: Uint8Array.from(Buffer.from('20010db8000000000000000000000001', 'hex')), clientPort: 1, serverAddr: new Uint8Array(16), serverPort: 5432 };
    expect(issue(request({ tuple: v6 }), ctx()).ok).toBe(true);
    const outside = { ...v6, clientAddr: Uint8Array.from(Buffer.from('20010db9000000000000000000000001', 'hex')) };
    expect(refusal(issue(request({ tuple: outside }), ctx()))).toEqual([KdcErrorCode.AddressNotAllowed, true]);
  });

  it('accepts the rotated previous gateway kvno until validUntil and seals the gateway ticket under it', () => {
    const old = request({ gatewayKvno: 1 }, G1);
    for (const now of [NOW, NOW + 1000]) {
      const out = issue(old, ctx({ now, maxSkewMs: 300_000 }));
      if (!out.ok) throw new Error(out.message.reason);
      expect(openTicket(backend, out.message.gatewayTicket, 'gw1', [{ kvno: 1, key: G1 }]).ok).toBe(true);
      expect(openTicket(backend, out.message.gatewayTicket, 'gw1', [{ kvno: 2, key: G2 }])).toMatchObject({ ok: false, error: { kind: 'wrong-kvno' } });
    }
    expect(refusal(issue(old, ctx({ now: NOW + 1001 })))).toEqual([KdcErrorCode.BadAuthenticator, false]);
  });

  it('checks in order: gateway, kvno, authenticator, client, skew, address, policy', () => {
    const skewed = { timestampMs: NOW + 400_000 };
    const badAddr = { tuple: { ...baseFields.tuple, clientAddr: Uint8Array.of(1, 1, 1, 1), serverPort: 22 } };
    expect(refusal(issue(request({ gatewayPrincipal: 'nobody', clientPrincipal: 'mallory', gatewayKvno: 9 }, key(0x99)), ctx()))[0]).toBe(KdcErrorCode.UnknownPrincipal);
    expect(refusal(issue(request({ clientPrincipal: 'mallory', gatewayKvno: 9 }, key(0x99)), ctx()))[0]).toBe(KdcErrorCode.BadAuthenticator);
    expect(refusal(issue(request({ clientPrincipal: 'mallory', ...skewed }), ctx()))[0]).toBe(KdcErrorCode.UnknownPrincipal);
    expect(refusal(issue(request({ gatewayKvno: 9, ...skewed }, key(0x99)), ctx()))[0]).toBe(KdcErrorCode.BadAuthenticator);
    expect(refusal(issue(request(skewed, key(0x99)), ctx()))[0]).toBe(KdcErrorCode.BadAuthenticator);
    expect(refusal(issue(request({ ...skewed, ...badAddr }), ctx()))[0]).toBe(KdcErrorCode.ClockSkew);
    expect(refusal(issue(request(badAddr), ctx()))[0]).toBe(KdcErrorCode.AddressNotAllowed);
  });
});
