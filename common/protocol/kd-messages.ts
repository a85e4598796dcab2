// Key-delivery session messages (spec "Key-delivery session"; gateway connects to agent).
// Every message names the connection id; HELLO carries the binding fields the agent checks
// against the SYN it sent (DESIGN rule 6).
import type { Result } from '../result';
import { type ByteReader, type ByteWriter, type FlowTuple, type ProtocolError } from './codec';
import { NONCE_LEN } from './binding';
import { type Frame, decodeFrameBody, decodeSingleFrame, encodeFrame } from './framing';

export const KD_DEFAULT_PORT = 7390;
export const CONFIRM_LEN = 32;

export enum KdType {
  Hello = 0x01,
  HelloReply = 0x02,
  Ticket = 0x03,
  Confirm = 0x04,
  Error = 0x7f,
}

export enum KdErrorCode {
  UnknownConnection = 1,
  BindingMismatch = 2,
  TicketInvalid = 3,
  Expired = 4,
  ConfirmFailed = 5,
  Busy = 6,
  Version = 7,
  Malformed = 8,
}

export const KD_ERROR_NAMES: Readonly<Record<KdErrorCode, string>> = {
  [KdErrorCode.UnknownConnection]: 'unknown-connection',
  [KdErrorCode.BindingMismatch]: 'binding-mismatch',
  [KdErrorCode.TicketInvalid]: 'ticket-invalid',
  [KdErrorCode.Expired]: 'expired',
  [KdErrorCode.ConfirmFailed]: 'confirm-failed',
  [KdErrorCode.Busy]: 'busy',
  [KdErrorCode.Version]: 'version',
  [KdErrorCode.Malformed]: 'malformed',
};

export interface KdHello {
  type: KdType.Hello;
  connId: bigint;
  gatewayPrincipal: string;
  tuple: FlowTuple;
  clientIsn: number;
  suite: number;
  gatewayNonce: Uint8Array;
}

export interface KdHelloReply {
  type: KdType.HelloReply;
  connId: bigint;
  clientPrincipal: string;
  agentNonce: Uint8Array;
}

export interface KdTicket {
  type: KdType.Ticket;
  connId: bigint;
  clientTicket: Uint8Array;
  gatewayConfirm: Uint8Array;
}

export interface KdConfirm {
  type: KdType.Confirm;
  connId: bigint;
  agentConfirm: Uint8Array;
}

export interface KdError {
  type: KdType.Error;
  connId: bigint;
  code: KdErrorCode;
  reason: string;
}

export type KdMessage = KdHello | KdHelloReply | KdTicket | KdConfirm | KdError;

function writeBody(w: ByteWriter, m: KdMessage): void {
  w.u64n(m.connId);
  switch (m.type) {
    case KdType.Hello:
      w.str(m.gatewayPrincipal).tuple(m.tuple).u32(m.clientIsn).u8(m.suite).bytes(m.gatewayNonce, NONCE_LEN);
      return;
    case KdType.HelloReply:
      w.str(m.clientPrincipal).bytes(m.agentNonce, NONCE_LEN);
      return;
    case KdType.Ticket:
      w.blob(m.clientTicket).bytes(m.gatewayConfirm, CONFIRM_LEN);
      return;
    case KdType.Confirm:
      w.bytes(m.agentConfirm, CONFIRM_LEN);
      return;
    case KdType.Error:
      w.u16(m.code).str(m.reason);
      return;
  }
}

/** The complete frame (length prefix included) for a message. */
export function encodeKdMessage(m: KdMessage): Uint8Array {
  return encodeFrame(m.type, (w) => writeBody(w, m));
}

const readers: Readonly<Record<number, (r: ByteReader) => KdMessage>> = {
  [KdType.Hello]: (r) => ({
    type: KdType.Hello,
    connId: r.u64n('hello.connId'),
    gatewayPrincipal: r.str('hello.gatewayPrincipal'),
    tuple: r.tuple('hello.tuple'),
    clientIsn: r.u32('hello.clientIsn'),
    suite: r.u8('hello.suite'),
    gatewayNonce: r.bytes(NONCE_LEN, 'hello.gatewayNonce'),
  }),
  [KdType.HelloReply]: (r) => ({
    type: KdType.HelloReply,
    connId: r.u64n('helloReply.connId'),
    clientPrincipal: r.str('helloReply.clientPrincipal'),
    agentNonce: r.bytes(NONCE_LEN, 'helloReply.agentNonce'),
  }),
  [KdType.Ticket]: (r) => ({
    type: KdType.Ticket,
    connId: r.u64n('ticket.connId'),
    clientTicket: r.blob('ticket.clientTicket'),
    gatewayConfirm: r.bytes(CONFIRM_LEN, 'ticket.gatewayConfirm'),
  }),
  [KdType.Confirm]: (r) => ({
    type: KdType.Confirm,
    connId: r.u64n('confirm.connId'),
    agentConfirm: r.bytes(CONFIRM_LEN, 'confirm.agentConfirm'),
  }),
  [KdType.Error]: (r) => {
    const connId = r.u64n('error.connId');
    const at = r.offset;
    const code = r.u16('error.code');
    if (r.error === null && !(code in KD_ERROR_NAMES)) r.fail('bad-value', 'error.code', `unknown key-delivery error code ${code}`, at);
    return { type: KdType.Error, connId, code: code as KdErrorCode, reason: r.str('error.reason') };
  },
};

/** Decodes a frame from a FrameDecoder. Never throws. */
export function decodeKdFrame(frame: Frame): Result<KdMessage, ProtocolError> {
  return decodeFrameBody(frame, readers);
}

/** Decodes one complete frame; also returns the frame (its `raw` bytes feed the transcript). */
export function decodeKdMessage(bytes: Uint8Array): Result<{ frame: Frame; message: KdMessage }, ProtocolError> {
  return decodeSingleFrame(bytes, readers);
}

/** The ERROR code to send back for a frame that did not decode (then close the session). */
export function kdErrorCodeFor(e: ProtocolError): KdErrorCode {
  return e.kind === 'version' ? KdErrorCode.Version : KdErrorCode.Malformed;
}
