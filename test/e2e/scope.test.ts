// Scope without an agent (router mode, noAgent): a client that does not run ciphergate. Its
// connections to a "require" service are refused by the gateway within 2 s and never reach the
// server; its connections to an unprotected port pass byte for byte, without the gateway
// seeing a packet of them.
import { labBytesSha256 } from '../../lab/http-server';
import type { CiphergateLab } from '../../lab/topology';
import {
  counter,
  daemonStatus,
  describeE2E,
  downloadSha256,
  fromPort,
  labBytes,
  payloadBytes,
  streams,
  tcpSegments,
  timedCurl,
  touchesPort,
  toPort,
  uniqueSeed,
  useLab,
  url,
} from './helpers';

describeE2E('scope without an agent (router mode)', () => {
  let lab: CiphergateLab;

  useLab('scope', { mode: 'router', noAgent: true, serviceMode: 'require' }, (l) => {
    lab = l;
  });

  test('a require-mode service refuses a flow without the option: RST within 2 s, nothing reaches the server', async () => {
    const before = await daemonStatus(lab, 'gateway');
    const caps = await lab.startCaptures('require');
    const attempts = [];
    try {
      for (const host of [lab.server.v4, lab.server.v6]) attempts.push(await timedCurl(lab, url(host, 80, '/'), [], 8));
    } finally {
      await lab.stopCaptures();
    }
    for (const a of attempts) expect({ code: a.code, fast: a.ms < 2000, stderr: a.stderr.trim() }).toMatchObject({ code: 7, fast: true });
    const after = await daemonStatus(lab, 'gateway');
    expect(counter(after, 'refused:require') - counter(before, 'refused:require')).toBe(2);
    // The client saw the SYNs go out and RSTs come back...
    const wire = tcpSegments(caps.wire).filter(touchesPort(80));
    expect(wire.filter((s) => s.tcp.dstPort === 80 && (s.tcp.flags & 0x12) === 0x02).length).toBeGreaterThanOrEqual(2);
    expect(wire.filter((s) => s.tcp.srcPort === 80 && (s.tcp.flags & 0x04) !== 0).length).toBeGreaterThanOrEqual(2);
    expect(payloadBytes(wire)).toBe(0);
    // ...and the server's port 80 never saw a packet.
    expect(tcpSegments(caps.server).filter(touchesPort(80))).toHaveLength(0);
  }, 60_000);

  test('an unprotected port passes byte for byte and the gateway never sees it', async () => {
    const seed = uniqueSeed('scope-plain');
    const n = 1_000_000;
    const before = await daemonStatus(lab, 'gateway');
    const caps = await lab.startCaptures('plain');
    try {
      expect(await downloadSha256(lab, url(lab.server.v4, 8080, `/bytes/${n}?seed=${seed}`))).toBe(labBytesSha256(seed, n));
    } finally {
      await lab.stopCaptures();
    }
    const after = await daemonStatus(lab, 'gateway');
    expect(after.datapath.packets).toBe(before.datapath.packets);
    const wire = streams(tcpSegments(caps.wire).filter(touchesPort(8080)));
    const server = streams(tcpSegments(caps.server).filter(touchesPort(8080)));
    expect([...wire.keys()].sort()).toEqual([...server.keys()].sort());
    for (const [name, w] of wire) {
      const s = server.get(name)!;
      expect({ name, same: Buffer.compare(w.data, s.data) === 0 && Buffer.compare(w.seen, s.seen) === 0 }).toEqual({ name, same: true });
    }
    const down = [...wire.entries()].find(([name]) => fromPort(8080)(name))?.[1];
    expect(down && Buffer.from(down.data).includes(labBytes(seed, n))).toBe(true);
    expect([...wire.keys()].some(toPort(8080))).toBe(true);
  }, 60_000);
});
