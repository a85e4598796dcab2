// The packet-filter rules that steer packets to our NFQUEUE. One rule model, rendered for
// nftables (our own table, replaced atomically by one `nft -f` transaction) or, where the kernel
// lacks nft's native `queue` expression, for iptables/ip6tables (our own chains, filled by one
// iptables-restore transaction per table). Install, reload and removal touch only our rules.
//
// Gateway: only SYNs to protected services, and flows we keyed, are queued. A released SYN gets
// MARK_KEYED in its verdict; a later hook copies that into the conntrack mark, and from then on
// the conntrack mark queues the rest of that flow. Every other packet (plaintext flows, optional
// services without the option) stays in the kernel. Agent: every packet to or from a protected
// destination is queued. Packets we originate carry MARK_ORIGINATED and are never queued.
//
// Several queues (one per worker process) are filled by a symmetric hash of the flow's ports, so
// both directions of a flow reach one worker and the flows between one client and one server
// still spread (the kernel's own queue balancing hashes the address pair only).
//
// There is deliberately no `bypass` flag: with no daemon on the queue the kernel drops the
// packets, so a stopped gateway or agent fails closed.
import { execFile } from 'node:child_process';
import type { Cidr } from '../common/protocol/cidr';
import { ipAddressToString } from '../common/wire/address';

/** fwmark of packets we send through raw sockets. "CG" in the high half, like the option's ExID. */
export const MARK_ORIGINATED = 0x4347_0001;
/** fwmark (then conntrack mark) of a flow the gateway keyed. */
export const MARK_KEYED = 0x4347_0002;

export interface Endpoint {
  cidr: Cidr;
  port: number;
}

export interface QueueRange {
  first: number;
  count: number;
}

export type Hook = 'forward' | 'input' | 'output';

/**
 * One steering rule; `stage` "steer" runs before the filter table (mangle), "remember" after it,
 * "guard" in the filter table (where REJECT is allowed).
 */
export interface SteerRule {
  hook: Hook;
  stage: 'steer' | 'remember' | 'guard';
  match:
    | { kind: 'originated' }
    | { kind: 'keyed-flow' }
    | { kind: 'syn-to'; endpoint: Endpoint }
    | { kind: 'to'; endpoint: Endpoint }
    | { kind: 'from'; endpoint: Endpoint }
    | { kind: 'keyed-syn' };
  /** Let TCP resets through (the local resets our own `reject` rules send back to the application). */
  exceptRst?: boolean;
  /** accept = leave our rules (stop steering); queue; connmark = remember the flow as keyed; reject = TCP reset. */
  action: 'accept' | 'queue' | 'connmark' | 'drop' | 'reject';
}

export interface Ruleset {
  /** nft table name; iptables chains are derived from it. */
  name: string;
  queues: QueueRange;
  rules: SteerRule[];
}

export type GatewayNetMode = 'router' | 'host';

export function gatewayRules(mode: GatewayNetMode, services: readonly Endpoint[], queues: QueueRange): Ruleset {
  const inbound: Hook = mode === 'router' ? 'forward' : 'input';
  const rules: SteerRule[] = [
    { hook: inbound, stage: 'steer', match: { kind: 'originated' }, action: 'accept' },
    { hook: inbound, stage: 'steer', match: { kind: 'keyed-flow' }, action: 'queue' },
    ...services.map((endpoint): SteerRule => ({ hook: inbound, stage: 'steer', match: { kind: 'syn-to', endpoint }, action: 'queue' })),
    { hook: inbound, stage: 'remember', match: { kind: 'keyed-syn' }, action: 'connmark' },
  ];
  if (mode === 'host') {
    // The server's own replies leave through OUTPUT.
    rules.push({ hook: 'output', stage: 'steer', match: { kind: 'originated' }, action: 'accept' });
    rules.push({ hook: 'output', stage: 'steer', match: { kind: 'keyed-flow' }, action: 'queue' });
  }
  return { name: 'ciphergate_gateway', queues, rules };
}

/**
 * What stays installed while the gateway is stopped (clean SIGTERM): SYNs to require-mode
 * services are refused at once with a TCP reset, and the rest of keyed flows is dropped, so
 * nothing crosses in plaintext and clients learn fast. Optional services carry plain TCP.
 */
