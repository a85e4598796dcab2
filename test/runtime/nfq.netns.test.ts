// native/nfq through the real kernel: a namespace whose OUTPUT queues UDP to port 9999 on
// NFQUEUE 7, a reader process inside it (runtime/nfqueue.ts on the addon, deciding by the
// first payload byte), and a receiver in a peer namespace across a veth pair. Checks the bytes
// a packet arrives with, accept, drop, a replaced packet, a mark later rules see, a verdict
// given later from a timer, a burst where every packet gets exactly one verdict, the errors
// for a queue held by another process and for missing privileges, the queue length we ask for
// (past it the kernel drops, and its figures reach readKernelQueues), and fail-closed: once the
// reader closes the queue, the packets it held and every later one are dropped.
//
// setup.sh builds the addon, so it must be here: NfQueue would silently fall back without it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type BackgroundProcess, NetnsLab, isRoot, missingTools } from '../lib/netns';
import { type NfqStats, nativeNfq } from '../../runtime/nfqueue';

const ROOT = path.join(__dirname, '..', '..');
const QUEUE = 7;
const PORT = 9999;
const MARK = 0x2a;
const Q_ADDR = '10.203.0.1';
const PEER_ADDR = '10.203.0.2';
const HOLD_MS = 300;

test('the native NFQUEUE addon is built and loaded (npm run build:native)', () => {
  expect(nativeNfq).not.toBeNull();
});

// The reader: runtime/nfqueue.ts compiled on the fly (so the addon is found from its own
// directory), one JSON line per event. First payload byte: A accept, D drop, R accept replaced
// by "replaced:" + payload (UDP checksum 0, IP checksum fixed), M accept with MARK, T accept
// after HOLD_MS from a timer, B accept quietly (burst), S drop and report stats once sent, H hold (no
// verdict), C hold and close the queue (the process stays up). SIGUSR2: report readKernelQueues.
// Optional third argument: the queue length to ask the kernel for.
const READER = `
const fs = require('fs'), path = require('path');
const [root, queue, maxQueueLen] = [process.argv[2], Number(process.argv[3]), process.argv[4]];
const { transformSync } = require(path.join(root, 'node_modules', '@swc/core'));
require.extensions['.ts'] = (m, file) => m._compile(transformSync(fs.readFileSync(file, 'utf8'), { filename: file, jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } }).code, file);
const { NfQueue } = require(path.join(root, 'runtime', 'nfqueue.ts'));
const { readKernelQueues } = require(path.join(root, 'runtime', 'kernel-queue.ts'));
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
function ipChecksum(h) {
  let s = 0;
  for (let i = 0; i < h.length; i += 2) s += (h[i] << 8) | h[i + 1];
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}
function replaced(p) {
  const ihl = (p[0] & 15) * 4;
  const data = Buffer.concat([Buffer.from('replaced:'), p.subarray(ihl + 8)]);
  const r = Buffer.alloc(ihl + 8 + data.length);
  p.copy(r, 0, 0, ihl + 8);
  data.copy(r, ihl + 8);
  r.writeUInt16BE(r.length, 2);
  r.writeUInt16BE(0, 10);
  r.writeUInt16BE(ipChecksum(r.subarray(0, ihl)), 10);
  r.writeUInt16BE(8 + data.length, ihl + 4);
  r.writeUInt16BE(0, ihl + 6);
  return r;
}
let q, bursts = 0;
try {
  q = NfQueue.open(queue, (p) => {
    const ihl = (p.payload[0] & 15) * 4;
    const text = p.payload.subarray(ihl + 8).toString('latin1');
    if (text[0] === 'B') { bursts++; return q.accept(p.id); }
    out({ ev: 'packet', id: p.id, mark: p.mark, text, hex: p.payload.toString('hex') });
    switch (text[0]) {
      case 'A': return q.accept(p.id);
      case 'D': return q.drop(p.id);
      case 'R': return q.accept(p.id, replaced(p.payload));
      case 'M': return q.accept(p.id, undefined, ${MARK});
      case 'T': return void setTimeout(() => q.accept(p.id), ${HOLD_MS});
      case 'S': q.drop(p.id); return void setImmediate(() => out({ ev: 'stats', bursts, verdictCount: q.verdictCount, stats: q.stats() }));
      case 'H': return;
      case 'C': return void setImmediate(() => { q.close(); out({ ev: 'closed', stats: q.stats() }); });
    }
  }, maxQueueLen === undefined ? {} : { maxQueueLen: Number(maxQueueLen) });
} catch (e) {
  out({ ev: 'error', message: e.message });
  process.exit(1);
}
process.on('SIGUSR2', () => out({ ev: 'kernel', figures: readKernelQueues([queue]) }));
out({ ev: 'ready', binding: q.bindingName });
setInterval(() => undefined, 1 << 30);
`;

