import { performance } from 'node:perf_hooks';
import { defaultBackend } from '../../common/crypto';
import { zeroize } from '../../common/crypto/compare';
import { systemRandom } from '../../common/crypto/random';
import { bindingEqual } from '../../common/protocol/binding';
import { KDC_ERROR_NAMES, KdcType, type IssueRequestFields, decodeKdcMessage } from '../../common/protocol/kdc-messages';
import { sealIssueRequest } from '../../common/protocol/kdc-request-auth';
import { decodeTicket, openTicket } from '../../common/protocol/ticket';
import { parseIpAddress } from '../../common/wire/address';
import { KdcClient } from '../../kdc/client';
import { parseHostPort } from '../../kdc/config';
import { loadKeyFile } from '../../kdc/key-file';
import { parseArgs, required } from '../args';
import { type Command, UsageError } from '../command';

const DEFAULT_SERVICE = '127.0.0.1:80';

const usage = `usage: ciphergate kdc-client --gateway NAME --gateway-key FILE --client NAME
                            [--kdc HOST:PORT[,HOST:PORT...]] [--service ADDR:PORT]
                            [--client-addr ADDR] [--timeout MS]

Asks the KDC for a session key exactly as a gateway would (an ISSUE_REQUEST sealed with the
gateway's key, random nonces and connection id) and checks the answer: the gateway ticket must
open under the gateway key and carry the request's binding. Prints JSON (key versions, expiry,
ticket sizes, latency; never key bytes).

--kdc            KDC endpoints, tried in turn on failure (default: the key file's "kdc" list)
--gateway-key    the gateway's key file (from \`kdc-admin principal export\`)
--service        the protected service the request names (default ${DEFAULT_SERVICE})
--client-addr    client address in the request's 4-tuple (default loopback of the service's family)
--timeout MS     per attempt (default 2000)

Exit status: 0 tickets issued; 1 the KDC refused (its reason is printed), the KDC was
unreachable, or the answer did not check out; 2 usage.`;

function serviceOf(text: string): { addr: Uint8Array; port: number } {
  const hp = parseHostPort(text);
  if (typeof hp === 'string') throw new UsageError(`--service: ${hp}`);
  const a = parseIpAddress(hp.host);
  if (!a.ok) throw new UsageError(`--service: '${hp.host}' is not an IP address`);
  return { addr: a.value, port: hp.port };
}

function toBigInt(b: Uint8Array): bigint {
  return BigInt(`0x${Buffer.from(b).toString('hex')}`);
}

