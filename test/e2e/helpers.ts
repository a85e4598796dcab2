// Shared plumbing of the end-to-end suite: when to skip, bringing a lab up in a temp directory,
// timed connection attempts, sha256 of transfers made by unmodified programs (curl, sha256sum),
// the daemons' status through the real CLI, and what a pcap shows (TCP segments, payloads,
// reassembled streams, plaintext runs).
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readCapture } from '../../common/pcap';
import type { HistogramSnapshot } from '../../common/engine/latency-histogram';
import { parseFrame } from '../../common/wire/frame';
import type { IpView } from '../../common/wire/ip';
import { TCP_OPTION, parseTcpOptions } from '../../common/wire/tcp-options';
import type { TcpView } from '../../common/wire/tcp';
import { labByteStream } from '../../lab/http-server';
import { isRoot, missingTools } from '../../lab/netns';
import { CiphergateLab, type LabOptions, cliPath } from '../../lab/topology';
import { type StreamBytes, plaintextRunsIn, reassemble } from '../../pipeline/streams';

export const REPO = path.resolve(__dirname, '..', '..');
export const E2E_TOOLS = ['ip', 'nft', 'tcpdump', 'ethtool', 'curl', 'sha256sum', 'redis-server', 'redis-cli', 'iperf3', 'xargs', 'bash'] as const;

/** Why the suite cannot run here, or null. */
export function skipReason(extra: { tools?: readonly string[]; distFiles?: readonly string[]; check?: () => string | null } = {}): string | null {
  if (!isRoot()) return 'needs root (network namespaces, nftables, tcpdump)';
  const missing = missingTools([...E2E_TOOLS, ...(extra.tools ?? [])]);
  if (missing.length > 0) return `missing tools: ${missing.join(', ')}`;
  for (const rel of ['dist/cli/ciphergate.js', 'dist/lab/http-server.js', ...(extra.distFiles ?? [])]) {
    if (!fs.existsSync(path.join(REPO, rel))) return `${rel} is not built (run \`npx tsc -p .\`)`;
  }
  if (!fs.existsSync(cliPath())) return `${cliPath()} is missing`;
  return extra.check?.() ?? null;
}

