// The ISSUE_REQUEST authenticator (spec "KDC protocol"): HMAC-SHA256 under a key derived from
// the gateway's long-term key, over the frame from protocolVersion up to the authenticator.
// A MAC rather than a signature: the KDC holds the gateway's key anyway.
import type { CryptoBackend } from '../crypto/backend';
import { constantTimeEqual, zeroize } from '../crypto/compare';
import { FRAME_HEADER_LEN } from './framing';
import { AUTHENTICATOR_LEN, type IssueRequestFields, KdcType, encodeKdcMessage } from './kdc-messages';
import { LONG_TERM_KEY_LEN } from './ticket';

const REQUEST_AUTH_INFO = new TextEncoder().encode('ciphergate/1 kdc request');

export function deriveRequestAuthKey(backend: CryptoBackend, gatewayKey: Uint8Array): Uint8Array {
  if (gatewayKey.length !== LONG_TERM_KEY_LEN) throw new RangeError(`long-term key must be ${LONG_TERM_KEY_LEN} bytes`);
  return backend.hkdf(gatewayKey, new Uint8Array(0), REQUEST_AUTH_INFO, 32);
}

/** The authenticator over `covered` (frame bytes from protocolVersion to just before the authenticator). */
export function computeRequestAuthenticator(backend: CryptoBackend, gatewayKey: Uint8Array, covered: Uint8Array): Uint8Array {
  const k = deriveRequestAuthKey(backend, gatewayKey);
  const mac = backend.hmacSha256(k, covered);
  zeroize(k);
  return mac;
}

/** The part of a complete ISSUE_REQUEST frame the authenticator covers. */
function coveredPart(frame: Uint8Array): Uint8Array {
  return frame.subarray(FRAME_HEADER_LEN, frame.length - AUTHENTICATOR_LEN);
}

/** The complete ISSUE_REQUEST frame with its authenticator computed (gateway side). */
export function sealIssueRequest(backend: CryptoBackend, gatewayKey: Uint8Array, fields: IssueRequestFields): Uint8Array {
  const frame = encodeKdcMessage({ ...fields, type: KdcType.IssueRequest, authenticator: new Uint8Array(AUTHENTICATOR_LEN) });
  frame.set(computeRequestAuthenticator(backend, gatewayKey, coveredPart(frame)), frame.length - AUTHENTICATOR_LEN);
  return frame;
}

/**
 * Checks the authenticator of a complete ISSUE_REQUEST frame as received (`Frame.raw`), in
 * constant time. The frame must already have decoded as an ISSUE_REQUEST.
 */
export function verifyRequestAuthenticator(backend: CryptoBackend, gatewayKey: Uint8Array, frame: Uint8Array): boolean {
  if (frame.length < FRAME_HEADER_LEN + 2 + AUTHENTICATOR_LEN) return false;
  const authKey = deriveRequestAuthKey(backend, gatewayKey);
  try {
    return verifyRequestAuthenticatorWithKey(backend, authKey, frame);
  } finally {
    zeroize(authKey);
  }
}

/** verifyRequestAuthenticator with the request key already derived (deriveRequestAuthKey), for callers that cache it. */
export function verifyRequestAuthenticatorWithKey(backend: CryptoBackend, authKey: Uint8Array, frame: Uint8Array): boolean {
  if (frame.length < FRAME_HEADER_LEN + 2 + AUTHENTICATOR_LEN) return false;
  const expected = backend.hmacSha256(authKey, coveredPart(frame));
  return constantTimeEqual(expected, frame.subarray(frame.length - AUTHENTICATOR_LEN));
}