export function gatewayClosedRules(mode: GatewayNetMode, services: readonly (Endpoint & { refuse: boolean })[]): Ruleset {
  const inbound: Hook = mode === 'router' ? 'forward' : 'input';
  const rules: SteerRule[] = [
    { hook: inbound, stage: 'guard', match: { kind: 'keyed-flow' }, action: 'drop' },
    ...services.filter((s) => s.refuse).map((endpoint): SteerRule => ({ hook: inbound, stage: 'guard', match: { kind: 'syn-to', endpoint }, action: 'reject' })),
  ];
  if (mode === 'host') rules.push({ hook: 'output', stage: 'guard', match: { kind: 'keyed-flow' }, action: 'drop' });
  return { name: 'ciphergate_gateway', queues: { first: 0, count: 1 }, rules };
}

/**
 * What stays installed while the agent is stopped: connections to require-mode destinations
 * are reset locally (the application sees "connection refused" at once) and their inbound
 * packets dropped; opportunistic destinations get plain TCP.
 */
export function agentClosedRules(destinations: readonly (Endpoint & { refuse: boolean })[]): Ruleset {
  const refused = destinations.filter((d) => d.refuse);
  return {
    name: 'ciphergate_agent',
    queues: { first: 0, count: 1 },
    rules: [
      ...refused.map((endpoint): SteerRule => ({ hook: 'output', stage: 'guard', match: { kind: 'to', endpoint }, action: 'reject' })),
      ...refused.map((endpoint): SteerRule => ({ hook: 'input', stage: 'guard', match: { kind: 'from', endpoint }, action: 'drop', exceptRst: true })),
    ],
  };
}

export function agentRules(destinations: readonly Endpoint[], queues: QueueRange): Ruleset {
  return {
    name: 'ciphergate_agent',
    queues,
    rules: [
      { hook: 'output', stage: 'steer', match: { kind: 'originated' }, action: 'accept' },
      ...destinations.map((endpoint): SteerRule => ({ hook: 'output', stage: 'steer', match: { kind: 'to', endpoint }, action: 'queue' })),
      ...destinations.map((endpoint): SteerRule => ({ hook: 'input', stage: 'steer', match: { kind: 'from', endpoint }, action: 'queue' })),
    ],
  };
}

const cidrText = (c: Cidr): string => `${ipAddressToString(c.network)}/${c.prefix}`;
const familyOf = (e: Endpoint): 4 | 6 => (e.cidr.network.length === 4 ? 4 : 6);
const hex = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;
const endpointOf = (r: SteerRule): Endpoint | null => ('endpoint' in r.match ? r.match.endpoint : null);

// ---- nftables ---------------------------------------------------------------------------

function nftMatch(r: SteerRule): string {
  const m = r.match;
  const syn = 'tcp flags & (syn | ack) == syn';
  switch (m.kind) {
    case 'originated':
      return `meta mark ${hex(MARK_ORIGINATED)}`;
    case 'keyed-flow':
      return `ct mark ${hex(MARK_KEYED)} meta l4proto tcp`;
    case 'keyed-syn':
      return `${syn} meta mark ${hex(MARK_KEYED)}`;
    case 'syn-to':
    case 'to':
    case 'from': {
      const fam = familyOf(m.endpoint) === 4 ? 'ip' : 'ip6';
      const addr = `${fam} ${m.kind === 'from' ? 'saddr' : 'daddr'} ${cidrText(m.endpoint.cidr)}`;
      const port = `tcp ${m.kind === 'from' ? 'sport' : 'dport'} ${m.endpoint.port}`;
      return `${addr} ${port}${m.kind === 'syn-to' ? ` ${syn}` : ''}`;
    }
  }
}

function nftAction(r: SteerRule, q: QueueRange): string {
  if (r.action === 'accept') return 'accept';
  if (r.action === 'drop') return 'drop';
  if (r.action === 'reject') return 'reject with tcp reset';
  if (r.action === 'connmark') return `ct mark set ${hex(MARK_KEYED)}`;
  // symhash: the flow dissector's symmetric hash, ports included.
  return q.count === 1 ? `queue num ${q.first}` : `queue to symhash mod ${q.count} offset ${q.first}`;
}

