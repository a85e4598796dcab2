// Impairments (router mode): 5% random loss in each direction of the agent-gateway link
// (nft numgen at the ingress of both ends, limited to the protected flows so keying itself is
// not what is measured), with ECN on at both TCP endpoints and SACK on (Linux default). The
// transfers stay byte-exact over IPv4 and IPv6, the capture shows ECN negotiated in the SYN
// and SYN-ACK, ECT-marked data, SACK blocks under loss, and still no plaintext.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { labBytesSha256 } from '../../lab/http-server';
import type { LossRule } from '../../lab/netns';
import type { CiphergateLab } from '../../lab/topology';
import { TCP_FLAGS } from '../../common/wire/tcp';
import {
  SACK,
  type Segment,
  describeE2E,
  downloadSha256,
  hasTcpOption,
  labBytes,
  plaintextRuns,
  tcpSegments,
  touchesPort,
  uniqueSeed,
  useLab,
  uploadSha256,
  url,
  writeSeededFile,
} from './helpers';

const LOSS_PERCENT = 5;
const N = 20_000_000;
const PORTS = '{ 80, 5201 }';

describeE2E('impairments: loss, ECN, SACK, IPv6 (router mode)', () => {
  let lab: CiphergateLab;
  const rules: LossRule[] = [];

  useLab('impair', { mode: 'router', gatewayTimers: { lingerMs: 1000 }, agentTimers: { lingerMs: 1000 } }, async (l) => {
    lab = l;
    for (const ns of [lab.client.ns, lab.server.ns]) await lab.netns.sysctl(ns, 'net.ipv4.tcp_ecn', 1);
    for (const ns of [lab.client.ns, lab.server.ns]) expect((await lab.netns.exec(ns, 'sysctl', ['-n', 'net.ipv4.tcp_sack'])).stdout.trim()).toBe('1');
    // Server to client: dropped at the client's ingress (after the wire capture saw it).
    rules.push(await lab.netns.addLoss(lab.client.ns, { dev: 'c0', percent: LOSS_PERCENT, match: `tcp sport ${PORTS}` }));
    // Client to server: dropped at the gateway's ingress, before the gateway sees it.
    rules.push(await lab.netns.addLoss(lab.gatewayNs, { dev: 'g0', percent: LOSS_PERCENT, match: `tcp dport ${PORTS}` }));
  });

  const dropped = async () => Promise.all(rules.map((r) => r.dropped()));

  test(`${N / 1e6} MB download over IPv4 under ${LOSS_PERCENT}% loss: sha256 matches`, async () => {
    const before = await dropped();
    const seed = uniqueSeed('loss-down');
    expect(await downloadSha256(lab, url(lab.server.v4, 80, `/bytes/${N}?seed=${seed}`))).toBe(labBytesSha256(seed, N));
    const after = await dropped();
    expect(after[0]! - before[0]!).toBeGreaterThan(100);
    expect(after[1]! - before[1]!).toBeGreaterThan(10);
  }, 300_000);

  test(`${N / 1e6} MB upload over IPv4 under ${LOSS_PERCENT}% loss: sha256 matches`, async () => {
    const before = await dropped();
    const file = path.join(lab.dir, 'upload-loss.bin');
    const sha = writeSeededFile(file, uniqueSeed('loss-up'), N);
    try {
      expect(await uploadSha256(lab, file, url(lab.server.v4, 80, '/sha256'))).toEqual({ sha256: sha, length: N });
    } finally {
      fs.rmSync(file, { force: true });
    }
    const after = await dropped();
    expect(after[1]! - before[1]!).toBeGreaterThan(100);
  }, 300_000);

  test(`IPv6: ${N / 1e6} MB each way under ${LOSS_PERCENT}% loss: sha256 matches`, async () => {
    const seed = uniqueSeed('loss-v6');
    expect(await downloadSha256(lab, url(lab.server.v6, 80, `/bytes/${N}?seed=${seed}`))).toBe(labBytesSha256(seed, N));
    const file = path.join(lab.dir, 'upload-loss-v6.bin');
    const sha = writeSeededFile(file, uniqueSeed('loss-v6-up'), N);
    try {
      expect(await uploadSha256(lab, file, url(lab.server.v6, 80, '/sha256'))).toEqual({ sha256: sha, length: N });
    } finally {
      fs.rmSync(file, { force: true });
    }
  }, 300_000);

  test('the wire under loss: ECN negotiated, ECT data, SACK blocks, retransmissions, no plaintext', async () => {
    const seed = uniqueSeed('loss-cap');
    const n = 1_500_000;
    const caps = await lab.startCaptures('impair');
    try {
      expect(await downloadSha256(lab, url(lab.server.v4, 80, `/bytes/${n}?seed=${seed}`))).toBe(labBytesSha256(seed, n));
    } finally {
      await lab.stopCaptures();
    }
    const wire = tcpSegments(caps.wire).filter(touchesPort(80));
    const flag = (s: Segment, mask: number) => (s.tcp.flags & mask) === mask;
    const syns = wire.filter((s) => flag(s, TCP_FLAGS.SYN) && !flag(s, TCP_FLAGS.ACK));
    const synAcks = wire.filter((s) => flag(s, TCP_FLAGS.SYN | TCP_FLAGS.ACK));
    expect(syns.length).toBeGreaterThan(0);
    expect(synAcks.length).toBeGreaterThan(0);
    // RFC 3168: an ECN-setup SYN has ECE and CWR; the SYN-ACK that accepts has ECE and not CWR.
    for (const s of syns) expect(flag(s, TCP_FLAGS.ECE | TCP_FLAGS.CWR)).toBe(true);
    for (const s of synAcks) expect({ ece: flag(s, TCP_FLAGS.ECE), cwr: flag(s, TCP_FLAGS.CWR) }).toEqual({ ece: true, cwr: false });
    // Negotiated: data segments carry an ECT codepoint.
    const data = wire.filter((s) => s.payload.length > 0);
    expect(data.filter((s) => s.ip.ecn !== 0).length).toBeGreaterThan(data.length / 2);
    // SACK blocks from the client (its ingress drops server segments) on the encrypted wire.
    const clientAcks = wire.filter((s) => s.tcp.dstPort === 80);
    expect(clientAcks.filter((s) => hasTcpOption(s, SACK)).length).toBeGreaterThan(0);
    // Retransmissions: the same sequence range sent twice, ciphertext both times.
    const seen = new Set<string>();
    let resent = 0;
    for (const s of data.filter((x) => x.tcp.srcPort === 80)) {
      const k = `${s.tcp.seq}/${s.payload.length}`;
      if (seen.has(k)) resent++;
      seen.add(k);
    }
    expect(resent).toBeGreaterThan(0);
    expect(plaintextRuns([labBytes(seed, n)], wire)).toBe(0);
  }, 180_000);
});
