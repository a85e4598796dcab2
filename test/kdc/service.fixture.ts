// A KDC lab for the service and client suites: a temp dir with a master key and a config for
// the embedded store or a real Redis, populated through the real `kdc-admin` (init, principals,
// policy, exported key files), KDC instances started in process on free loopback ports, and
// helpers that build sealed ISSUE_REQUESTs and talk raw KDC frames over TCP.
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { nodeBackend } from '../../common/crypto/node-backend';
import { FrameDecoder } from '../../common/protocol/framing';
import { type IssueRequestFields, type KdcMessage, decodeKdcMessage } from '../../common/protocol/kdc-messages';
import { sealIssueRequest } from '../../common/protocol/kdc-request-auth';
import { type KdcConfig, loadKdcConfig } from '../../kdc/config';
import { type KeyFile, loadKeyFile } from '../../kdc/key-file';
import { type KdcInstance, type StartKdcOptions, startKdc } from '../../kdc/server';
import { runKdcAdmin } from '../../cli/commands/kdc-admin';
import { type Endpoint, freePort } from '../helpers/redis';

export const LOOPBACK = '127.0.0.1';
export const ROOT = path.resolve(__dirname, '..', '..');
export const CLI = path.join(ROOT, 'dist', 'cli', 'ciphergate.js');
/** dist/ is built (and new enough to have kdc-client): the tests of real KDC processes can run. */
export const DIST_READY = fs.existsSync(CLI) && fs.existsSync(path.join(ROOT, 'dist', 'cli', 'commands', 'kdc-client.js'));
export const SERVICE = { addr: Uint8Array.of(10, 9, 9, 9), port: 5432 };

export type LabStore = { kind: 'embedded' } | { kind: 'redis'; redis: Endpoint };

export interface Lab {
  dir: string;
  configPath: string;
  config: KdcConfig;
  /** Runs `kdc-admin --config <lab> ...argv`; resolves with its output, rejects on failure. */
  admin(...argv: string[]): Promise<string>;
  /** Exports NAME's current key with kdc-admin and loads the key file. */
  key(name: string): Promise<KeyFile>;
  start(opts?: StartKdcOptions): Promise<KdcInstance>;
  /** Stops every instance started here and removes the dir. */
  cleanup(): Promise<void>;
}

export interface LabOptions {
  /** Merged over the lab's config JSON. */
  config?: Record<string, unknown>;
}

/**
 * Principals: gateway gw1 (and gw2, no policy), gwOff (disabled); clients alice, dave (group
 * staff), bob (disabled), nora (allowed only from 10.0.0.0/8). Policy: alice, nora and
 * group:staff may reach SERVICE through gw1.
 */
