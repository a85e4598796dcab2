// The ciphergate lab: network namespaces for a client host, the gateway (router, host or bridge
// mode), a server host, and a KDC host with Redis; real kernel TCP, offloads off, and the real
// daemons as processes (`ciphergate kdc`, `gateway`, `agent`). Used by `ciphergate lab`, the demo,
// the end-to-end tests and `bench e2e`.
//
//   router:  client 10.77.1.2 --- 10.77.1.1 [gateway] 10.77.2.1 --- 10.77.2.2 server
//                                      10.77.3.1 --- 10.77.3.2 kdc (+ redis on its loopback)
//   host:    client 10.77.1.2 --- 10.77.1.1 server+gateway 10.77.3.1 --- 10.77.3.2 kdc
//   bridge:  client 10.77.4.2 --- [gateway: two interfaces, no IP] --- 10.77.4.3 server
//            management: gateway 10.77.5.1 --- 10.77.5.2 client; gateway 10.77.3.1 --- 10.77.3.2 kdc
// IPv6 alongside (fd77:N::x). The server runs a web server (80), redis-server (6379) and
// iperf3 (5201), all protected; port 8080 (the same web server) stays unprotected.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readControl } from '../runtime/control';
import { type BackgroundProcess, type Capture, NetnsLab } from './netns';

export type LabMode = 'router' | 'host' | 'bridge';

export const LAB_PORTS = { http: 80, redis: 6379, iperf: 5201, plainHttp: 8080, kdc: 7391, keyDelivery: 7390 } as const;

export interface LabOptions {
  mode: LabMode;
  /** Working directory: configs, keys, logs, captures. */
  dir: string;
  /** Fixed name suffix and no clean-up at exit (for `ciphergate lab up`). */
  persistent?: { id: string };
  serviceMode?: 'require' | 'optional';
  agentMode?: 'require' | 'opportunistic';
  /** Gateway timers (e.g. a short idle timeout for tests). */
  gatewayTimers?: Record<string, number>;
  agentTimers?: Record<string, number>;
  /** tcpdump on the wire and server links from the start. */
  capture?: boolean;
  /** Skip starting the agent (a client without ciphergate). */
  noAgent?: boolean;
  /** Worker processes (NFQUEUE numbers) of each daemon; 1 runs a single process. */
  gatewayWorkers?: number;
  agentWorkers?: number;
}

interface Host {
  ns: string;
  v4: string;
  v6: string;
}

/** Where the CLI lives: dist/cli/ciphergate.js whether we run from dist/ or from sources. */
export function cliPath(): string {
  const root = __dirname.split(path.sep).includes('dist') ? path.resolve(__dirname, '..', '..') : path.resolve(__dirname, '..');
  return path.join(root, 'dist', 'cli', 'ciphergate.js');
}

/** What a lab writes to its directory that a new lab must not inherit (logs and captures are overwritten). */
const LAB_STATE_FILES = ['appendonlydir', 'kdc.json', 'master.key', 'gateway.json', 'gateway.key', 'gateway.sock', 'agent.json', 'agent.key', 'agent.sock'];

const distFile = (rel: string): string => path.join(path.dirname(path.dirname(cliPath())), rel);

export class CiphergateLab {
  readonly netns: NetnsLab;
  client!: Host;
  server!: Host;
  /** The namespace the gateway runs in (the server's in host mode). */
  gatewayNs!: string;
  kdcNs!: string;
  kdcAddr = '10.77.3.2';
  /** The interfaces a capture of the encrypted wire and of the server side runs on. */
  wireDev!: { ns: string; dev: string };
  serverDev!: { ns: string; dev: string };
  readonly procs = new Map<string, BackgroundProcess>();
  private captures: Capture[] = [];

  private constructor(readonly opts: LabOptions) {
    this.netns = new NetnsLab({ prefix: 'cg', ...(opts.persistent ? { id: opts.persistent.id, persistent: true } : {}) });
    fs.mkdirSync(opts.dir, { recursive: true });
  }

