// Tickets (spec "Tickets"): the session key and its binding sealed under a key derived from the
// owner's long-term key, with the header (version, owner, kvno, requestId) as associated data.
// Expiry is the caller's check: open returns the binding and the caller compares expiresAtMs to
// its own clock (the pure core reads no clock).
import { type Result, ok, err } from '../result';
import type { CryptoBackend } from '../crypto/backend';
import { zeroize } from '../crypto/compare';
import { type Binding, readBinding, writeBinding } from './binding';
import { BLOB_MAX_BYTES, ByteReader, ByteWriter, EncodeError, type ProtocolError, strBytes } from './codec';
import { SESSION_KEY_LEN } from './key-schedule';

export const TICKET_VERSION = 1;
export const TICKET_NONCE_LEN = 12;
export const REQUEST_ID_LEN = 16;
export const LONG_TERM_KEY_LEN = 32;
const AEAD_TAG_LEN = 16;
/** Longest binding encoding (two 255-byte principals, IPv6): docs/PROTOCOL.md section 7. */
const MAX_BINDING_LEN = 612;
const TICKET_KEY_INFO = new TextEncoder().encode('ciphergate/1 ticket');

/** One long-term key of a principal, named by its key version number. */
export interface VersionedKey {
  kvno: number;
  key: Uint8Array;
}

/** The ticket as it travels: everything but `sealed` is in the clear and authenticated as AAD. */
export interface TicketEnvelope {
  owner: string;
  kvno: number;
  requestId: Uint8Array;
  nonce: Uint8Array;
  sealed: Uint8Array;
}

export interface SealTicketInput {
  owner: string;
  ownerKey: VersionedKey;
  requestId: Uint8Array;
  /** 12 bytes from the KDC's random source. */
  nonce: Uint8Array;
  sessionKey: Uint8Array;
  binding: Binding;
}

export interface OpenedTicket {
  owner: string;
  kvno: number;
  requestId: Uint8Array;
  sessionKey: Uint8Array;
  binding: Binding;
}

export type TicketErrorKind = 'bad-format' | 'wrong-owner' | 'wrong-kvno' | 'auth-failed';

export interface TicketError {
  kind: TicketErrorKind;
  detail: string;
}

export function deriveTicketKey(backend: CryptoBackend, longTermKey: Uint8Array): Uint8Array {
  if (longTermKey.length !== LONG_TERM_KEY_LEN) throw new RangeError(`long-term key must be ${LONG_TERM_KEY_LEN} bytes`);
  return backend.hkdf(longTermKey, new Uint8Array(0), TICKET_KEY_INFO, 32);
}

function writeHeader(w: ByteWriter, owner: string | Uint8Array, kvno: number, requestId: Uint8Array): ByteWriter {
  return w.u8(TICKET_VERSION).str(owner).u32(kvno).bytes(requestId, REQUEST_ID_LEN);
}

export function encodeTicket(t: TicketEnvelope): Uint8Array {
  return writeHeader(new ByteWriter(64 + t.sealed.length), t.owner, t.kvno, t.requestId)
    .bytes(t.nonce, TICKET_NONCE_LEN)
    .blob(t.sealed)
    .finish();
}

export function decodeTicket(bytes: Uint8Array): Result<TicketEnvelope, ProtocolError> {
  const r = new ByteReader(bytes);
  const at = r.offset;
  const version = r.u8('ticket.version');
  if (version !== TICKET_VERSION) r.fail('version', 'ticket.version', `ticket version ${version}`, at);
  const owner = r.str('ticket.owner');
  const kvno = r.u32('ticket.kvno');
  const requestId = r.bytes(REQUEST_ID_LEN, 'ticket.requestId');
  const nonce = r.bytes(TICKET_NONCE_LEN, 'ticket.nonce');
  const sealed = r.blob('ticket.sealed');
  if (r.error === null && sealed.length < AEAD_TAG_LEN + SESSION_KEY_LEN) r.fail('bad-value', 'ticket.sealed', 'sealed part too short');
  return r.finish({ owner, kvno, requestId, nonce, sealed }, 'ticket');
}

export function sealTicket(backend: CryptoBackend, input: SealTicketInput): Uint8Array {
  if (input.sessionKey.length !== SESSION_KEY_LEN) throw new RangeError(`session key must be ${SESSION_KEY_LEN} bytes`);
  if (input.nonce.length !== TICKET_NONCE_LEN) throw new RangeError(`ticket nonce must be ${TICKET_NONCE_LEN} bytes`);
  const plaintext = encodeTicketPlaintext(input.sessionKey, input.binding);
  const ticketKey = deriveTicketKey(backend, input.ownerKey.key);
  try {
    return sealTicketPlaintext(backend, { owner: input.owner, kvno: input.ownerKey.kvno, ticketKey, requestId: input.requestId, nonce: input.nonce, plaintext });
  } finally {
    zeroize(ticketKey);
    zeroize(plaintext);
  }
}