/** One `nft -f` transaction that creates or replaces the whole table. */
export function renderNft(rs: Ruleset): string {
  const lines = [`add table inet ${rs.name}`, `delete table inet ${rs.name}`, `table inet ${rs.name} {`];
  for (const hook of ['forward', 'input', 'output'] as const) {
    for (const stage of ['steer', 'guard', 'remember'] as const) {
      const rules = rs.rules.filter((r) => r.hook === hook && r.stage === stage);
      if (rules.length === 0) continue;
      const priority = stage === 'steer' ? 'mangle' : stage === 'guard' ? 'filter' : 'filter + 10';
      lines.push(`  chain ${stage}_${hook} {`, `    type filter hook ${hook} priority ${priority}; policy accept;`);
      for (const r of rules) lines.push(`    ${nftMatch(r)}${r.exceptRst ? ' tcp flags & rst == 0' : ''} ${nftAction(r, rs.queues)}`);
      lines.push('  }');
    }
  }
  lines.push('}', '');
  return lines.join('\n');
}

export const renderNftRemoval = (name: string): string => `add table inet ${name}\ndelete table inet ${name}\n`;

// ---- iptables ---------------------------------------------------------------------------

const chainBase = (rs: Ruleset): string => (rs.name === 'ciphergate_gateway' ? 'CG-GW' : 'CG-AGENT');

/** Our chain for a hook and stage: steer rules live in `mangle` (before filter), remember in `filter`. */
export function iptablesChain(rs: Ruleset, hook: Hook, stage: SteerRule['stage']): { table: 'mangle' | 'filter'; chain: string; parent: string } {
  const suffix = stage === 'steer' ? '' : `-${stage.toUpperCase()}`;
  return { table: stage === 'steer' ? 'mangle' : 'filter', chain: `${chainBase(rs)}-${hook.toUpperCase()}${suffix}`, parent: hook.toUpperCase() };
}

/** The mangle chain that picks one of several queues; reached by a jump from our steer chains. */
export const balanceChain = (rs: Ruleset): string => `${chainBase(rs)}-BALANCE`;

/** At most 2^3 buckets (64 rules): more queues than that fall back to the address-pair hash. */
const BALANCE_MAX_BITS = 3;

/** How many bits of each port pick the queue, or null when the kernel's own balancing is used. */
export function balanceBits(q: QueueRange): number | null {
  if (q.count === 1) return null;
  const bits = Math.ceil(Math.log2(q.count));
  return bits <= BALANCE_MAX_BITS ? bits : null;
}

/**
 * The balance chain's rules for one family: bucket = (source port bits) XOR (destination port
 * bits), the same in both directions. Bit 0 is skipped: Linux's connect() prefers even ports.
 * xt_u32 reads the ports at the TCP header (after IPv4 options; IPv6 without extension headers).
 * What no bucket matches (IPv6 with extension headers) goes to the first queue.
 */
function balanceRules(rs: Ruleset, family: 4 | 6, bits: number): string[] {
  const chain = balanceChain(rs);
  const portMask = ((1 << bits) - 1) << 1;
  const mask = ((portMask << 16) | portMask) >>> 0;
  const at = family === 4 ? '0>>22&0x3C@0' : '6>>24=0x6&&40';
  const u32hex = (n: number) => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
  const rules: string[] = [];
  for (let a = 0; a < 1 << bits; a++) {
    for (let b = 0; b < 1 << bits; b++) {
      const value = ((a << 17) | (b << 1)) >>> 0;
      const queue = rs.queues.first + ((a ^ b) % rs.queues.count);
      rules.push(`-A ${chain} -m u32 --u32 "${at}&${u32hex(mask)}=${u32hex(value)}" -j NFQUEUE --queue-num ${queue}`);
    }
  }
  rules.push(`-A ${chain} -j NFQUEUE --queue-num ${rs.queues.first}`);
  return rules;
}

function iptMatch(r: SteerRule): string {
  const m = r.match;
  const syn = '--tcp-flags SYN,ACK SYN';
  switch (m.kind) {
    case 'originated':
      return `-m mark --mark ${hex(MARK_ORIGINATED)}`;
    case 'keyed-flow':
      return `-p tcp -m connmark --mark ${hex(MARK_KEYED)}`;
    case 'keyed-syn':
      return `-p tcp ${syn} -m mark --mark ${hex(MARK_KEYED)}`;
    case 'syn-to':
      return `-p tcp -d ${cidrText(m.endpoint.cidr)} --dport ${m.endpoint.port} ${syn}`;
    case 'to':
      return `-p tcp -d ${cidrText(m.endpoint.cidr)} --dport ${m.endpoint.port}`;
    case 'from':
      return `-p tcp -s ${cidrText(m.endpoint.cidr)} --sport ${m.endpoint.port}`;
  }
}

