// The steering rules, as rendered for nft and iptables: what they queue, what they leave in the
// kernel, and what stays while a daemon is stopped. These carry rule 7 (fail closed) and the
// "plaintext flows stay in the kernel" promise of DESIGN section 5, so each is asserted here.
import { parseCidr } from '../../common/protocol/cidr';
import {
  MARK_KEYED,
  MARK_ORIGINATED,
  agentClosedRules,
  agentRules,
  balanceChain,
  gatewayClosedRules,
  gatewayRules,
  Steering,
  renderIptables,
  renderNft,
} from '../../runtime/steering';

const cidr = (s: string) => {
  const r = parseCidr(s);
  if (!r.ok) throw new Error(r.error);
  return r.value;
};
const web = { cidr: cidr('10.0.2.0/24'), port: 80 };
const redis6 = { cidr: cidr('fd00::2'), port: 6379 };
const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;

describe('gateway rules', () => {
  const router = gatewayRules('router', [web, redis6], { first: 0, count: 2 });

  test('only SYNs to services and flows we keyed are queued; originated packets never are', () => {
    const nft = renderNft(router);
    const queued = nft.split('\n').filter((l) => l.includes(' queue '));
    expect(queued).toEqual([
      `    ct mark ${hex(MARK_KEYED)} meta l4proto tcp queue to symhash mod 2 offset 0`,
      '    ip daddr 10.0.2.0/24 tcp dport 80 tcp flags & (syn | ack) == syn queue to symhash mod 2 offset 0',
      '    ip6 daddr fd00::2/128 tcp dport 6379 tcp flags & (syn | ack) == syn queue to symhash mod 2 offset 0',
    ]);
    expect(nft).toContain(`meta mark ${hex(MARK_ORIGINATED)} accept`);
    // A released SYN's mark becomes the flow's conntrack mark, after the queue has run.
    expect(nft).toMatch(new RegExp(`priority filter \\+ 10;[^}]*meta mark ${hex(MARK_KEYED)} ct mark set ${hex(MARK_KEYED)}`));
  });

  test('never bypass: with no daemon on the queue the kernel drops (fail closed)', () => {
    expect(renderNft(router)).not.toContain('bypass');
    for (const f of [4, 6] as const) expect(renderIptables(router, f).restore).not.toContain('queue-bypass');
  });

  test('iptables: queueing in mangle before filter, per family, with balanced queues', () => {
    const v4 = renderIptables(router, 4);
    expect(v4.restore).toContain('-A CG-GW-FORWARD -p tcp -d 10.0.2.0/24 --dport 80 --tcp-flags SYN,ACK SYN -j CG-GW-BALANCE');
    expect(v4.restore).not.toContain('fd00::');
    expect(renderIptables(router, 6).restore).toContain('-d fd00::2/128 --dport 6379');
    expect(v4.jumps).toEqual([
      ['mangle', 'FORWARD', 'CG-GW-FORWARD'],
      ['filter', 'FORWARD', 'CG-GW-FORWARD-REMEMBER'],
    ]);
    expect(v4.chains).toEqual([
      ['mangle', 'CG-GW-FORWARD'],
      ['mangle', 'CG-GW-BALANCE'],
      ['filter', 'CG-GW-FORWARD-REMEMBER'],
    ]);
  });

  test('host mode also queues the server host\'s own replies of keyed flows', () => {
    const nft = renderNft(gatewayRules('host', [web], { first: 3, count: 1 }));
    expect(nft).toContain('chain steer_output');
    expect(nft).toMatch(/chain steer_output[^}]*ct mark 0x43470002 meta l4proto tcp queue num 3/);
  });

  test('stopped: require services reset at once, keyed flows dropped, optional services untouched', () => {
    const closed = renderNft(gatewayClosedRules('router', [{ ...web, refuse: true }, { ...redis6, refuse: false }]));
    expect(closed).toContain('ip daddr 10.0.2.0/24 tcp dport 80 tcp flags & (syn | ack) == syn reject with tcp reset');
    expect(closed).toContain(`ct mark ${hex(MARK_KEYED)} meta l4proto tcp drop`);
    expect(closed).not.toContain('6379');
    expect(closed).not.toContain(' queue ');
  });
});

describe('agent rules', () => {
  test('every packet to or from a protected destination is queued', () => {
    const nft = renderNft(agentRules([web], { first: 10, count: 1 }));
    expect(nft).toContain('ip daddr 10.0.2.0/24 tcp dport 80 queue num 10');
    expect(nft).toContain('ip saddr 10.0.2.0/24 tcp sport 80 queue num 10');
  });

  test('stopped: connections to require destinations are reset locally; the local reset itself gets through', () => {
    const rs = agentClosedRules([{ ...web, refuse: true }, { ...redis6, refuse: false }]);
    const v4 = renderIptables(rs, 4).restore;
    expect(v4).toContain('-A CG-AGENT-OUTPUT-GUARD -p tcp -d 10.0.2.0/24 --dport 80 -j REJECT --reject-with tcp-reset');
    // Without the RST exception the reset our REJECT sends back would be dropped on input.
    expect(v4).toContain('-A CG-AGENT-INPUT-GUARD -p tcp -s 10.0.2.0/24 --sport 80 --tcp-flags RST NONE -j DROP');
    expect(renderIptables(rs, 6).jumps).toEqual([]);
    expect(renderNft(rs)).toContain('ip saddr 10.0.2.0/24 tcp sport 80 tcp flags & rst == 0 drop');
  });
});

/**
 * Evaluates a balance chain as the kernel does (xt_u32 on the TCP ports, first match wins) for
 * one packet, so the tests below check the rules' meaning rather than their text.
 */
