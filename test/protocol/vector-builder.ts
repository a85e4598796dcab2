// Computes every protocol test vector from the fixed inputs in test/vectors/protocol.json.
// vectors.test.ts compares the result with the stored hex on both crypto backends.
import type { CryptoBackend } from '../../common/crypto/backend';
import type { Binding } from '../../common/protocol/binding';
import { encodeBinding } from '../../common/protocol/binding';
import { agentConfirm, gatewayConfirm, transcriptHash } from '../../common/protocol/confirm';
import { KdErrorCode, KdType, encodeKdMessage } from '../../common/protocol/kd-messages';
import { KdcErrorCode, type IssueRequestMsg, KdcType, decodeKdcMessage, encodeKdcMessage } from '../../common/protocol/kdc-messages';
import { deriveRequestAuthKey, sealIssueRequest } from '../../common/protocol/kdc-request-auth';
import { FLOW_KEY_ORDER, deriveFlowKeys } from '../../common/protocol/key-schedule';
import { encodeRequestOption, encodeTagOption } from '../../common/protocol/options';
import { deriveTicketKey, sealTicket } from '../../common/protocol/ticket';
import { issue } from '../../kdc/issuer';

export interface VectorInputs {
  optionConfig: { kind: number; exid: number };
  requestOption: { version: number; suites: number };
  connId: string;
  clientPrincipal: string;
  gatewayPrincipal: string;
  tuple: { clientAddr: string; clientPort: number; serverAddr: string; serverPort: number };
  clientIsn: number;
  suite: number;
  gatewayNonce: string;
  agentNonce: string;
  issuedAtMs: number;
  ticketLifetimeMs: number;
  timestampMs: number;
  sessionKey: string;
  gatewayKey: { kvno: number; key: string };
  clientKey: { kvno: number; key: string };
  requestId: string;
  gatewayTicketNonce: string;
  clientTicketNonce: string;
  kdError: { code: number; reason: string };
  kdcError: { code: number; reason: string };
}

export type VectorOutputs = Record<string, string | Record<string, string>>;

const h = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
const x = (b: Uint8Array): string => Buffer.from(b).toString('hex');

export function bindingOf(i: VectorInputs): Binding {
  return {
    suite: i.suite,
    connId: BigInt(`0x${i.connId}`),
    clientPrincipal: i.clientPrincipal,
    gatewayPrincipal: i.gatewayPrincipal,
    tuple: { clientAddr: h(i.tuple.clientAddr), clientPort: i.tuple.clientPort, serverAddr: h(i.tuple.serverAddr), serverPort: i.tuple.serverPort },
    clientIsn: i.clientIsn,
    gatewayNonce: h(i.gatewayNonce),
    agentNonce: h(i.agentNonce),
    issuedAtMs: i.issuedAtMs,
    expiresAtMs: i.issuedAtMs + i.ticketLifetimeMs,
  };
}

