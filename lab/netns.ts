// Network-namespace lab for end-to-end tests: namespaces, veth pairs, addresses, offloads,
// commands and background processes inside a namespace, tcpdump captures that are really
// capturing before the test sends traffic, and nft random-loss rules.
//
// Everything a lab creates is tracked and removed by one cleanup() (processes first, since a
// namespace outlives `ip netns del` while a process is in it). Names carry a per-lab random
// id so test files running in parallel never collide. Needs root; use isRoot() to skip.
//
//   const lab = new NetnsLab();
//   try {
//     const [c, s] = [await lab.namespace('client'), await lab.namespace('server')];
//     const link = await lab.veth(c, s);
//     await lab.addAddress(c, link.devA, '10.77.0.1/24'); ...
//     const cap = await lab.startCapture(s, link.devB, path.join(await lab.tmpdir(), 'x.pcap'));
//     await lab.exec(c, 'curl', [...]);
//     const stats = await cap.stop();
//   } finally { await lab.cleanup(); }
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface ExecOptions {
  /** Written to stdin, which is then closed. */
  input?: string | Uint8Array;
  /** Kill the command (SIGKILL) after this long; default 60 s. */
  timeoutMs?: number;
  /** Resolve instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
}

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface BackgroundProcess {
  readonly ns: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Output so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (null if killed by a signal). */
  readonly exited: Promise<number | null>;
  /** Signals its process group (default SIGTERM, SIGKILL after 3 s) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface VethPair {
  nsA: string;
  devA: string;
  nsB: string;
  devB: string;
}

export interface CaptureStats {
  captured: number;
  receivedByFilter: number;
  droppedByKernel: number;
}

export interface Capture {
  readonly ns: string;
  readonly dev: string;
  readonly file: string;
  /**
   * Waits settleMs (default 500) so the last segments land, stops tcpdump with SIGINT and
   * returns its counters. Rejects if tcpdump lost packets, unless allowLoss.
   */
  stop(opts?: { settleMs?: number; allowLoss?: boolean }): Promise<CaptureStats>;
}

export interface LossRuleOptions {
  dev: string;
  /** Integer percentage of matching packets to drop, 0..100. */
  percent: number;
  /**
   * 'ingress' drops after a tcpdump on `dev` has seen the packet (the capture holds the
   * lost original and its retransmission); 'egress' drops before the tap. Default ingress.
   */
  hook?: 'ingress' | 'egress';
  /** nft match expression limiting the rule, e.g. 'ip saddr 10.77.0.2 tcp sport 8080'. */
  match?: string;
}

export interface LossRule {
  readonly ns: string;
  readonly table: string;
  /** Packets dropped so far (nft counter). */
  dropped(): Promise<number>;
  remove(): Promise<void>;
}

export interface LabState {
  namespaces: string[];
  pids: number[];
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** The tools from the list that are not on PATH. */
export function missingTools(tools: readonly string[]): string[] {
  return tools.filter((tool) => {
    try {
      execFileSync('sh', ['-c', 'command -v "$1"', 'sh', tool], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
}

const NAME = /^[a-z0-9][a-z0-9-]*$/;
const IFNAMSIZ = 15;
/** Where `ip netns add` puts a named namespace. */
export const NETNS_DIR = '/run/netns';

/** Runs a command to completion, collecting output; rejects on non-zero exit unless asked not to. */
export function run(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const errOut: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => errOut.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result: ExecResult = {
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(errOut).toString('utf8'),
      };
      if (code === 0 || opts.allowFailure) resolve(result);
      else
        reject(
          new Error(
            `${cmd} ${args.join(' ')} failed (${code ?? signal}): ${result.stderr.trim() || result.stdout.trim()}`,
          ),
        );
    });
    child.stdin.on('error', () => undefined); // the command may exit without reading stdin
    child.stdin.end(opts.input ?? '');
  });
}

const readText = (file: string): string => {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// Labs not yet cleaned up when the process exits: remove what can be removed synchronously.
const liveLabs = new Set<NetnsLab>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const lab of liveLabs) lab.cleanupSync();
  });
}

export class NetnsLab {
  /** Random per-lab suffix carried by every name the lab creates. */
  readonly id: string;
  private readonly prefix: string;
  private readonly namespaces: string[] = [];
  private readonly processes = new Set<BackgroundProcess>();
  private readonly lossRules = new Set<LossRule>();
  private readonly tmpdirs: string[] = [];
  private vethCount = 0;
  private lossCount = 0;
  private cleaned = false;