/** `balance`: the balance chain queue rules jump to, or null to queue directly. */
function iptAction(r: SteerRule, q: QueueRange, balance: string | null): string {
  if (r.action === 'accept') return '-j RETURN';
  if (r.action === 'drop') return '-j DROP';
  if (r.action === 'reject') return '-j REJECT --reject-with tcp-reset';
  if (r.action === 'connmark') return `-j CONNMARK --set-mark ${hex(MARK_KEYED)}`;
  if (balance !== null) return `-j ${balance}`;
  return q.count === 1 ? `-j NFQUEUE --queue-num ${q.first}` : `-j NFQUEUE --queue-balance ${q.first}:${q.first + q.count - 1}`;
}

export interface IptablesPlan {
  /** iptables-restore --noflush input (declaring a chain flushes it: one transaction per table). */
  restore: string;
  /** Jumps from the built-in chains into ours, as [table, parent, chain]. */
  jumps: [string, string, string][];
  /** Every chain of ours the rules use, as [table, chain]. */
  chains: [string, string][];
}

/** The rules for one address family (addressless rules go to both). */
export function renderIptables(rs: Ruleset, family: 4 | 6): IptablesPlan {
  const byTable = new Map<string, Map<string, string[]>>();
  const jumps: [string, string, string][] = [];
  const bits = balanceBits(rs.queues);
  const balance = bits === null ? null : balanceChain(rs);
  let balanced = false;
  for (const r of rs.rules) {
    const ep = endpointOf(r);
    if (ep !== null && familyOf(ep) !== family) continue;
    const { table, chain, parent } = iptablesChain(rs, r.hook, r.stage);
    const chains = byTable.get(table) ?? new Map<string, string[]>();
    byTable.set(table, chains);
    if (!chains.has(chain)) {
      chains.set(chain, []);
      jumps.push([table, parent, chain]);
    }
    chains.get(chain)!.push(`-A ${chain} ${iptMatch(r)}${r.exceptRst ? ' --tcp-flags RST NONE' : ''} ${iptAction(r, rs.queues, balance)}`);
    balanced ||= r.action === 'queue';
  }
  // Queue rules are steer rules, so they live in mangle, beside the chain they jump to.
  if (balance !== null && balanced) byTable.get('mangle')!.set(balance, balanceRules(rs, family, bits as number));
  const lines: string[] = [];
  for (const [table, chains] of byTable) {
    lines.push(`*${table}`, ...[...chains.keys()].map((c) => `:${c} - [0:0]`));
    for (const rules of chains.values()) lines.push(...rules);
    lines.push('COMMIT');
  }
  const chains = [...byTable].flatMap(([table, cs]) => [...cs.keys()].map((c): [string, string] => [table, c]));
  return { restore: lines.join('\n') + '\n', jumps, chains };
}

// ---- applying ---------------------------------------------------------------------------

export type SteeringBackend = 'nft' | 'iptables';

/** Runs one rule tool (nft, iptables, ...) with `input` on stdin; never throws. */
export type RuleTool = (cmd: string, args: string[], input?: string) => Promise<{ ok: boolean; stderr: string }>;

function run(cmd: string, args: string[], input?: string): Promise<{ ok: boolean; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 10_000 }, (error, _stdout, stderr) => resolve({ ok: !error, stderr: String(stderr).trim() || (error?.message ?? '') }));
    child.stdin?.on('error', () => undefined); // a command that reads no input may exit first
    child.stdin?.end(input ?? '');
  });
}

/** Whether this kernel's nftables has the native `queue` expression (nft_queue). */
export async function nftCanQueue(): Promise<boolean> {
  const probe = 'add table inet ciphergate_probe\ndelete table inet ciphergate_probe\ntable inet ciphergate_probe {\n chain c { type filter hook output priority 0; policy accept; meta mark 1 tcp dport 9 queue num 0; }\n}\ndelete table inet ciphergate_probe\n';
  return (await run('nft', ['-f', '-'], probe)).ok;
}

