// Every capture in ../shared/pcaps (read in place, never copied): our reader and parsers against
// tshark, field by field, and our writer's output against the original as tshark and tcpdump
// see it.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Capture } from '../../common/pcap/reader';
import { readCapture } from '../../common/pcap/reader';
import { writePcap } from '../../common/pcap/writer';
import { verifyTcpChecksum } from '../../common/wire/checksum';
import { parseFrame } from '../../common/wire/frame';
import { parseLink } from '../../common/wire/link';
import { parseTcpOptions } from '../../common/wire/tcp-options';
import { unwrap } from '../wire/helpers';

const run = promisify(execFile);
const PCAPS = resolve(__dirname, '../../../shared/pcaps');
const FILES = existsSync(PCAPS)
  ? [
      ...readdirSync(join(PCAPS, 'zeek')).filter((f) => /\.pcap(ng)?$/.test(f)).sort().map((f) => `zeek/${f}`),
      'tcpreplay/test.pcap',
    ]
  : [];

/** What parseFrame says about each capture: 'tcp' for a parsed segment, else layer:kind. */
const EXPECTED: Record<string, Record<string, number>> = {
  'zeek/communityid_ipv6.pcap': { tcp: 17 },
  'zeek/http-vlan-0.pcap': { tcp: 14 },
  'zeek/http_get-gzip.pcap': { tcp: 14 },
  'zeek/http_get-without-fins.pcap': { tcp: 11 },
  'zeek/http_get.pcap': { tcp: 14 },
  'zeek/ipv4_fragmented-1.pcap': { 'ipv4:fragment': 3 },
  'zeek/ipv4_fragmented-syn.pcap': { 'ipv4:fragment': 2 },
  'zeek/tcp_fin_retransmission.pcap': { tcp: 5 },
  'zeek/tcp_handshake-reorder.pcap': { tcp: 14 },
  'zeek/tcp_missing-syn.pcap': { tcp: 21 },
  'zeek/tcp_option-sack.pcap': { tcp: 4 },
  'zeek/tcp_options.pcap': { tcp: 4 },
  'zeek/tcp_payload-syn.pcap': { tcp: 6 },
  'zeek/tcp_payload-synack.pcap': { tcp: 6 },
  'zeek/tcp_reassembly.pcap': { tcp: 112, 'ipv4:truncated': 5 },
  'zeek/tcp_retransmit-fast009.pcap': { tcp: 18, 'ipv4:truncated': 21 },
  'zeek/tcp_retransmit-timeout.pcapng': { tcp: 3 },
  'zeek/tcp_rst-inject-rae.pcap': { tcp: 9 },
  'zeek/tcp_ssh-dups.pcap': { tcp: 377 },
  'zeek/tcp_syn-bad.pcap': { tcp: 1 },
  'zeek/tcp_syn-then-rst.pcap': { tcp: 2 },
  'zeek/tcp_tcp-fast-open.pcap': { tcp: 16 },
  'zeek/tcp_timestamp.pcap': { tcp: 187, 'ipv4:truncated': 691 },
  'zeek/tcp_truncated-header.pcap': { tcp: 12, 'ipv4:truncated': 12 },
  'zeek/tcp_window-scale-range.pcap': { tcp: 5 },
  'tcpreplay/test.pcap': { tcp: 116, 'link:not-ip': 19, 'ipv4:not-tcp': 44 },
};

const FIELDS = [
  'frame.time_epoch', 'frame.len', 'frame.cap_len', 'frame.protocols', 'vlan.id', 'ip.len', 'ipv6.plen', 'ip.flags.mf',
  'ip.frag_offset', 'tcp.srcport', 'tcp.dstport', 'tcp.seq_raw', 'tcp.ack_raw', 'tcp.flags', 'tcp.hdr_len',
  'tcp.window_size_value', 'tcp.len', 'tcp.checksum.status',
] as const;
type Row = Record<(typeof FIELDS)[number], string>;

async function tsharkRows(file: string): Promise<{ text: string; rows: Row[]; stderr: string }> {
  const args = ['-n', '-o', 'ip.defragment:FALSE', '-o', 'ipv6.defragment:FALSE', '-o', 'tcp.desegment_tcp_streams:FALSE',
    '-o', 'tcp.check_checksum:TRUE', '-r', file, '-T', 'fields', '-E', 'occurrence=f', ...FIELDS.flatMap((f) => ['-e', f])];
  const { stdout, stderr } = await run('tshark', args, { maxBuffer: 64 << 20 });
  const rows = stdout.split('\n').filter((l) => l !== '').map((line) => {
    const cells = line.split('\t');
    return Object.fromEntries(FIELDS.map((f, i) => [f, cells[i] ?? ''])) as Row;
  });
  return { text: stdout, rows, stderr };
}

async function tcpdumpHex(file: string): Promise<string> {
  return (await run('tcpdump', ['-nn', '-tt', '-xx', '-r', file], { maxBuffer: 64 << 20 })).stdout;
}

async function hasTool(name: string): Promise<boolean> {
  try {
    await run(name, ['--version']);
    return true;
  } catch {
    return false;
  }
}

interface FileResult {
  capture: Capture;
  original: Awaited<ReturnType<typeof tsharkRows>> | null;
  rewritten: Awaited<ReturnType<typeof tsharkRows>> | null;
  dumpOriginal: string | null;
  dumpRewritten: string | null;
}

const results = new Map<string, FileResult>();
let workDir = '';

