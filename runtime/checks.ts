// Start-up checks of the gateway and agent daemons: they refuse to run, saying how to fix it,
// where running would be unsafe or could not work. Offloads (GRO, LRO, TSO, GSO, hardware GRO)
// re-segment packets and would break per-segment tags (DESIGN section 4); missing privileges,
// interfaces, kernel features or native addons would fail later and less clearly.
//
// evaluateChecks is pure (facts in, problems out, tested with fixtures); gatherHostFacts runs
// ethtool/ip/nft and reads /proc in this process's network namespace, or in `netns` through
// `ip netns exec` (tests); runStartupChecks does both and throws StartupCheckError.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import type { AgentConfig } from '../client-agent/config';
import type { GatewayConfig } from '../gateway/config';
import { loadNativeAddon } from '../common/native-addon';

export type CheckName = 'privileges' | 'interface' | 'offloads' | 'nfqueue' | 'conntrack' | 'packet-filter' | 'packet-capture' | 'addon';

export interface CheckProblem {
  check: CheckName;
  problem: string;
  /** What the operator runs or changes. */
  fix: string;
}

export type AddonName = 'nfqueue' | 'raw-socket' | 'cap';

/** What a daemon in its configured mode depends on. */
export interface CheckNeeds {
  /** Data interfaces: must exist, offloads off. */
  interfaces: readonly string[];
  /** CAP_NET_ADMIN and CAP_NET_RAW. */
  capabilities: boolean;
  /** nfnetlink_queue (NFQUEUE). */
  nfqueue: boolean;
  /** nf_conntrack (steering marks keyed flows in conntrack). */
  conntrack: boolean;
  /** nftables, or iptables where nft is missing (the steering falls back to it). */
  packetFilter: boolean;
  /** AF_PACKET through libpcap (bridge mode). */
  packetCapture: boolean;
  addons: readonly AddonName[];
}

/** One ethtool feature: `name: on|off [fixed]`. */
export interface Feature {
  on: boolean;
  fixed: boolean;
}

export type InterfaceFacts =
  | { exists: false }
  | { exists: true; features: Record<string, Feature> }
  /** ethtool could not be run or failed for an interface that exists. */
  | { exists: true; features: null; error: string };

/** The result of a command that either works or says why not. */
export type ToolResult = { ok: true } | { ok: false; error: string };

export interface HostFacts {
  /** CapEff of this process; null when /proc/self/status could not be read. */
  capEff: bigint | null;
  interfaces: Record<string, InterfaceFacts>;
  nfqueue: boolean;
  conntrack: boolean;
  /** `nft --version` and `nft list tables`. */
  nft: ToolResult;
  /** `iptables -S`. */
  iptables: ToolResult;
  /** AF_PACKET in this kernel (/proc/net/packet). */
  packetSocket: boolean;
  /** null: the addon loads; otherwise the error. */
  addons: Partial<Record<AddonName, string | null>>;
}

export const CAP_NET_ADMIN = 12;
export const CAP_NET_RAW = 13;

/** Offloads that re-segment TCP, by ethtool feature name, with the `ethtool -K` keyword. */
export const OFFLOADS: readonly { feature: string; keyword: string; label: string }[] = [
  { feature: 'generic-receive-offload', keyword: 'gro', label: 'GRO' },
  { feature: 'large-receive-offload', keyword: 'lro', label: 'LRO' },
  { feature: 'tcp-segmentation-offload', keyword: 'tso', label: 'TSO' },
  { feature: 'generic-segmentation-offload', keyword: 'gso', label: 'GSO' },
  { feature: 'rx-gro-hw', keyword: 'rx-gro-hw', label: 'hardware GRO' },
];

/** The fix for offloads on IFACE; the four generic ones always, hardware GRO when it is on. */
export function offloadFix(iface: string, hwGro = false): string {
  return `ethtool -K ${iface} gro off lro off tso off gso off${hwGro ? ' rx-gro-hw off' : ''}`;
}

