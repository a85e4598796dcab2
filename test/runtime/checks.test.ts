// The pure start-up checks: real `ethtool -k` output (test/fixtures/ethtool) and host facts in,
// every problem with its fix out.
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  type CheckNeeds,
  type HostFacts,
  StartupCheckError,
  agentNeeds,
  evaluateChecks,
  gatewayNeeds,
  parseCapEff,
  parseEthtoolFeatures,
} from '../../runtime/checks';

const fixture = (name: string) => fs.readFileSync(path.join(__dirname, '..', 'fixtures', 'ethtool', name), 'utf8');
const features = (name: string) => parseEthtoolFeatures(fixture(name));

const ROOT_CAPS = parseCapEff('CapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\n');
const ROUTER: CheckNeeds = gatewayNeeds({ mode: 'router', dataInterfaces: ['eth1'] });

function healthy(over: Partial<HostFacts> = {}): HostFacts {
  return {
    capEff: ROOT_CAPS,
    interfaces: { eth1: { exists: true, features: features('veth-off.txt') }, eth2: { exists: true, features: features('veth-off.txt') } },
    nfqueue: true,
    conntrack: true,
    nft: { ok: true },
    iptables: { ok: false, error: 'not checked' },
    packetSocket: true,
    addons: { nfqueue: null, 'raw-socket': null, cap: null },
    ...over,
  };
}

test('parseEthtoolFeatures reads real ethtool -k output, sub-features and [fixed] included', () => {
  const veth = features('veth-default.txt');
  expect(veth['tcp-segmentation-offload']).toEqual({ on: true, fixed: false });
  expect(veth['tx-tcp6-segmentation']).toEqual({ on: true, fixed: false });
  expect(veth['generic-segmentation-offload']).toEqual({ on: true, fixed: false });
  expect(veth['generic-receive-offload']).toEqual({ on: false, fixed: false });
  expect(veth['large-receive-offload']).toEqual({ on: false, fixed: true });
  expect(veth['tx-udp_tnl-segmentation']).toEqual({ on: true, fixed: false });
  expect(Object.keys(veth).length).toBeGreaterThan(60);
  expect(features('veth-gro-on.txt')['generic-receive-offload']).toEqual({ on: true, fixed: false });
  expect(features('virtio-eth0.txt')['rx-gro-hw']).toEqual({ on: true, fixed: true });
  expect(parseEthtoolFeatures('Features for x:\nrx-vlan-offload: on [requested off]\nnot a feature line\n')).toEqual({ 'rx-vlan-offload': { on: true, fixed: false } });
  expect(parseEthtoolFeatures('')).toEqual({});
});

test('parseCapEff', () => {
  expect(ROOT_CAPS).toBe(0x1fffeffffffn);
  expect(parseCapEff('Name:\tnode\nCapEff:\t0000000000003000\n')).toBe(0x3000n);
  expect(parseCapEff('Name:\tnode\n')).toBeNull();
});

test('a healthy router-mode host has no problems', () => {
  expect(evaluateChecks(healthy(), ROUTER)).toEqual([]);
});

test('offloads on a fresh veth: TSO and GSO named, with the ethtool command', () => {
  const facts = healthy({ interfaces: { eth1: { exists: true, features: features('veth-default.txt') } } });
  expect(evaluateChecks(facts, ROUTER)).toEqual([
    {
      check: 'offloads',
      problem: 'offloads that re-segment TCP are on for eth1: TSO (tcp-segmentation-offload), GSO (generic-segmentation-offload); they would break per-segment authentication',
      fix: 'ethtool -K eth1 gro off lro off tso off gso off',
    },
  ]);
  const gro = evaluateChecks(healthy({ interfaces: { eth1: { exists: true, features: features('veth-gro-on.txt') } } }), ROUTER);
  expect(gro[0]?.problem).toMatch(/^offloads that re-segment TCP are on for eth1: GRO \(generic-receive-offload\), TSO/);
});

test('a fixed hardware GRO (virtio) says ethtool cannot change it', () => {
  const [p] = evaluateChecks(healthy({ interfaces: { eth1: { exists: true, features: features('virtio-eth0.txt') } } }), ROUTER);
  expect(p?.problem).toContain('GRO (generic-receive-offload), TSO (tcp-segmentation-offload), GSO (generic-segmentation-offload), hardware GRO (rx-gro-hw, fixed)');
  expect(p?.fix).toMatch(/^ethtool -K eth1 gro off lro off tso off gso off rx-gro-hw off; rx-gro-hw cannot be changed by ethtool on this driver \(\[fixed\]\)/);
});