/**
 * The sealed part's plaintext, `sessionKey || encodeBinding(binding)`. Both tickets of one issue
 * carry the same plaintext, so the KDC encodes it once. Secret: the caller zeroizes it.
 */
export function encodeTicketPlaintext(sessionKey: Uint8Array, binding: Binding): Uint8Array {
  if (sessionKey.length !== SESSION_KEY_LEN) throw new RangeError(`session key must be ${SESSION_KEY_LEN} bytes`);
  const w = writeBinding(new ByteWriter(SESSION_KEY_LEN + MAX_BINDING_LEN).bytes(sessionKey), binding);
  const plaintext = w.finish();
  w.wipe();
  return plaintext;
}

export interface SealTicketPlaintextInput {
  owner: string;
  kvno: number;
  /** deriveTicketKey(owner's long-term key of `kvno`): callers that issue often cache it. */
  ticketKey: Uint8Array;
  requestId: Uint8Array;
  /** 12 bytes from the KDC's random source. */
  nonce: Uint8Array;
  /** From encodeTicketPlaintext. */
  plaintext: Uint8Array;
}

/** sealTicket with the ticket key already derived and the plaintext already encoded: same bytes. */
export function sealTicketPlaintext(backend: CryptoBackend, input: SealTicketPlaintextInput): Uint8Array {
  if (input.nonce.length !== TICKET_NONCE_LEN) throw new RangeError(`ticket nonce must be ${TICKET_NONCE_LEN} bytes`);
  if (input.requestId.length !== REQUEST_ID_LEN) throw new RangeError(`requestId must be ${REQUEST_ID_LEN} bytes`);
  const owner = strBytes(input.owner);
  if (owner === null) throw new EncodeError(`ticket owner must be 1..255 bytes of well-formed UTF-8`);
  const sealedLen = input.plaintext.length + AEAD_TAG_LEN;
  if (sealedLen > BLOB_MAX_BYTES) throw new EncodeError(`sealed part too long: ${sealedLen}`);
  // One exact-size buffer: the header is written once and is itself the AAD.
  const aadLen = 1 + 1 + owner.length + 4 + REQUEST_ID_LEN;
  const out = writeHeader(new ByteWriter(aadLen + TICKET_NONCE_LEN + 2 + sealedLen), owner, input.kvno, input.requestId);
  const aad = out.view();
  const sealed = backend.aeadSeal(input.ticketKey, input.nonce, input.plaintext, aad);
  return out.bytes(input.nonce).blob(sealed).take();
}

/**
 * Opens a ticket addressed to `owner` with one of `keys` (the owner's usable long-term keys;
 * which kvnos are still usable is the caller's policy). Never throws on hostile bytes.
 */
export function openTicket(
  backend: CryptoBackend,
  bytes: Uint8Array,
  owner: string,
  keys: readonly VersionedKey[],
): Result<OpenedTicket, TicketError> {
  const env = decodeTicket(bytes);
  if (!env.ok) return err({ kind: 'bad-format', detail: `${env.error.field}: ${env.error.detail}` });
  const t = env.value;
  if (t.owner !== owner) return err({ kind: 'wrong-owner', detail: `ticket is for another principal` });
  const key = keys.find((k) => k.kvno === t.kvno);
  if (key === undefined) return err({ kind: 'wrong-kvno', detail: `no key with kvno ${t.kvno}` });
  if (key.key.length !== LONG_TERM_KEY_LEN) return err({ kind: 'auth-failed', detail: 'long-term key has the wrong length' });
  const aad = writeHeader(new ByteWriter(64), t.owner, t.kvno, t.requestId).finish();
  const ticketKey = deriveTicketKey(backend, key.key);
  const plaintext = backend.aeadOpen(ticketKey, t.nonce, t.sealed, aad);
  zeroize(ticketKey);
  if (plaintext === null) return err({ kind: 'auth-failed', detail: 'ticket does not authenticate under this key' });
  const r = new ByteReader(plaintext);
  const sessionKey = r.bytes(SESSION_KEY_LEN, 'ticket.sessionKey');
  const binding = readBinding(r);
  const done = r.finish(binding, 'ticket.plaintext');
  zeroize(plaintext);
  if (!done.ok) {
    zeroize(sessionKey);
    return err({ kind: 'bad-format', detail: `sealed ${done.error.field}: ${done.error.detail}` });
  }
  return ok({ owner: t.owner, kvno: t.kvno, requestId: t.requestId, sessionKey, binding: done.value });
}