const PRIVILEGE_FIX = 'run as root, or grant the capabilities: in the systemd unit AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW (deploy/systemd)';
const ADDON_FIX = 'run npm install with the native addons allowed (package.json allowScripts: cap, nfqueue, raw-socket) and libpcap-dev, libnetfilter-queue-dev installed';
const MODULES_CONF = 'load it at boot with deploy/modules-load.d/ciphergate.conf in /etc/modules-load.d/';

/** Parses `ethtool -k IFACE` output: every `name: on|off [fixed]` line, indented sub-features included. */
export function parseEthtoolFeatures(text: string): Record<string, Feature> {
  const out: Record<string, Feature> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z0-9_-]+): (on|off)( \[(?:fixed|requested on|requested off)\])?\s*$/.exec(line);
    if (m) out[m[1] as string] = { on: m[2] === 'on', fixed: m[3] === ' [fixed]' };
  }
  return out;
}

/** Parses the CapEff line of /proc/PID/status. */
export function parseCapEff(status: string): bigint | null {
  const m = /^CapEff:\s*([0-9a-fA-F]{1,16})\s*$/m.exec(status);
  return m ? BigInt(`0x${m[1]}`) : null;
}

const hasCap = (capEff: bigint, cap: number) => ((capEff >> BigInt(cap)) & 1n) === 1n;

/** Every problem, each with its fix; none when the host is fit to run. */
export function evaluateChecks(facts: HostFacts, needs: CheckNeeds): CheckProblem[] {
  const problems: CheckProblem[] = [];
  const add = (check: CheckName, problem: string, fix: string) => problems.push({ check, problem, fix });

  if (needs.capabilities) {
    if (facts.capEff === null) add('privileges', 'cannot read the capabilities of this process (/proc/self/status)', PRIVILEGE_FIX);
    else {
      const missing = [
        [CAP_NET_ADMIN, 'CAP_NET_ADMIN'],
        [CAP_NET_RAW, 'CAP_NET_RAW'],
      ].flatMap(([cap, name]) => (hasCap(facts.capEff as bigint, cap as number) ? [] : [name as string]));
      if (missing.length > 0) add('privileges', `missing ${missing.join(' and ')} (needed for NFQUEUE, packet-filter rules and raw sockets)`, PRIVILEGE_FIX);
    }
  }

  for (const iface of needs.interfaces) {
    const f = facts.interfaces[iface];
    if (f === undefined || !f.exists) {
      add('interface', `data interface ${iface} does not exist`, `fix dataInterfaces (or bridge.*Interface) in the config, or create ${iface} first; \`ip link\` lists the interfaces`);
      continue;
    }
    if (f.features === null) {
      add('offloads', `cannot read the offloads of ${iface}: ${f.error}`, `install ethtool (apt-get install ethtool), then check: ethtool -k ${iface}`);
      continue;
    }
    const on = OFFLOADS.filter((o) => f.features?.[o.feature]?.on === true);
    if (on.length === 0) continue;
    const fixed = on.filter((o) => f.features?.[o.feature]?.fixed);
    const hwGro = on.some((o) => o.keyword === 'rx-gro-hw');
    const list = on.map((o) => `${o.label} (${o.feature}${f.features[o.feature]?.fixed ? ', fixed' : ''})`).join(', ');
    let fix = offloadFix(iface, hwGro);
    if (fixed.length > 0) fix += `; ${fixed.map((o) => o.feature).join(', ')} cannot be changed by ethtool on this driver ([fixed]): turn it off at its source (NIC firmware, or for virtio the hypervisor's guest offloads) or use another interface`;
    add('offloads', `offloads that re-segment TCP are on for ${iface}: ${list}; they would break per-segment authentication`, fix);
  }

  if (needs.nfqueue && !facts.nfqueue) {
    add('nfqueue', 'the kernel has no NFQUEUE (nfnetlink_queue is not loaded and could not be loaded)', `modprobe nfnetlink_queue (the kernel needs CONFIG_NETFILTER_NETLINK_QUEUE); ${MODULES_CONF}`);
  }
  if (needs.conntrack && !facts.conntrack) {
    add('conntrack', 'the kernel has no connection tracking (nf_conntrack), which the steering rules use to mark keyed flows', `modprobe nf_conntrack; ${MODULES_CONF}`);
  }
  if (needs.packetFilter && !facts.nft.ok && !facts.iptables.ok) {
    add('packet-filter', `neither nftables nor iptables works: nft: ${facts.nft.error}; iptables: ${facts.iptables.error}`, 'apt-get install nftables (and check `nft list tables` as this user: it needs CAP_NET_ADMIN and the nf_tables module)');
  }
  if (needs.packetCapture && !facts.packetSocket) {
    add('packet-capture', 'the kernel has no AF_PACKET sockets (/proc/net/packet is missing), which bridge mode captures with', `modprobe af_packet (CONFIG_PACKET); ${MODULES_CONF}`);
  }
  for (const name of needs.addons) {
    const error = facts.addons[name];
    if (error === undefined) add('addon', `the native addon ${name} was not checked`, ADDON_FIX);
    else if (error !== null) add('addon', `the native addon ${name} does not load: ${error}`, ADDON_FIX);
  }
  return problems;
}

