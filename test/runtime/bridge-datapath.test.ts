// BridgeDatapath against a fake `cap` addon and a scripted engine: what goes out of which
// interface for each verdict and side action, link headers for released and originated packets,
// padding, the header table's bounds, and a per-frame path that never throws.
import type { SideAction, Verdict } from '../../common/engine/actions';
import { PASS } from '../../common/engine/actions';
import { ETHERTYPE } from '../../common/wire/link';
import { emitIpTcp } from '../../common/wire/packet';
import { TCP_FLAGS } from '../../common/wire/tcp';
import type { GatewayConfig } from '../../gateway/config';
import { BridgeDatapath, MIN_FRAME, buildFrame, swapMacs } from '../../runtime/bridge-datapath';
import { EngineDriver, type LiveEngine } from '../../runtime/engine-driver';

// ---- the fake addon -------------------------------------------------------------------------

class FakeCap {
  static devices = ['cli0', 'srv0'];
  static byName = new Map<string, FakeCap>();
  static openError: string | null = null;
  static linkType = 'ETHERNET';
  name = '';
  filter = '';
  bufSize = 0;
  buffer = Buffer.alloc(0);
  listener: ((nbytes: number, truncated: boolean) => void) | null = null;
  sent: Buffer[] = [];
  sendError: string | null = null;
  closed = false;

  static deviceList() {
    return FakeCap.devices.map((name) => ({ name, addresses: [] }));
  }
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string {
    if (FakeCap.openError !== null) throw new Error(FakeCap.openError);
    Object.assign(this, { name: device, filter, bufSize, buffer });
    FakeCap.byName.set(device, this);
    return FakeCap.linkType;
  }
  on(_event: 'packet', listener: (nbytes: number, truncated: boolean) => void): void {
    this.listener = listener;
  }
  send(buf: Buffer, n?: number): void {
    if (this.sendError !== null) throw new Error(this.sendError);
    this.sent.push(Buffer.from(buf.subarray(0, n ?? buf.length)));
  }
  close(): boolean {
    this.closed = true;
    return true;
  }
  /** A frame arriving on this interface, as cap hands it over (copied into the open() buffer). */
  deliver(frame: Uint8Array): void {
    const n = Math.min(frame.length, this.buffer.length);
    this.buffer.set(frame.subarray(0, n));
    this.listener?.(n, frame.length > this.buffer.length);
  }
}

jest.mock('cap', () => ({ Cap: FakeCap }), { virtual: true });

const port = (name: string) => FakeCap.byName.get(name) as FakeCap;

// ---- a scripted engine --------------------------------------------------------------------------

class ScriptedEngine implements LiveEngine {
  seen: Uint8Array[] = [];
  verdict: (packet: Uint8Array) => Verdict = () => PASS;
  pending: SideAction[] = [];
  handlePacket(packet: Uint8Array): Verdict {
    this.seen.push(packet.slice());
    return this.verdict(packet);
  }
  takeActions(): SideAction[] {
    const a = this.pending;
    this.pending = [];
    return a;
  }
  handleTimer(): void {}
  discardAll(): void {}
  handleKdMessage(): void {}
}

// ---- frames -------------------------------------------------------------------------------------

const CLIENT_MAC = '0a0000000001';
const SERVER_MAC = '0a0000000002';
const ROUTER_MAC = '0a00000000fe';

function eth(dst: string, src: string, etherType: number, tags: number[] = []): Uint8Array {
  const b = [...Buffer.from(dst, 'hex'), ...Buffer.from(src, 'hex')];
  for (const tci of tags) b.push(0x81, 0x00, tci >> 8, tci & 0xff);
  b.push(etherType >> 8, etherType & 0xff);
  return new Uint8Array(b);
}

function tcp(srcIp: number, dstIp: number, srcPort: number, dstPort: number, flags: number, payload = new Uint8Array(0)): Uint8Array {
  const r = emitIpTcp({
    ip: { version: 4, src: new Uint8Array([10, 0, 0, srcIp]), dst: new Uint8Array([10, 0, 0, dstIp]), ttl: 64, tos: 0, id: 7, dontFragment: true, flowLabel: 0 },
    tcp: { srcPort, dstPort, seq: 1000, ack: 0, flags, window: 1000, urgent: 0, options: [], payload },
  });
  if (!r.ok) throw new Error(r.error.detail);
  return r.value;
}

