// Key confirmation for the key-delivery session (spec "Key-delivery session"). The transcript
// covers both HELLO frames and the client ticket, so each side proves it holds the flow's keys
// for exactly this exchange (DESIGN rule 6); the two labels keep one MAC from answering the other.
import type { CryptoBackend } from '../crypto/backend';
import { constantTimeEqual } from '../crypto/compare';
import type { FlowKeys } from './key-schedule';

const GATEWAY_LABEL = new TextEncoder().encode('gateway');
const AGENT_LABEL = new TextEncoder().encode('agent');

/**
 * T = SHA-256(frame(HELLO) || frame(HELLO_REPLY) || clientTicket): the complete frames as sent,
 * 4-byte length prefix included, and the client ticket bytes as carried in TICKET.
 */
export function transcriptHash(backend: CryptoBackend, helloFrame: Uint8Array, helloReplyFrame: Uint8Array, clientTicket: Uint8Array): Uint8Array {
  return backend.sha256(helloFrame, helloReplyFrame, clientTicket);
}

export function gatewayConfirm(backend: CryptoBackend, keys: Pick<FlowKeys, 'confirmGateway'>, transcript: Uint8Array): Uint8Array {
  return backend.hmacSha256(keys.confirmGateway, GATEWAY_LABEL, transcript);
}

export function agentConfirm(backend: CryptoBackend, keys: Pick<FlowKeys, 'confirmAgent'>, transcript: Uint8Array): Uint8Array {
  return backend.hmacSha256(keys.confirmAgent, AGENT_LABEL, transcript);
}

/** Agent side: checks TICKET's gatewayConfirm in constant time. */
export function verifyGatewayConfirm(backend: CryptoBackend, keys: Pick<FlowKeys, 'confirmGateway'>, transcript: Uint8Array, mac: Uint8Array): boolean {
  return constantTimeEqual(gatewayConfirm(backend, keys, transcript), mac);
}

/** Gateway side: checks CONFIRM's agentConfirm in constant time. */
export function verifyAgentConfirm(backend: CryptoBackend, keys: Pick<FlowKeys, 'confirmAgent'>, transcript: Uint8Array, mac: Uint8Array): boolean {
  return constantTimeEqual(agentConfirm(backend, keys, transcript), mac);
}