  /**
   * A new lab starts from no state: a previous lab in the same directory left its KDC store (the
   * Redis append-only files), master key and key files there, and provisioning the same principals
   * again would fail. Only the lab's own files are removed, never the rest of a user's --dir.
   */
  private clearPreviousState(): void {
    for (const name of LAB_STATE_FILES) fs.rmSync(this.file(name), { recursive: true, force: true });
  }

  static async up(opts: LabOptions): Promise<CiphergateLab> {
    const lab = new CiphergateLab(opts);
    lab.clearPreviousState();
    try {
      await lab.build();
      await lab.startKdc();
      await lab.provision();
      await lab.startServers();
      if (opts.capture) await lab.startCaptures();
      await lab.startGateway();
      if (!opts.noAgent) await lab.startAgent();
    } catch (e) {
      const logs = [...lab.procs.entries()].map(([name, p]) => `--- ${name}:\n${p.stdout().slice(-2000)}`).join('\n');
      await lab.down().catch(() => undefined);
      throw new Error(`lab up failed: ${(e as Error).message}\n${logs}`);
    }
    return lab;
  }

  private async link(nsA: string, nsB: string, a: [string, string][], b: [string, string][], names: [string, string]): Promise<[string, string]> {
    const l = await this.netns.veth(nsA, nsB, { devA: names[0], devB: names[1] });
    for (const [ns, dev] of [
      [nsA, l.devA],
      [nsB, l.devB],
    ] as const)
      await this.netns.offloadsOff(ns, dev);
    for (const [addr] of a) await this.netns.addAddress(nsA, l.devA, addr);
    for (const [addr] of b) await this.netns.addAddress(nsB, l.devB, addr);
    return [l.devA, l.devB];
  }

  private async route(ns: string, args: string[]): Promise<void> {
    await this.netns.exec(ns, 'ip', args.includes(':') || args.some((x) => x.includes(':')) ? ['-6', 'route', 'add', ...args] : ['route', 'add', ...args]);
  }

  private async build(): Promise<void> {
    const n = this.netns;
    const mode = this.opts.mode;
    const clientNs = await n.namespace('client');
    const serverNs = await n.namespace('server');
    this.kdcNs = await n.namespace('kdc');
    if (mode === 'router') {
      const gw = await n.namespace('gateway');
      this.gatewayNs = gw;
      const [c0] = await this.link(clientNs, gw, [['10.77.1.2/24', ''], ['fd77:1::2/64', '']], [['10.77.1.1/24', ''], ['fd77:1::1/64', '']], ['c0', 'g0']);
      const [, s0] = await this.link(gw, serverNs, [['10.77.2.1/24', ''], ['fd77:2::1/64', '']], [['10.77.2.2/24', ''], ['fd77:2::2/64', '']], ['g1', 's0']);
      await this.link(gw, this.kdcNs, [['10.77.3.1/24', '']], [['10.77.3.2/24', '']], ['g2', 'k0']);
      await n.sysctl(gw, 'net.ipv4.ip_forward', 1);
      await n.sysctl(gw, 'net.ipv6.conf.all.forwarding', 1);
      await this.route(clientNs, ['default', 'via', '10.77.1.1']);
      await this.route(clientNs, ['default', 'via', 'fd77:1::1']);
      await this.route(serverNs, ['default', 'via', '10.77.2.1']);
      await this.route(serverNs, ['default', 'via', 'fd77:2::1']);
      this.client = { ns: clientNs, v4: '10.77.1.2', v6: 'fd77:1::2' };
      this.server = { ns: serverNs, v4: '10.77.2.2', v6: 'fd77:2::2' };
      this.wireDev = { ns: clientNs, dev: c0 };
      this.serverDev = { ns: serverNs, dev: s0 };
    } else if (mode === 'host') {
      this.gatewayNs = serverNs;
      const [c0, s0] = await this.link(clientNs, serverNs, [['10.77.1.2/24', ''], ['fd77:1::2/64', '']], [['10.77.1.1/24', ''], ['fd77:1::1/64', '']], ['c0', 's0']);
      await this.link(serverNs, this.kdcNs, [['10.77.3.1/24', '']], [['10.77.3.2/24', '']], ['s1', 'k0']);
      this.client = { ns: clientNs, v4: '10.77.1.2', v6: 'fd77:1::2' };
      this.server = { ns: serverNs, v4: '10.77.1.1', v6: 'fd77:1::1' };
      this.wireDev = { ns: clientNs, dev: c0 };
      // In host mode the plaintext exists only inside the server host: capture its loopback-free
      // view is impossible, so the server-side capture is the same wire seen from the server.
      this.serverDev = { ns: serverNs, dev: s0 };
    } else {
      const gw = await n.namespace('gateway');
      this.gatewayNs = gw;
      const [c0] = await this.link(clientNs, gw, [['10.77.4.2/24', ''], ['fd77:4::2/64', '']], [], ['c0', 'b0']);
      const [, s0] = await this.link(gw, serverNs, [], [['10.77.4.3/24', ''], ['fd77:4::3/64', '']], ['b1', 's0']);
      await this.link(gw, clientNs, [['10.77.5.1/24', ''], ['fd77:5::1/64', '']], [['10.77.5.2/24', ''], ['fd77:5::2/64', '']], ['m0', 'm1']);
      await this.link(gw, this.kdcNs, [['10.77.3.1/24', '']], [['10.77.3.2/24', '']], ['g2', 'k0']);
      // The gateway reaches agents over its management link.
      await this.route(gw, ['10.77.4.0/24', 'via', '10.77.5.2']);
      await this.route(gw, ['fd77:4::/64', 'via', 'fd77:5::2']);
      this.client = { ns: clientNs, v4: '10.77.4.2', v6: 'fd77:4::2' };
      this.server = { ns: serverNs, v4: '10.77.4.3', v6: 'fd77:4::3' };
      this.wireDev = { ns: clientNs, dev: c0 };
      this.serverDev = { ns: serverNs, dev: s0 };
    }
  }

