import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultBackend } from '../../common/crypto';
import { systemRandom } from '../../common/crypto/random';
import { parseEndpoint } from '../../common/engine/endpoints';
import { readCapture } from '../../common/pcap';
import { writePcap } from '../../common/pcap/writer';
import { parseLink } from '../../common/wire/link';
import { parseIp } from '../../common/wire/ip';
import { parseTcp } from '../../common/wire/tcp';
import type { PacketToWrite } from '../../common/pcap/writer';
import { replayPipeline } from '../../pipeline/replay';
import { parseArgs } from '../args';

// `ciphergate demo --offline`: the replay pipeline on a bundled capture, for hosts where the
// namespace lab cannot run (no root, no NFQUEUE).
export const offlineUsage = `       ciphergate demo --offline [--capture FILE --protect ADDR:PORT] [--out-dir DIR]

--offline shows the whole ciphergate path on a real TCP session recorded from Linux (a 200 KiB HTTP
download, bundled in test/captures): the client's packets go through the agent, across the
wire, through the gateway to the server, keyed by an in-process KDC. It prints what each side
saw, checks that the server got every byte and that no plaintext crossed the wire, and writes
client.pcap, wire.pcap and server.pcap for tcpdump or Wireshark.`;

const BUNDLED = { capture: join(__dirname, '..', '..', '..', 'test', 'captures', 'http-v4.pcap'), protect: '10.77.0.2:8080' };

interface Seg {
  summary: string;
  payload: Uint8Array;
  tag: string | null;
}

function segments(packets: PacketToWrite[], linkType: number): Seg[] {
  const out: Seg[] = [];
  for (const p of packets) {
    const link = parseLink(linkType, p.data);
    if (!link.ok) continue;
    const ip = parseIp(p.data, link.value.ipOffset);
    if (!ip.ok) continue;
    const tcp = parseTcp(p.data, ip.value.payloadOffset, ip.value.payloadLength);
    if (!tcp.ok) continue;
    const t = tcp.value;
    const opts = Buffer.from(t.optionBytes).toString('hex');
    const at = opts.indexOf('fd104347');
    out.push({
      summary: `${t.srcPort} -> ${t.dstPort} seq=${t.seq} len=${t.payloadLength}`,
      payload: t.payload,
      tag: at >= 0 && at % 2 === 0 ? opts.slice(at + 8, at + 32) : null,
    });
  }
  return out;
}

const printable = (b: Uint8Array): string => Buffer.from(b).toString('latin1').replace(/[^\x20-\x7e]/g, '.');

export async function runOfflineDemo(argv: string[]): Promise<number> {
  {
    const args = parseArgs(argv, { values: ['capture', 'protect', 'out-dir'], booleans: ['offline'] });
    const capturePath = args.values.get('capture') ?? BUNDLED.capture;
    const endpoint = parseEndpoint(args.values.get('protect') ?? BUNDLED.protect);
    if (typeof endpoint === 'string') throw new Error(`--protect: ${endpoint}`);
    const capture = readCapture(readFileSync(capturePath));
    if (!capture.ok) throw new Error(`${capturePath}: ${capture.error.detail}`);
    const packets = capture.value.packets;
    const linkType = packets[0]?.linkType ?? 1;
    const started = process.hrtime.bigint();
    const result = replayPipeline({ packets, protect: [endpoint], backend: defaultBackend, random: systemRandom, verify: true });
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const outDir = args.values.get('out-dir') ?? mkdtempSync(join(tmpdir(), 'ciphergate-demo-'));
    for (const side of ['client', 'wire', 'server'] as const) writeFileSync(join(outDir, `${side}.pcap`), writePcap(linkType, result[side]));

    const s = result.summary;
    const v = s.verification!;
    const say = (line = ''): void => console.log(line);
    say('ciphergate demo: one real TCP session (curl fetching 200 KiB over HTTP, recorded from Linux)');
    say(`through agent -> wire -> gateway, keyed by an in-process KDC (${s.packets} packets in ${ms.toFixed(0)} ms).`);
    say();
    say('1. Keying. The agent added the encryption-request option to the SYN; the gateway held the SYN,');
    say(`   ran key delivery with the agent (${s.messages.keyDelivery} messages) and asked the KDC (${s.messages.kdc} request),`);
    say(`   then released the SYN to the server: held=${s.verdicts.gateway.hold}, released=${s.verdicts.gateway.released}.`);
    say();
    const wire = segments(result.wire, linkType).filter((x) => x.payload.length > 0);
    const server = segments(result.server, linkType).filter((x) => x.payload.length > 0);
    const client = segments(result.client, linkType).filter((x) => x.payload.length > 0);
    say('2. The first data segments, as each side saw them:');
    for (let i = 0; i < Math.min(2, wire.length); i++) {
      const w = wire[i]!;
      const plain = (server.find((x) => x.summary === w.summary) ?? client.find((x) => x.summary === w.summary))?.payload ?? new Uint8Array(0);
      say(`   ${w.summary}`);
      say(`     plaintext side: ${printable(plain.subarray(0, 60))}`);
      say(`     on the wire:    ${Buffer.from(w.payload.subarray(0, 30)).toString('hex')}  (same length, encrypted)`);
      say(`     tag option:     kind 253, ExID 0x4347, tag ${w.tag ?? 'MISSING'}`);
    }
    say();
    say('3. Checks:');
    for (const st of v.streams) say(`   ${st.direction}: ${st.bytes} bytes, delivered byte for byte: ${st.equal ? 'yes' : 'NO'}`);
    say(`   16-byte runs of plaintext found on the wire: ${v.plaintextRunsOnWire}`);
    say(`   gateway: ${s.counters.gateway['segments-unprotected'] ?? 0} segments authenticated and decrypted, ${s.counters.gateway['segments-protected'] ?? 0} encrypted;`);
    say(`   flows holding keys when the capture ended: ${s.keyedFlows.atEndOfCapture} (the FINs start a linger);`);
    say(`   after the linger timer: ${s.keyedFlows.afterTimers} (keys zeroed and discarded).`);
    say();
    say(`Captures written to ${outDir}: client.pcap wire.pcap server.pcap`);
    say(`Try: tshark -r ${join(outDir, 'wire.pcap')} -Y 'tcp.option_kind == 253' | head`);
    say();
    say(v.ok ? 'Result: OK' : 'Result: FAILED');
    return v.ok ? 0 : 1;
  }
}