  /**
   * `id` fixes the name suffix (default random). A `persistent` lab outlives this process (for
   * `ciphergate lab up`): nothing is removed at exit; state() records what to tear down later.
   */
  constructor(opts: { prefix?: string; id?: string; persistent?: boolean } = {}) {
    this.prefix = opts.prefix ?? 'cg';
    if (!NAME.test(this.prefix)) throw new Error(`bad namespace prefix "${this.prefix}"`);
    this.id = opts.id ?? randomBytes(3).toString('hex');
    if (!NAME.test(this.id)) throw new Error(`bad lab id "${this.id}"`);
    if (!opts.persistent) {
      liveLabs.add(this);
      installExitHook();
    }
  }

  /** What a persistent lab leaves running: enough for teardown() from another process. */
  state(): LabState {
    return { namespaces: [...this.namespaces], pids: [...this.processes].map((p) => p.pid) };
  }

  /** Tears down a persistent lab recorded by state(): process groups first, then namespaces. */
  static async teardown(state: LabState): Promise<void> {
    for (const pid of state.pids) signalGroup(pid, 'SIGTERM');
    await sleep(state.pids.length > 0 ? 1500 : 0);
    for (const pid of state.pids) signalGroup(pid, 'SIGKILL');
    // SIGKILL is asynchronous: wait (bounded) so that a `lab up` right after finds nothing running.
    for (let waited = 0; waited < 5000 && !state.pids.every(hasExited); waited += 50) await sleep(50);
    for (const ns of [...state.namespaces].reverse()) await run('ip', ['netns', 'del', ns], { allowFailure: true });
  }

