// Bridge mode on real interfaces: client ns -- veth -- bridge ns (two interfaces, no IP, the
// gateway engine on BridgeDatapath) -- veth -- server ns. tcpdump on the client's and the
// server's interface shows what crossed: ARP, UDP, a plaintext HTTP flow and an 802.1Q-tagged
// flow byte for byte in both directions; a plain SYN to a "require" service answered by the
// bridge with a RST and never reaching the server; and the bridge counting exactly the frames
// the peers sent (it never captures its own transmissions, so nothing loops).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readCapture } from '../../common/pcap';
import { parseFrame } from '../../common/wire/frame';
import { ETHERTYPE, LINKTYPE, parseLink } from '../../common/wire/link';
import { emitIpTcp } from '../../common/wire/packet';
import { TCP_FLAGS } from '../../common/wire/tcp';
import { type BackgroundProcess, type Capture, NetnsLab, isRoot, missingTools } from '../lib/netns';

const FIXTURES = path.join(__dirname, 'fixtures');
const PROTECTED_PORT = 7000;
const HTTP_PORT = 8080;
const UDP_PORT = 9000;
const VID = 100;
const QINQ_OUTER = 200;
const BROADCAST = 'ffffffffffff';
/** Source MAC of frames the bridge host itself sends. */
const HOST_MAC = '020000000001';

function capBuilt(): boolean {
  try {
    require.resolve('cap/build/Release/cap.node');
    return true;
  } catch {
    return false;
  }
}

const runnable = isRoot() && missingTools(['ip', 'tcpdump', 'ethtool', 'curl']).length === 0 && capBuilt();
const describeLive = runnable ? describe : describe.skip;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** An Ethernet frame: MACs as hex, VLAN tags as [TPID, TCI], outermost first. */
function frame(dst: string, src: string, tags: readonly (readonly [number, number])[], etherType: number, payload: Uint8Array): Uint8Array {
  const head = [...Buffer.from(dst, 'hex'), ...Buffer.from(src, 'hex')];
  for (const [tpid, tci] of tags) head.push(tpid >> 8, tpid & 0xff, tci >> 8, tci & 0xff);
  head.push(etherType >> 8, etherType & 0xff);
  return new Uint8Array([...head, ...payload]);
}

const v4 = (a: string) => new Uint8Array(a.split('.').map(Number));

function syn(src: string, dst: string, srcPort: number, dstPort: number): Uint8Array {
  const r = emitIpTcp({
    ip: { version: 4, src: v4(src), dst: v4(dst), ttl: 64, tos: 0, id: 1, dontFragment: true, flowLabel: 0 },
    tcp: { srcPort, dstPort, seq: 0x01020304, ack: 0, flags: TCP_FLAGS.SYN, window: 64240, urgent: 0, options: [], payload: new Uint8Array(0) },
  });
  if (!r.ok) throw new Error(r.error.detail);
  return r.value;
}

function arpRequest(senderMac: string, senderIp: string, targetIp: string): Uint8Array {
  return new Uint8Array([0, 1, 8, 0, 6, 4, 0, 1, ...Buffer.from(senderMac, 'hex'), ...v4(senderIp), 0, 0, 0, 0, 0, 0, ...v4(targetIp)]);
}

type Stats = Record<string, number>;
interface Snapshot {
  datapath: Stats;
  engine: Stats;
}

/** A frame as captured, with what the assertions look at. */
interface Seen {
  data: Uint8Array;
  src: string;
  /** Ethertype after the VLAN tags. */
  etherType: number;
  vlanTags: readonly number[];
  tcp: { srcPort: number; dstPort: number; flags: number; ipTotalLength: number } | null;
  udp: boolean;
}