// The receiver: one JSON line per datagram (its payload as latin1).
const RECEIVER = `
const s = require('dgram').createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
s.on('message', (m) => process.stdout.write(JSON.stringify(m.toString('latin1')) + '\\n'));
s.bind(${PORT}, '${PEER_ADDR}', () => process.stdout.write('"ready"\\n'));
`;

// The sender: argv payloads, or "burst PREFIX N"; to PORT, or to N after a first argument
// port=N; paced in slices of 250 so the kernel's queue is never the limit.
const SENDER = `
const s = require('dgram').createSocket('udp4');
const a = process.argv.slice(1);
const port = a[0].startsWith('port=') ? Number(a.shift().slice(5)) : ${PORT};
const list = a[0] === 'burst' ? Array.from({ length: Number(a[2]) }, (_, i) => a[1] + String(i).padStart(5, '0')) : a;
(async () => {
  for (let i = 0; i < list.length; i++) {
    await new Promise((r, j) => s.send(list[i], port, '${PEER_ADDR}', (e) => (e ? j(e) : r())));
    if (i % 250 === 249) await new Promise((r) => setTimeout(r, 20));
  }
  s.close();
})();
`;

const runnable = isRoot() && missingTools(['ip', 'nft', 'iptables', 'setpriv']).length === 0;
const maybe = runnable ? describe : describe.skip;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, probe: () => T | undefined | null | false, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

interface ReaderEvent {
  ev: string;
  id?: number;
  mark?: number;
  text?: string;
  hex?: string;
  binding?: string;
  message?: string;
  bursts?: number;
  verdictCount?: number;
  stats?: NfqStats;
  figures?: unknown;
}

const lines = (p: BackgroundProcess): unknown[] =>
  p
    .stdout()
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as unknown);

