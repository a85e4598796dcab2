// The TLS baseline of `bench e2e`: a stunnel pair across the lab, as an operator would deploy it
// to protect the same plaintext services. A stunnel client in the client namespace accepts
// plaintext on loopback and speaks TLS 1.3 to a stunnel server in the server namespace, which
// forwards plaintext to the local service. The certificate is a fresh self-signed ECDSA P-256
// one, made with openssl at bench time; the client verifies it (chain and IP address).
// Everything else is stunnel's default (session resumption included).
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CiphergateLab } from '../lab/topology';

export interface TlsTunnel {
  /** What the client application connects to (the stunnel client, on the client's loopback). */
  local: { host: string; port: number };
  /** Where the stunnel server listens (TLS) and where it forwards (plaintext, server loopback). */
  remote: { tlsPort: number; servicePort: number };
}

export interface StunnelPair {
  /** name -> pid of the stunnel processes ("stunnel client", "stunnel server"). */
  pids: Record<string, number>;
  tunnels: Record<'http' | 'iperf', TlsTunnel>;
  describe: TlsDescription;
}

export interface TlsDescription {
  implementation: string;
  /** As negotiated, from an `openssl s_client` probe through the real path. */
  protocol: string;
  cipherSuite: string;
  certificate: string;
  peerSignature: string;
  notes: string;
}

const CERT_NAME = 'ciphergate-bench-server';

/** A self-signed ECDSA P-256 certificate for `ip` (CN and subjectAltName IP); returns the files. */
export function makeCertificate(dir: string, ip: string): { cert: string; key: string } {
  const cert = path.join(dir, 'stunnel-cert.pem');
  const key = path.join(dir, 'stunnel-key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
    '-days', '2', '-subj', `/CN=${CERT_NAME}`, '-addext', `subjectAltName=IP:${ip}`], { stdio: 'ignore' });
  return { cert, key };
}

/** `stunnel4 -version` prints on stderr. */
function stunnelVersion(): string {
  const r = spawnSync('stunnel4', ['-version'], { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`;
}

function describeImplementation(): string {
  const text = stunnelVersion();
  const stunnel = /stunnel (\S+)/.exec(text)?.[1] ?? '?';
  const openssl = /Running\s+with (OpenSSL \S+)/.exec(text)?.[1] ?? '?';
  return `stunnel ${stunnel} (${openssl})`;
}

/**
 * Starts the stunnel server (server namespace) and client (client namespace) for the lab's web
 * server (plaintext port `httpPort`) and an iperf3 server (`iperfPort`), and probes the
 * negotiated protocol with openssl s_client from the client namespace.
 */
export async function startStunnelPair(lab: CiphergateLab, dir: string, ports: { httpPort: number; iperfPort: number }): Promise<StunnelPair> {
  const serverIp = lab.server.v4;
  const { cert, key } = makeCertificate(dir, serverIp);
  const tunnels: Record<'http' | 'iperf', TlsTunnel> = {
    http: { local: { host: '127.0.0.1', port: 18080 }, remote: { tlsPort: 8443, servicePort: ports.httpPort } },
    iperf: { local: { host: '127.0.0.1', port: 15202 }, remote: { tlsPort: 8444, servicePort: ports.iperfPort } },
  };
  const tls13 = ['sslVersionMin = TLSv1.3', 'sslVersionMax = TLSv1.3'];
  const global = ['foreground = yes', 'pid ='];
  const serverConf = [
    ...global,
    ...Object.entries(tunnels).flatMap(([name, t]) => [
      `[${name}]`, `accept = ${serverIp}:${t.remote.tlsPort}`, `connect = 127.0.0.1:${t.remote.servicePort}`, `cert = ${cert}`, `key = ${key}`, ...tls13,
    ]),
  ];
  const clientConf = [
    ...global,
    'client = yes',
    ...Object.entries(tunnels).flatMap(([name, t]) => [
      `[${name}]`, `accept = ${t.local.host}:${t.local.port}`, `connect = ${serverIp}:${t.remote.tlsPort}`,
      'verifyChain = yes', `CAfile = ${cert}`, `checkIP = ${serverIp}`, ...tls13,
    ]),
  ];
  const write = (name: string, lines: string[]): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, `${lines.join('\n')}\n`);
    return f;
  };
  const server = lab.netns.spawn(lab.server.ns, 'stunnel4', [write('stunnel-server.conf', serverConf)], { logFile: path.join(dir, 'stunnel-server.log') });
  const client = lab.netns.spawn(lab.client.ns, 'stunnel4', [write('stunnel-client.conf', clientConf)], { logFile: path.join(dir, 'stunnel-client.log') });
  for (const t of Object.values(tunnels)) {
    await lab.netns.waitForListen(lab.server.ns, t.remote.tlsPort);
    await lab.netns.waitForListen(lab.client.ns, t.local.port);
  }
  const probe = await lab.client$('openssl', ['s_client', '-connect', `${serverIp}:${tunnels.http.remote.tlsPort}`, '-brief', '-CAfile', cert, '-verify_return_error'], {
    input: '',
    timeoutMs: 10_000,
    allowFailure: true,
  });
  const field = (name: string): string => new RegExp(`^${name}: (.+)$`, 'm').exec(probe.stderr)?.[1]?.trim() ?? '?';
  return {
    pids: { 'stunnel client': client.pid, 'stunnel server': server.pid },
    tunnels,
    describe: {
      implementation: describeImplementation(),
      protocol: field('Protocol version'),
      cipherSuite: field('Ciphersuite'),
      certificate: 'self-signed ECDSA P-256 (openssl req at bench time), verified by the client (chain and IP)',
      peerSignature: field('Peer signature type'),
      notes: 'stunnel defaults otherwise: one thread per connection, TLS session resumption on, log level notice',
    },
  };
}
