// The steering rules, as rendered for nft and iptables: what they queue, what they leave in the
// kernel, and what stays while a daemon is stopped. These carry rule 7 (fail closed) and the
// "plaintext flows stay in the kernel" promise of DESIGN section 5, so each is asserted here.
import { parseCidr } from '../../common/protocol/cidr';
import {
  MARK_KEYED,
  MARK_ORIGINATED,
  agentClosedRules,
  agentRules,
  gatewayClosedRules,
  gatewayRules,
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
      `    ct mark ${hex(MARK_KEYED)} meta l4proto tcp queue num 0-1`,
      '    ip daddr 10.0.2.0/24 tcp dport 80 tcp flags & (syn | ack) == syn queue num 0-1',
      '    ip6 daddr fd00::2/128 tcp dport 6379 tcp flags & (syn | ack) == syn queue num 0-1',
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
    expect(v4.restore).toContain('-A CG-GW-FORWARD -p tcp -d 10.0.2.0/24 --dport 80 --tcp-flags SYN,ACK SYN -j NFQUEUE --queue-balance 0:1');
    expect(v4.restore).not.toContain('fd00::');
    expect(renderIptables(router, 6).restore).toContain('-d fd00::2/128 --dport 6379');
    expect(v4.jumps).toEqual([
      ['mangle', 'FORWARD', 'CG-GW-FORWARD'],
      ['filter', 'FORWARD', 'CG-GW-FORWARD-REMEMBER'],
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
