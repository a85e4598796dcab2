// Policy: which client principals (or groups) may reach which gateway principals and services.
// Default deny: a request is allowed only when one rule names the gateway, names the client or
// one of its groups, and has a service pattern matching the server address and port.
//
// Rule fields:  clients   principal names, or `group:NAME`
//               gateways  principal names
//               services  `ADDR:PORT` | `*:PORT` | `ADDR:*` | `*`   (IPv6 as `[ADDR]:PORT`)
// No wildcards for clients or gateways: who may talk to whom stays explicit. Address families
// never cross (an IPv4 pattern does not match an IPv4-mapped IPv6 address).
import type { RandomSource } from '../common/crypto/random';
import { bytesEqual, type IpAddr } from '../common/protocol/codec';
import { ipAddressToString, parseIpAddress } from '../common/wire/address';
import type { ServiceRef } from './issuer';
import { groupNameProblem, principalNameProblem } from './principals';
import type { KdcStore, PolicyRule } from './store/store';
import type { ChangeWatcher } from './store/watch';

export const MAX_RULE_ENTRIES = 256;
export const MAX_COMMENT_BYTES = 512;
const RULE_ID_RE = /^[A-Za-z0-9._-]{1,64}$/;

export class PolicyError extends Error {
  constructor(
    readonly code: 'invalid' | 'exists' | 'not-found',
    message: string,
  ) {
    super(message);
    this.name = 'PolicyError';
  }
}

export interface ServicePattern {
  /** null: any address. */
  addr: IpAddr | null;
  /** null: any port. */
  port: number | null;
}

function parsePort(p: string): number | null | string {
  if (p === '*') return null;
  if (!/^[0-9]{1,5}$/.test(p) || Number(p) < 1 || Number(p) > 65535) return `port ${JSON.stringify(p)} must be 1..65535 or *`;
  return Number(p);
}

/** Parses a service pattern to its match form and canonical text, or an error naming the problem. */
export function parseServicePattern(text: string): { ok: true; value: ServicePattern; canonical: string } | { ok: false; error: string } {
  const fail = (why: string) => ({ ok: false as const, error: `service ${JSON.stringify(text)}: ${why}` });
  const t = text.trim();
  if (t === '*') return { ok: true, value: { addr: null, port: null }, canonical: '*' };
  let addrText: string;
  let portText: string;
  if (t.startsWith('[')) {
    const close = t.indexOf(']');
    if (close < 0 || t[close + 1] !== ':') return fail('expected [IPv6]:PORT');
    addrText = t.slice(1, close);
    portText = t.slice(close + 2);
  } else {
    const colon = t.lastIndexOf(':');
    if (colon < 0) return fail('expected ADDR:PORT, *:PORT, ADDR:* or *');
    addrText = t.slice(0, colon);
    portText = t.slice(colon + 1);
    if (addrText.includes(':')) return fail('write IPv6 addresses in brackets, [ADDR]:PORT');
  }
  const port = parsePort(portText);
  if (typeof port === 'string') return fail(port);
  let addr: IpAddr | null = null;
  if (addrText !== '*') {
    const a = parseIpAddress(addrText);
    if (!a.ok) return fail(`${JSON.stringify(addrText)} is not an IP address`);
    addr = a.value;
  }
  const a = addr === null ? '*' : addr.length === 16 ? `[${ipAddressToString(addr)}]` : ipAddressToString(addr);
  return { ok: true, value: { addr, port }, canonical: `${a}:${port ?? '*'}` };
}

export function serviceMatches(p: ServicePattern, s: ServiceRef): boolean {
  return (p.port === null || p.port === s.port) && (p.addr === null || bytesEqual(p.addr, s.addr));
}

export interface PolicyRuleInput {
  id?: string;
  clients: readonly string[];
  gateways: readonly string[];
  services: readonly string[];
  comment?: string;
}

function entries(field: string, xs: readonly string[], check: (x: string) => string | null): string[] {
  if (xs.length === 0) throw new PolicyError('invalid', `${field}: at least one entry is required`);
  if (xs.length > MAX_RULE_ENTRIES) throw new PolicyError('invalid', `${field}: at most ${MAX_RULE_ENTRIES} entries`);
  const out: string[] = [];
  for (const x of xs) {
    const p = check(x);
    if (p) throw new PolicyError('invalid', `${field}: ${p}`);
    if (!out.includes(x)) out.push(x);
  }
  return out;
}

/** Why `entry` is not a valid clients entry (principal name or `group:NAME`), or null. */
export function clientEntryProblem(entry: string): string | null {
  if (entry.startsWith('group:')) return groupNameProblem(entry.slice(6));
  if (entry === '*') return 'wildcards are not allowed for clients; name principals or group:NAME';
  return principalNameProblem(entry);
}