  // ---- processes --------------------------------------------------------------------------

  private spawnLogged(name: string, ns: string, cmd: string, args: string[]): BackgroundProcess {
    const p = this.netns.spawn(ns, cmd, args, { logFile: path.join(this.opts.dir, `${name}.log`) });
    this.procs.set(name, p);
    return p;
  }

  /** Runs `ciphergate ARGS` in a namespace to completion. */
  async cli(ns: string, args: string[], opts: { allowFailure?: boolean } = {}) {
    return this.netns.exec(ns, process.execPath, [cliPath(), ...args], { timeoutMs: 60_000, ...opts });
  }

  private file(name: string): string {
    return path.join(this.opts.dir, name);
  }

  private writeJson(name: string, value: unknown): string {
    const f = this.file(name);
    fs.writeFileSync(f, JSON.stringify(value, null, 2) + '\n');
    return f;
  }

  async startRedis(): Promise<void> {
    // The KDC's store keeps an append-only file, so a Redis restart (fail-closed tests) keeps the
    // principals. fsync every second, from Redis's background thread: with `always`, one slow
    // fsync under load stalls Redis's only thread past the KDC's 250 ms health ping, and the KDC
    // then refuses every request for ~2 s (seen in bench e2e). See OPERATIONS.md, "Redis durability".
    this.spawnLogged('redis', this.kdcNs, 'redis-server', ['--bind', '127.0.0.1', '--port', '6379', '--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec', '--appendfilename', 'kdc-store.aof', '--dir', this.opts.dir]);
    await this.netns.waitForListen(this.kdcNs, 6379);
  }

  async startKdc(): Promise<void> {
    if (!this.procs.has('redis')) await this.startRedis();
    if (!fs.existsSync(this.file('kdc.json'))) {
      this.writeJson('kdc.json', {
        listen: { kdc: [`${this.kdcAddr}:${LAB_PORTS.kdc}`], metrics: '127.0.0.1:9391' },
        store: { redis: { mode: 'standalone', host: '127.0.0.1', port: 6379 } },
        masterKey: { file: this.file('master.key') },
      });
      await this.kdcAdmin(['init'], true);
    }
    this.spawnLogged('kdc', this.kdcNs, process.execPath, [cliPath(), 'kdc', '--config', this.file('kdc.json')]);
    await this.netns.waitForListen(this.kdcNs, LAB_PORTS.kdc);
  }

