import { getBackend } from '../../common/crypto/index';
import type { Binding } from '../../common/protocol/binding';
import { agentConfirm, gatewayConfirm, transcriptHash, verifyAgentConfirm, verifyGatewayConfirm } from '../../common/protocol/confirm';
import { decodeKdcMessage } from '../../common/protocol/kdc-messages';
import { computeRequestAuthenticator, sealIssueRequest, verifyRequestAuthenticator } from '../../common/protocol/kdc-request-auth';
import { deriveFlowKeys, zeroizeFlowKeys } from '../../common/protocol/key-schedule';
import { backends } from './arbitraries';

const base: Binding = {
  suite: 1,
  connId: 42n,
  clientPrincipal: 'c',
  gatewayPrincipal: 'g',
  tuple: { clientAddr: Uint8Array.of(192, 0, 2, 1), clientPort: 1000, serverAddr: Uint8Array.of(192, 0, 2, 2), serverPort: 23 },
  clientIsn: 7,
  gatewayNonce: new Uint8Array(16).fill(1),
  agentNonce: new Uint8Array(16).fill(2),
  issuedAtMs: 1000,
  expiresAtMs: 2000,
};
const sk = new Uint8Array(32).fill(9);

describe.each(backends)('key schedule, confirms, request authenticator (%s backend)', (name) => {
  const backend = getBackend(name);

  it('gives six distinct 32-byte keys, and any binding change changes all of them', () => {
    const k = deriveFlowKeys(backend, sk, base);
    const all = Object.values(k).map((b) => Buffer.from(b).toString('hex'));
    expect(new Set(all).size).toBe(6);
    expect(Object.keys(k)).toEqual(['c2sEnc', 'c2sMac', 's2cEnc', 's2cMac', 'confirmGateway', 'confirmAgent']);
    const variants: Binding[] = [
      { ...base, connId: 43n },
      { ...base, clientIsn: 8 },
      { ...base, tuple: { ...base.tuple, clientPort: 1001 } },
      { ...base, agentNonce: new Uint8Array(16).fill(3) },
      { ...base, expiresAtMs: 2001 },
      { ...base, clientPrincipal: 'd' },
    ];
    for (const v of variants) {
      const other = deriveFlowKeys(backend, sk, v);
      for (const [key, value] of Object.entries(other)) expect(value).not.toEqual(k[key as keyof typeof k]);
    }
  });

  it('zeroizeFlowKeys zeroes every key in place', () => {
    const k = deriveFlowKeys(backend, sk, base);
    const held = k.c2sEnc;
    zeroizeFlowKeys(k);
    expect(held.every((b) => b === 0)).toBe(true);
    expect(Object.values(k).every((b) => b.every((x: number) => x === 0))).toBe(true);
  });

  it('confirms verify only with the right key, label and transcript', () => {
    const k = deriveFlowKeys(backend, sk, base);
    const t = transcriptHash(backend, Uint8Array.of(1), Uint8Array.of(2), Uint8Array.of(3));
    expect(t).toEqual(backend.sha256(Uint8Array.of(1, 2, 3)));
    const g = gatewayConfirm(backend, k, t);
    const a = agentConfirm(backend, k, t);
    expect(verifyGatewayConfirm(backend, k, t, g)).toBe(true);
    expect(verifyAgentConfirm(backend, k, t, a)).toBe(true);
    expect(verifyAgentConfirm(backend, k, t, g)).toBe(false);
    expect(verifyGatewayConfirm(backend, k, t, a)).toBe(false);
    expect(verifyGatewayConfirm(backend, k, backend.sha256(Uint8Array.of(1, 2)), g)).toBe(false);
    expect(verifyGatewayConfirm(backend, k, t, g.subarray(0, 31))).toBe(false);
    // Same key with another label would not collide: the label is inside the MAC.
    expect(gatewayConfirm(backend, { confirmGateway: k.confirmAgent }, t)).not.toEqual(a);
  });

  it('the request authenticator covers every byte from the version on', () => {
    const key = new Uint8Array(32).fill(0x47);
    const frame = sealIssueRequest(backend, key, {
      requestId: new Uint8Array(16).fill(0x72),
      gatewayPrincipal: 'g',
      gatewayKvno: 1,
      clientPrincipal: 'c',
      connId: 42n,
      tuple: base.tuple,
      clientIsn: 7,
      suite: 1,
      gatewayNonce: base.gatewayNonce,
      agentNonce: base.agentNonce,
      timestampMs: 1234,
    });
    expect(decodeKdcMessage(frame).ok).toBe(true);
    expect(verifyRequestAuthenticator(backend, key, frame)).toBe(true);
    expect(frame.subarray(frame.length - 32)).toEqual(computeRequestAuthenticator(backend, key, frame.subarray(4, frame.length - 32)));
    expect(verifyRequestAuthenticator(backend, new Uint8Array(32), frame)).toBe(false);
    for (let i = 4; i < frame.length; i++) {
      const t = frame.slice();
      t[i] = (t[i] as number) ^ 0x01;
      expect(verifyRequestAuthenticator(backend, key, t)).toBe(false);
    }
    expect(verifyRequestAuthenticator(backend, key, frame.subarray(0, 10))).toBe(false);
  });
});
