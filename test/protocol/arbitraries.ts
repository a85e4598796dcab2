// fast-check generators for protocol values, shared by the protocol property tests.
import fc from 'fast-check';
import type { Binding } from '../../common/protocol/binding';
import { type FlowTuple, strBytes } from '../../common/protocol/codec';
import { KdErrorCode, type KdMessage, KdType } from '../../common/protocol/kd-messages';
import { KdcErrorCode, type KdcMessage, KdcType } from '../../common/protocol/kdc-messages';

export const bytesN = (n: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: n, maxLength: n });
export const u8 = fc.integer({ min: 0, max: 0xff });
export const u16 = fc.integer({ min: 0, max: 0xffff });
export const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
export const u64 = fc.maxSafeNat();
export const connId = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });

/** Valid `str` values: any Unicode (surrogate pairs included), 1..255 UTF-8 bytes. */
export const str = fc
  .oneof(fc.string({ minLength: 1, maxLength: 40 }), fc.string({ unit: 'binary', minLength: 1, maxLength: 80 }))
  .filter((s) => strBytes(s) !== null);

export const tuple: fc.Arbitrary<FlowTuple> = fc.constantFrom(4, 16).chain((n) =>
  fc.record({ clientAddr: bytesN(n), clientPort: u16, serverAddr: bytesN(n), serverPort: u16 }),
);

export const binding: fc.Arbitrary<Binding> = fc.record({
  suite: u8,
  connId,
  clientPrincipal: str,
  gatewayPrincipal: str,
  tuple,
  clientIsn: u32,
  gatewayNonce: bytesN(16),
  agentNonce: bytesN(16),
  issuedAtMs: u64,
  expiresAtMs: u64,
});

const kdErrorCode = fc.constantFrom(...(Object.values(KdErrorCode).filter((v) => typeof v === 'number') as KdErrorCode[]));
const kdcErrorCode = fc.constantFrom(...(Object.values(KdcErrorCode).filter((v) => typeof v === 'number') as KdcErrorCode[]));

export const kdMessage: fc.Arbitrary<KdMessage> = fc.oneof(
  fc.record({
    type: fc.constant(KdType.Hello as const),
    connId,
    gatewayPrincipal: str,
    tuple,
    clientIsn: u32,
    suite: u8,
    gatewayNonce: bytesN(16),
  }),
  fc.record({ type: fc.constant(KdType.HelloReply as const), connId, clientPrincipal: str, agentNonce: bytesN(16) }),
  fc.record({
    type: fc.constant(KdType.Ticket as const),
    connId,
    clientTicket: fc.uint8Array({ maxLength: 700 }),
    gatewayConfirm: bytesN(32),
  }),
  fc.record({ type: fc.constant(KdType.Confirm as const), connId, agentConfirm: bytesN(32) }),
  fc.record({ type: fc.constant(KdType.Error as const), connId, code: kdErrorCode, reason: str }),
);

export const kdcMessage: fc.Arbitrary<KdcMessage> = fc.oneof(
  fc.record({
    type: fc.constant(KdcType.IssueRequest as const),
    requestId: bytesN(16),
    gatewayPrincipal: str,
    gatewayKvno: u32,
    clientPrincipal: str,
    connId,
    tuple,
    clientIsn: u32,
    suite: u8,
    gatewayNonce: bytesN(16),
    agentNonce: bytesN(16),
    timestampMs: u64,
    authenticator: bytesN(32),
  }),
  fc.record({
    type: fc.constant(KdcType.IssueResponse as const),
    requestId: bytesN(16),
    expiresAtMs: u64,
    gatewayTicket: fc.uint8Array({ maxLength: 700 }),
    clientTicket: fc.uint8Array({ maxLength: 700 }),
  }),
  fc.record({ type: fc.constant(KdcType.IssueError as const), requestId: bytesN(16), code: kdcErrorCode, reason: str }),
);

/** Splits `bytes` into chunks at random cut points (empty chunks included). */
export function chunked(bytes: Uint8Array): fc.Arbitrary<Uint8Array[]> {
  return fc.array(fc.integer({ min: 0, max: bytes.length }), { maxLength: 12 }).map((cuts) => {
    const points = [0, ...cuts.sort((a, b) => a - b), bytes.length];
    const out: Uint8Array[] = [];
    for (let i = 1; i < points.length; i++) out.push(bytes.subarray(points[i - 1] as number, points[i] as number));
    return out;
  });
}

export const backends = ['node', 'noble'] as const;