/** Installs, replaces and removes one ruleset with whichever backend this kernel supports. */
/**
 * Installs the rules a stopped daemon leaves, for a daemon that did not get to do it itself
 * (killed, crashed): systemd's ExecStopPost= runs `ciphergate gateway|agent --closed-rules`.
 * Without it a dead daemon's queue rules stay, and clients wait out their own timeouts on a
 * queue nobody reads: still closed, but slow. Returns the backend used.
 */
export async function installClosedRules(rules: Ruleset): Promise<SteeringBackend> {
  const s = await Steering.detect();
  await s.apply(rules);
  return s.backend;
}

export class Steering {
  private current: Ruleset | null = null;

  private constructor(
    readonly backend: SteeringBackend,
    private readonly run: RuleTool,
  ) {}

  /** `tool` runs the rule commands (tests pass one that records them). */
  static async detect(prefer?: SteeringBackend, tool: RuleTool = run): Promise<Steering> {
    return new Steering(prefer ?? ((await nftCanQueue()) ? 'nft' : 'iptables'), tool);
  }

  async apply(rs: Ruleset): Promise<void> {
    if (this.backend === 'nft') {
      const r = await this.run('nft', ['-f', '-'], renderNft(rs));
      if (!r.ok) throw new Error(`nft refused our rules: ${r.stderr}`);
    } else {
      for (const family of [4, 6] as const) {
        const plan = renderIptables(rs, family);
        const tool = family === 4 ? 'iptables' : 'ip6tables';
        if (plan.jumps.length > 0) {
          const r = await this.run(`${tool}-restore`, ['--noflush', '-w', '5'], plan.restore);
          if (!r.ok) throw new Error(`${tool}-restore refused our rules: ${r.stderr}`);
          for (const [table, parent, chain] of plan.jumps) {
            const present = await this.run(tool, ['-w', '5', '-t', table, '-C', parent, '-j', chain]);
            if (present.ok) continue;
            const added = await this.run(tool, ['-w', '5', '-t', table, '-I', parent, '1', '-j', chain]);
            if (!added.ok) throw new Error(`${tool} -t ${table} -I ${parent}: ${added.stderr}`);
          }
        }
        // Then our chains this ruleset does not use go, whoever installed them (a previous run
        // may have left its at-exit rules). New rules first: between the two steps a packet meets
        // both sets (queued, or refused), never neither (which would pass it in plaintext).
        const stale = everyChain(rs).filter(([t, , c]) => !plan.chains.some(([t2, c2]) => t2 === t && c2 === c));
        for (const [table, parent, chain] of stale) await removeChain(this.run, tool, table, parent, chain);
      }
    }
    this.current = rs;
  }

  /** Removes every rule of the named ruleset (idempotent). */
  async remove(name = this.current?.name): Promise<void> {
    if (name === undefined) return;
    if (this.backend === 'nft') await this.run('nft', ['-f', '-'], renderNftRemoval(name));
    else {
      for (const tool of ['iptables', 'ip6tables']) {
        for (const [table, parent, chain] of everyChain({ name, queues: { first: 0, count: 1 }, rules: [] })) await removeChain(this.run, tool, table, parent, chain);
      }
    }
    this.current = null;
  }
}

/**
 * Every chain a ruleset of this name could have, as [table, parent, chain]. The balance chain
 * comes last (no built-in parent): it can only be deleted once the steer chains are gone.
 */
function everyChain(rs: Ruleset): [string, string, string][] {
  const out: [string, string, string][] = [];
  for (const hook of ['forward', 'input', 'output'] as const) {
    for (const stage of ['steer', 'guard', 'remember'] as const) {
      const c = iptablesChain(rs, hook, stage);
      out.push([c.table, c.parent, c.chain]);
    }
  }
  out.push(['mangle', '', balanceChain(rs)]);
  return out;
}

async function removeChain(run: RuleTool, tool: string, table: string, parent: string, chain: string): Promise<void> {
  for (let i = 0; parent !== '' && i < 16; i++) if (!(await run(tool, ['-w', '5', '-t', table, '-D', parent, '-j', chain])).ok) break;
  await run(tool, ['-w', '5', '-t', table, '-F', chain]);
  await run(tool, ['-w', '5', '-t', table, '-X', chain]);
}