/** describe, or describe.skip with the reason printed once. */
export function describeE2E(name: string, fn: () => void, extra: Parameters<typeof skipReason>[0] = {}): void {
  const why = skipReason(extra);
  if (why === null) describe(name, fn);
  else {
    describe.skip(`${name} (skipped: ${why})`, fn);
    console.warn(`e2e: skipping "${name}": ${why}`);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A fresh temp directory for one lab (kept after the run for the logs). */
export const labDir = (tag: string): string => fs.mkdtempSync(path.join(os.tmpdir(), `cg-e2e-${tag}-`));

/** Brings a lab up in a fresh temp directory. */
export function upLab(tag: string, opts: Omit<LabOptions, 'dir'>): Promise<CiphergateLab> {
  return CiphergateLab.up({ ...opts, dir: labDir(tag) });
}

/**
 * Throws, with the end of its log, if a daemon the lab still counts as running has exited (a
 * crash would otherwise show only as a refused or hanging connection in the next test).
 */
export function expectDaemonsUp(lab: CiphergateLab | undefined): void {
  if (lab === undefined) return;
  for (const name of ['gateway', 'agent', 'kdc'] as const) {
    const p = lab.procs.get(name);
    if (p && (p.child.exitCode !== null || p.child.signalCode !== null)) {
      throw new Error(`${name} exited (${p.child.exitCode ?? p.child.signalCode}); log tail:\n${p.stdout().slice(-3000)}`);
    }
  }
}

/**
 * The hooks of an e2e suite: one lab for the whole suite (`ready` gets it once it is up, for the
 * suite's own set-up), every daemon checked after each test, and the lab torn down at the end.
 */
export function useLab(tag: string, opts: Omit<LabOptions, 'dir'>, ready: (lab: CiphergateLab) => void | Promise<void>): void {
  let lab: CiphergateLab | undefined;
  beforeAll(async () => {
    lab = await upLab(tag, opts);
    await ready(lab);
  }, 120_000);
  afterEach(() => expectDaemonsUp(lab));
  afterAll(async () => {
    await lab?.down();
  }, 60_000);
}

export const url = (host: string, port: number, p: string) => `http://${host.includes(':') ? `[${host}]` : host}${port === 80 ? '' : `:${port}`}${p}`;

export const uniqueSeed = (what: string) => `${what}-${randomBytes(6).toString('hex')}`;

/** Exactly the bytes the lab web server sends for /bytes/n?seed=seed. */
export const labBytes = (seed: string, n: number): Buffer => labByteStream(seed)(n);

export interface Attempt {
  code: number | null;
  /** Wall time of the whole attempt, process start included. */
  ms: number;
  stdout: string;
  stderr: string;
}

/** curl from the client host, timed; never throws on a curl failure. */
export async function timedCurl(lab: CiphergateLab, target: string, args: string[] = [], maxTimeS = 10): Promise<Attempt> {
  const t0 = Date.now();
  const r = await lab.client$('curl', ['-sS', '--max-time', String(maxTimeS), ...args, target], { allowFailure: true, timeoutMs: (maxTimeS + 10) * 1000 });
  return { code: r.code, ms: Date.now() - t0, stdout: r.stdout, stderr: r.stderr };
}

/** A shell pipeline on the client host (bash -o pipefail), to completion. */
export function clientShell(lab: CiphergateLab, script: string, timeoutMs = 300_000) {
  return lab.client$('bash', ['-o', 'pipefail', '-c', script], { timeoutMs });
}

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Downloads with curl on the client and returns sha256sum's digest of what arrived. */
export async function downloadSha256(lab: CiphergateLab, target: string, maxTimeS = 240): Promise<string> {
  const r = await clientShell(lab, `curl -sS --fail --max-time ${maxTimeS} ${shq(target)} | sha256sum`, (maxTimeS + 30) * 1000);
  return r.stdout.split(/\s/)[0] as string;
}

/** Uploads a file with curl --data-binary to POST /sha256; returns the server's "sha length" answer. */
export async function uploadSha256(lab: CiphergateLab, file: string, target: string, maxTimeS = 240): Promise<{ sha256: string; length: number }> {
  const r = await clientShell(lab, `curl -sS --fail --max-time ${maxTimeS} -H 'Expect:' --data-binary @${shq(file)} ${shq(target)}`, (maxTimeS + 30) * 1000);
  const [sha256, length] = r.stdout.trim().split(' ');
  return { sha256: sha256 as string, length: Number(length) };
}

/** Writes n deterministic bytes for `seed` to a file; returns its sha256. */
export function writeSeededFile(file: string, seed: string, n: number): string {
  const next = labByteStream(seed);
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'w');
  try {
    for (let left = n; left > 0; ) {
      const chunk = next(Math.min(1 << 20, left));
      h.update(chunk);
      fs.writeSync(fd, chunk);
      left -= chunk.length;
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

export const sha256Hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

// ---- daemon status ----------------------------------------------------------------------

export interface StatusDoc {
  role: 'gateway' | 'agent';
  keyedFlows: number;
  flowCount: number;
  keyingsInProgress: number;
  counters: Record<string, number>;
  datapath: Record<string, number>;
  /** The NFQUEUE binding's counters (native/nfq), null on the fallback binding. */
  queue: { packets: number; batches: number; wakes: number; verdicts: number; sends: number; errors: number; pending: number } | null;
  kernelQueue: { waiting: number; queueFull: number; socketFull: number } | null;
  /** The gateway's keying times (SYN held until cipher sync). */
  keying?: HistogramSnapshot | null;
  flows: Array<{ state: string; keyed: boolean; lingering: boolean; server: string }>;
  services?: Array<{ endpoint: string; mode: string }>;
  [k: string]: unknown;
}

/** `ciphergate status --json` (the real CLI) for the lab's gateway and agent, in that order. */
export async function statusCli(lab: CiphergateLab, roles: ReadonlyArray<'gateway' | 'agent'> = ['gateway', 'agent']): Promise<StatusDoc[]> {
  const args = ['status', '--json', ...roles.flatMap((r) => ['--socket', path.join(lab.dir, `${r}.sock`)])];
  const r = await lab.netns.exec(lab.gatewayNs, process.execPath, [cliPath(), ...args], { timeoutMs: 30_000 });
  return JSON.parse(r.stdout) as StatusDoc[];
}

/** The status document of a lab daemon, read directly from its control socket. */
export const daemonStatus = (lab: CiphergateLab, role: 'gateway' | 'agent') => lab.status(role) as Promise<StatusDoc>;

export const counter = (s: { counters: Record<string, number> }, name: string) => s.counters[name] ?? 0;

/** Polls until check() returns a value that passes, or the deadline (then returns the last value). */
export async function eventually<T>(check: () => Promise<T>, pass: (v: T) => boolean, timeoutMs: number, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (pass(v) || Date.now() > deadline) return v;
    await sleep(everyMs);
  }
}

// ---- captures ---------------------------------------------------------------------------

export interface Segment {
  ip: IpView;
  tcp: TcpView;
  payload: Uint8Array;
}

/** Every TCP segment in a pcap written by the lab's tcpdump. */
export function tcpSegments(file: string): Segment[] {
  const cap = readCapture(new Uint8Array(fs.readFileSync(file)));
  if (!cap.ok) throw new Error(`${file}: ${cap.error.detail}`);
  const out: Segment[] = [];
  for (const p of cap.value.packets) {
    const f = parseFrame(p.linkType, p.data);
    if (f.ok) out.push({ ip: f.value.ip, tcp: f.value.tcp, payload: f.value.tcp.payload });
  }
  return out;
}

export const touchesPort = (port: number) => (s: Segment) => s.tcp.srcPort === port || s.tcp.dstPort === port;

export const payloadBytes = (segs: readonly Segment[]) => segs.reduce((n, s) => n + s.payload.length, 0);

/** How many 16-byte runs of the secrets appear in the payloads of the segments. */
export function plaintextRuns(secrets: readonly Uint8Array[], segs: readonly Segment[]): number {
  return plaintextRunsIn(secrets, segs.filter((s) => s.payload.length >= 16).map((s) => s.payload));
}

/** Whether any payload holds `needle` (for short markers; segments are searched one by one). */
export const anyPayloadHolds = (segs: readonly Segment[], needle: string | Uint8Array) =>
  segs.some((s) => Buffer.from(s.payload.buffer, s.payload.byteOffset, s.payload.length).includes(typeof needle === 'string' ? needle : Buffer.from(needle)));

/** The streams of the segments, reassembled by direction ("a:p>b:p"). */
export function streams(segs: readonly Segment[]): Map<string, StreamBytes> {
  return reassemble(segs.map((s) => s.ip.bytes.subarray(s.ip.offset, s.ip.end)));
}

/** The one stream that flows from port `fromPort`, or to `toPort`, of the biggest size. */
export function biggestStream(all: Map<string, StreamBytes>, pick: (name: string) => boolean): [string, StreamBytes] {
  const found = [...all.entries()].filter(([n]) => pick(n)).sort((a, b) => b[1].data.length - a[1].data.length);
  if (found.length === 0) throw new Error(`no stream matches among ${[...all.keys()].join(', ')}`);
  return found[0] as [string, StreamBytes];
}

export const fromPort = (port: number) => (name: string) => (name.split('>')[0] as string).endsWith(`:${port}`);
export const toPort = (port: number) => (name: string) => (name.split('>')[1] as string).endsWith(`:${port}`);

export const hasTcpOption = (s: Segment, kind: number) => {
  const o = parseTcpOptions(s.tcp.bytes, s.tcp.optionsStart, s.tcp.optionsEnd);
  return o.ok && o.value.some((x) => x.kind === kind);
};

export const SACK = TCP_OPTION.SACK;
