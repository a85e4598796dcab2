import fc from 'fast-check';
import { getBackend } from '../../common/crypto/index';
import type { Binding } from '../../common/protocol/binding';
import { decodeTicket, openTicket, sealTicket } from '../../common/protocol/ticket';
import { backends, binding, bytesN } from './arbitraries';

const fixedBinding: Binding = {
  suite: 1,
  connId: 0x1122334455667788n,
  clientPrincipal: 'alice@corp',
  gatewayPrincipal: 'gw1',
  tuple: { clientAddr: Uint8Array.of(10, 0, 0, 2), clientPort: 40000, serverAddr: Uint8Array.of(10, 0, 1, 5), serverPort: 5432 },
  clientIsn: 0xfffffff0,
  gatewayNonce: new Uint8Array(16).fill(0x67),
  agentNonce: new Uint8Array(16).fill(0x61),
  issuedAtMs: 1_700_000_000_000,
  expiresAtMs: 1_700_000_120_000,
};
const ownerKey = { kvno: 3, key: new Uint8Array(32).fill(0x0b) };
const sessionKey = new Uint8Array(32).fill(0x5e);
const requestId = new Uint8Array(16).fill(0x72);

describe.each(backends)('tickets (%s backend)', (name) => {
  const backend = getBackend(name);
  const seal = (): Uint8Array =>
    sealTicket(backend, { owner: 'alice@corp', ownerKey, requestId, nonce: new Uint8Array(12).fill(0x4e), sessionKey, binding: fixedBinding });

  it('opens with the owner key to the session key and binding', () => {
    const r = openTicket(backend, seal(), 'alice@corp', [{ kvno: 2, key: new Uint8Array(32) }, ownerKey]);
    expect(r).toEqual({ ok: true, value: { owner: 'alice@corp', kvno: 3, requestId, sessionKey, binding: fixedBinding } });
  });

  it('round-trips any binding and key', () => {
    fc.assert(
      fc.property(binding, bytesN(32), bytesN(32), bytesN(12), bytesN(16), (b, key, sk, nonce, rid) => {
        const t = sealTicket(backend, { owner: 'o', ownerKey: { kvno: 1, key }, requestId: rid, nonce, sessionKey: sk, binding: b });
        expect(openTicket(backend, t, 'o', [{ kvno: 1, key }])).toEqual({
          ok: true,
          value: { owner: 'o', kvno: 1, requestId: rid, sessionKey: sk, binding: b },
        });
      }),
      { numRuns: 50 },
    );
  });

  it('any single-byte change fails: header bytes are AAD, the rest is sealed', () => {
    const t = seal();
    for (let i = 0; i < t.length; i++) {
      const tampered = t.slice();
      tampered[i] = (tampered[i] as number) ^ 0x01;
      const r = openTicket(backend, tampered, 'alice@corp', [ownerKey, { kvno: 2, key: ownerKey.key }]);
      expect(r.ok).toBe(false);
      // Only the framing bytes (version, owner, kvno, lengths) may fail before authentication.
      if (!r.ok && r.error.kind !== 'auth-failed') expect(['bad-format', 'wrong-owner', 'wrong-kvno']).toContain(r.error.kind);
    }
    const requestIdAt = 1 + 1 + 'alice@corp'.length + 4;
    const flipped = t.slice();
    flipped[requestIdAt] = (flipped[requestIdAt] as number) ^ 0x80;
    expect(openTicket(backend, flipped, 'alice@corp', [ownerKey])).toMatchObject({ ok: false, error: { kind: 'auth-failed' } });
    const sealedByte = t.slice();
    sealedByte[t.length - 20] = (sealedByte[t.length - 20] as number) ^ 0x01;
    expect(openTicket(backend, sealedByte, 'alice@corp', [ownerKey])).toMatchObject({ ok: false, error: { kind: 'auth-failed' } });
  });

  it('wrong key -> auth-failed, other owner -> wrong-owner, unknown kvno -> wrong-kvno, junk -> bad-format', () => {
    const t = seal();
    expect(openTicket(backend, t, 'alice@corp', [{ kvno: 3, key: new Uint8Array(32).fill(1) }])).toMatchObject({ ok: false, error: { kind: 'auth-failed' } });
    expect(openTicket(backend, t, 'bob', [ownerKey])).toMatchObject({ ok: false, error: { kind: 'wrong-owner' } });
    expect(openTicket(backend, t, 'alice@corp', [{ kvno: 4, key: ownerKey.key }])).toMatchObject({ ok: false, error: { kind: 'wrong-kvno' } });
    expect(openTicket(backend, t.subarray(0, t.length - 1), 'alice@corp', [ownerKey])).toMatchObject({ ok: false, error: { kind: 'bad-format' } });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (junk) => {
        expect(openTicket(backend, junk, 'alice@corp', [ownerKey]).ok).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it('the clear header carries owner, kvno and requestId', () => {
    const d = decodeTicket(seal());
    expect(d.ok && { owner: d.value.owner, kvno: d.value.kvno, requestId: d.value.requestId }).toEqual({ owner: 'alice@corp', kvno: 3, requestId });
  });
});
