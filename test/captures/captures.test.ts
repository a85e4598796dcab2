// (a) The committed captures are what MANIFEST.json says: present, unmodified, readable by
//     tshark to the end, and every recorded property, endpoint and stream hash re-derives
//     from the pcap (through analyze.py, the one definition of the properties).
// (b) test/lib/netns.ts builds a real two-namespace link, carries a curl transfer with
//     tcpdump running and with an nft loss rule, and cleans everything up.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NetnsLab, isRoot, missingTools } from '../lib/netns';

const DIR = __dirname;
const ANALYZE = path.join(DIR, 'analyze.py');

interface Stream {
  bytes: number;
  sha256: string;
}
interface Connection {
  client: string;
  server: string;
  c2s: Stream;
  s2c: Stream;
  complete: boolean;
  closed: boolean;
  known?: Record<string, string | number>;
}
interface ManifestCapture {
  file: string;
  scenario: string;
  ipVersion: number;
  client: string;
  server: string;
  required: string[];
  properties: Record<string, boolean>;
  propertyFrames: Record<string, number>;
  connections: Connection[];
  frames: number;
  sizeBytes: number;
  sha256: string;
}
interface Manifest {
  kernel: string;
  recordedAt: string;
  captures: ManifestCapture[];
}
interface Description {
  ipVersion: number;
  frames: number;
  properties: Record<string, boolean>;
  propertyFrames: Record<string, number>;
  connections: Connection[];
}

const manifest = JSON.parse(fs.readFileSync(path.join(DIR, 'MANIFEST.json'), 'utf8')) as Manifest;
const missingAnalysisTools = missingTools(['tshark', 'python3']);