const concat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** client 10.0.0.1:40000 -> server 10.0.0.2:80 */
const c2sSyn = () => tcp(1, 2, 40000, 80, TCP_FLAGS.SYN);
const s2cSynAck = () => tcp(2, 1, 80, 40000, TCP_FLAGS.SYN | TCP_FLAGS.ACK);
const c2sHeader = (tags: number[] = []) => eth(SERVER_MAC, CLIENT_MAC, ETHERTYPE.IPV4, tags);
const s2cHeader = (tags: number[] = []) => eth(CLIENT_MAC, SERVER_MAC, ETHERTYPE.IPV4, tags);

// ---- harness ------------------------------------------------------------------------------------

interface Harness {
  dp: BridgeDatapath;
  engine: ScriptedEngine;
  errors: string[];
  clock: { now: number };
  driver: EngineDriver;
  logged: string[];
  client: FakeCap;
  server: FakeCap;
}

function config(maxFlows = 100, idleTimeoutMs = 10_000): GatewayConfig {
  return {
    bridge: { clientInterface: 'cli0', serverInterface: 'srv0' },
    limits: { maxFlows, maxPendingKeyings: 1, maxKdcInFlight: 1 },
    timers: { keyingTimeoutMs: 1000, lingerMs: 0, idleTimeoutMs, refusedHoldMs: 0 },
  } as unknown as GatewayConfig;
}

function harness(c = config()): Harness {
  const engine = new ScriptedEngine();
  const errors: string[] = [];
  const clock = { now: 1_000_000 };
  const dp = new BridgeDatapath(c, (r) => errors.push(r));
  const logged: string[] = [];
  const log = (_level: string, event: string, fields?: Record<string, unknown>) => void logged.push(`${event}: ${String(fields?.error ?? '')}`);
  const driver = new EngineDriver(engine, { sink: dp, kd: { send: () => undefined, close: () => undefined }, log, clock: () => clock.now });
  dp.start(driver);
  return { dp, engine, errors, clock, driver, logged, client: port('cli0'), server: port('srv0') };
}

beforeEach(() => {
  FakeCap.byName.clear();
  FakeCap.openError = null;
  FakeCap.linkType = 'ETHERNET';
  FakeCap.devices = ['cli0', 'srv0'];
});

describe('start', () => {
  it('opens both interfaces, inbound only, with room for bursts', () => {
    const h = harness();
    for (const p of [h.client, h.server]) {
      expect(p.filter).toBe('inbound');
      expect(p.bufSize).toBeGreaterThanOrEqual(8 << 20);
      expect(p.buffer.length).toBeGreaterThan(65535);
    }
  });

  it('names a missing interface and its config field', () => {
    FakeCap.devices = ['cli0'];
    const dp = new BridgeDatapath(config(), () => undefined);
    expect(() => dp.start({} as EngineDriver)).toThrow(/bridge\.serverInterface: interface srv0 does not exist.*ip link show/);
  });

  it('says that capturing needs CAP_NET_RAW when the kernel refuses', () => {
    FakeCap.openError = "cli0: You don't have permission to perform this capture on that device (socket: Operation not permitted)";
    const dp = new BridgeDatapath(config(), () => undefined);
    expect(() => dp.start({} as EngineDriver)).toThrow(/client-side interface cli0.*CAP_NET_RAW/);
  });

  it('refuses a link type other than Ethernet, closing what it opened', () => {
    FakeCap.linkType = 'RAW';
    const dp = new BridgeDatapath(config(), () => undefined);
    expect(() => dp.start({} as EngineDriver)).toThrow(/cli0 has link type RAW; bridge mode needs Ethernet/);
    expect(port('cli0').closed).toBe(true);
  });

  it('needs the bridge section', () => {
    const dp = new BridgeDatapath({ ...config(), bridge: null }, () => undefined);
    expect(() => dp.start({} as EngineDriver)).toThrow(/"bridge"/);
  });
});