function queueOf(restore: string, chain: string, family: 4 | 6, sport: number, dport: number, ipv6NextHeader = 6): number {
  const ports = ((sport << 16) | dport) >>> 0;
  for (const line of restore.split('\n').filter((l) => l.startsWith(`-A ${chain} `))) {
    const q = Number(/--queue-num (\d+)$/.exec(line)![1]);
    const u32 = /--u32 "(.*)"/.exec(line);
    if (u32 === null) return q;
    const test = family === 4 ? /^0>>22&0x3C@0&(0x[0-9a-f]+)=(0x[0-9a-f]+)$/.exec(u32[1]!) : /^6>>24=0x6&&40&(0x[0-9a-f]+)=(0x[0-9a-f]+)$/.exec(u32[1]!);
    if (test === null) throw new Error(`unexpected u32 test ${u32[1]}`);
    if (family === 6 && ipv6NextHeader !== 6) continue;
    if (((ports & Number(test[1])) >>> 0) === Number(test[2])) return q;
  }
  throw new Error('no rule matched: the packet would fall back into the steer chain unqueued');
}

describe('several queues (worker processes)', () => {
  const spread = (count: number) => agentRules([web, redis6], { first: 10, count });

  test.each([2, 3, 4, 8])('%i queues: both directions of a flow reach the same queue, and consecutive client ports spread over all', (count) => {
    for (const family of [4, 6] as const) {
      const plan = renderIptables(spread(count), family);
      const chain = balanceChain(spread(count));
      expect(plan.chains).toContainEqual(['mangle', chain]);
      const seen = new Set<number>();
      // Linux's connect() hands out even ports, usually two apart.
      for (let port = 40_000; port < 40_000 + 64; port += 2) {
        const out = queueOf(plan.restore, chain, family, port, 80);
        expect(queueOf(plan.restore, chain, family, 80, port)).toBe(out);
        expect(out).toBeGreaterThanOrEqual(10);
        expect(out).toBeLessThan(10 + count);
        seen.add(out);
      }
      expect(seen.size).toBe(count);
    }
  });

  test('every port pair meets a rule, so no packet leaves the balance chain unqueued', () => {
    const plan = renderIptables(spread(4), 4);
    for (let i = 0; i < 2000; i++) {
      const s = (i * 7919) & 0xffff;
      const d = (i * 104_729 + 13) & 0xffff;
      expect(queueOf(plan.restore, balanceChain(spread(4)), 4, s, d)).toBe(queueOf(plan.restore, balanceChain(spread(4)), 4, d, s));
    }
    // IPv6 with an extension header before TCP: the first queue, never unqueued.
    expect(queueOf(renderIptables(spread(4), 6).restore, balanceChain(spread(4)), 6, 40_002, 80, 0)).toBe(10);
  });

  test('one queue needs no balance chain; past 8 queues the kernel\'s address-pair balancing is used', () => {
    expect(renderIptables(spread(1), 4).restore).not.toContain('BALANCE');
    const many = renderIptables(spread(12), 4);
    expect(many.restore).not.toContain('BALANCE');
    expect(many.restore).toContain('-j NFQUEUE --queue-balance 10:21');
  });

  test('closed rules queue nothing, so the balance chain counts as stale and goes', () => {
    const closed = renderIptables(agentClosedRules([{ ...web, refuse: true }]), 4);
    expect(closed.chains.some(([, c]) => c.endsWith('-BALANCE'))).toBe(false);
  });
});

describe('applying with iptables: what a packet meets between two rulesets', () => {
  /** Records every rule command; our jumps are absent until inserted, everything succeeds. */
  async function recorded() {
    const log: string[] = [];
    const steering = await Steering.detect('iptables', async (cmd, args) => {
      log.push(`${cmd} ${args.filter((a) => a !== '-w' && a !== '5').join(' ')}`);
      return { ok: !args.includes('-C'), stderr: '' };
    });
    return { steering, log };
  }
  const running = agentRules([web], { first: 10, count: 2 });
  const closed = agentClosedRules([{ ...web, refuse: true }]);
  const first = (log: string[], re: RegExp) => log.findIndex((l) => re.test(l));

  test('stopping: the refusing rules are in before a queueing chain goes, and the balance chain goes last (never neither: rule 7)', async () => {
    const { steering, log } = await recorded();
    await steering.apply(running);
    log.length = 0;
    await steering.apply(closed);
    const v4 = log.slice(0, first(log, /^ip6tables/));
    const installed = first(v4, /^iptables-restore/);
    const unhooked = first(v4, /^iptables -t mangle -D OUTPUT -j CG-AGENT-OUTPUT$/);
    const flushed = first(v4, /^iptables -t mangle -F CG-AGENT-OUTPUT$/);
    expect(installed).toBeGreaterThanOrEqual(0);
    expect(unhooked).toBeGreaterThan(installed);
    expect(flushed).toBeGreaterThan(unhooked);
    expect(first(v4, /^iptables -t mangle -F CG-AGENT-BALANCE$/)).toBeGreaterThan(flushed);
  });

  test('a reload keeps every chain it uses: nothing in use is flushed or deleted', async () => {
    const { steering, log } = await recorded();
    await steering.apply(running);
    log.length = 0;
    await steering.apply(running);
    // (IPv4 only: the destination is IPv4, so in ip6tables these chains are unused and do go.)
    expect(log.filter((l) => /^iptables .* -[FX] CG-AGENT-(OUTPUT|INPUT|BALANCE)$/.test(l))).toEqual([]);
    expect(log.filter((l) => /^ip6tables .* -X CG-AGENT-BALANCE$/.test(l))).toHaveLength(1);
  });
});