test('missing interface, unreadable offloads', () => {
  const facts = healthy({ interfaces: { eth1: { exists: false }, eth2: { exists: true, features: null, error: 'ethtool: command not found' } } });
  const ps = evaluateChecks(facts, gatewayNeeds({ mode: 'bridge', dataInterfaces: ['eth1', 'eth2'] }));
  expect(ps.map((p) => [p.check, p.problem])).toEqual([
    ['interface', 'data interface eth1 does not exist'],
    ['offloads', 'cannot read the offloads of eth2: ethtool: command not found'],
  ]);
  expect(ps[1]?.fix).toMatch(/apt-get install ethtool/);
});

test('privileges: CAP_NET_ADMIN and CAP_NET_RAW in CapEff', () => {
  const only = (caps: bigint | null) => evaluateChecks(healthy({ capEff: caps }), ROUTER);
  expect(only(0x3000n)).toEqual([]);
  expect(only(0x1000n).map((p) => p.problem)).toEqual(['missing CAP_NET_RAW (needed for NFQUEUE, packet-filter rules and raw sockets)']);
  const none = only(0n);
  expect(none.map((p) => p.problem)).toEqual(['missing CAP_NET_ADMIN and CAP_NET_RAW (needed for NFQUEUE, packet-filter rules and raw sockets)']);
  expect(none[0]?.fix).toMatch(/run as root, or .*AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW/);
  expect(only(null)[0]?.problem).toMatch(/cannot read the capabilities/);
});

test('kernel features and addons, each with its fix', () => {
  const facts = healthy({
    nfqueue: false,
    conntrack: false,
    nft: { ok: false, error: 'nft --version: nft: command not found' },
    iptables: { ok: false, error: 'iptables -S: iptables: command not found' },
    addons: { nfqueue: "Cannot find module 'nfqueue'", 'raw-socket': null },
  });
  const ps = evaluateChecks(facts, ROUTER);
  expect(ps.map((p) => p.check)).toEqual(['nfqueue', 'conntrack', 'packet-filter', 'addon']);
  expect(ps[0]?.fix).toMatch(/^modprobe nfnetlink_queue .*modules-load\.d/);
  expect(ps[1]?.fix).toMatch(/^modprobe nf_conntrack/);
  expect(ps[2]?.problem).toBe('neither nftables nor iptables works: nft: nft --version: nft: command not found; iptables: iptables -S: iptables: command not found');
  expect(ps[3]?.problem).toBe("the native addon nfqueue does not load: Cannot find module 'nfqueue'");
  expect(ps[3]?.fix).toMatch(/npm install .*allowScripts/);
  // iptables alone is enough: the steering falls back to it.
  expect(evaluateChecks(healthy({ nft: { ok: false, error: 'x' }, iptables: { ok: true } }), ROUTER)).toEqual([]);
});

test('bridge mode needs AF_PACKET and cap, not NFQUEUE, conntrack or a packet filter', () => {
  const bridge = gatewayNeeds({ mode: 'bridge', dataInterfaces: ['eth1', 'eth2'] });
  expect(bridge).toMatchObject({ nfqueue: false, conntrack: false, packetFilter: false, packetCapture: true, addons: ['cap'] });
  const facts = healthy({ nfqueue: false, conntrack: false, nft: { ok: false, error: 'x' }, packetSocket: false, addons: { cap: 'libpcap.so.0.8: cannot open shared object file' } });
  expect(evaluateChecks(facts, bridge).map((p) => p.check)).toEqual(['packet-capture', 'addon']);
});

test('agent needs NFQUEUE, a packet filter, nfqueue and raw-socket', () => {
  expect(agentNeeds({ dataInterfaces: ['eth0'] })).toEqual({
    interfaces: ['eth0'],
    capabilities: true,
    nfqueue: true,
    conntrack: false,
    packetFilter: true,
    packetCapture: false,
    addons: ['nfqueue', 'raw-socket'],
  });
});

test('StartupCheckError lists every problem with its fix', () => {
  const ps = evaluateChecks(healthy({ capEff: 0n, interfaces: { eth1: { exists: true, features: features('veth-default.txt') } } }), ROUTER);
  const e = new StartupCheckError(ps);
  expect(e.message).toBe(
    [
      'refusing to start: 2 start-up checks failed:',
      '  - privileges: missing CAP_NET_ADMIN and CAP_NET_RAW (needed for NFQUEUE, packet-filter rules and raw sockets)',
      `    fix: ${ps[0]?.fix}`,
      `  - offloads: ${ps[1]?.problem}`,
      '    fix: ethtool -K eth1 gro off lro off tso off gso off',
    ].join('\n'),
  );
});
