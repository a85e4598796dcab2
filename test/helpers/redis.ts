// Starts real redis-server processes on free loopback ports in a temp dir, for tests:
// standalone, an N-master Cluster, and master + replica + 3 sentinels. Each start waits until
// the set-up is usable (cluster_state:ok; sentinels know the replica and each other) and returns
// a handle whose stop() kills every process and removes the temp dir. Anything still running
// when the test process exits is SIGKILLed. Use in beforeAll/afterAll:
//
//   const redis = await startRedisStandalone();  ...  await redis.stop();
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export const LOOPBACK = '127.0.0.1';

export interface Endpoint {
  host: string;
  port: number;
}

export interface RedisProc extends Endpoint {
  readonly name: string;
  readonly logFile: string;
  readonly child: ChildProcess;
  /** True until the process has exited. */
  alive(): boolean;
  /** Sends a signal (default SIGKILL) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface RedisStandalone extends Endpoint {
  server: RedisProc;
  stop(): Promise<void>;
}

export interface RedisCluster {
  /** Seed nodes (all masters). */
  nodes: Endpoint[];
  servers: RedisProc[];
  stop(): Promise<void>;
}

export interface RedisSentinelSet {
  masterName: string;
  master: RedisProc;
  replica: RedisProc;
  sentinels: RedisProc[];
  sentinelEndpoints: Endpoint[];
  /** Where the sentinels say the master is now. */
  currentMaster(): Promise<Endpoint>;
  stop(): Promise<void>;
}

const running = new Set<RedisProc>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const p of running) {
      try {
        if (p.child.pid) process.kill(p.child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

/** True when redis-server can run here; suites may skip with a clear message otherwise. */
export function redisAvailable(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    execFileSync('redis-cli', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const claimed = new Set<number>();

/** A loopback TCP port that was free a moment ago (never handed out twice by this process). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', reject);
      srv.listen(0, LOOPBACK, () => {
        const addr = srv.address() as net.AddressInfo;
        srv.close(() => resolve(addr.port));
      });
    });
    // Cluster bus ports are port + 10000 by default; keep to ports where that fits too.
    if (!claimed.has(port) && port < 55535) {
      claimed.add(port);
      return port;
    }
  }
}

/** Runs redis-cli against a loopback port; resolves with stdout (raw mode). */
export function redisCli(port: number, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-h', LOOPBACK, '-p', String(port), ...args], { timeout: 5000 }, (e, stdout, stderr) => {
      if (e) reject(new Error(`redis-cli -p ${port} ${args.join(' ')}: ${stderr || e.message}`));
      else resolve(stdout);
    });
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls until check() returns true, or throws naming `what` after timeoutMs. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 15_000, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last})` : ''}`);
    await sleep(everyMs);
  }
}

function tempDir(kind: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `cg-redis-${kind}-`));
}

function tailLog(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Writes `<name>.conf` from conf(port) and starts redis-server on a fresh port, retrying with
 * another port if the process dies first (someone took the port meanwhile).
 */
async function startServer(dir: string, name: string, conf: (port: number) => string[], sentinel = false): Promise<RedisProc> {
  installExitHook();
  let lastLog = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const logFile = path.join(dir, `${name}.log`);
    const confFile = path.join(dir, `${name}.conf`);
    const lines = [`port ${port}`, `bind ${LOOPBACK}`, 'daemonize no', `dir ${dir}`, `logfile ${logFile}`, ...conf(port)];
    // No persistence, and replicas sync at once (the default waits 5 s to batch diskless syncs).
    if (!sentinel) lines.push('save ""', 'appendonly no', 'repl-diskless-sync-delay 0');
    fs.writeFileSync(confFile, lines.join('\n') + '\n');
    const child = spawn('redis-server', sentinel ? [confFile, '--sentinel'] : [confFile], { stdio: 'ignore' });
    let exited = false;
    const exitP = new Promise<void>((resolve) => child.once('exit', () => {
      exited = true;
      resolve();
    }));
    child.once('error', () => undefined);
    const proc: RedisProc = {
      name,
      host: LOOPBACK,
      port,
      logFile,
      child,
      alive: () => !exited,
      kill: async (signal: NodeJS.Signals = 'SIGKILL') => {
        if (!exited) child.kill(signal);
        await exitP;
        running.delete(proc);
      },
    };
    running.add(proc);
    try {
      await waitFor(`${name} on port ${port}`, async () => {
        if (exited) throw new Error('exited');
        return (await redisCli(port, 'PING')).trim() === 'PONG';
      }, 10_000);
      return proc;
    } catch {
      lastLog = tailLog(logFile);
      await proc.kill();
    }
  }
  throw new Error(`redis-server ${name} did not start; log:\n${lastLog}`);
}