/** The daemon does not start; the message lists every problem and its fix. */
export class StartupCheckError extends Error {
  constructor(readonly problems: readonly CheckProblem[]) {
    super(`refusing to start: ${problems.length} start-up check${problems.length === 1 ? '' : 's'} failed:\n${problems.map((p) => `  - ${p.check}: ${p.problem}\n    fix: ${p.fix}`).join('\n')}`);
    this.name = 'StartupCheckError';
  }
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Set when the command could not be started (ENOENT: not installed). */
  spawnError?: string;
}

type Runner = (cmd: string, args: readonly string[]) => Promise<RunResult>;

function runner(netns: string | undefined): Runner {
  return (cmd, args) =>
    new Promise((resolve) => {
      const [c, a] = netns === undefined ? [cmd, args] : ['ip', ['netns', 'exec', netns, cmd, ...args]];
      execFile(c, a, { timeout: 10_000, env: { ...process.env, LC_ALL: 'C' } }, (error, stdout, stderr) => {
        const e = error as (NodeJS.ErrnoException & { code?: number | string }) | null;
        if (e && typeof e.code === 'string') resolve({ code: null, stdout: '', stderr: '', spawnError: e.code === 'ENOENT' ? `${c}: command not found` : e.message });
        else resolve({ code: e ? ((e.code as number | undefined) ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) });
      });
    });
}

const failure = (r: RunResult): string => r.spawnError ?? (r.stderr.trim().split('\n')[0] || `exit ${r.code}`);

async function tool(run: Runner, steps: readonly [string, string[]][]): Promise<ToolResult> {
  for (const [cmd, args] of steps) {
    const r = await run(cmd, args);
    if (r.code !== 0) return { ok: false, error: `${[cmd, ...args].join(' ')}: ${failure(r)}` };
  }
  return { ok: true };
}

async function interfaceFacts(run: Runner, names: readonly string[]): Promise<Record<string, InterfaceFacts>> {
  const out: Record<string, InterfaceFacts> = {};
  if (names.length === 0) return out;
  const links = await run('ip', ['-j', 'link', 'show']);
  let present: Set<string>;
  try {
    present = new Set((JSON.parse(links.stdout) as { ifname: string }[]).map((l) => l.ifname));
  } catch {
    // No usable `ip`: fall back to sysfs (right for this process's own namespace).
    present = new Set(fs.existsSync('/sys/class/net') ? fs.readdirSync('/sys/class/net') : []);
  }
  for (const name of names) {
    if (!present.has(name)) {
      out[name] = { exists: false };
      continue;
    }
    const r = await run('ethtool', ['-k', name]);
    out[name] = r.code === 0 ? { exists: true, features: parseEthtoolFeatures(r.stdout) } : { exists: true, features: null, error: `ethtool -k ${name}: ${failure(r)}` };
  }
  return out;
}