describe('frames', () => {
  it('sends ARP and UDP straight across, unchanged, without the engine', () => {
    const h = harness();
    const arp = concat(eth('ffffffffffff', CLIENT_MAC, ETHERTYPE.ARP, [100]), new Uint8Array(28).fill(1));
    const udp = concat(eth(CLIENT_MAC, SERVER_MAC, ETHERTYPE.IPV4), tcp(2, 1, 53, 53, 0));
    udp[14 + 9] = 17; // protocol UDP (the checksum does not matter to a bridge)
    h.client.deliver(arp);
    h.server.deliver(udp);
    expect(h.server.sent.map(hex)).toEqual([hex(arp)]);
    expect(h.client.sent.map(hex)).toEqual([hex(udp)]);
    expect(h.engine.seen).toEqual([]);
    expect(h.dp.stats).toMatchObject({ inClient: 1, inServer: 1, nonIp: 1, nonTcp: 1, sentServer: 1, sentClient: 1 });
  });

  it('gives the engine the IP packet without Ethernet padding, and passes the frame as it came', () => {
    const h = harness();
    const ack = tcp(1, 2, 40000, 80, TCP_FLAGS.ACK);
    const padded = concat(c2sHeader(), ack, new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0x55, 0xaa]));
    expect(padded.length).toBe(MIN_FRAME);
    h.client.deliver(padded);
    expect(h.engine.seen.map(hex)).toEqual([hex(ack)]);
    expect(h.server.sent.map(hex)).toEqual([hex(padded)]);
    expect(h.dp.stats.passed).toBe(1);
    expect(h.dp.linkHeaderCount).toBe(0); // plaintext flows stay off the table
  });

  it('IPv6: a tagged frame goes to the engine cut at the payload length; the RST gets the tag', () => {
    const h = harness();
    const v6 = (last: number) => new Uint8Array([0xfd, 0, ...new Array<number>(13).fill(0), last]);
    const emit = (src: number, dst: number, sp: number, dp: number, flags: number) => {
      const r = emitIpTcp({
        ip: { version: 6, src: v6(src), dst: v6(dst), ttl: 64, tos: 0, id: 0, dontFragment: false, flowLabel: 0 },
        tcp: { srcPort: sp, dstPort: dp, seq: 1, ack: 0, flags, window: 1000, urgent: 0, options: [], payload: new Uint8Array(0) },
      });
      if (!r.ok) throw new Error(r.error.detail);
      return r.value;
    };
    const syn = emit(1, 2, 40000, 80, TCP_FLAGS.SYN);
    const rst = emit(2, 1, 80, 40000, TCP_FLAGS.RST | TCP_FLAGS.ACK);
    h.engine.verdict = () => {
      h.engine.pending.push({ kind: 'originate', packet: rst, toward: 'client', why: 'require' });
      return { kind: 'drop', reason: 'require' };
    };
    h.client.deliver(concat(eth(SERVER_MAC, CLIENT_MAC, ETHERTYPE.IPV6, [7]), syn, new Uint8Array(4).fill(0xee)));
    expect(h.engine.seen.map(hex)).toEqual([hex(syn)]);
    expect(h.client.sent.map(hex)).toEqual([hex(concat(eth(CLIENT_MAC, SERVER_MAC, ETHERTYPE.IPV6, [7]), rst))]);
  });

  it('rewrite: the same link header, VLAN tag included, with the new packet, padded to 60', () => {
    const h = harness();
    const rewritten = tcp(1, 2, 40000, 80, TCP_FLAGS.ACK | TCP_FLAGS.PSH, new Uint8Array([1, 2]));
    h.engine.verdict = () => ({ kind: 'rewrite', packet: rewritten });
    h.client.deliver(concat(c2sHeader([0x2064]), tcp(1, 2, 40000, 80, TCP_FLAGS.ACK, new Uint8Array([9, 9]))));
    expect(h.server.sent.map(hex)).toEqual([hex(concat(c2sHeader([0x2064]), rewritten, new Uint8Array(MIN_FRAME - 18 - rewritten.length)))]);
    expect(h.dp.stats.rewritten).toBe(1);
  });

  it('hold sends nothing; release sends the held SYN with the header it came with', () => {
    const h = harness();
    h.engine.verdict = () => ({ kind: 'hold' });
    h.client.deliver(concat(c2sHeader([100]), c2sSyn()));
    expect(h.server.sent).toEqual([]);
    const stripped = c2sSyn();
    h.dp.release(stripped, 'server');
    expect(h.server.sent.map(hex)).toEqual([hex(buildFrame(c2sHeader([100]), stripped))]);
    expect(h.dp.stats).toMatchObject({ held: 1, released: 1, noLinkHeader: 0 });
    expect(h.dp.heldCount).toBe(0);
  });

  it('a refused SYN: dropped, and the RST goes to the client with the MACs swapped and the tags kept', () => {
    const h = harness();
    const rst = tcp(2, 1, 80, 40000, TCP_FLAGS.RST | TCP_FLAGS.ACK);
    h.engine.verdict = () => {
      h.engine.pending.push({ kind: 'originate', packet: rst, toward: 'client', why: 'require' });
      return { kind: 'drop', reason: 'require' };
    };
    h.client.deliver(concat(c2sHeader([200, 100]), c2sSyn()));
    expect(h.server.sent).toEqual([]);
    expect(h.client.sent.map(hex)).toEqual([hex(concat(s2cHeader([200, 100]), rst))]);
    expect(h.dp.stats).toMatchObject({ dropped: 1, originated: 1 });
  });

  it('uses the header seen in each direction once both are known (a router on one side)', () => {
    const h = harness();
    h.engine.verdict = () => ({ kind: 'drop', reason: 'keying' });
    h.client.deliver(concat(eth(SERVER_MAC, CLIENT_MAC, ETHERTYPE.IPV4), c2sSyn()));
    h.server.deliver(concat(eth(ROUTER_MAC, SERVER_MAC, ETHERTYPE.IPV4), s2cSynAck()));
    const toClient = s2cSynAck();
    const toServer = c2sSyn();
    h.dp.originate(toClient, 'client');
    h.dp.originate(toServer, 'server');
    expect(h.client.sent.map(hex)).toEqual([hex(buildFrame(eth(ROUTER_MAC, SERVER_MAC, ETHERTYPE.IPV4), toClient))]);
    expect(h.server.sent.map(hex)).toEqual([hex(buildFrame(eth(SERVER_MAC, CLIENT_MAC, ETHERTYPE.IPV4), toServer))]);
  });

  it('toward the server before the client spoke: the server side header, swapped', () => {
    const h = harness();
    h.engine.verdict = () => ({ kind: 'drop', reason: 'no-flow' });
    h.server.deliver(concat(s2cHeader(), s2cSynAck()));
    h.dp.originate(c2sSyn(), 'server');
    expect(h.server.sent.map(hex)).toEqual([hex(buildFrame(c2sHeader(), c2sSyn()))]);
  });

  it('forwards frames whose link header does not parse, and drops frames cap truncated', () => {
    const h = harness();
    const runt = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const badTag = concat(eth(SERVER_MAC, CLIENT_MAC, 0x8100), new Uint8Array([0]));
    h.client.deliver(runt);
    h.client.deliver(badTag);
    h.client.deliver(new Uint8Array(70_000));
    expect(h.server.sent.map(hex)).toEqual([hex(runt), hex(badTag)]);
    expect(h.dp.stats).toMatchObject({ inClient: 3, malformed: 2, truncated: 1 });
    expect(h.engine.seen).toEqual([]);
  });

  it('lets the engine judge a malformed IP header (it drops what touches a protected service)', () => {
    const h = harness();
    const broken = concat(c2sHeader(), new Uint8Array([0x45, 0, 0, 200, 0, 0]));
    h.engine.verdict = () => ({ kind: 'drop', reason: 'malformed' });
    h.client.deliver(broken);
    expect(h.engine.seen.map(hex)).toEqual([hex(broken.subarray(14))]);
    expect(h.server.sent).toEqual([]);
  });
});