function frames(file: string): Seen[] {
  const cap = readCapture(new Uint8Array(fs.readFileSync(file)));
  if (!cap.ok) throw new Error(`${file}: ${cap.error.detail}`);
  return cap.value.packets.map((p): Seen => {
    const data = p.data;
    const src = hex(data.subarray(6, 12));
    const link = parseLink(LINKTYPE.ETHERNET, data);
    const f = parseFrame(LINKTYPE.ETHERNET, data);
    let etherType = -1;
    let vlanTags: readonly number[] = [];
    if (link.ok) ({ etherType, vlanTags } = link.value);
    else {
      // Not IP: read the ethertype past any tags ourselves.
      let o = 12;
      const tags: number[] = [];
      while ([ETHERTYPE.VLAN, ETHERTYPE.QINQ as number].includes((data[o]! << 8) | data[o + 1]!)) {
        tags.push(data[o + 2]! << 8 | data[o + 3]!);
        o += 4;
      }
      etherType = data[o]! << 8 | data[o + 1]!;
      vlanTags = tags;
    }
    const tcp = f.ok ? { srcPort: f.value.tcp.srcPort, dstPort: f.value.tcp.dstPort, flags: f.value.tcp.flags, ipTotalLength: f.value.ip.totalLength } : null;
    const udp = !f.ok && f.error.kind === 'not-tcp' && link.ok && data[link.value.ipOffset + 9] === 17;
    return { data, src, etherType, vlanTags, tcp, udp };
  });
}

const touchesProtected = (f: Seen) => f.tcp !== null && (f.tcp.srcPort === PROTECTED_PORT || f.tcp.dstPort === PROTECTED_PORT);

