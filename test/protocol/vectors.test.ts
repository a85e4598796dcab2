import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { getBackend } from '../../common/crypto/index';
import { decodeBinding } from '../../common/protocol/binding';
import { KdType, decodeKdMessage, encodeKdMessage } from '../../common/protocol/kd-messages';
import { KdcType, decodeKdcMessage, encodeKdcMessage } from '../../common/protocol/kdc-messages';
import { findRequestOption } from '../../common/protocol/options';
import { openTicket } from '../../common/protocol/ticket';
import { backends } from './arbitraries';
import { type VectorInputs, type VectorOutputs, bindingOf, computeVectors } from './vector-builder';

const doc = JSON.parse(readFileSync(join(__dirname, '../vectors/protocol.json'), 'utf8')) as { inputs: VectorInputs; outputs: VectorOutputs };
const { inputs, outputs } = doc;
const h = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
const out = (path: string): Uint8Array => {
  const [a, b] = path.split('.') as [string, string | undefined];
  const v = outputs[a];
  return h(typeof v === 'string' ? v : (v as Record<string, string>)[b as string] as string);
};

describe.each(backends)('protocol vectors (%s backend)', (name) => {
  const backend = getBackend(name);
  const computed = computeVectors(backend, inputs);

  it.each(Object.keys(outputs))('%s recomputes byte-exactly', (key) => {
    expect(computed[key]).toEqual(outputs[key]);
  });

  it('tickets open with the owners keys to the session key and binding', () => {
    const b = bindingOf(inputs);
    for (const [ticket, owner, k] of [
      ['gatewayTicket', inputs.gatewayPrincipal, inputs.gatewayKey],
      ['clientTicket', inputs.clientPrincipal, inputs.clientKey],
    ] as const) {
      const r = openTicket(backend, out(ticket), owner, [{ kvno: k.kvno, key: h(k.key) }]);
      expect(r.ok && r.value.sessionKey).toEqual(h(inputs.sessionKey));
      expect(r.ok && r.value.binding).toEqual(b);
    }
  });
});

describe('protocol vectors decode', () => {
  it('options, binding and every frame decode and re-encode to the same bytes', () => {
    const opt = findRequestOption(out('requestOption'));
    expect(opt.ok && opt.value?.connId).toBe(BigInt(`0x${inputs.connId}`));
    expect(decodeBinding(out('binding'))).toEqual({ ok: true, value: bindingOf(inputs) });
    const kdTypes = { hello: KdType.Hello, helloReply: KdType.HelloReply, ticket: KdType.Ticket, confirm: KdType.Confirm, error: KdType.Error };
    for (const [k, type] of Object.entries(kdTypes)) {
      const d = decodeKdMessage(out(`kd.${k}`));
      if (!d.ok) throw new Error(`${k}: ${d.error.detail}`);
      expect(d.value.message.type).toBe(type);
      expect(encodeKdMessage(d.value.message)).toEqual(out(`kd.${k}`));
    }
    const kdcTypes = { issueRequest: KdcType.IssueRequest, issueResponse: KdcType.IssueResponse, issueError: KdcType.IssueError };
    for (const [k, type] of Object.entries(kdcTypes)) {
      const d = decodeKdcMessage(out(`kdc.${k}`));
      if (!d.ok) throw new Error(`${k}: ${d.error.detail}`);
      expect(d.value.message.type).toBe(type);
      expect(encodeKdcMessage(d.value.message)).toEqual(out(`kdc.${k}`));
    }
  });
});