beforeAll(async () => {
  if (FILES.length === 0) return;
  workDir = mkdtempSync(join(tmpdir(), 'ciphergate-pcap-'));
  const [tshark, tcpdump] = await Promise.all([hasTool('tshark'), hasTool('tcpdump')]);
  const queue = [...FILES];
  const worker = async (): Promise<void> => {
    for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
      const path = join(PCAPS, name);
      const capture = unwrap(readCapture(new Uint8Array(readFileSync(path))));
      const linkTypes = new Set(capture.packets.map((p) => p.linkType));
      expect(linkTypes.size).toBe(1);
      const out = join(workDir, name.replace('/', '_') + '.written.pcap');
      writeFileSync(out, writePcap([...linkTypes][0]!, capture.packets));
      const [original, rewritten, dumpOriginal, dumpRewritten] = await Promise.all([
        tshark ? tsharkRows(path) : null,
        tshark ? tsharkRows(out) : null,
        tcpdump ? tcpdumpHex(path) : null,
        tcpdump ? tcpdumpHex(out) : null,
      ]);
      results.set(name, { capture, original, rewritten, dumpOriginal, dumpRewritten });
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
});

afterAll(() => {
  if (workDir !== '') rmSync(workDir, { recursive: true, force: true });
});

const maybe = FILES.length > 0 ? describe : describe.skip;

maybe('real captures', () => {
  test('every capture file is listed with its expected outcome', () => {
    expect(FILES.sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  describe.each(FILES)('%s', (name) => {
    test('every packet parses to TCP or a typed error (counted)', () => {
      const { capture } = results.get(name)!;
      const counts: Record<string, number> = {};
      for (const p of capture.packets) {
        const f = parseFrame(p.linkType, p.data);
        const key = f.ok ? 'tcp' : `${f.error.layer}:${f.error.kind}`;
        counts[key] = (counts[key] ?? 0) + 1;
        if (f.ok) expect(parseTcpOptions(p.data, f.value.tcp.optionsStart, f.value.tcp.optionsEnd).ok).toBe(true);
      }
      expect(counts).toEqual(EXPECTED[name]);
    });

    test('agrees with tshark on every frame', () => {
      const { capture, original } = results.get(name)!;
      if (original === null) return; // tshark not installed
      expect(original.rows).toHaveLength(capture.packets.length);
      capture.packets.forEach((p, i) => {
        const t = original.rows[i]!;
        expect(p.data.length).toBe(Number(t['frame.cap_len']));
        expect(p.originalLength).toBe(Number(t['frame.len']));
        expect(p.timestampNs / 1000n).toBe(BigInt(t['frame.time_epoch'].replace('.', '')) / 1000n);
        const f = parseFrame(p.linkType, p.data);
        if (f.ok) {
          const { link, ip, tcp } = f.value;
          const at = `frame ${i + 1}`;
          expect([at, tcp.srcPort, tcp.dstPort, tcp.seq, tcp.ack]).toEqual([at, ...['tcp.srcport', 'tcp.dstport', 'tcp.seq_raw', 'tcp.ack_raw'].map((k) => Number(t[k as keyof Row]))]);
          const flags = parseInt(t['tcp.flags'], 16);
          expect([at, tcp.flags, tcp.reservedBits]).toEqual([at, flags & 0xff, flags >> 8]);
          expect([at, tcp.headerLength, tcp.window, tcp.payloadLength]).toEqual([at, Number(t['tcp.hdr_len']), Number(t['tcp.window_size_value']), Number(t['tcp.len'])]);
          expect(ip.version === 4 ? ip.totalLength : ip.totalLength - 40).toBe(Number(ip.version === 4 ? t['ip.len'] : t['ipv6.plen']));
          expect(link.vlanTags.length > 0 ? String(link.vlanTags[0]! & 0xfff) : '').toBe(t['vlan.id']);
          expect([at, verifyTcpChecksum(ip, p.data, tcp.offset, tcp.length)]).toEqual([at, t['tcp.checksum.status'] === '1']);
          return;
        }
        // Each error must be justified by what tshark sees.
        switch (f.error.kind) {
          case 'truncated': {
            const ipOffset = unwrap(parseLink(p.linkType, p.data)).ipOffset;
            expect(ipOffset + Number(t['ip.len'] || 40 + Number(t['ipv6.plen']))).toBeGreaterThan(p.data.length);
            break;
          }
          case 'fragment':
            expect(t['ip.flags.mf'] === '1' || Number(t['ip.frag_offset']) > 0).toBe(true);
            break;
          case 'not-tcp':
            expect(t['frame.protocols']).toMatch(/:ipv?6?:/);
            expect(t['tcp.srcport']).toBe('');
            break;
          case 'not-ip':
            expect(t['frame.protocols']).not.toMatch(/^eth:ethertype:(vlan:ethertype:)*ipv?6?:/);
            break;
          default:
            throw new Error(`unexpected ${f.error.kind} in ${name} frame ${i + 1}`);
        }
      });
    });

    test('writePcap(readCapture(x)) reads back identically and tshark/tcpdump see the same frames', () => {
      const { capture, original, rewritten, dumpOriginal, dumpRewritten } = results.get(name)!;
      const out = writePcap(capture.packets[0]!.linkType, capture.packets);
      const again = unwrap(readCapture(out));
      expect(again.packets.map((p) => [p.timestampNs / 1000n, p.originalLength, [...p.data]])).toEqual(
        capture.packets.map((p) => [p.timestampNs / 1000n, p.originalLength, [...p.data]]),
      );
      if (original !== null && rewritten !== null) {
        expect(rewritten.stderr).not.toMatch(/error|corrupt|damaged|cut short/i);
        expect(rewritten.text).toBe(original.text);
      }
      if (dumpOriginal !== null && dumpRewritten !== null) expect(dumpRewritten).toBe(dumpOriginal);
    });
  });
});