export function computeVectors(backend: CryptoBackend, i: VectorInputs): VectorOutputs {
  const b = bindingOf(i);
  const sessionKey = h(i.sessionKey);
  const gatewayKey = { kvno: i.gatewayKey.kvno, key: h(i.gatewayKey.key) };
  const clientKey = { kvno: i.clientKey.kvno, key: h(i.clientKey.key) };
  const requestId = h(i.requestId);
  const flow = deriveFlowKeys(backend, sessionKey, b);
  const seal = (owner: string, ownerKey: typeof gatewayKey, nonce: string): Uint8Array =>
    sealTicket(backend, { owner, ownerKey, requestId, nonce: h(nonce), sessionKey, binding: b });
  const gatewayTicket = seal(b.gatewayPrincipal, gatewayKey, i.gatewayTicketNonce);
  const clientTicket = seal(b.clientPrincipal, clientKey, i.clientTicketNonce);

  const hello = encodeKdMessage({
    type: KdType.Hello,
    connId: b.connId,
    gatewayPrincipal: b.gatewayPrincipal,
    tuple: b.tuple,
    clientIsn: b.clientIsn,
    suite: b.suite,
    gatewayNonce: b.gatewayNonce,
  });
  const helloReply = encodeKdMessage({ type: KdType.HelloReply, connId: b.connId, clientPrincipal: b.clientPrincipal, agentNonce: b.agentNonce });
  const transcript = transcriptHash(backend, hello, helloReply, clientTicket);
  const gConfirm = gatewayConfirm(backend, flow, transcript);
  const aConfirm = agentConfirm(backend, flow, transcript);
  const issueRequest = sealIssueRequest(backend, gatewayKey.key, {
    requestId,
    gatewayPrincipal: b.gatewayPrincipal,
    gatewayKvno: gatewayKey.kvno,
    clientPrincipal: b.clientPrincipal,
    connId: b.connId,
    tuple: b.tuple,
    clientIsn: b.clientIsn,
    suite: b.suite,
    gatewayNonce: b.gatewayNonce,
    agentNonce: b.agentNonce,
    timestampMs: i.timestampMs,
  });
  const issueResponse = encodeKdcMessage({ type: KdcType.IssueResponse, requestId, expiresAtMs: b.expiresAtMs, gatewayTicket, clientTicket });

  // The issuer, fed the same key and nonces as its random draws, must produce the same response.
  const draws = [i.sessionKey, i.gatewayTicketNonce, i.clientTicketNonce].map(h);
  const issued = issue(
    { message: requestOf(issueRequest), raw: issueRequest },
    {
      now: i.issuedAtMs,
      random: () => draws.shift() ?? new Uint8Array(0),
      backend,
      lookupPrincipal: (name) =>
        name === b.gatewayPrincipal || name === b.clientPrincipal
          ? { name, keys: [name === b.gatewayPrincipal ? gatewayKey : clientKey], disabled: false, allowedNets: [], groups: [] }
          : null,
      policyAllows: () => true,
      ticketLifetimeMs: i.ticketLifetimeMs,
    },
  );

  return {
    requestOption: x(encodeRequestOption({ ...i.requestOption, connId: b.connId }, i.optionConfig)),
    tagOption: x(encodeTagOption(i.optionConfig).bytes),
    binding: x(encodeBinding(b)),
    flowKeys: Object.fromEntries(FLOW_KEY_ORDER.map((k) => [k, x(flow[k])])),
    gatewayTicketKey: x(deriveTicketKey(backend, gatewayKey.key)),
    clientTicketKey: x(deriveTicketKey(backend, clientKey.key)),
    gatewayTicket: x(gatewayTicket),
    clientTicket: x(clientTicket),
    requestAuthKey: x(deriveRequestAuthKey(backend, gatewayKey.key)),
    authenticator: x(issueRequest.subarray(issueRequest.length - 32)),
    transcript: x(transcript),
    gatewayConfirm: x(gConfirm),
    agentConfirm: x(aConfirm),
    kd: {
      hello: x(hello),
      helloReply: x(helloReply),
      ticket: x(encodeKdMessage({ type: KdType.Ticket, connId: b.connId, clientTicket, gatewayConfirm: gConfirm })),
      confirm: x(encodeKdMessage({ type: KdType.Confirm, connId: b.connId, agentConfirm: aConfirm })),
      error: x(encodeKdMessage({ type: KdType.Error, connId: b.connId, code: i.kdError.code as KdErrorCode, reason: i.kdError.reason })),
    },
    kdc: {
      issueRequest: x(issueRequest),
      issueResponse: x(issueResponse),
      issueError: x(encodeKdcMessage({ type: KdcType.IssueError, requestId, code: i.kdcError.code as KdcErrorCode, reason: i.kdcError.reason })),
      issuerOutput: x(encodeKdcMessage(issued.message)),
    },
  };
}

function requestOf(frame: Uint8Array): IssueRequestMsg {
  const d = decodeKdcMessage(frame);
  if (!d.ok || d.value.message.type !== KdcType.IssueRequest) throw new Error('vector ISSUE_REQUEST does not decode');
  return d.value.message;
}
