// KDC protocol messages (spec "KDC protocol"; gateway -> KDC, pipelined, matched by requestId).
import type { Result } from '../result';
import { type ByteReader, ByteWriter, EncodeError, type FlowTuple, type ProtocolError } from './codec';
import { NONCE_LEN } from './binding';
import { FRAME_HEADER_LEN, FRAME_PROTOCOL_VERSION, type Frame, MAX_FRAME_LENGTH, decodeFrameBody, decodeSingleFrame, encodeFrame } from './framing';
import { REQUEST_ID_LEN } from './ticket';

export const KDC_DEFAULT_PORT = 7391;
export const AUTHENTICATOR_LEN = 32;

export enum KdcType {
  IssueRequest = 0x10,
  IssueResponse = 0x11,
  IssueError = 0x12,
}

export enum KdcErrorCode {
  Malformed = 1,
  UnknownPrincipal = 2,
  PrincipalDisabled = 3,
  PolicyDenied = 4,
  BadAuthenticator = 5,
  ClockSkew = 6,
  Replay = 7,
  RateLimited = 8,
  Busy = 9,
  StoreUnavailable = 10,
  Internal = 11,
  Version = 12,
  AddressNotAllowed = 13,
}

export const KDC_ERROR_NAMES: Readonly<Record<KdcErrorCode, string>> = {
  [KdcErrorCode.Malformed]: 'malformed',
  [KdcErrorCode.UnknownPrincipal]: 'unknown-principal',
  [KdcErrorCode.PrincipalDisabled]: 'principal-disabled',
  [KdcErrorCode.PolicyDenied]: 'policy-denied',
  [KdcErrorCode.BadAuthenticator]: 'bad-authenticator',
  [KdcErrorCode.ClockSkew]: 'clock-skew',
  [KdcErrorCode.Replay]: 'replay',
  [KdcErrorCode.RateLimited]: 'rate-limited',
  [KdcErrorCode.Busy]: 'busy',
  [KdcErrorCode.StoreUnavailable]: 'store-unavailable',
  [KdcErrorCode.Internal]: 'internal',
  [KdcErrorCode.Version]: 'version',
  [KdcErrorCode.AddressNotAllowed]: 'address-not-allowed',
};

/** ISSUE_REQUEST without its authenticator: what the gateway fills in before sealing. */
export interface IssueRequestFields {
  requestId: Uint8Array;
  gatewayPrincipal: string;
  gatewayKvno: number;
  clientPrincipal: string;
  connId: bigint;
  tuple: FlowTuple;
  clientIsn: number;
  suite: number;
  gatewayNonce: Uint8Array;
  agentNonce: Uint8Array;
  timestampMs: number;
}

export interface IssueRequestMsg extends IssueRequestFields {
  type: KdcType.IssueRequest;
  authenticator: Uint8Array;
}

export interface IssueResponseMsg {
  type: KdcType.IssueResponse;
  requestId: Uint8Array;
  expiresAtMs: number;
  gatewayTicket: Uint8Array;
  clientTicket: Uint8Array;
}

export interface IssueErrorMsg {
  type: KdcType.IssueError;
  requestId: Uint8Array;
  code: KdcErrorCode;
  reason: string;
}

export type KdcMessage = IssueRequestMsg | IssueResponseMsg | IssueErrorMsg;

/** The ISSUE_REQUEST fields in wire order, up to (not including) the authenticator. */
export function writeIssueRequestFields(w: ByteWriter, m: IssueRequestFields): ByteWriter {
  return w
    .bytes(m.requestId, REQUEST_ID_LEN)
    .str(m.gatewayPrincipal)
    .u32(m.gatewayKvno)
    .str(m.clientPrincipal)
    .u64n(m.connId)
    .tuple(m.tuple)
    .u32(m.clientIsn)
    .u8(m.suite)
    .bytes(m.gatewayNonce, NONCE_LEN)
    .bytes(m.agentNonce, NONCE_LEN)
    .u64(m.timestampMs);
}

function writeBody(w: ByteWriter, m: KdcMessage): void {
  switch (m.type) {
    case KdcType.IssueRequest:
      writeIssueRequestFields(w, m).bytes(m.authenticator, AUTHENTICATOR_LEN);
      return;
    case KdcType.IssueResponse:
      w.bytes(m.requestId, REQUEST_ID_LEN).u64(m.expiresAtMs).blob(m.gatewayTicket).blob(m.clientTicket);
      return;
    case KdcType.IssueError:
      w.bytes(m.requestId, REQUEST_ID_LEN).u16(m.code).str(m.reason);
      return;
  }
}

/**
 * The complete frame for a message. For ISSUE_REQUEST this copies `authenticator` as given;
 * gateways build requests with `sealIssueRequest` (kdc-request-auth.ts).
 */