async function stopAll(procs: RedisProc[], dir: string): Promise<void> {
  await Promise.all(procs.map((p) => p.kill('SIGKILL')));
  fs.rmSync(dir, { recursive: true, force: true });
}

export async function startRedisStandalone(): Promise<RedisStandalone> {
  const dir = tempDir('standalone');
  const server = await startServer(dir, 'standalone', () => []);
  return { host: server.host, port: server.port, server, stop: () => stopAll([server], dir) };
}

function infoField(info: string, field: string): string | undefined {
  const m = new RegExp(`^${field}:(.*)$`, 'm').exec(info);
  return m?.[1]?.trim();
}

export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const dir = tempDir('cluster');
  const servers: RedisProc[] = [];
  try {
    for (let i = 0; i < masters; i++) {
      const bus = await freePort();
      servers.push(
        await startServer(dir, `node${i}`, (port) => [
          'cluster-enabled yes',
          `cluster-config-file nodes-${port}.conf`,
          'cluster-node-timeout 2000',
          `cluster-port ${bus}`,
        ]),
      );
    }
    const addrs = servers.map((s) => `${s.host}:${s.port}`);
    await new Promise<void>((resolve, reject) => {
      execFile('redis-cli', ['--cluster', 'create', ...addrs, '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 }, (e, _out, stderr) =>
        e ? reject(new Error(`redis-cli --cluster create: ${stderr || e.message}`)) : resolve(),
      );
    });
    await waitFor('cluster_state:ok on every node', async () => {
      for (const s of servers) {
        const info = await redisCli(s.port, 'CLUSTER', 'INFO');
        if (infoField(info, 'cluster_state') !== 'ok' || infoField(info, 'cluster_known_nodes') !== String(masters)) return false;
      }
      return true;
    });
  } catch (e) {
    await stopAll(servers, dir);
    throw e;
  }
  return { nodes: servers.map((s) => ({ host: s.host, port: s.port })), servers, stop: () => stopAll(servers, dir) };
}

/** `SENTINEL MASTER name` as a map (redis-cli prints field and value on alternate lines). */
async function sentinelMaster(port: number, masterName: string): Promise<Map<string, string>> {
  const lines = (await redisCli(port, 'SENTINEL', 'MASTER', masterName)).trim().split('\n');
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < lines.length; i += 2) m.set(lines[i] as string, lines[i + 1] as string);
  return m;
}

export async function startRedisSentinel(opts: { masterName?: string; downAfterMs?: number } = {}): Promise<RedisSentinelSet> {
  const masterName = opts.masterName ?? 'cgmaster';
  const downAfter = opts.downAfterMs ?? 1000;
  const dir = tempDir('sentinel');
  const procs: RedisProc[] = [];
  try {
    const master = await startServer(dir, 'master', () => []);
    procs.push(master);
    const replica = await startServer(dir, 'replica', () => [`replicaof ${LOOPBACK} ${master.port}`]);
    procs.push(replica);
    await waitFor('replica link up', async () => infoField(await redisCli(replica.port, 'INFO', 'replication'), 'master_link_status') === 'up');
    const sentinels: RedisProc[] = [];
    for (let i = 0; i < 3; i++) {
      const s = await startServer(
        dir,
        `sentinel${i}`,
        () => [
          `sentinel monitor ${masterName} ${LOOPBACK} ${master.port} 2`,
          `sentinel down-after-milliseconds ${masterName} ${downAfter}`,
          `sentinel failover-timeout ${masterName} 4000`,
          `sentinel parallel-syncs ${masterName} 1`,
        ],
        true,
      );
      sentinels.push(s);
      procs.push(s);
    }
    // Failover needs a quorum of sentinels that know the replica and each other (hello every 2 s).
    await waitFor(
      'sentinels to discover the replica and each other',
      async () => {
        for (const s of sentinels) {
          const m = await sentinelMaster(s.port, masterName);
          if (m.get('num-slaves') !== '1' || m.get('num-other-sentinels') !== '2') return false;
        }
        return true;
      },
      20_000,
      100,
    );
    return {
      masterName,
      master,
      replica,
      sentinels,
      sentinelEndpoints: sentinels.map((s) => ({ host: s.host, port: s.port })),
      currentMaster: async () => {
        for (const s of sentinels) {
          if (!s.alive()) continue;
          const [host, port] = (await redisCli(s.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName)).trim().split('\n');
          return { host: host as string, port: Number(port) };
        }
        throw new Error('no sentinel alive');
      },
      stop: () => stopAll(procs, dir),
    };
  } catch (e) {
    await stopAll(procs, dir);
    throw e;
  }
}