export async function makeLab(store: LabStore, opts: LabOptions = {}): Promise<Lab> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-kdc-lab-'));
  const configPath = path.join(dir, 'kdc.json');
  const storeJson =
    store.kind === 'embedded'
      ? { embedded: { path: path.join(dir, 'store') } }
      : { redis: { mode: 'standalone', host: store.redis.host, port: store.redis.port, keyPrefix: `lab${randomBytes(4).toString('hex')}`, timeoutMs: 1500 } };
  const json = {
    listen: { kdc: `${LOOPBACK}:7391`, metrics: null },
    store: storeJson,
    masterKey: { file: path.join(dir, 'master.key') },
    rateLimit: null,
    // 1 s, not the 250 ms default: under a fully loaded CI box a healthy Redis can take longer
    // than 100 ms to answer, which turned passing requests into store-unavailable. The outage
    // tests still see a first answer well within their 2 s bound.
    storeDeadlineMs: 1000,
    cache: { pollMs: 100, maxStalenessMs: 500 },
    ...opts.config,
  };
  fs.writeFileSync(configPath, JSON.stringify(json, null, 2));
  const config = loadKdcConfig(configPath);
  const instances: KdcInstance[] = [];
  const out: string[] = [];
  const io = { out: (t: string) => out.push(t), env: process.env, now: Date.now, random: (n: number) => new Uint8Array(randomBytes(n)), user: 'test' };
  const admin = async (...argv: string[]): Promise<string> => {
    out.length = 0;
    const code = await runKdcAdmin(['--config', configPath, ...argv], io);
    if (code !== 0) throw new Error(`kdc-admin ${argv.join(' ')} exited ${code}: ${out.join('\n')}`);
    return out.join('\n');
  };
  await admin('init');
  await admin('principal', 'add', 'gw1');
  await admin('principal', 'add', 'gw2');
  await admin('principal', 'add', 'gwOff', '--disabled');
  await admin('principal', 'add', 'alice');
  await admin('principal', 'add', 'dave', '--group', 'staff');
  await admin('principal', 'add', 'bob', '--disabled');
  await admin('principal', 'add', 'nora', '--allow-net', '10.0.0.0/8');
  await admin('policy', 'add', '--client', 'alice,nora,group:staff', '--gateway', 'gw1', '--service', '10.9.9.9:5432', '--id', 'main');
  let exported = 0;
  return {
    dir,
    configPath,
    config,
    admin,
    key: async (name) => {
      const file = path.join(dir, `${name}-${++exported}.key`);
      await admin('principal', 'export', name, '--out', file);
      return loadKeyFile(file);
    },
    start: async (o = {}) => {
      const k = await startKdc(config, { listenKdc: [{ host: LOOPBACK, port: 0 }], listenHttp: { host: LOOPBACK, port: 0 }, ...o });
      instances.push(k);
      return k;
    },
    cleanup: async () => {
      await Promise.all(instances.map((k) => k.close()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function endpointOf(k: KdcInstance): string {
  const a = k.kdcAddresses[0] as net.AddressInfo;
  return `${LOOPBACK}:${a.port}`;
}

/** A sealed ISSUE_REQUEST from `gateway` (key file) for `client` to SERVICE, fresh ids and now. */
export function request(gateway: KeyFile, client: string, over: Partial<IssueRequestFields> = {}, signKey: Uint8Array = gateway.key): Uint8Array {
  const fields: IssueRequestFields = {
    requestId: new Uint8Array(randomBytes(16)),
    gatewayPrincipal: gateway.principal,
    gatewayKvno: gateway.kvno,
    clientPrincipal: client,
    connId: randomBytes(8).readBigUInt64BE(),
    tuple: { clientAddr: Uint8Array.of(10, 1, 2, 3), clientPort: 40001, serverAddr: SERVICE.addr, serverPort: SERVICE.port },
    clientIsn: randomBytes(4).readUInt32BE(),
    suite: 1,
    gatewayNonce: new Uint8Array(randomBytes(16)),
    agentNonce: new Uint8Array(randomBytes(16)),
    timestampMs: Date.now(),
    ...over,
  };
  return sealIssueRequest(nodeBackend, signKey, fields);
}

export function decodeAnswer(frame: Uint8Array): KdcMessage {
  const d = decodeKdcMessage(frame);
  if (!d.ok) throw new Error(`answer does not decode: ${d.error.detail}`);
  return d.value.message;
}

/** A raw KDC connection: write frames, read answers in arrival order. */
export class RawConn {
  readonly socket: net.Socket;
  private readonly decoder = new FrameDecoder({ maxLength: 2048 });
  private readonly answers: Uint8Array[] = [];
  private waiting: (() => void) | null = null;
  closed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      const r = this.decoder.push(c);
      if (r.ok) this.answers.push(...r.value.map((f) => f.raw));
      this.waiting?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiting?.();
    });
    socket.on('error', () => undefined);
  }

  static open(endpoint: string): Promise<RawConn> {
    const [host, port] = endpoint.split(':');
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: host as string, port: Number(port) }, () => resolve(new RawConn(s)));
      s.once('error', reject);
    });
  }

  send(...frames: Uint8Array[]): void {
    this.socket.write(Buffer.concat(frames));
  }

  /** Resolves with the next `n` answers (in arrival order); rejects after timeoutMs. */
  async read(n: number, timeoutMs = 5000): Promise<Uint8Array[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.answers.length < n) {
      if (this.closed) throw new Error(`connection closed after ${this.answers.length} of ${n} answers`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out with ${this.answers.length} of ${n} answers`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiting = () => {
          clearTimeout(t);
          r();
        };
      });
      this.waiting = null;
    }
    return this.answers.splice(0, n);
  }

  /** Resolves when the KDC closed the connection. */
  async closedByPeer(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('connection still open');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** One request on a fresh connection. */
export async function ask(endpoint: string, frame: Uint8Array): Promise<KdcMessage> {
  const c = await RawConn.open(endpoint);
  try {
    c.send(frame);
    const [a] = await c.read(1);
    return decodeAnswer(a as Uint8Array);
  } finally {
    c.close();
  }
}

export async function httpGet(k: KdcInstance, p: string): Promise<{ status: number; body: string }> {
  const a = k.httpAddress as net.AddressInfo;
  const res = await fetch(`http://${LOOPBACK}:${a.port}${p}`);
  return { status: res.status, body: await res.text() };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls until check() is true; returns the elapsed ms, or throws after timeoutMs. */
export async function within(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await check()) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/**
 * Starts `ciphergate kdc` from dist/ on a fresh port with the lab's store (its config JSON
 * passed through `edit` first); resolves once ready.
 */
export async function startKdcProcess(lab: Lab, edit: (config: Record<string, unknown>) => Record<string, unknown> = (c) => c): Promise<{ proc: ChildProcess; endpoint: string }> {
  const port = await freePort();
  const httpPort = await freePort();
  const cfg = edit(JSON.parse(fs.readFileSync(lab.configPath, 'utf8')) as Record<string, unknown>);
  const file = path.join(lab.dir, `kdc-${port}.json`);
  // Generous store deadlines: a loaded CI machine must not turn slow Redis answers into
  // store-unavailable.
  const store = cfg.store as { redis?: Record<string, unknown> } | undefined;
  const patient = store?.redis ? { ...store, redis: { ...store.redis, timeoutMs: 10_000 } } : store;
  fs.writeFileSync(file, JSON.stringify({ ...cfg, store: patient, storeDeadlineMs: 10_000, listen: { kdc: `${LOOPBACK}:${port}`, metrics: `${LOOPBACK}:${httpPort}` } }));
  const proc = spawn(process.execPath, [CLI, 'kdc', '--config', file, '--log-level', 'warn'], { cwd: ROOT, stdio: 'ignore' });
  await within(`kdc process on ${port} ready`, 15_000, async () => {
    if (proc.exitCode !== null) throw new Error(`kdc process exited ${proc.exitCode}`);
    return fetch(`http://${LOOPBACK}:${httpPort}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
  });
  return { proc, endpoint: `${LOOPBACK}:${port}` };
}

/** SIGKILLs `proc` (if it still runs) and waits for it to exit. */
export async function killProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGKILL');
  await exited;
}