describe('never throws on the per-frame path', () => {
  it('counts send errors and reports them at most once a second', () => {
    const h = harness();
    h.server.sendError = 'send: Message too long';
    const arp = concat(eth('ffffffffffff', CLIENT_MAC, ETHERTYPE.ARP), new Uint8Array(46));
    for (let i = 0; i < 5; i++) h.client.deliver(arp);
    expect(h.dp.stats.sendErrors).toBe(5);
    expect(h.errors).toEqual(['send on server-side interface srv0: send: Message too long']);
  });

  it('contains an engine exception: the frame is dropped, the bridge goes on', () => {
    // The driver turns the exception into a drop verdict and counts it; the bridge's own
    // guard (engineErrors) is for exceptions that escape the driver.
    const h = harness();
    h.engine.verdict = () => {
      throw new Error('engine bug');
    };
    h.client.deliver(concat(c2sHeader(), c2sSyn()));
    h.engine.verdict = () => PASS;
    const ack = concat(c2sHeader(), tcp(1, 2, 40000, 80, TCP_FLAGS.ACK));
    h.client.deliver(ack);
    expect(h.server.sent.map(hex)).toEqual([hex(ack)]);
    expect(h.dp.stats).toMatchObject({ engineErrors: 0, dropped: 1, passed: 1 });
    expect(h.driver.engineErrors).toBe(1);
    expect(h.logged).toEqual(['engine-error: engine bug']);
  });

  it('does not throw when the reporter does', () => {
    const engine = new ScriptedEngine();
    const dp = new BridgeDatapath(config(), () => {
      throw new Error('log sink down');
    });
    dp.start(new EngineDriver(engine, { sink: dp, kd: { send: () => undefined, close: () => undefined }, log: () => undefined }));
    port('srv0').sendError = 'ENOBUFS';
    expect(() => port('cli0').deliver(concat(eth('ffffffffffff', CLIENT_MAC, ETHERTYPE.ARP), new Uint8Array(46)))).not.toThrow();
  });
});