export function encodeKdcMessage(m: KdcMessage): Uint8Array {
  if (m.type === KdcType.IssueResponse) return encodeIssueResponse(m);
  return encodeFrame(m.type, (w) => writeBody(w, m));
}

/**
 * The ISSUE_RESPONSE frame, written once into an exact-size buffer, after `headroom` zero bytes
 * the caller may fill (the KDC's idempotency record is digest || frame): the frame is
 * `result.subarray(headroom)`. Same bytes as encodeFrame would give.
 */
export function encodeIssueResponse(m: IssueResponseMsg, headroom = 0): Uint8Array {
  const length = 2 + REQUEST_ID_LEN + 8 + 2 + m.gatewayTicket.length + 2 + m.clientTicket.length;
  if (length > MAX_FRAME_LENGTH) throw new EncodeError(`frame too long: ${length}`);
  const w = new ByteWriter(headroom + FRAME_HEADER_LEN + length).zeros(headroom).u32(length).u8(FRAME_PROTOCOL_VERSION).u8(KdcType.IssueResponse);
  writeBody(w, m);
  return w.take();
}

const readers: Readonly<Record<number, (r: ByteReader) => KdcMessage>> = {
  [KdcType.IssueRequest]: (r) => ({
    type: KdcType.IssueRequest,
    requestId: r.bytes(REQUEST_ID_LEN, 'issueRequest.requestId'),
    gatewayPrincipal: r.str('issueRequest.gatewayPrincipal'),
    gatewayKvno: r.u32('issueRequest.gatewayKvno'),
    clientPrincipal: r.str('issueRequest.clientPrincipal'),
    connId: r.u64n('issueRequest.connId'),
    tuple: r.tuple('issueRequest.tuple'),
    clientIsn: r.u32('issueRequest.clientIsn'),
    suite: r.u8('issueRequest.suite'),
    gatewayNonce: r.bytes(NONCE_LEN, 'issueRequest.gatewayNonce'),
    agentNonce: r.bytes(NONCE_LEN, 'issueRequest.agentNonce'),
    timestampMs: r.u64('issueRequest.timestampMs'),
    authenticator: r.bytes(AUTHENTICATOR_LEN, 'issueRequest.authenticator'),
  }),
  [KdcType.IssueResponse]: (r) => ({
    type: KdcType.IssueResponse,
    requestId: r.bytes(REQUEST_ID_LEN, 'issueResponse.requestId'),
    expiresAtMs: r.u64('issueResponse.expiresAtMs'),
    gatewayTicket: r.blob('issueResponse.gatewayTicket'),
    clientTicket: r.blob('issueResponse.clientTicket'),
  }),
  [KdcType.IssueError]: (r) => {
    const requestId = r.bytes(REQUEST_ID_LEN, 'issueError.requestId');
    const at = r.offset;
    const code = r.u16('issueError.code');
    if (r.error === null && !(code in KDC_ERROR_NAMES)) r.fail('bad-value', 'issueError.code', `unknown KDC error code ${code}`, at);
    return { type: KdcType.IssueError, requestId, code: code as KdcErrorCode, reason: r.str('issueError.reason') };
  },
};

// Which frame each decoded message came from. The decoders are canonical (every field has one
// encoding and the body is consumed exactly), so a message decoded from `raw` re-encodes to
// exactly `raw`: the KDC can check "these fields are what the authenticator covered" by identity
// instead of re-encoding. Decoded messages are never modified in place.
const decodedFrom = new WeakMap<KdcMessage, Uint8Array>();

/** True when `m` is the unmodified result of decoding exactly the frame `raw` here. */
export function isDecodedFrom(m: KdcMessage, raw: Uint8Array): boolean {
  return decodedFrom.get(m) === raw;
}

/** Decodes a frame from a FrameDecoder. Never throws. */
export function decodeKdcFrame(frame: Frame): Result<KdcMessage, ProtocolError> {
  const d = decodeFrameBody(frame, readers);
  if (d.ok) decodedFrom.set(d.value, frame.raw);
  return d;
}

/** Decodes one complete frame, returning the frame too (the KDC needs its raw bytes). */
export function decodeKdcMessage(bytes: Uint8Array): Result<{ frame: Frame; message: KdcMessage }, ProtocolError> {
  const d = decodeSingleFrame(bytes, readers);
  if (d.ok) decodedFrom.set(d.value.message, d.value.frame.raw);
  return d;
}

/** The ISSUE_ERROR code for a request frame that did not decode. */
export function kdcErrorCodeFor(e: ProtocolError): KdcErrorCode {
  return e.kind === 'version' ? KdcErrorCode.Version : KdcErrorCode.Malformed;
}
