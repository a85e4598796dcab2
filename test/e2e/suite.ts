// The datapath suite every gateway mode must pass, on one lab brought up once: unmodified
// programs (curl over IPv4 and IPv6, redis-cli, iperf3 both ways), sha256 integrity each way,
// no plaintext on the agent-gateway wire (and, where the gateway is a separate box, the
// plaintext on the server side with the same stream lengths), and no keys left once the flows
// have ended and lingered, as `ciphergate status` shows. Mode files add their own tests.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { labBytesSha256 } from '../../lab/http-server';
import type { CiphergateLab, LabMode } from '../../lab/topology';
import {
  anyPayloadHolds,
  biggestStream,
  counter,
  daemonStatus,
  describeE2E,
  downloadSha256,
  eventually,
  fromPort,
  labBytes,
  payloadBytes,
  plaintextRuns,
  statusCli,
  streams,
  tcpSegments,
  timedCurl,
  touchesPort,
  uniqueSeed,
  useLab,
  uploadSha256,
  url,
  writeSeededFile,
} from './helpers';

export interface SuiteOptions {
  mode: LabMode;
  /** Bytes each way for the integrity tests. */
  integrityBytes: number;
  /**
   * Whether the server-side capture holds the plaintext. False in host mode, where the gateway
   * runs on the server and the plaintext exists only inside it.
   */
  serverSidePlaintext: boolean;
  /** Extra reasons to skip (e.g. a datapath not built yet). */
  skip?: Parameters<typeof describeE2E>[2];
  /** Mode-specific tests on the same lab. */
  extra?: (lab: () => CiphergateLab) => void;
}