function ipChecksumOk(b: Buffer, from: number, to: number): boolean {
  let s = 0;
  for (let i = from; i < to; i += 2) s += (b[i]! << 8) | (i + 1 < to ? b[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s === 0xffff;
}

maybe('native NFQUEUE binding in a network namespace', () => {
  const lab = new NetnsLab({ prefix: 'cgnfq' });
  let ns: string;
  let peer: string;
  let script: string;
  let receiver: BackgroundProcess;
  let reader: BackgroundProcess;
  // The addon must be what is tested: never the fallback, whatever the environment says.
  const env = { ...process.env };
  delete env.CIPHERGATE_NATIVE_NFQ;

  const readerEvents = (p = reader) => lines(p) as ReaderEvent[];
  const received = () => (lines(receiver) as string[]).filter((l) => l !== 'ready');
  const send = (...payloads: string[]) => lab.exec(ns, process.execPath, ['-e', SENDER, ...payloads]);
  const procQueue = async (queue = QUEUE) => {
    const text = (await lab.exec(ns, 'cat', ['/proc/net/netfilter/nfnetlink_queue'])).stdout;
    return text.split('\n').map((l) => l.trim().split(/\s+/).map(Number)).find((f) => f[0] === queue) ?? null;
  };
  const counter = async (chain: string) => {
    const listing = (await lab.exec(ns, 'nft', ['list', 'chain', 'inet', 'cgnfq', chain])).stdout;
    return Number(/counter packets (\d+)/.exec(listing)?.[1] ?? NaN);
  };

  async function startReader(queue = QUEUE, prefix: string[] = [], maxQueueLen?: number): Promise<BackgroundProcess> {
    const extra = maxQueueLen === undefined ? [] : [String(maxQueueLen)];
    const p = lab.spawn(ns, prefix[0] ?? process.execPath, [...(prefix.length > 0 ? [...prefix.slice(1), process.execPath] : []), script, ROOT, String(queue), ...extra], { env });
    await waitFor('the reader to start', () => readerEvents(p).find((e) => e.ev === 'ready' || e.ev === 'error'), 20_000);
    return p;
  }

  beforeAll(async () => {
    ns = await lab.namespace('q');
    peer = await lab.namespace('peer');
    const link = await lab.veth(ns, peer);
    await lab.addAddress(ns, link.devA, `${Q_ADDR}/24`);
    await lab.addAddress(peer, link.devB, `${PEER_ADDR}/24`);
    // The queue rule (iptables: this kernel's nftables may lack the `queue` expression, as
    // runtime/steering.ts knows), with no --queue-bypass: without a reader the kernel drops.
    await lab.exec(ns, 'iptables', ['-A', 'OUTPUT', '-p', 'udp', '--dport', String(PORT), '-j', 'NFQUEUE', '--queue-num', String(QUEUE)]);
    // Counters: what reaches the queue rule, and what leaves with MARK.
    const rules = [
      'table inet cgnfq {',
      `  chain out { type filter hook output priority -10; policy accept; udp dport ${PORT} counter; }`,
      `  chain marked { type filter hook postrouting priority 0; policy accept; udp dport ${PORT} meta mark ${MARK} counter; }`,
      '}',
    ].join('\n');
    await lab.exec(ns, 'nft', ['-f', '-'], { input: rules });
    const dir = await lab.tmpdir();
    fs.chmodSync(dir, 0o755);
    script = path.join(dir, 'reader.js');
    fs.writeFileSync(script, READER, { mode: 0o644 });
    receiver = lab.spawn(peer, process.execPath, ['-e', RECEIVER]);
    await waitFor('the receiver', () => lines(receiver).includes('ready'));
    reader = await startReader();
  }, 60_000);
  afterAll(() => lab.cleanup());

  test('the reader runs on the native binding', () => {
    expect(readerEvents().find((e) => e.ev === 'ready')).toEqual({ ev: 'ready', binding: 'native' });
  });

  test('packets arrive with their bytes; accept passes them, drop drops them', async () => {
    await send('A-one', 'D-one', 'A-two', 'D-two');
    await waitFor('both accepted packets', () => received().includes('A-one') && received().includes('A-two'));
    const seen = readerEvents().filter((e) => e.ev === 'packet' && /^[AD]-/.test(e.text ?? ''));
    expect(seen.map((e) => e.text)).toEqual(['A-one', 'D-one', 'A-two', 'D-two']);
    expect(new Set(seen.map((e) => e.id)).size).toBe(4);
    for (const e of seen) {
      const b = Buffer.from(e.hex as string, 'hex');
      const ihl = (b[0]! & 15) * 4;
      expect(b[0]! >> 4).toBe(4);
      expect(b.readUInt16BE(2)).toBe(b.length);
      expect(b[9]).toBe(17);
      expect([...b.subarray(12, 16)].join('.')).toBe(Q_ADDR);
      expect([...b.subarray(16, 20)].join('.')).toBe(PEER_ADDR);
      expect(ipChecksumOk(b, 0, ihl)).toBe(true);
      expect(b.readUInt16BE(ihl + 2)).toBe(PORT);
      expect(b.readUInt16BE(ihl + 4)).toBe(b.length - ihl);
      expect(b.subarray(ihl + 8).toString('latin1')).toBe(e.text);
      // The UDP checksum is complete (the kernel resolves offloaded checksums before copying).
      const pseudo = Buffer.concat([b.subarray(12, 20), Buffer.from([0, 17]), b.subarray(ihl + 4, ihl + 6), b.subarray(ihl)]);
      expect(ipChecksumOk(pseudo, 0, pseudo.length)).toBe(true);
      expect(e.mark).toBe(0);
    }
    await sleep(300);
    expect(received().filter((t) => t.startsWith('D-'))).toEqual([]);
  });

  test('accept with a replaced packet delivers the replaced bytes', async () => {
    await send('R-swap');
    expect(await waitFor('the replaced packet', () => received().find((t) => t.includes('R-swap')))).toBe('replaced:R-swap');
  });

  test('a mark set on accept is what later rules see', async () => {
    const before = await counter('marked');
    await send('M-one', 'A-unmarked', 'M-two');
    await waitFor('the marked packets', () => received().includes('M-one') && received().includes('M-two') && received().includes('A-unmarked'));
    expect((await counter('marked')) - before).toBe(2);
  });

  test('a verdict given later from a timer (outside any batch) is sent at once', async () => {
    const sent = Date.now();
    await send('T-late');
    await waitFor('the held packet', () => received().includes('T-late'), 3000);
    const ms = Date.now() - sent;
    expect(ms).toBeGreaterThanOrEqual(HOLD_MS - 20);
    expect(ms).toBeLessThan(HOLD_MS + 1000);
  });

  test('a burst of 2000 packets: each gets exactly one verdict and all arrive', async () => {
    await send('burst', 'B', '2000');
    await waitFor('2000 packets at the receiver', () => received().filter((t) => t.startsWith('B')).length >= 2000, 20_000);
    const burst = received().filter((t) => t.startsWith('B'));
    expect(new Set(burst).size).toBe(2000);
    expect(burst.length).toBe(2000);
    await send('S-stats');
    const s = await waitFor('the stats', () => readerEvents().find((e) => e.ev === 'stats'));
    expect(s.bursts).toBe(2000);
    // Every packet the addon delivered got one verdict, the kernel refused none (an id answered
    // twice would come back as an error), and several packets shared a call into JS.
    expect(s.stats?.verdicts).toBe(s.stats?.packets);
    expect(s.verdictCount).toBe(s.stats?.packets);
    expect(s.stats?.errors).toBe(0);
    expect(s.stats?.pending).toBe(0);
    expect(s.stats!.batches).toBeLessThan(s.stats!.packets);
    // /proc: queue, portid, waiting for a verdict, copy mode, copy range, dropped (full), dropped (socket full).
    const line = await procQueue();
    expect(line?.[2]).toBe(0);
    expect(line?.[3]).toBe(2);
    expect(line?.[4]).toBe(0xffff - 4); // we ask for 0xffff; the kernel caps it at what one attribute holds
    expect({ queueDropped: line?.[5], userDropped: line?.[6] }).toEqual({ queueDropped: 0, userDropped: 0 });
  }, 60_000);

  test('a second process cannot bind the queue; the error says another process holds it', async () => {
    const second = await startReader();
    expect(readerEvents(second).find((e) => e.ev === 'error')?.message).toMatch(/^cannot bind NFQUEUE 7: another process holds it \(netlink portid \d+\)/);
  });

  test('without CAP_NET_ADMIN the error names it', async () => {
    const nobody = await startReader(QUEUE + 1, ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all']);
    expect(readerEvents(nobody).find((e) => e.ev === 'error')?.message).toMatch(/^cannot bind NFQUEUE 8: it needs CAP_NET_ADMIN/);
  });

  test('the kernel holds as many packets as the queue length asked for, drops the rest, and says so', async () => {
    const queue = QUEUE + 2;
    const port = PORT - 1;
    await lab.exec(ns, 'iptables', ['-A', 'OUTPUT', '-p', 'udp', '--dport', String(port), '-j', 'NFQUEUE', '--queue-num', String(queue)]);
    const small = await startReader(queue, [], 8);
    // 20 packets the reader holds without a verdict: the kernel keeps 8 and drops 12.
    await lab.exec(ns, process.execPath, ['-e', SENDER, `port=${port}`, ...Array.from({ length: 20 }, (_, i) => `H-small-${i}`)]);
    await waitFor('8 held packets at the reader', () => readerEvents(small).filter((e) => e.ev === 'packet').length >= 8);
    await sleep(200);
    expect(readerEvents(small).filter((e) => e.ev === 'packet')).toHaveLength(8);
    const line = await procQueue(queue);
    expect({ waiting: line?.[2], queueDropped: line?.[5], userDropped: line?.[6] }).toEqual({ waiting: 8, queueDropped: 12, userDropped: 0 });
    small.child.kill('SIGUSR2');
    const k = await waitFor('the kernel figures', () => readerEvents(small).find((e) => e.ev === 'kernel'));
    expect(k).toEqual({ ev: 'kernel', figures: [{ waiting: 8, queueFull: 12, socketFull: 0 }] });
    expect(received().filter((t) => t.startsWith('H-small'))).toEqual([]);
    await small.stop();
  });

  test('closed: the packets the reader held and every later one are dropped; the queue can be bound again', async () => {
    const queuedBefore = await counter('out');
    await send('H-one', 'H-two', 'C-close');
    const closed = await waitFor('the reader to close', () => readerEvents().find((e) => e.ev === 'closed'));
    expect(closed.stats?.errors).toBe(0);
    expect(await procQueue()).toBeNull();
    await send('A-late-one', 'A-late-two');
    await sleep(500);
    // All five went through the queue rule; none reached the peer.
    expect((await counter('out')) - queuedBefore).toBe(5);
    expect(received().filter((t) => /^(H-|C-|A-late)/.test(t))).toEqual([]);
    // The first reader still runs; close() released the queue, so a new reader binds it.
    const again = await startReader();
    expect(readerEvents(again).find((e) => e.ev === 'ready')).toEqual({ ev: 'ready', binding: 'native' });
    await send('A-again');
    await waitFor('a packet through the new reader', () => received().includes('A-again'));
    expect(received().filter((t) => /^(H-|C-|A-late)/.test(t))).toEqual([]);
  });
});