describe('link header table', () => {
  const holdFlow = (h: Harness, clientHost: number) => {
    h.engine.verdict = () => ({ kind: 'hold' });
    h.client.deliver(concat(c2sHeader(), tcp(clientHost, 2, 40000, 80, TCP_FLAGS.SYN)));
  };

  it('is bounded by limits.maxFlows, oldest first; a release without a header is counted, not sent', () => {
    const h = harness(config(2));
    holdFlow(h, 1);
    h.clock.now += 10;
    holdFlow(h, 3);
    h.clock.now += 10;
    holdFlow(h, 4);
    expect(h.dp.linkHeaderCount).toBe(2);
    expect(h.dp.stats.linkHeadersEvicted).toBe(1);
    h.dp.release(tcp(1, 2, 40000, 80, TCP_FLAGS.SYN), 'server');
    h.dp.release(tcp(4, 2, 40000, 80, TCP_FLAGS.SYN), 'server');
    expect(h.server.sent.length).toBe(1);
    expect(h.dp.stats.noLinkHeader).toBe(1);
    expect(h.errors[0]).toMatch(/no link header/);
  });

  it('expires flows idle longer than the idle timeout; active flows stay', () => {
    const h = harness(config(100, 10_000));
    holdFlow(h, 1);
    h.clock.now += 6000;
    holdFlow(h, 3);
    h.clock.now += 5000;
    holdFlow(h, 3); // refreshed
    h.dp.tick(h.clock.now);
    expect(h.dp.linkHeaderCount).toBe(1);
    h.dp.tick(h.clock.now + 10_000);
    expect(h.dp.linkHeaderCount).toBe(0);
  });

  it('stores copies: later frames in the capture buffer do not change a stored header', () => {
    const h = harness();
    holdFlow(h, 1);
    h.engine.verdict = () => PASS;
    h.client.deliver(concat(eth('ffffffffffff', ROUTER_MAC, ETHERTYPE.IPV4), tcp(9, 8, 1, 2, TCP_FLAGS.ACK)));
    h.dp.release(c2sSyn(), 'server');
    expect(hex(h.server.sent.at(-1)!.subarray(0, 14))).toBe(hex(c2sHeader()));
  });
});

describe('helpers', () => {
  it('swapMacs swaps the addresses and keeps tags and ethertype', () => {
    const h = eth(SERVER_MAC, CLIENT_MAC, ETHERTYPE.IPV6, [5, 6]);
    expect(hex(swapMacs(h))).toBe(hex(eth(CLIENT_MAC, SERVER_MAC, ETHERTYPE.IPV6, [5, 6])));
    expect(hex(h)).toBe(hex(eth(SERVER_MAC, CLIENT_MAC, ETHERTYPE.IPV6, [5, 6])));
  });

  it('buildFrame pads to 60 only when shorter', () => {
    expect(buildFrame(new Uint8Array(14), new Uint8Array(20)).length).toBe(60);
    expect(buildFrame(new Uint8Array(14), new Uint8Array(100)).length).toBe(114);
  });
});
