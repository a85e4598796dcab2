// pcap replay (issue: Foundation, "pcap replay"): the whole agent -> wire -> gateway path on real
// captures. Third-party captures are read from ../shared/pcaps in place; the project's own,
// recorded from real Linux TCP, from test/captures.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeBackend } from '../../common/crypto/node-backend';
import { seededRandom } from '../../common/crypto/random';
import { parseEndpoint } from '../../common/engine/endpoints';
import { type CapturedPacket, readCapture } from '../../common/pcap';
import { type PacketToWrite, writePcap } from '../../common/pcap/writer';
import { type Endpoint, replayPipeline, replayRole } from '../../pipeline/replay';
import { reassemble } from '../../pipeline/streams';
import { parseLink } from '../../common/wire/link';

const ROOT = join(__dirname, '..', '..');
const SHARED = join(ROOT, '..', 'shared', 'pcaps');
const OWN = join(ROOT, 'test', 'captures');

function load(path: string): CapturedPacket[] {
  const c = readCapture(readFileSync(path));
  if (!c.ok) throw new Error(`${path}: ${c.error.detail}`);
  return c.value.packets;
}

function endpoint(text: string): Endpoint {
  const e = parseEndpoint(text);
  if (typeof e === 'string') throw new Error(e);
  return e;
}

const sharedFiles = existsSync(SHARED)
  ? [...readdirSync(join(SHARED, 'zeek')).filter((f) => /\.pcap(ng)?$/.test(f)).map((f) => join(SHARED, 'zeek', f)), join(SHARED, 'tcpreplay', 'test.pcap')]
  : [];