export function datapathSuite(o: SuiteOptions): void {
  describeE2E(`${o.mode} mode end to end`, () => {
    let lab: CiphergateLab;
    const srv = () => lab.server;
    const mb = o.integrityBytes / 1e6;

    useLab(o.mode, { mode: o.mode, gatewayTimers: { lingerMs: 1000 }, agentTimers: { lingerMs: 1000 } }, (l) => {
      lab = l;
    });

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

    test(`integrity: ${mb} MB download, sha256 matches`, async () => {
      const seed = uniqueSeed('down');
      expect(await downloadSha256(lab, url(srv().v4, 80, `/bytes/${o.integrityBytes}?seed=${seed}`))).toBe(labBytesSha256(seed, o.integrityBytes));
    }, 300_000);

    test(`integrity: ${mb} MB upload, sha256 matches`, async () => {
      const file = path.join(lab.dir, 'upload-big.bin');
      const sha = writeSeededFile(file, uniqueSeed('up'), o.integrityBytes);
      try {
        expect(await uploadSha256(lab, file, url(srv().v4, 80, '/sha256'))).toEqual({ sha256: sha, length: o.integrityBytes });
      } finally {
        fs.rmSync(file, { force: true });
      }
    }, 300_000);

    test('integrity over IPv6: 10 MB each way', async () => {
      const n = 10_000_000;
      const seed = uniqueSeed('down6');
      expect(await downloadSha256(lab, url(srv().v6, 80, `/bytes/${n}?seed=${seed}`))).toBe(labBytesSha256(seed, n));
      const file = path.join(lab.dir, 'upload-v6.bin');
      const sha = writeSeededFile(file, uniqueSeed('up6'), n);
      try {
        expect(await uploadSha256(lab, file, url(srv().v6, 80, '/sha256'))).toEqual({ sha256: sha, length: n });
      } finally {
        fs.rmSync(file, { force: true });
      }
    }, 120_000);

    test(
      o.serverSidePlaintext
        ? 'encryption: no plaintext on the wire, plaintext on the server side, same stream lengths'
        : 'encryption: the wire holds ciphertext only (the plaintext exists only inside the server host)',
      async () => {
        const downSeed = uniqueSeed('enc-down');
        const downN = 1_500_000;
        const upFile = path.join(lab.dir, 'upload-enc.bin');
        const upSeed = uniqueSeed('enc-up');
        const upN = 500_000;
        writeSeededFile(upFile, upSeed, upN);
        const caps = await lab.startCaptures('enc');
        try {
          expect(await downloadSha256(lab, url(srv().v4, 80, `/bytes/${downN}?seed=${downSeed}`))).toBe(labBytesSha256(downSeed, downN));
          expect((await uploadSha256(lab, upFile, url(srv().v4, 80, '/sha256'))).length).toBe(upN);
        } finally {
          await lab.stopCaptures();
        }
        const secrets = [labBytes(downSeed, downN), labBytes(upSeed, upN)];
        const wire = tcpSegments(caps.wire).filter(touchesPort(80));
        expect(payloadBytes(wire)).toBeGreaterThanOrEqual(downN + upN);
        // Rule 1: not one 16-byte run of either direction's plaintext crosses the agent-gateway link.
        expect(plaintextRuns(secrets, wire)).toBe(0);
        expect(anyPayloadHolds(wire, 'HTTP/1.1')).toBe(false);
        if (!o.serverSidePlaintext) return;
        // ...while the server side carries exactly that plaintext.
        const server = tcpSegments(caps.server).filter(touchesPort(80));
        const [flow, down] = biggestStream(streams(server), fromPort(80));
        expect(Buffer.from(down.data).includes(secrets[0] as Buffer)).toBe(true);
        expect(anyPayloadHolds(server, 'HTTP/1.1 200')).toBe(true);
        // Rule 3: length preserving; the wire carries the same stream length, other bytes.
        const cipher = streams(wire).get(flow);
        expect(cipher?.data.length).toBe(down.data.length);
        expect(Buffer.compare(cipher?.data ?? new Uint8Array(0), down.data)).not.toBe(0);
      },
      180_000,
    );

    test('redis-cli against redis-server, IPv4 and IPv6', async () => {
      const value = labBytes(uniqueSeed('redis'), 200_000).toString('hex');
      for (const host of [srv().v4, srv().v6]) {
        const set = await lab.client$('redis-cli', ['-h', host, '-p', '6379', '-x', 'set', 'e2e-key'], { input: value });
        expect(set.stdout.trim()).toBe('OK');
        const get = await lab.client$('redis-cli', ['-h', host, '-p', '6379', '--raw', 'get', 'e2e-key']);
        expect(get.stdout.trim()).toBe(value);
      }
    }, 60_000);

    test('iperf3 both directions', async () => {
      for (const reverse of [[], ['-R']]) {
        const r = await lab.client$('iperf3', ['-c', srv().v4, '-p', '5201', '-t', '3', '-J', ...reverse], { timeoutMs: 60_000 });
        const j = JSON.parse(r.stdout) as { error?: string; end: { sum_received: { bytes: number } } };
        expect(j.error).toBeUndefined();
        expect(j.end.sum_received.bytes).toBeGreaterThan(1_000_000);
      }
    }, 120_000);

    o.extra?.(() => lab);

    // Last: every flow above must have ended and lingered out.
    test('keys discarded: `ciphergate status` shows no keys once flows end and linger', async () => {
      expect((await timedCurl(lab, url(srv().v4, 80, '/'), ['--fail'])).code).toBe(0);
      const docs = await eventually(
        () => statusCli(lab),
        (d) => d.every((x) => x.keyedFlows === 0 && x.flowCount === 0),
        15_000,
      );
      expect(docs.map((d) => d.role)).toEqual(['gateway', 'agent']);
      for (const d of docs) {
        expect({ role: d.role, keyedFlows: d.keyedFlows, flowCount: d.flowCount }).toEqual({ role: d.role, keyedFlows: 0, flowCount: 0 });
        expect(counter(d, 'keys-discarded')).toBeGreaterThanOrEqual(counter(d, 'flows-established'));
        expect(counter(d, 'discarded:linger')).toBeGreaterThan(0);
      }
    }, 60_000);
  }, o.skip);
}