/** A kernel feature present by any of `paths`; when absent, `modprobe module` is tried once (it may not exist or be allowed). */
async function kernelFeature(run: Runner, exists: (p: string) => Promise<boolean>, module: string, paths: readonly string[]): Promise<boolean> {
  const present = async () => (await Promise.all(paths.map(exists))).some(Boolean);
  if (await present()) return true;
  await run('modprobe', [module]);
  return present();
}

function addonError(name: AddonName): string | null {
  // NFQUEUE runs on our own native/nfq when it is built; the npm addon is only its fallback.
  if (name === 'nfqueue' && loadNativeAddon('nfq', 'cg_nfq', 'CIPHERGATE_NATIVE_NFQ') !== null) return null;
  try {
    createRequire(__filename)(name);
    return null;
  } catch (e) {
    return (e as Error).message.split('\n')[0] ?? String(e);
  }
}

/**
 * Gathers what `needs` asks about, in this process's network namespace or in `opts.netns`.
 * Capabilities and addons are always this process's.
 */
export async function gatherHostFacts(needs: CheckNeeds, opts: { netns?: string } = {}): Promise<HostFacts> {
  const run = runner(opts.netns);
  const exists = async (p: string) => (opts.netns === undefined ? fs.existsSync(p) : (await run('test', ['-e', p])).code === 0);
  let capEff: bigint | null = null;
  try {
    capEff = parseCapEff(fs.readFileSync('/proc/self/status', 'utf8'));
  } catch {
    capEff = null;
  }
  const skipped: ToolResult = { ok: false, error: 'not checked' };
  const nft = needs.packetFilter ? await tool(run, [['nft', ['--version']], ['nft', ['list', 'tables']]]) : skipped;
  return {
    capEff,
    interfaces: await interfaceFacts(run, needs.interfaces),
    nfqueue: needs.nfqueue && (await kernelFeature(run, exists, 'nfnetlink_queue', ['/proc/net/netfilter/nfnetlink_queue', '/sys/module/nfnetlink_queue'])),
    conntrack: needs.conntrack && (await kernelFeature(run, exists, 'nf_conntrack', ['/proc/sys/net/netfilter/nf_conntrack_count', '/sys/module/nf_conntrack'])),
    nft,
    iptables: needs.packetFilter && !nft.ok ? await tool(run, [['iptables', ['-S']]]) : skipped,
    packetSocket: needs.packetCapture && (await exists('/proc/net/packet')),
    addons: Object.fromEntries(needs.addons.map((a) => [a, addonError(a)])),
  };
}

/** Gathers, evaluates, and throws StartupCheckError listing every problem. */
export async function runStartupChecks(needs: CheckNeeds, opts: { netns?: string } = {}): Promise<void> {
  const problems = evaluateChecks(await gatherHostFacts(needs, opts), needs);
  if (problems.length > 0) throw new StartupCheckError(problems);
}

/** Router and host mode: NFQUEUE, conntrack marks, steering rules, raw sockets. Bridge mode: libpcap on the two interfaces. */
export function gatewayNeeds(c: Pick<GatewayConfig, 'mode' | 'dataInterfaces'>): CheckNeeds {
  const bridge = c.mode === 'bridge';
  return {
    interfaces: c.dataInterfaces,
    capabilities: true,
    nfqueue: !bridge,
    conntrack: !bridge,
    packetFilter: !bridge,
    packetCapture: bridge,
    addons: bridge ? ['cap'] : ['nfqueue', 'raw-socket'],
  };
}

/** NFQUEUE in OUTPUT and INPUT for the protected destinations, raw sockets for RSTs. */
export function agentNeeds(c: Pick<AgentConfig, 'dataInterfaces'>): CheckNeeds {
  return { interfaces: c.dataInterfaces, capabilities: true, nfqueue: true, conntrack: false, packetFilter: true, packetCapture: false, addons: ['nfqueue', 'raw-socket'] };
}