  /** Creates namespace `<prefix>-<base>-<id>` with loopback up; returns its name. */
  async namespace(base: string): Promise<string> {
    this.assertOpen();
    if (!NAME.test(base)) throw new Error(`bad namespace base name "${base}"`);
    const ns = `${this.prefix}-${base}-${this.id}`;
    // Fixed ids (`ciphergate lab up`) collide with a lab brought up from another directory.
    if (fs.existsSync(path.join(NETNS_DIR, ns))) {
      throw new Error(`network namespace ${ns} already exists: another lab is up (ciphergate lab down --dir <its directory>), or one was left behind (ip netns del ${ns})`);
    }
    await run('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    return ns;
  }

  /** A temp directory removed by cleanup(). */
  async tmpdir(): Promise<string> {
    this.assertOpen();
    const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), `${this.prefix}-netns-${this.id}-`));
    this.tmpdirs.push(dir);
    return dir;
  }

  /**
   * A veth pair with one end in each of two lab namespaces, both up. The ends are created
   * directly inside the namespaces (never in the host's), so deleting a namespace removes them.
   */
  async veth(nsA: string, nsB: string, opts: { devA?: string; devB?: string } = {}): Promise<VethPair> {
    this.assertOwned(nsA);
    this.assertOwned(nsB);
    const n = this.vethCount++;
    const devA = opts.devA ?? `v${n}a${this.id}`;
    const devB = opts.devB ?? `v${n}b${this.id}`;
    for (const dev of [devA, devB]) {
      if (dev.length > IFNAMSIZ || !NAME.test(dev)) throw new Error(`bad interface name "${dev}"`);
    }
    await run('ip', ['link', 'add', devA, 'netns', nsA, 'type', 'veth', 'peer', 'name', devB, 'netns', nsB]);
    await run('ip', ['-n', nsA, 'link', 'set', devA, 'up']);
    await run('ip', ['-n', nsB, 'link', 'set', devB, 'up']);
    return { nsA, devA, nsB, devB };
  }

  /** Adds an address in CIDR form; IPv6 addresses get `nodad` so they are usable at once. */
  async addAddress(ns: string, dev: string, cidr: string): Promise<void> {
    this.assertOwned(ns);
    const extra = cidr.includes(':') ? ['nodad'] : [];
    await run('ip', ['-n', ns, 'addr', 'add', cidr, 'dev', dev, ...extra]);
  }

  /**
   * Turns off every offload that re-segments or defers checksums (GRO, GSO, TSO, LRO,
   * rx/tx checksum, scatter-gather), then reads the state back and throws if one is still on.
   * Returns the `ethtool -k` output (it shows which features are [fixed]).
   */
  async offloadsOff(ns: string, dev: string): Promise<string> {
    this.assertOwned(ns);
    await run('ip', ['netns', 'exec', ns, 'ethtool', '-K', dev, 'rx', 'off', 'tx', 'off', 'sg', 'off', 'tso', 'off',
      'gso', 'off', 'gro', 'off', 'lro', 'off']);
    const state = (await run('ip', ['netns', 'exec', ns, 'ethtool', '-k', dev])).stdout;
    const mustBeOff = [
      'rx-checksumming', 'tx-checksumming', 'scatter-gather', 'tcp-segmentation-offload',
      'generic-segmentation-offload', 'generic-receive-offload', 'large-receive-offload',
    ];
    const on = mustBeOff.filter((f) => new RegExp(`^${f}: on`, 'm').test(state));
    if (on.length > 0) throw new Error(`${ns}/${dev}: offloads still on: ${on.join(', ')}`);
    return state;
  }

  /** Sets a sysctl inside the namespace (net.* keys are per namespace). */
  async sysctl(ns: string, key: string, value: string | number): Promise<void> {
    this.assertOwned(ns);
    await run('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', `${key}=${value}`]);
  }

  /** Runs a command in the namespace to completion. */
  exec(ns: string, cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<ExecResult> {
    this.assertOwned(ns);
    return run('ip', ['netns', 'exec', ns, cmd, ...args], opts);
  }

  /**
   * Starts a long-running command in the namespace, in its own process group, tracked for
   * cleanup(). `ip netns exec` execs the command, so pid is the command's own.
   */
  spawn(ns: string, cmd: string, args: readonly string[] = [], opts: { logFile?: string; env?: NodeJS.ProcessEnv } = {}): BackgroundProcess {
    this.assertOwned(ns);
    // With a log file, output goes there (the process may outlive us); stdout() reads it back.
    const fd = opts.logFile === undefined ? null : fs.openSync(opts.logFile, 'a');
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], {
      detached: true,
      stdio: fd === null ? ['ignore', 'pipe', 'pipe'] : ['ignore', fd, fd],
      env: opts.env ?? process.env,
    });
    if (fd !== null) {
      fs.closeSync(fd);
      child.unref();
    }
    if (child.pid === undefined) throw new Error(`could not start ${cmd} in ${ns}`);
    const pid = child.pid;
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
    child.stderr?.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    let done = false;
    const exited = new Promise<number | null>((resolve) => {
      child.on('close', (code) => {
        done = true;
        resolve(code);
      });
      child.on('error', () => {
        done = true;
        resolve(null);
      });
    });
    const proc: BackgroundProcess = {
      ns,
      pid,
      child,
      stdout: () => (opts.logFile === undefined ? stdout : readText(opts.logFile)),
      stderr: () => (opts.logFile === undefined ? stderr : readText(opts.logFile)),
      exited,
      stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
        if (!done) {
          signalGroup(pid, signal);
          const killer = setTimeout(() => signalGroup(pid, 'SIGKILL'), 3000);
          await exited;
          clearTimeout(killer);
        }
        this.processes.delete(proc);
      },
    };
    this.processes.add(proc);
    return proc;
  }

  /** Resolves once something listens on the TCP port in the namespace. */
  async waitForListen(ns: string, port: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const r = await this.exec(ns, 'ss', ['-Hltn', `sport = :${port}`], { allowFailure: true });
      if (r.code === 0 && r.stdout.trim() !== '') return;
      await sleep(100);
    }
    throw new Error(`nothing listens on port ${port} in ${ns} after ${timeoutMs} ms`);
  }

  /**
   * Starts tcpdump (full snaplen, packet-buffered, immediate mode) writing `file`, and
   * resolves only once it prints "listening on", i.e. the filter is attached.
   */
  async startCapture(
    ns: string,
    dev: string,
    file: string,
    opts: { filter?: string; timeoutMs?: number; logFile?: string } = {},
  ): Promise<Capture> {
    // -Z root: tcpdump would otherwise drop to its own user and may not write `file`.
    const args = ['-Z', 'root', '-i', dev, '-n', '-s', '0', '-U', '--immediate-mode', '-w', file];
    if (opts.filter) args.push(opts.filter);
    const proc = this.spawn(ns, 'tcpdump', args, opts.logFile === undefined ? {} : { logFile: opts.logFile });
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    let exitCode: number | null | undefined;
    void proc.exited.then((c) => (exitCode = c));
    while (!proc.stderr().includes('listening on')) {
      if (exitCode !== undefined || Date.now() > deadline) {
        await proc.stop('SIGKILL');
        throw new Error(`tcpdump on ${ns}/${dev} did not start: ${proc.stderr().trim()}`);
      }
      await sleep(20);
    }
    return {
      ns,
      dev,
      file,
      stop: async ({ settleMs = 500, allowLoss = false } = {}) => {
        await sleep(settleMs);
        await proc.stop('SIGINT');
        const count = (what: string): number => {
          const m = new RegExp(`^(\\d+) packets? ${what}$`, 'm').exec(proc.stderr());
          if (!m?.[1]) throw new Error(`tcpdump on ${ns}/${dev}: no "${what}" count in: ${proc.stderr()}`);
          return Number(m[1]);
        };
        const stats: CaptureStats = {
          captured: count('captured'),
          receivedByFilter: count('received by filter'),
          droppedByKernel: count('dropped by kernel'),
        };
        if (!allowLoss && (stats.captured !== stats.receivedByFilter || stats.droppedByKernel !== 0)) {
          throw new Error(`tcpdump on ${ns}/${dev} lost packets: ${JSON.stringify(stats)}`);
        }
        return stats;
      },
    };
  }

  /** Adds an nft netdev table dropping `percent`% of matching packets at random (numgen). */
  async addLoss(ns: string, opts: LossRuleOptions): Promise<LossRule> {
    this.assertOwned(ns);
    if (!Number.isInteger(opts.percent) || opts.percent < 0 || opts.percent > 100) {
      throw new Error(`loss percent must be an integer 0..100, got ${opts.percent}`);
    }
    if (!NAME.test(opts.dev)) throw new Error(`bad interface name "${opts.dev}"`);
    const table = `cgloss_${this.lossCount++}_${this.id}`;
    const hook = opts.hook ?? 'ingress';
    const ruleset = [
      `table netdev ${table} {`,
      `  chain loss {`,
      `    type filter hook ${hook} device "${opts.dev}" priority 0; policy accept;`,
      `    ${opts.match ?? ''} numgen random mod 100 < ${opts.percent} counter drop`,
      `  }`,
      `}`,
    ].join('\n');
    await this.exec(ns, 'nft', ['-f', '-'], { input: ruleset });
    const rule: LossRule = {
      ns,
      table,
      dropped: async () => {
        const listing = (await this.exec(ns, 'nft', ['list', 'table', 'netdev', table])).stdout;
        return Number(/counter packets (\d+)/.exec(listing)?.[1] ?? NaN);
      },
      remove: async () => {
        if (!this.lossRules.has(rule)) return;
        this.lossRules.delete(rule);
        await this.exec(ns, 'nft', ['delete', 'table', 'netdev', table]);
      },
    };
    this.lossRules.add(rule);
    return rule;
  }

  /**
   * Tears down everything, in reverse order of dependence: processes (captures included),
   * loss rules, namespaces (and with them the veth ends), temp dirs. Idempotent; tries every
   * step and throws one error listing what failed.
   */
  async cleanup(): Promise<void> {
    const failures: string[] = [];
    const attempt = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (e) {
        failures.push(`${what}: ${(e as Error).message}`);
      }
    };
    for (const proc of [...this.processes].reverse()) await attempt(`stop pid ${proc.pid}`, () => proc.stop());
    // Loss rules are removed through exec(), so the lab counts as open until they are gone.
    for (const rule of [...this.lossRules]) await attempt(`nft table ${rule.table}`, () => rule.remove());
    this.cleaned = true;
    for (const ns of this.namespaces.splice(0).reverse()) {
      await attempt(`netns ${ns}`, () => run('ip', ['netns', 'del', ns]));
    }
    for (const dir of this.tmpdirs.splice(0)) {
      await attempt(`rm ${dir}`, () => fs.promises.rm(dir, { recursive: true, force: true }));
    }
    liveLabs.delete(this);
    if (failures.length > 0) throw new Error(`netns cleanup incomplete: ${failures.join('; ')}`);
  }

  /** Best-effort synchronous teardown for process exit. */
  cleanupSync(): void {
    this.cleaned = true;
    for (const proc of this.processes) signalGroup(proc.pid, 'SIGKILL');
    for (const ns of this.namespaces.splice(0)) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
    for (const dir of this.tmpdirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
    liveLabs.delete(this);
  }

  /** Names of the namespaces this lab currently owns. */
  ownedNamespaces(): readonly string[] {
    return [...this.namespaces];
  }

  private assertOpen(): void {
    if (this.cleaned) throw new Error('NetnsLab used after cleanup()');
  }

  private assertOwned(ns: string): void {
    this.assertOpen();
    if (!this.namespaces.includes(ns)) throw new Error(`namespace ${ns} does not belong to this lab`);
  }
}

/** Signals the process group we started (the child is its leader, spawned detached). */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already exited
  }
}

/** Whether a process has exited: no such pid, or a zombie its new parent has not reaped yet. */
export function hasExited(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] === 'Z'; // the state follows the command name, which may hold ')'
  } catch {
    return true;
  }
}