export const command: Command = {
  name: 'kdc-client',
  summary: 'ask the KDC for a session key as a gateway would (diagnostics)',
  usage,
  async run(argv) {
    const args = parseArgs(argv, { values: ['kdc', 'gateway', 'gateway-key', 'client', 'service', 'client-addr', 'timeout'] });
    if (args.positionals.length > 0) throw new UsageError(`unexpected argument '${args.positionals[0]}'`);
    const gatewayName = required(args, 'gateway');
    const clientName = required(args, 'client');
    const keyFile = loadKeyFile(required(args, 'gateway-key'));
    if (keyFile.principal !== gatewayName) {
      throw new UsageError(`--gateway-key: the key file is for principal '${keyFile.principal}', not '${gatewayName}'`);
    }
    const endpoints = (args.values.get('kdc')?.split(',').filter((s) => s !== '') ?? keyFile.kdc).map((e) => {
      const hp = parseHostPort(e.trim());
      if (typeof hp === 'string') throw new UsageError(`--kdc: ${hp}`);
      return e.trim();
    });
    if (endpoints.length === 0) throw new UsageError('--kdc is required (the key file names no KDC)');
    const service = serviceOf(args.values.get('service') ?? DEFAULT_SERVICE);
    const clientAddrText = args.values.get('client-addr') ?? (service.addr.length === 16 ? '::1' : '127.0.0.1');
    const clientAddr = parseIpAddress(clientAddrText);
    if (!clientAddr.ok) throw new UsageError(`--client-addr: '${clientAddrText}' is not an IP address`);
    const timeoutText = args.values.get('timeout') ?? '2000';
    const timeoutMs = Number(timeoutText);
    if (!/^\d+$/.test(timeoutText) || timeoutMs < 1 || timeoutMs > 600_000) throw new UsageError(`--timeout: '${timeoutText}' is not a number of ms in 1..600000`);

    const backend = defaultBackend;
    const fields: IssueRequestFields = {
      requestId: systemRandom(16),
      gatewayPrincipal: gatewayName,
      gatewayKvno: keyFile.kvno,
      clientPrincipal: clientName,
      connId: toBigInt(systemRandom(8)),
      tuple: { clientAddr: clientAddr.value, clientPort: 40000 + (systemRandom(2)[0] as number), serverAddr: service.addr, serverPort: service.port },
      clientIsn: Number(toBigInt(systemRandom(4))),
      suite: 1,
      gatewayNonce: systemRandom(16),
      agentNonce: systemRandom(16),
      timestampMs: Date.now(),
    };
    const frame = sealIssueRequest(backend, keyFile.key, fields);
    const client = new KdcClient({ endpoints, timeoutMs, retries: Math.max(1, endpoints.length - 1) });
    const t0 = performance.now();
    let answer: Uint8Array;
    try {
      answer = await client.request(frame);
    } finally {
      client.close();
    }
    const latencyMs = Math.round((performance.now() - t0) * 1000) / 1000;
    const d = decodeKdcMessage(answer);
    if (!d.ok) throw new Error(`the KDC's answer does not decode: ${d.error.field}: ${d.error.detail}`);
    const m = d.value.message;
    if (m.type === KdcType.IssueError) {
      const name = KDC_ERROR_NAMES[m.code];
      console.log(JSON.stringify({ result: name, code: m.code, reason: m.reason, latencyMs }));
      console.error(`ciphergate kdc-client: KDC refused: ${name}: ${m.reason}`);
      zeroize(keyFile.key);
      return 1;
    }
    if (m.type !== KdcType.IssueResponse) throw new Error('the KDC answered with a request frame');
    const opened = openTicket(backend, m.gatewayTicket, gatewayName, [{ kvno: keyFile.kvno, key: keyFile.key }]);
    zeroize(keyFile.key);
    if (!opened.ok) throw new Error(`the gateway ticket does not open under ${gatewayName} kvno ${keyFile.kvno}: ${opened.error.detail}`);
    const b = opened.value.binding;
    zeroize(opened.value.sessionKey);
    const expected = { ...b, suite: fields.suite, connId: fields.connId, clientPrincipal: clientName, gatewayPrincipal: gatewayName, tuple: fields.tuple, clientIsn: fields.clientIsn, gatewayNonce: fields.gatewayNonce, agentNonce: fields.agentNonce };
    if (!bindingEqual(b, expected)) throw new Error('the gateway ticket is bound to another request');
    const clientEnvelope = decodeTicket(m.clientTicket);
    console.log(
      JSON.stringify(
        {
          result: 'ok',
          gateway: gatewayName,
          gatewayKvno: opened.value.kvno,
          client: clientName,
          clientKvno: clientEnvelope.ok ? clientEnvelope.value.kvno : null,
          service: args.values.get('service') ?? DEFAULT_SERVICE,
          requestId: Buffer.from(fields.requestId).toString('hex'),
          issuedAt: new Date(b.issuedAtMs).toISOString(),
          expiresAt: new Date(m.expiresAtMs).toISOString(),
          lifetimeMs: m.expiresAtMs - b.issuedAtMs,
          gatewayTicketBytes: m.gatewayTicket.length,
          clientTicketBytes: m.clientTicket.length,
          latencyMs,
        },
        null,
        2,
      ),
    );
    return 0;
  },
};