/** Validates and canonicalizes a rule; errors name the field. */
export function makeRule(input: PolicyRuleInput, now: number, random: RandomSource): PolicyRule {
  const id = input.id ?? `r-${Buffer.from(random(4)).toString('hex')}`;
  if (!RULE_ID_RE.test(id)) throw new PolicyError('invalid', `id ${JSON.stringify(id)} must be 1..64 of A-Z a-z 0-9 . _ -`);
  const clients = entries('clients', input.clients, clientEntryProblem);
  const gateways = entries('gateways', input.gateways, (g) => (g === '*' ? 'wildcards are not allowed for gateways' : principalNameProblem(g)));
  const services: string[] = [];
  for (const s of entries('services', input.services, (x) => {
    const p = parseServicePattern(x);
    return p.ok ? null : p.error;
  })) {
    const c = (parseServicePattern(s) as { canonical: string }).canonical;
    if (!services.includes(c)) services.push(c);
  }
  const rule: PolicyRule = { id, clients, gateways, services, createdAt: now };
  if (input.comment !== undefined) {
    if (Buffer.byteLength(input.comment) > MAX_COMMENT_BYTES) throw new PolicyError('invalid', `comment: at most ${MAX_COMMENT_BYTES} bytes`);
    rule.comment = input.comment;
  }
  return rule;
}

export type PolicyCheck = (client: string, clientGroups: readonly string[], gateway: string, service: ServiceRef) => boolean;

interface CompiledRule {
  id: string;
  clients: Set<string>;
  groups: Set<string>;
  services: ServicePattern[];
}

/** Rules indexed by gateway for the per-request check. */
export class CompiledPolicy {
  private readonly byGateway = new Map<string, CompiledRule[]>();

  constructor(rules: readonly PolicyRule[]) {
    for (const r of rules) {
      const c: CompiledRule = {
        id: r.id,
        clients: new Set(r.clients.filter((x) => !x.startsWith('group:'))),
        groups: new Set(r.clients.filter((x) => x.startsWith('group:')).map((x) => x.slice(6))),
        // A stored pattern that does not parse matches nothing (deny), rather than failing the KDC.
        services: r.services.flatMap((s) => {
          const p = parseServicePattern(s);
          return p.ok ? [p.value] : [];
        }),
      };
      for (const g of r.gateways) {
        const list = this.byGateway.get(g) ?? [];
        list.push(c);
        this.byGateway.set(g, list);
      }
    }
  }

  /** The id of the first rule allowing the request, or null (default deny). */
  match(client: string, clientGroups: readonly string[], gateway: string, service: ServiceRef): string | null {
    for (const r of this.byGateway.get(gateway) ?? []) {
      if (!r.clients.has(client) && !clientGroups.some((g) => r.groups.has(g))) continue;
      if (r.services.some((p) => serviceMatches(p, service))) return r.id;
    }
    return null;
  }

  readonly allows: PolicyCheck = (client, clientGroups, gateway, service) => this.match(client, clientGroups, gateway, service) !== null;
}

export class PolicyAdmin {
  constructor(
    private readonly store: KdcStore,
    private readonly deps: { now: () => number; random: RandomSource },
  ) {}

  async add(input: PolicyRuleInput): Promise<PolicyRule> {
    const rule = makeRule(input, this.deps.now(), this.deps.random);
    if (!(await this.store.putPolicyRule(rule, true))) throw new PolicyError('exists', `policy rule ${rule.id} already exists`);
    return rule;
  }

  async remove(id: string): Promise<void> {
    if (!(await this.store.removePolicyRule(id))) throw new PolicyError('not-found', `no policy rule with id ${id}`);
  }

  list(): Promise<PolicyRule[]> {
    return this.store.listPolicyRules();
  }
}

/**
 * The issuer's view of the policy: compiled once per store change, re-read when the change
 * counter moves. Implements IssueDirectory.policy (kdc/service.ts).
 */
export class PolicyCache {
  private compiled: { version: number; policy: CompiledPolicy } | null = null;
  private loading: { version: number; p: Promise<CompiledPolicy> } | null = null;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly store: Pick<KdcStore, 'listPolicyRules'>,
    private readonly watcher: ChangeWatcher,
  ) {
    this.unsubscribe = watcher.onChange(() => {
      this.compiled = null;
    });
  }

  async current(): Promise<CompiledPolicy> {
    const version = await this.watcher.ensureFresh();
    if (this.compiled?.version === version) return this.compiled.policy;
    // A read started before the latest change may return older rules: start another one.
    if (this.loading?.version !== version) {
      const loading = {
        version,
        p: this.store.listPolicyRules().then((rules) => {
          const policy = new CompiledPolicy(rules);
          if (this.watcher.current === version) this.compiled = { version, policy };
          return policy;
        }),
      };
      this.loading = loading;
      void loading.p
        .finally(() => {
          if (this.loading === loading) this.loading = null;
        })
        .catch(() => undefined);
    }
    return this.loading.p;
  }

  /** IssueDirectory.cachedPolicy: the check without a store read when the compiled rules are fresh, else undefined. */
  cachedPolicy(_now: number): PolicyCheck | undefined {
    const c = this.compiled;
    return c !== null && this.watcher.isFresh() && c.version === this.watcher.current ? c.policy.allows : undefined;
  }

  /** IssueDirectory.policy: the check as of now (rules do not depend on the time). */
  async policy(_now: number): Promise<PolicyCheck> {
    return (await this.current()).allows;
  }

  close(): void {
    this.unsubscribe();
  }
}
