// Router mode end to end: unmodified programs (curl, redis-cli, redis-benchmark, iperf3) on a
// client host whose agent marks protected flows, through the gateway namespace, to a server.
// Integrity over 100 MB each way, no plaintext on the wire while the server side is plaintext,
// hundreds of concurrent connections, unprotected flows untouched, keys gone after the linger.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { labBytesSha256 } from '../../lab/http-server';
import type { CiphergateLab } from '../../lab/topology';
import {
  anyPayloadHolds,
  biggestStream,
  clientShell,
  counter,
  daemonStatus,
  describeE2E,
  downloadSha256,
  eventually,
  fromPort,
  hasTcpOption,
  labBytes,
  payloadBytes,
  plaintextRuns,
  statusCli,
  streams,
  tcpSegments,
  timedCurl,
  touchesPort,
  uniqueSeed,
  uploadSha256,
  url,
  upLab,
  writeSeededFile,
} from './helpers';

const BIG = 100_000_000;

describeE2E('router mode end to end', () => {
  let lab: CiphergateLab;
  const srv = () => lab.server;

  beforeAll(async () => {
    lab = await upLab('router', { mode: 'router', gatewayTimers: { lingerMs: 1000 }, agentTimers: { lingerMs: 1000 } });
  }, 120_000);

  afterAll(async () => {
    await lab?.down();
  }, 60_000);

  test('curl over IPv4 and IPv6 reaches the protected web server through keyed flows', async () => {
    const before = await daemonStatus(lab, 'gateway');
    for (const host of [srv().v4, srv().v6]) {
      const r = await timedCurl(lab, url(host, 80, '/'), ['--fail']);
      expect(r).toMatchObject({ code: 0, stdout: 'hello from the lab server\n' });
    }
    const after = await daemonStatus(lab, 'gateway');
    expect(counter(after, 'flows-established') - counter(before, 'flows-established')).toBeGreaterThanOrEqual(2);
    expect(counter(after, 'segments-unprotected')).toBeGreaterThan(counter(before, 'segments-unprotected'));
  });

  test(`integrity: ${BIG / 1e6} MB download, sha256 matches`, async () => {
    const seed = uniqueSeed('down');
    expect(await downloadSha256(lab, url(srv().v4, 80, `/bytes/${BIG}?seed=${seed}`))).toBe(labBytesSha256(seed, BIG));
  }, 300_000);

  test(`integrity: ${BIG / 1e6} MB upload, sha256 matches`, async () => {
    const file = path.join(lab.dir, 'upload-100m.bin');
    const sha = writeSeededFile(file, uniqueSeed('up'), BIG);
    try {
      expect(await uploadSha256(lab, file, url(srv().v4, 80, '/sha256'))).toEqual({ sha256: sha, length: BIG });
    } finally {
      fs.rmSync(file, { force: true });
    }
  }, 300_000);

  test('encryption: no plaintext on the wire, plaintext on the server side, same stream lengths', async () => {
    const downSeed = uniqueSeed('enc-down');
    const downN = 1_500_000;
    const upFile = path.join(lab.dir, 'upload-enc.bin');
    const upSeed = uniqueSeed('enc-up');
    const upN = 500_000;
    writeSeededFile(upFile, upSeed, upN);
    const caps = await lab.startCaptures('router-enc');
    try {
      expect(await downloadSha256(lab, url(srv().v4, 80, `/bytes/${downN}?seed=${downSeed}`))).toBe(labBytesSha256(downSeed, downN));
      expect((await uploadSha256(lab, upFile, url(srv().v4, 80, '/sha256'))).length).toBe(upN);
    } finally {
      await lab.stopCaptures();
    }
    const secrets = [labBytes(downSeed, downN), labBytes(upSeed, upN)];
    const wire = tcpSegments(caps.wire).filter(touchesPort(80));
    const server = tcpSegments(caps.server).filter(touchesPort(80));
    expect(payloadBytes(wire)).toBeGreaterThanOrEqual(downN + upN);
    // Rule 1: not one 16-byte run of either direction's plaintext crosses the agent-gateway link.
    expect(plaintextRuns(secrets, wire)).toBe(0);
    expect(anyPayloadHolds(wire, 'HTTP/1.1')).toBe(false);
    // ...while the server side carries exactly that plaintext.
    const plain = streams(server);
    const [name, down] = biggestStream(plain, fromPort(80));
    expect(Buffer.from(down.data).includes(secrets[0] as Buffer)).toBe(true);
    expect(anyPayloadHolds(server, 'HTTP/1.1 200')).toBe(true);
    // Rule 3: length preserving; the wire carries the same stream length, other bytes.
    const cipher = streams(wire).get(name);
    expect(cipher?.data.length).toBe(down.data.length);
    expect(Buffer.compare(cipher?.data ?? new Uint8Array(0), down.data)).not.toBe(0);
  }, 180_000);

  test('redis-cli and redis-benchmark against redis-server, IPv4 and IPv6', async () => {
    const before = await daemonStatus(lab, 'gateway');
    const value = labBytes(uniqueSeed('redis'), 200_000).toString('hex');
    for (const host of [srv().v4, srv().v6]) {
      const set = await lab.client$('redis-cli', ['-h', host, '-p', '6379', '-x', 'set', 'e2e-key'], { input: value });
      expect(set.stdout.trim()).toBe('OK');
      const get = await lab.client$('redis-cli', ['-h', host, '-p', '6379', '--raw', 'get', 'e2e-key']);
      expect(get.stdout.trim()).toBe(value);
    }
    const bench = await lab.client$('redis-benchmark', ['-h', srv().v4, '-p', '6379', '-n', '5000', '-c', '20', '-t', 'set,get,lpush', '--csv'], { timeoutMs: 180_000 });
    expect(bench.stdout).toMatch(/"SET"/);
    expect(bench.stdout).toMatch(/"GET"/);
    const after = await daemonStatus(lab, 'gateway');
    // redis-benchmark opens its 20 clients per test, every one a keyed flow.
    expect(counter(after, 'flows-established') - counter(before, 'flows-established')).toBeGreaterThanOrEqual(2 + 20);
  }, 240_000);

  test('iperf3 both directions', async () => {
    for (const reverse of [[], ['-R']]) {
      const r = await lab.client$('iperf3', ['-c', srv().v4, '-p', '5201', '-t', '3', '-J', ...reverse], { timeoutMs: 60_000 });
      const j = JSON.parse(r.stdout) as { error?: string; end: { sum_received: { bytes: number } } };
      expect(j.error).toBeUndefined();
      expect(j.end.sum_received.bytes).toBeGreaterThan(1_000_000);
    }
  }, 120_000);

  test('300 concurrent short connections (xargs -P 50 curl) all succeed, each a keyed flow', async () => {
    const before = await daemonStatus(lab, 'gateway');
    const n = 300;
    const r = await clientShell(
      lab,
      `seq ${n} | xargs -P 50 -I{} curl -sS --max-time 30 -o /dev/null -w '%{http_code}\\n' ${url(srv().v4, 80, '/?n={}')}`,
    );
    const codes = r.stdout.trim().split('\n');
    expect(codes).toHaveLength(n);
    expect(codes.filter((c) => c === '200')).toHaveLength(n);
    const after = await daemonStatus(lab, 'gateway');
    expect(counter(after, 'flows-established') - counter(before, 'flows-established')).toBe(n);
    expect(counter(after, 'syn-released') - counter(before, 'syn-released')).toBe(n);
    expect(counter(after, 'refused') - counter(before, 'refused')).toBe(0);
  }, 240_000);

  test('scope: a flow to the unprotected port 8080 passes unchanged and never enters the datapath', async () => {
    const seed = uniqueSeed('plain');
    const n = 300_000;
    const [g0, a0] = [await daemonStatus(lab, 'gateway'), await daemonStatus(lab, 'agent')];
    const caps = await lab.startCaptures('router-plain');
    try {
      expect(await downloadSha256(lab, url(srv().v4, 8080, `/bytes/${n}?seed=${seed}`))).toBe(labBytesSha256(seed, n));
    } finally {
      await lab.stopCaptures();
    }
    const [g1, a1] = [await daemonStatus(lab, 'gateway'), await daemonStatus(lab, 'agent')];
    const wire = tcpSegments(caps.wire).filter(touchesPort(8080));
    const server = tcpSegments(caps.server).filter(touchesPort(8080));
    // The plaintext is on the wire as sent...
    const [name, onWire] = biggestStream(streams(wire), fromPort(8080));
    expect(Buffer.from(onWire.data).includes(labBytes(seed, n))).toBe(true);
    // ...byte for byte what the server sent, and no ciphergate option anywhere.
    const onServer = streams(server).get(name);
    expect(onServer && Buffer.compare(onServer.data, onWire.data)).toBe(0);
    expect(wire.some((s) => hasTcpOption(s, 253))).toBe(false);
    // Neither daemon was handed one packet of it (only SYNs to services and keyed flows are queued).
    expect(g1.datapath.packets).toBe(g0.datapath.packets);
    expect(a1.datapath.packets).toBe(a0.datapath.packets);
  }, 120_000);

  test('keys discarded: `ciphergate status` shows no keys once flows end and linger', async () => {
    const r = await timedCurl(lab, url(srv().v4, 80, '/'), ['--fail']);
    expect(r.code).toBe(0);
    const docs = await eventually(
      () => statusCli(lab),
      (d) => d.every((x) => x.keyedFlows === 0 && x.flowCount === 0),
      15_000,
    );
    expect(docs.map((d) => d.role)).toEqual(['gateway', 'agent']);
    for (const d of docs) {
      expect(d.keyedFlows).toBe(0);
      expect(d.flowCount).toBe(0);
      expect(counter(d, 'keys-discarded')).toBeGreaterThanOrEqual(counter(d, 'flows-established'));
      expect(counter(d, 'discarded:linger')).toBeGreaterThan(0);
    }
  }, 60_000);
});