const tshark = (() => {
  try {
    execFileSync('tshark', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** tshark must read the file without error (and without "cut short" warnings). */
function tsharkReads(path: string): void {
  if (!tshark) return;
  const out = execFileSync('tshark', ['-r', path, '-q'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  expect(out).not.toMatch(/cut short|malformed/i);
}

function writeAll(dir: string, linkType: number, sides: Record<string, PacketToWrite[]>): void {
  for (const [name, packets] of Object.entries(sides)) {
    const path = join(dir, `${name}.pcap`);
    writeFileSync(path, writePcap(linkType, packets));
    tsharkReads(path);
  }
}

const run = (packets: CapturedPacket[], protect: Endpoint[], seed = 'replay'): ReturnType<typeof replayPipeline> =>
  replayPipeline({ packets, protect, backend: nodeBackend, random: seededRandom(seed), verify: true });

const frames = (ps: readonly { data: Uint8Array }[]): string[] => ps.map((p) => Buffer.from(p.data).toString('hex'));

describe('captures recorded from real Linux TCP', () => {
  const manifest = JSON.parse(readFileSync(join(OWN, 'MANIFEST.json'), 'utf8')) as {
    captures: Array<{ file: string; server: string; connections: Array<{ server: string; c2s: { bytes: number; sha256: string }; s2c: { bytes: number; sha256: string } }> }>;
  };

  test.each(manifest.captures.map((c) => [c.file, c] as const))('%s: byte-exact both ways, no plaintext on the wire, keys gone after linger', (file, c) => {
    const packets = load(join(OWN, file));
    const protect = [...new Set(c.connections.map((x) => x.server))].map(endpoint);
    const result = run(packets, protect);
    const s = result.summary;
    expect(s.protectedFlows).toBe(c.connections.length);
    expect(s.verification?.plaintextRunsOnWire).toBe(0);
    expect(s.verification?.streams.filter((x) => !x.equal)).toEqual([]);
    expect(s.verification?.ok).toBe(true);
    expect(s.keyedFlows.afterTimers).toBe(0);
    // The delivered streams match the sha256 the recording script measured (independent of our reassembly).
    const linkType = packets[0]!.linkType;
    const ipOf = (p: PacketToWrite): Uint8Array => {
      const l = parseLink(linkType, p.data);
      return l.ok ? p.data.subarray(l.value.ipOffset) : p.data;
    };
    const atServer = reassemble(result.server.map(ipOf));
    const atClient = reassemble(result.client.map(ipOf));
    const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
    const c2sHashes = new Set([...atServer.values()].map((v) => sha(v.data)));
    const s2cHashes = new Set([...atClient.values()].map((v) => sha(v.data)));
    for (const conn of c.connections) {
      if (conn.c2s.bytes > 0) expect(c2sHashes.has(conn.c2s.sha256)).toBe(true);
      if (conn.s2c.bytes > 0) expect(s2cHashes.has(conn.s2c.sha256)).toBe(true);
    }
    const dir = mkdtempSync(join(tmpdir(), 'cg-replay-'));
    writeAll(dir, linkType, { client: result.client, wire: result.wire, server: result.server });
  });

  test('every protected segment on the wire carries the tag option (tshark)', () => {
    if (!tshark) return;
    const packets = load(join(OWN, 'ecn-sack-loss.pcap'));
    const result = run(packets, [endpoint('10.77.0.2:8080')]);
    const dir = mkdtempSync(join(tmpdir(), 'cg-replay-'));
    writeAll(dir, packets[0]!.linkType, { wire: result.wire });
    const count = (filter: string): number =>
      Number(execFileSync('tshark', ['-r', join(dir, 'wire.pcap'), '-Y', filter, '-T', 'fields', '-e', 'frame.number'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).length);
    const all = count('tcp');
    // The SYN carries the 14-byte request option, every other segment the 16-byte tag option.
    expect(count('tcp.option_kind == 253 && tcp.option_len == 16')).toBe(all - 1);
    expect(count('tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.option_len == 14')).toBe(1);
  });
});

describe('third-party captures', () => {
  if (sharedFiles.length === 0) {
    test.skip('../shared/pcaps is not present', () => undefined);
    return;
  }

  // Nothing in these captures asks for encryption: every frame must leave every role unchanged.
  test.each(sharedFiles.map((f) => [f.split('/').pop() as string, f] as const))('%s passes byte-for-byte through agent, wire and gateway', (_name, file) => {
    const packets = load(file);
    const input = frames(packets);
    const unrelated = [endpoint('192.0.2.1:9')];
    const result = run(packets, unrelated);
    expect(frames(result.client)).toEqual(input);
    expect(frames(result.wire)).toEqual(input);
    expect(frames(result.server)).toEqual(input);
    for (const role of ['gateway', 'agent'] as const) {
      const r = replayRole({ packets, role, protect: unrelated, backend: nodeBackend, random: seededRandom(1) });
      expect(frames(r.output)).toEqual(input);
    }
    const dir = mkdtempSync(join(tmpdir(), 'cg-pass-'));
    writeAll(dir, packets[0]!.linkType, { client: result.client, wire: result.wire, server: result.server });
  });

  // Protecting each capture's service: byte-exact where the capture holds a whole connection.
  const whole: Record<string, string> = {
    'communityid_ipv6.pcap': '[2607:f8b0:400c:c03::1a]:25',
    'http-vlan-0.pcap': '192.150.187.43:80',
    'http_get-gzip.pcap': '54.243.118.187:80',
    'http_get.pcap': '192.150.187.43:80',
    'http_get-without-fins.pcap': '192.150.187.43:80',
    'tcp_fin_retransmission.pcap': '17.167.193.62:443',
    'tcp_options.pcap': '193.1.193.64:80',
    'tcp_payload-synack.pcap': '192.168.0.2:80',
    'tcp_reassembly.pcap': '128.3.97.175:80',
    'tcp_retransmit-fast009.pcap': '192.168.0.27:80',
    'tcp_ssh-dups.pcap': '192.168.0.112:22',
    'tcp_timestamp.pcap': '192.168.2.20:12345',
    'tcp_window-scale-range.pcap': '10.0.0.2:80',
  };
  test.each(Object.entries(whole))('%s protected: byte-exact, no plaintext on the wire', (name, service) => {
    const packets = load(join(SHARED, 'zeek', name));
    const result = run(packets, [endpoint(service)]);
    expect(result.summary.protectedFlows).toBeGreaterThan(0);
    expect(result.summary.verification?.streams.filter((x) => !x.equal)).toEqual([]);
    expect(result.summary.verification?.plaintextRunsOnWire).toBe(0);
  });

  test('tcpreplay test.pcap: several flows to one protected web server, none leak', () => {
    const result = run(load(join(SHARED, 'tcpreplay', 'test.pcap')), [endpoint('216.34.181.45:80')]);
    expect(result.summary.verification?.ok).toBe(true);
  });

  // SYN data cannot be encrypted before there is a key: it never reaches the wire or the server.
  test.each([
    ['tcp_payload-syn.pcap', '192.168.0.2:80'],
    ['tcp_tcp-fast-open.pcap', '10.99.99.45:80'],
  ])('%s: SYN data is withheld, never leaked', (name, service) => {
    const packets = load(join(SHARED, 'zeek', name));
    const result = run(packets, [endpoint(service)]);
    expect(result.summary.protectedFlows).toBeGreaterThan(0);
    expect(result.summary.verification?.plaintextRunsOnWire).toBe(0);
  });

  // Captures that do not start with a clean handshake: a require service refuses those flows
  // rather than carrying them in plaintext (rule 7), and nothing is thrown on bad packets.
  test.each([
    ['tcp_handshake-reorder.pcap', '192.150.187.43:80'],
    ['tcp_rst-inject-rae.pcap', '1.2.0.3:6649'],
    ['tcp_truncated-header.pcap', '128.3.26.249:25'],
    ['tcp_missing-syn.pcap', '125.190.109.199:80'],
  ])('%s: no plaintext of a protected service crosses the wire', (name, service) => {
    const packets = load(join(SHARED, 'zeek', name));
    const result = run(packets, [endpoint(service)]);
    expect(result.summary.verification?.plaintextRunsOnWire).toBe(0);
  });

  test('malformed and truncated packets are counted, not fatal', () => {
    const result = run(load(join(SHARED, 'zeek', 'tcp_truncated-header.pcap')), [endpoint('192.0.2.1:9')]);
    expect(result.summary.counters.gateway.malformed).toBeGreaterThan(0);
    expect(result.summary.counters.agent.malformed).toBeGreaterThan(0);
  });
});

describe('ciphergate replay (the CLI)', () => {
  const cli = join(ROOT, 'dist', 'cli', 'ciphergate.js');
  const built = existsSync(cli);
  (built ? test : test.skip)('--pipeline writes three captures and a JSON summary; --role gateway refuses what it cannot key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cg-cli-'));
    const out = execFileSync('node', [cli, 'replay', '--pipeline', '--protect', '10.77.0.2:8080', '--in', join(OWN, 'http-v4.pcap'), '--out-dir', dir, '--verify'], { encoding: 'utf8' });
    const summary = JSON.parse(out) as { protectedFlows: number; verification: { ok: boolean } };
    expect(summary.protectedFlows).toBe(1);
    expect(summary.verification.ok).toBe(true);
    for (const f of ['client.pcap', 'wire.pcap', 'server.pcap']) tsharkReads(join(dir, f));
    // The wire capture asks for encryption; a lone gateway has no agent to key with, so it
    // holds the SYN, fails closed with a RST, and forwards nothing of the flow to the server.
    const role = execFileSync('node', [cli, 'replay', '--role', 'gateway', '--protect', '10.77.0.2:8080', '--in', join(dir, 'wire.pcap'), '--out', join(dir, 'gw.pcap')], { encoding: 'utf8' });
    const r = JSON.parse(role) as { verdicts: { hold: number; originated: number; rewrite: number; pass: number }; counters: Record<string, number> };
    expect(r.verdicts.hold).toBe(1);
    expect(r.verdicts.originated).toBe(1);
    expect(r.verdicts.rewrite + r.verdicts.pass).toBe(0);
    expect(r.counters['refused:agent-unreachable']).toBe(1);
  });

  (built ? test : test.skip)('bad arguments name the problem', () => {
    const fail = (args: string[]): string => {
      try {
        execFileSync('node', [cli, 'replay', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        return '';
      } catch (e) {
        return String((e as { stderr: string }).stderr);
      }
    };
    expect(fail(['--pipeline', '--protect', '10.0.0.1', '--in', 'x', '--out-dir', 'y'])).toMatch(/--protect: '10.0.0.1' is not ADDR:PORT/);
    expect(fail(['--pipeline', '--protect', '10.0.0.1:80', '--in', '/nonexistent.pcap', '--out-dir', 'y'])).toMatch(/cannot read --in/);
    expect(fail(['--pipeline', '--bogus'])).toMatch(/unknown option --bogus/);
  });
});
