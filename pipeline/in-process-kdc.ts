// An honest KDC in the same process, for replay and simulation: the real issuing core
// (kdc/issuer.ts) over an in-memory principal list, with retries answered idempotently.
import type { CryptoBackend } from '../common/crypto/backend';
import type { RandomSource } from '../common/crypto/random';
import { KdcErrorCode, KdcType, decodeKdcMessage, encodeKdcMessage } from '../common/protocol/kdc-messages';
import { type PrincipalRecord, type ServiceRef, issue } from '../kdc/issuer';

export interface InProcessKdcOptions {
  backend: CryptoBackend;
  random: RandomSource;
  principals: readonly PrincipalRecord[];
  /** Which gateway may serve which services for any client (default deny elsewhere). */
  allows(client: string, gateway: string, service: ServiceRef): boolean;
  ticketLifetimeMs: number;
}

export class InProcessKdc {
  private readonly principals = new Map<string, PrincipalRecord>();
  /** requestId (hex) -> the request frame and our answer: a retry gets the same tickets. */
  private readonly answered = new Map<string, { request: string; answer: Uint8Array }>();

  constructor(private readonly options: InProcessKdcOptions) {
    for (const p of options.principals) this.principals.set(p.name, p);
  }

  /** Answers one ISSUE_REQUEST frame with an ISSUE_RESPONSE or ISSUE_ERROR frame. */
  answer(requestFrame: Uint8Array, now: number): Uint8Array {
    const decoded = decodeKdcMessage(requestFrame);
    if (!decoded.ok || decoded.value.message.type !== KdcType.IssueRequest) {
      return encodeKdcMessage({ type: KdcType.IssueError, requestId: new Uint8Array(16), code: KdcErrorCode.Malformed, reason: 'not an issue request' });
    }
    const { message } = decoded.value;
    const id = Buffer.from(message.requestId).toString('hex');
    const request = Buffer.from(requestFrame).toString('base64');
    const cached = this.answered.get(id);
    if (cached !== undefined) {
      if (cached.request === request) return cached.answer;
      return encodeKdcMessage({ type: KdcType.IssueError, requestId: message.requestId, code: KdcErrorCode.Replay, reason: 'request id reused' });
    }
    const outcome = issue(
      { message, raw: decoded.value.frame.raw },
      {
        now: Math.floor(now),
        random: this.options.random,
        backend: this.options.backend,
        lookupPrincipal: (name) => this.principals.get(name) ?? null,
        policyAllows: (client, _groups, gateway, service) => this.options.allows(client, gateway, service),
        ticketLifetimeMs: this.options.ticketLifetimeMs,
      },
    );
    const frame = encodeKdcMessage(outcome.message);
    if (outcome.cacheable) this.answered.set(id, { request, answer: frame });
    return frame;
  }
}