describeLive('bridge datapath (network namespaces, real captures)', () => {
  const lab = new NetnsLab({ prefix: 'cgbr' });
  let bridge: BackgroundProcess;
  let clientMac = '';
  let serverMac = '';
  let clientFrames: Seen[] = [];
  let serverFrames: Seen[] = [];
  let before: Snapshot;
  let after: Snapshot;
  const results: { http?: string; udp?: string; refused?: { outcome: string; ms: number } } = {};

  /** Asks the bridge for its counters (SIGUSR2) and waits for the answer. */
  async function snapshot(): Promise<Snapshot> {
    const count = () => bridge.stdout().split('\n').filter((l) => l.includes('"event":"stats"')).length;
    const n = count();
    process.kill(bridge.pid, 'SIGUSR2');
    const deadline = Date.now() + 5000;
    while (count() === n) {
      if (Date.now() > deadline) throw new Error(`bridge did not report stats: ${bridge.stderr()}`);
      await sleep(20);
    }
    const line = bridge.stdout().split('\n').filter((l) => l.includes('"event":"stats"'))[n]!;
    return JSON.parse(line) as Snapshot;
  }

  const delta = (k: string) => (after.datapath[k] ?? 0) - (before.datapath[k] ?? 0);

  beforeAll(async () => {
    const [c, b, s] = [await lab.namespace('client'), await lab.namespace('bridge'), await lab.namespace('server')];
    // No IPv6: its background chatter (MLD, router solicitations) would blur the frame counts.
    for (const ns of [c, b, s]) {
      await lab.sysctl(ns, 'net.ipv6.conf.all.disable_ipv6', 1);
      await lab.sysctl(ns, 'net.ipv6.conf.default.disable_ipv6', 1);
    }
    const left = await lab.veth(c, b);
    const right = await lab.veth(b, s);
    for (const [ns, dev] of [[c, left.devA], [b, left.devB], [b, right.devA], [s, right.devB]] as const) await lab.offloadsOff(ns, dev);
    await lab.addAddress(c, left.devA, '10.88.0.1/24');
    await lab.addAddress(s, right.devB, '10.88.0.2/24');
    const mac = async (ns: string, dev: string) => {
      const j = JSON.parse((await lab.exec(ns, 'ip', ['-j', 'link', 'show', 'dev', dev])).stdout) as { address: string }[];
      return j[0]!.address.replace(/:/g, '');
    };
    clientMac = await mac(c, left.devA);
    serverMac = await mac(s, right.devB);

    lab.spawn(s, process.execPath, [path.join(FIXTURES, 'bridge-peer.js'), 'serve', String(HTTP_PORT), String(PROTECTED_PORT), '--udp', String(UDP_PORT)]);
    await lab.waitForListen(s, HTTP_PORT);
    await lab.waitForListen(s, PROTECTED_PORT);

    bridge = lab.spawn(b, process.execPath, [
      path.join(FIXTURES, 'bridge-gateway.js'), left.devB, right.devA,
      `10.88.0.2:${PROTECTED_PORT}=require`, `10.89.0.2:${PROTECTED_PORT}=require`,
    ]);
    const deadline = Date.now() + 20_000;
    while (!bridge.stdout().includes('"event":"ready"')) {
      if (bridge.stdout().includes('"event":"error"') || Date.now() > deadline) {
        throw new Error(`bridge did not start: ${bridge.stdout()} ${bridge.stderr()}`);
      }
      await sleep(50);
    }
    // libpcap loses the first frame or two after installing the `inbound` filter (see
    // bridge-datapath.ts): spend them on broadcasts before counting anything.
    const peer = path.join(FIXTURES, 'bridge-peer.js');
    await lab.exec(c, process.execPath, [peer, 'broadcast', '10.88.0.255', '9', '3']);
    await lab.exec(s, process.execPath, [peer, 'broadcast', '10.88.0.255', '9', '3']);
    await sleep(200);

    const dir = await lab.tmpdir();
    const caps: Capture[] = [
      await lab.startCapture(c, left.devA, path.join(dir, 'client.pcap')),
      await lab.startCapture(s, right.devB, path.join(dir, 'server.pcap')),
    ];
    before = await snapshot();

    // The body's SHA-256, so the binary body is compared whole.
    const curl = async (url: string) => {
      const r = await lab.exec(c, 'sh', ['-c', 'curl -sS --max-time 10 "$1" | sha256sum', 'sh', url], { timeoutMs: 15_000 });
      return r.stdout.split(' ')[0];
    };
    results.http = await curl(`http://10.88.0.2:${HTTP_PORT}/`);
    results.udp = (await lab.exec(c, process.execPath, [peer, 'udp', '10.88.0.2', String(UDP_PORT)])).stdout;
    const refused = await lab.exec(c, process.execPath, [peer, 'connect', '10.88.0.2', String(PROTECTED_PORT)]);
    results.refused = JSON.parse(refused.stdout) as { outcome: string; ms: number };
    // Tagged frames, written by hand: this kernel has no 802.1Q devices. The peers' kernels
    // ignore them; the captures show what the bridge did with them.
    const fromClient = [
      frame(BROADCAST, clientMac, [[ETHERTYPE.VLAN, VID]], ETHERTYPE.ARP, arpRequest(clientMac, '10.89.0.1', '10.89.0.2')),
      frame(serverMac, clientMac, [[ETHERTYPE.VLAN, VID]], ETHERTYPE.IPV4, syn('10.89.0.1', '10.89.0.2', 40001, HTTP_PORT)),
      frame(serverMac, clientMac, [[ETHERTYPE.QINQ, QINQ_OUTER], [ETHERTYPE.VLAN, VID]], ETHERTYPE.IPV4, syn('10.89.0.1', '10.89.0.2', 40002, HTTP_PORT)),
      frame(serverMac, clientMac, [[ETHERTYPE.VLAN, VID]], ETHERTYPE.IPV4, syn('10.89.0.1', '10.89.0.2', 40003, PROTECTED_PORT)),
    ];
    await lab.exec(c, process.execPath, [peer, 'inject', left.devA, ...fromClient.map(hex)]);
    const fromServer = [frame(BROADCAST, serverMac, [[ETHERTYPE.VLAN, VID]], ETHERTYPE.ARP, arpRequest(serverMac, '10.89.0.2', '10.89.0.1'))];
    await lab.exec(s, process.execPath, [peer, 'inject', right.devB, ...fromServer.map(hex)]);
    // The bridge host's own stack transmitting on a bridge interface (as LLDP or IPv6 neighbour
    // discovery would): an inbound-only capture must not carry it to the other side.
    const own = frame(BROADCAST, HOST_MAC, [], 0x88b5, new Uint8Array(46).fill(0xab));
    await lab.exec(b, process.execPath, [peer, 'inject', left.devB, hex(own)]);
    await lab.exec(b, process.execPath, [peer, 'inject', right.devA, hex(own)]);

    await sleep(300);
    after = await snapshot();
    await caps[0]!.stop({ settleMs: 100 });
    await caps[1]!.stop({ settleMs: 100 });
    clientFrames = frames(caps[0]!.file);
    serverFrames = frames(caps[1]!.file);
  }, 60_000);

  afterAll(async () => {
    await lab.cleanup();
  });

  it('carries a plaintext HTTP flow, UDP and ARP across, both directions byte for byte', () => {
    const body = Buffer.alloc(64 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31 + 7) & 0xff;
    expect(results.http).toBe(createHash('sha256').update(body).digest('hex'));
    expect(JSON.parse(results.udp ?? '{}')).toEqual({ ok: true, echo: 'bridge-udp-echo' });

    // Everything the client sent reaches the server unchanged and in order, except what the
    // engine refused; and the same the other way, except the bridge's own RSTs.
    const sentByClient = clientFrames.filter((f) => f.src === clientMac);
    const sentByServer = serverFrames.filter((f) => f.src === serverMac);
    expect(serverFrames.filter((f) => f.src === clientMac).map((f) => hex(f.data))).toEqual(
      sentByClient.filter((f) => !touchesProtected(f)).map((f) => hex(f.data)),
    );
    expect(clientFrames.filter((f) => f.src === serverMac && !touchesProtected(f)).map((f) => hex(f.data))).toEqual(
      sentByServer.map((f) => hex(f.data)),
    );
    // What crossed: ARP both ways, UDP both ways, many TCP segments to and from port 8080.
    for (const [from, mine] of [[sentByClient, 'client'], [sentByServer, 'server']] as const) {
      expect({ from: mine, arp: from.some((f) => f.etherType === ETHERTYPE.ARP) }).toEqual({ from: mine, arp: true });
      expect({ from: mine, udp: from.some((f) => f.udp) }).toEqual({ from: mine, udp: true });
    }
    const http = sentByServer.filter((f) => f.tcp?.srcPort === HTTP_PORT && f.vlanTags.length === 0);
    expect(http.length).toBeGreaterThan(10);
  });

  it('carries 802.1Q and QinQ frames with their tags; refuses a tagged SYN with a tagged RST', () => {
    const tagged = (list: Seen[], src: string) => list.filter((f) => f.src === src && f.vlanTags.length > 0);
    const c2s = tagged(serverFrames, clientMac);
    const s2c = tagged(clientFrames, serverMac);
    // The tagged ARP and the two SYNs to the unprotected port went through, tags and all.
    expect(c2s.map((f) => [f.vlanTags.map((t) => t & 0xfff), f.etherType, f.tcp?.dstPort ?? null])).toEqual([
      [[VID], ETHERTYPE.ARP, null],
      [[VID], ETHERTYPE.IPV4, HTTP_PORT],
      [[QINQ_OUTER, VID], ETHERTYPE.IPV4, HTTP_PORT],
    ]);
    expect(c2s.map((f) => hex(f.data))).toEqual(tagged(clientFrames, clientMac).filter((f) => !touchesProtected(f)).map((f) => hex(f.data)));
    expect(hex(c2s[2]!.data.subarray(12, 22))).toBe('88a800c8810000640800');
    // Server to client: its tagged ARP, and the bridge's RST for the tagged SYN, in the SYN's VLAN.
    expect(s2c.map((f) => [f.vlanTags.map((t) => t & 0xfff), f.etherType, f.tcp?.srcPort ?? null])).toEqual([
      [[VID], ETHERTYPE.IPV4, PROTECTED_PORT],
      [[VID], ETHERTYPE.ARP, null],
    ]);
    const rst = s2c[0]!;
    expect(rst.tcp!.flags & TCP_FLAGS.RST).toBe(TCP_FLAGS.RST);
    expect(hex(rst.data.subarray(0, 12))).toBe(clientMac + serverMac);
    expect(rst.data.length).toBe(60);
  });

  it('refuses a plain SYN to a require service with its own RST; nothing reaches the server', () => {
    expect(results.refused?.outcome).toBe('ECONNREFUSED');
    expect(results.refused?.ms).toBeLessThan(2000);
    expect(serverFrames.filter(touchesProtected)).toEqual([]);
    const syns = clientFrames.filter((f) => f.src === clientMac && f.tcp?.dstPort === PROTECTED_PORT);
    const rsts = clientFrames.filter((f) => f.src === serverMac && f.tcp?.srcPort === PROTECTED_PORT);
    expect(syns.length).toBeGreaterThanOrEqual(2); // the connect() and the injected tagged SYN
    expect(rsts.length).toBe(syns.length);
    for (const rst of rsts.filter((f) => f.vlanTags.length === 0)) {
      expect(rst.tcp!.flags & (TCP_FLAGS.RST | TCP_FLAGS.ACK)).toBe(TCP_FLAGS.RST | TCP_FLAGS.ACK);
      // Addressed with the SYN's MACs swapped, and padded to the Ethernet minimum.
      expect(hex(rst.data.subarray(0, 6))).toBe(clientMac);
      expect(rst.tcp!.ipTotalLength).toBe(40);
      expect(rst.data.length).toBe(60);
      expect(hex(rst.data.subarray(54))).toBe('000000000000');
    }
    expect(delta('dropped')).toBe(syns.length);
    expect(delta('originated')).toBe(rsts.length);
    expect((after.engine['refused:require'] ?? 0) - (before.engine['refused:require'] ?? 0)).toBe(syns.length);
  });

  it('counts exactly the frames the peers sent: it never captures its own transmissions', () => {
    // The host's own frames reached the wire, and the other side never saw them.
    expect([clientFrames, serverFrames].map((list) => list.filter((f) => f.src === HOST_MAC).length)).toEqual([1, 1]);
    const sentByClient = clientFrames.filter((f) => f.src === clientMac);
    const sentByServer = serverFrames.filter((f) => f.src === serverMac);
    expect({ inClient: delta('inClient'), inServer: delta('inServer') }).toEqual({ inClient: sentByClient.length, inServer: sentByServer.length });
    // What it sent is what the peers' captures show arriving from the other side.
    expect({ sentServer: delta('sentServer'), sentClient: delta('sentClient') }).toEqual({
      sentServer: serverFrames.filter((f) => f.src === clientMac).length,
      sentClient: clientFrames.filter((f) => f.src === serverMac).length,
    });
    // Each frame went one way: ARP/UDP around the engine, TCP through it.
    const all = [...sentByClient, ...sentByServer];
    expect(delta('nonIp')).toBe(all.filter((f) => f.etherType === ETHERTYPE.ARP).length);
    expect(delta('nonTcp')).toBe(all.filter((f) => f.udp).length);
    expect(delta('passed')).toBe(all.filter((f) => f.tcp !== null && !touchesProtected(f)).length);
    expect({ malformed: delta('malformed'), truncated: delta('truncated'), sendErrors: delta('sendErrors'), engineErrors: delta('engineErrors') }).toEqual({
      malformed: 0, truncated: 0, sendErrors: 0, engineErrors: 0,
    });
  });
});

if (!runnable) {
  it.skip('bridge datapath: needs root, ip, tcpdump, ethtool, curl and the cap addon', () => undefined);
}