describe('committed captures match MANIFEST.json', () => {
  test('the manifest lists the seven recorded scenarios, under the size budget', () => {
    expect(manifest.captures.map((c) => c.file).sort()).toEqual(
      ['ecn-sack-loss', 'http-v4', 'http-v6', 'keepalive', 'many-short', 'redis', 'zero-window'].map((n) => `${n}.pcap`),
    );
    expect(manifest.kernel).toMatch(/\S/);
    const total = manifest.captures.reduce((sum, c) => sum + c.sizeBytes, 0);
    expect(total).toBeLessThan(6 * 1024 * 1024);
  });

  describe.each(manifest.captures.map((c) => [c.file, c] as const))('%s', (file, entry) => {
    const pcap = path.join(DIR, file);

    test('exists, unmodified', () => {
      const bytes = fs.readFileSync(pcap);
      expect(bytes.length).toBe(entry.sizeBytes);
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(entry.sha256);
    });

    const maybe = missingAnalysisTools.length === 0 ? test : test.skip;
    const why = missingAnalysisTools.length === 0 ? '' : ` (skipped: ${missingAnalysisTools.join(', ')} not installed)`;

    maybe(`tshark reads it to the end${why}`, () => {
      const r = spawnSync('tshark', ['-r', pcap, '-q'], { encoding: 'utf8' });
      expect(r.status).toBe(0);
      expect(r.stderr).not.toMatch(/cut short|appears to be damaged|isn't a capture file/);
    });

    maybe(`properties, endpoints and streams re-derive from the pcap${why}`, () => {
      const d = JSON.parse(execFileSync('python3', [ANALYZE, 'describe', pcap], { encoding: 'utf8' })) as Description;
      expect(d.ipVersion).toBe(entry.ipVersion);
      expect(d.frames).toBe(entry.frames);
      expect(d.properties).toEqual(entry.properties);
      expect(d.propertyFrames).toEqual(entry.propertyFrames);
      for (const name of entry.required) expect([name, d.properties[name]]).toEqual([name, true]);
      expect(d.properties.hasCaptureGaps).toBe(false);
      expect(d.properties.hasBadChecksums).toBe(false);
      expect(d.connections).toEqual(entry.connections.map(({ known: _known, ...rest }) => rest));
      expect(entry.client).toBe(entry.connections[0]?.client);
      for (const c of entry.connections) {
        expect(c.server).toBe(entry.server);
        expect(c.complete && c.closed).toBe(true);
        // Payloads known before recording must be what the capture carries.
        const k = c.known ?? {};
        if (k.c2sSha256 !== undefined) expect([c.c2s.sha256, c.c2s.bytes]).toEqual([k.c2sSha256, k.c2sBytes]);
        if (k.s2cSha256 !== undefined) expect([c.s2c.sha256, c.s2c.bytes]).toEqual([k.s2cSha256, k.s2cBytes]);
        if (k.s2cBodyBytes !== undefined) expect(c.s2c.bytes).toBeGreaterThan(Number(k.s2cBodyBytes));
      }
    });
  });
});

const netnsTools = ['ip', 'ethtool', 'nft', 'tcpdump', 'tshark', 'curl', 'python3', 'ss'];
const netnsSkip = !isRoot()
  ? 'not root: network namespaces, tcpdump and nft need root'
  : missingTools(netnsTools).length > 0
    ? `missing tools: ${missingTools(netnsTools).join(', ')}`
    : '';
const netnsTest = netnsSkip ? test.skip : test;

describe('test/lib/netns.ts', () => {
  netnsTest(
    `two namespaces, curl through a veth with tcpdump and nft loss, then full cleanup${netnsSkip ? ` (SKIPPED: ${netnsSkip})` : ''}`,
    async () => {
      const lab = new NetnsLab();
      const otherLab = new NetnsLab();
      expect(lab.id).not.toBe(otherLab.id);
      await otherLab.cleanup();
      let pids: number[] = [];
      try {
        const client = await lab.namespace('client');
        const server = await lab.namespace('server');
        expect(client).toContain(lab.id);
        const link = await lab.veth(client, server);
        for (const [ns, dev] of [[client, link.devA], [server, link.devB]] as const) {
          expect(await lab.offloadsOff(ns, dev)).toMatch(/generic-receive-offload: off/);
        }
        await lab.addAddress(client, link.devA, '10.77.0.1/24');
        await lab.addAddress(server, link.devB, '10.77.0.2/24');
        await lab.addAddress(client, link.devA, 'fd77::1/64');
        await lab.addAddress(server, link.devB, 'fd77::2/64');

        const tmp = await lab.tmpdir();
        const www = path.join(tmp, 'www');
        fs.mkdirSync(www);
        const body = createHash('sha256').update('netns-body').digest();
        const content = Buffer.concat(Array.from({ length: 4096 }, () => body)); // 128 KiB
        fs.writeFileSync(path.join(www, 'body.bin'), content);
        const httpd = lab.spawn(server, 'python3', ['-m', 'http.server', '8080', '--bind', '::', '--directory', www]);
        await lab.waitForListen(server, 8080);

        const pcap = path.join(tmp, 'run.pcap');
        const capture = await lab.startCapture(server, link.devB, pcap, { filter: 'tcp' });
        const loss = await lab.addLoss(client, {
          dev: link.devA,
          percent: 10,
          match: 'ip saddr 10.77.0.2 tcp sport 8080',
        });
        const out = path.join(tmp, 'out.bin');
        for (const url of ['http://10.77.0.2:8080/body.bin', 'http://[fd77::2]:8080/body.bin']) {
          await lab.exec(client, 'curl', ['-sS', '--fail', '-g', '--max-time', '60', '-o', out, url]);
          expect(fs.readFileSync(out).equals(content)).toBe(true);
        }
        expect(await loss.dropped()).toBeGreaterThan(0);
        await loss.remove();
        const stats = await capture.stop();
        expect(stats.captured).toBeGreaterThan(2 * (content.length / 1448));
        expect(stats.droppedByKernel).toBe(0);

        const streams = execFileSync('tshark', ['-r', pcap, '-T', 'fields', '-e', 'tcp.stream'], { encoding: 'utf8' });
        expect(new Set(streams.split('\n').filter((s) => s !== '')).size).toBe(2);
        const retrans = execFileSync('tshark', ['-r', pcap, '-Y', 'tcp.analysis.retransmission || tcp.analysis.fast_retransmission || tcp.analysis.out_of_order', '-T', 'fields', '-e', 'frame.number'], { encoding: 'utf8' });
        expect(retrans.trim()).not.toBe(''); // the capture is upstream of the ingress drop

        pids = [httpd.pid];
      } finally {
        const owned = lab.ownedNamespaces();
        await lab.cleanup();
        const listed = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
        for (const ns of owned) expect(listed).not.toContain(ns);
        for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
      }
      await expect(lab.namespace('again')).rejects.toThrow(/after cleanup/);
    },
  );
});
