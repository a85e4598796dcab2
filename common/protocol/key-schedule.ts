// Per-flow keys (spec "Key schedule"). The salt is the hash of the binding, so the same session
// key used with any other flow, principal pair, ISN or nonce yields unrelated keys (DESIGN rule 6).
import type { CryptoBackend } from '../crypto/backend';
import { zeroize } from '../crypto/compare';
import { type Binding, encodeBinding } from './binding';

export const SESSION_KEY_LEN = 32;
const FLOW_KEY_LEN = 32;
const FLOW_KEYS_INFO = new TextEncoder().encode('ciphergate/1 flow keys');

export interface FlowKeys {
  c2sEnc: Uint8Array;
  c2sMac: Uint8Array;
  s2cEnc: Uint8Array;
  s2cMac: Uint8Array;
  confirmGateway: Uint8Array;
  confirmAgent: Uint8Array;
}

/** HKDF output order; also the order of the fields in FlowKeys. */
export const FLOW_KEY_ORDER = ['c2sEnc', 'c2sMac', 's2cEnc', 's2cMac', 'confirmGateway', 'confirmAgent'] as const;

export function deriveFlowKeys(backend: CryptoBackend, sessionKey: Uint8Array, binding: Binding): FlowKeys {
  if (sessionKey.length !== SESSION_KEY_LEN) throw new RangeError(`session key must be ${SESSION_KEY_LEN} bytes`);
  const salt = backend.sha256(encodeBinding(binding));
  const okm = backend.hkdf(sessionKey, salt, FLOW_KEYS_INFO, FLOW_KEY_LEN * FLOW_KEY_ORDER.length);
  const part = (i: number): Uint8Array => okm.slice(i * FLOW_KEY_LEN, (i + 1) * FLOW_KEY_LEN);
  const keys: FlowKeys = {
    c2sEnc: part(0),
    c2sMac: part(1),
    s2cEnc: part(2),
    s2cMac: part(3),
    confirmGateway: part(4),
    confirmAgent: part(5),
  };
  zeroize(okm);
  return keys;
}

/** Zeroes every key in place (DESIGN rule 5: keys are zeroed on discard). */
export function zeroizeFlowKeys(keys: FlowKeys): void {
  for (const name of FLOW_KEY_ORDER) zeroize(keys[name]);
}
