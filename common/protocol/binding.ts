// The binding (spec "Binding"): everything a session key is bound to. It is sealed inside both
// tickets and salts the key schedule, so a key cannot be moved to another flow (DESIGN rule 6).
import type { Result } from '../result';
import { ByteReader, ByteWriter, type FlowTuple, type ProtocolError, bytesEqual, tupleEqual } from './codec';

export const BINDING_VERSION = 1;
export const NONCE_LEN = 16;

export interface Binding {
  suite: number;
  connId: bigint;
  clientPrincipal: string;
  gatewayPrincipal: string;
  tuple: FlowTuple;
  clientIsn: number;
  gatewayNonce: Uint8Array;
  agentNonce: Uint8Array;
  issuedAtMs: number;
  expiresAtMs: number;
}

export function writeBinding(w: ByteWriter, b: Binding): ByteWriter {
  return w
    .u8(BINDING_VERSION)
    .u8(b.suite)
    .u64n(b.connId)
    .str(b.clientPrincipal)
    .str(b.gatewayPrincipal)
    .tuple(b.tuple)
    .u32(b.clientIsn)
    .bytes(b.gatewayNonce, NONCE_LEN)
    .bytes(b.agentNonce, NONCE_LEN)
    .u64(b.issuedAtMs)
    .u64(b.expiresAtMs);
}

/** The canonical encoding (one byte string per binding: no optional fields, no padding). */
export function encodeBinding(b: Binding): Uint8Array {
  return writeBinding(new ByteWriter(160), b).finish();
}

export function readBinding(r: ByteReader): Binding {
  const at = r.offset;
  const version = r.u8('binding.version');
  if (version !== BINDING_VERSION) r.fail('version', 'binding.version', `binding version ${version}`, at);
  return {
    suite: r.u8('binding.suite'),
    connId: r.u64n('binding.connId'),
    clientPrincipal: r.str('binding.clientPrincipal'),
    gatewayPrincipal: r.str('binding.gatewayPrincipal'),
    tuple: r.tuple('binding.tuple'),
    clientIsn: r.u32('binding.clientIsn'),
    gatewayNonce: r.bytes(NONCE_LEN, 'binding.gatewayNonce'),
    agentNonce: r.bytes(NONCE_LEN, 'binding.agentNonce'),
    issuedAtMs: r.u64('binding.issuedAtMs'),
    expiresAtMs: r.u64('binding.expiresAtMs'),
  };
}

export function decodeBinding(bytes: Uint8Array): Result<Binding, ProtocolError> {
  const r = new ByteReader(bytes);
  const b = readBinding(r);
  return r.finish(b, 'binding');
}

export function bindingEqual(a: Binding, b: Binding): boolean {
  return (
    a.suite === b.suite &&
    a.connId === b.connId &&
    a.clientPrincipal === b.clientPrincipal &&
    a.gatewayPrincipal === b.gatewayPrincipal &&
    tupleEqual(a.tuple, b.tuple) &&
    a.clientIsn === b.clientIsn &&
    bytesEqual(a.gatewayNonce, b.gatewayNonce) &&
    bytesEqual(a.agentNonce, b.agentNonce) &&
    a.issuedAtMs === b.issuedAtMs &&
    a.expiresAtMs === b.expiresAtMs
  );
}