  private async provision(): Promise<void> {
    const admin = (args: string[]) => this.kdcAdmin(args, true);
    await admin(['principal', 'add', 'client@lab', '--group', 'lab-clients']);
    await admin(['principal', 'add', 'gateway@lab']);
    await admin(['policy', 'add', '--client', 'group:lab-clients', '--gateway', 'gateway@lab', '--service', '*', '--id', 'lab']);
    await admin(['principal', 'export', 'client@lab', '--out', this.file('agent.key')]);
    await admin(['principal', 'export', 'gateway@lab', '--out', this.file('gateway.key'), '--kdc', `${this.kdcAddr}:${LAB_PORTS.kdc}`]);
  }

  /** Runs kdc-admin in the KDC host (for fail-closed tests: disable, delete, policy). */
  kdcAdmin(args: string[], mustSucceed = false) {
    return this.cli(this.kdcNs, ['kdc-admin', '--config', this.file('kdc.json'), ...args], { allowFailure: !mustSucceed });
  }

  private async startServers(): Promise<void> {
    const ns = this.server.ns;
    this.spawnLogged('http', ns, process.execPath, [distFile('lab/http-server.js'), String(LAB_PORTS.http)]);
    this.spawnLogged('http-plain', ns, process.execPath, [distFile('lab/http-server.js'), String(LAB_PORTS.plainHttp)]);
    this.spawnLogged('redis-server', ns, 'redis-server', ['--bind', '0.0.0.0', '::', '--port', String(LAB_PORTS.redis), '--protected-mode', 'no', '--save', '', '--appendonly', 'no', '--dir', this.opts.dir]);
    this.spawnLogged('iperf3', ns, 'iperf3', ['-s', '-p', String(LAB_PORTS.iperf)]);
    for (const port of [LAB_PORTS.http, LAB_PORTS.plainHttp, LAB_PORTS.redis, LAB_PORTS.iperf]) await this.netns.waitForListen(ns, port);
  }

  private protectedEndpoints(): string[] {
    const ports = [LAB_PORTS.http, LAB_PORTS.redis, LAB_PORTS.iperf];
    return ports.flatMap((p) => [`${this.server.v4}:${p}`, `[${this.server.v6}]:${p}`]);
  }

  gatewayConfigFile(): string {
    const mode = this.opts.mode;
    return this.writeJson('gateway.json', {
      keyFile: this.file('gateway.key'),
      mode,
      services: this.protectedEndpoints().map((endpoint) => ({ endpoint, mode: this.opts.serviceMode ?? 'require' })),
      ...(mode === 'bridge' ? { bridge: { clientInterface: 'b0', serverInterface: 'b1' } } : { nfqueue: { queue: 0, workers: this.opts.gatewayWorkers ?? 1 } }),
      dataInterfaces: mode === 'router' ? ['g0', 'g1'] : mode === 'host' ? ['s0'] : ['b0', 'b1'],
      metrics: '127.0.0.1:9392',
      control: this.file('gateway.sock'),
      ...(this.opts.gatewayTimers ? { timers: this.opts.gatewayTimers } : {}),
    });
  }

  async startGateway(): Promise<void> {
    this.spawnLogged('gateway', this.gatewayNs, process.execPath, [cliPath(), 'gateway', '--config', this.gatewayConfigFile()]);
    await this.waitForControl('gateway', this.file('gateway.sock'));
  }

  async startAgent(): Promise<void> {
    this.writeJson('agent.json', {
      keyFiles: [this.file('agent.key')],
      destinations: this.protectedEndpoints().map((endpoint) => ({ endpoint, mode: this.opts.agentMode ?? 'require', gateway: 'gateway@lab' })),
      listen: `[::]:${LAB_PORTS.keyDelivery}`,
      nfqueue: { queue: 10, workers: this.opts.agentWorkers ?? 1 },
      dataInterfaces: ['c0'],
      metrics: '127.0.0.1:9393',
      control: this.file('agent.sock'),
      ...(this.opts.agentTimers ? { timers: this.opts.agentTimers } : {}),
    });
    this.spawnLogged('agent', this.client.ns, process.execPath, [cliPath(), 'agent', '--config', this.file('agent.json')]);
    await this.waitForControl('agent', this.file('agent.sock'));
  }

  private async waitForControl(name: string, socket: string): Promise<void> {
    const p = this.procs.get(name) as BackgroundProcess;
    let exited = false;
    void p.exited.then(() => (exited = true));
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (exited) throw new Error(`${name} exited: ${p.stdout().trim().slice(-1500)}`);
      try {
        await readControl(socket, 500);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error(`${name} did not come up within 20 s: ${p.stdout().slice(-1500)}`);
  }

  async stop(name: 'gateway' | 'agent' | 'kdc' | 'redis', signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.procs.get(name)?.stop(signal);
    this.procs.delete(name);
  }

  /**
   * What systemd's ExecStopPost= does after a daemon stops (deploy/systemd): installs the rules
   * a stopped gateway or agent leaves, for one that was killed before it could.
   */
  async installClosedRules(role: 'gateway' | 'agent'): Promise<void> {
    const ns = role === 'gateway' ? this.gatewayNs : this.client.ns;
    const r = await this.netns.exec(ns, process.execPath, [cliPath(), role, '--config', this.file(`${role}.json`), '--closed-rules']);
    if (r.code !== 0) throw new Error(`${role} --closed-rules failed (${r.code}): ${r.stderr}`);
  }

  /** The status document of a running daemon (its control socket). */
  async status(role: 'gateway' | 'agent'): Promise<Record<string, unknown> & { keyedFlows: number; flowCount: number; keyingsInProgress: number; counters: Record<string, number> }> {
    return (await readControl(this.file(`${role}.sock`))) as never;
  }

  /** Sends a signal to a daemon without waiting (SIGHUP reloads). */
  signal(name: string, signal: NodeJS.Signals): void {
    const p = this.procs.get(name);
    if (p) process.kill(p.pid, signal);
  }

  // ---- traffic and captures ---------------------------------------------------------------

  /** Runs a program on the client host. */
  client$(cmd: string, args: string[], opts: { timeoutMs?: number; allowFailure?: boolean; input?: string | Uint8Array } = {}) {
    return this.netns.exec(this.client.ns, cmd, args, { timeoutMs: 120_000, ...opts });
  }

  server$(cmd: string, args: string[], opts: { timeoutMs?: number; allowFailure?: boolean } = {}) {
    return this.netns.exec(this.server.ns, cmd, args, { timeoutMs: 120_000, ...opts });
  }

  /**
   * tcpdump on every link: the encrypted wire (client side), the server side, and the KDC link
   * (KDC requests and answers). Returns the pcap paths.
   */
  async startCaptures(tag = 'run'): Promise<{ wire: string; server: string; kdc: string }> {
    const files = { wire: this.file(`wire-${tag}.pcap`), server: this.file(`server-${tag}.pcap`), kdc: this.file(`kdc-${tag}.pcap`) };
    const links = [
      [this.wireDev, files.wire],
      [this.serverDev, files.server],
      [{ ns: this.kdcNs, dev: 'k0' }, files.kdc],
    ] as const;
    for (const [{ ns, dev }, file] of links) {
      // Persistent labs log to a file so tcpdump outlives `ciphergate lab up`.
      const logFile = this.opts.persistent ? `${file}.log` : undefined;
      this.captures.push(await this.netns.startCapture(ns, dev, file, { filter: 'tcp', ...(logFile ? { logFile } : {}) }));
    }
    return files;
  }

  async stopCaptures(): Promise<void> {
    for (const c of this.captures.splice(0)) await c.stop({ allowLoss: true });
  }

  get dir(): string {
    return this.opts.dir;
  }

  async down(): Promise<void> {
    await this.stopCaptures().catch(() => undefined);
    for (const name of ['agent', 'gateway']) await this.procs.get(name)?.stop();
    await this.netns.cleanup();
  }
}
