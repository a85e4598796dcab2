// What crossed a link, read back from a tcpdump capture: the IP packets, and whether any 16-byte
// run of known plaintext appears in their TCP payloads (DESIGN section 3: no plaintext on the wire).
import * as fs from 'node:fs';
import { readCapture } from '../common/pcap';
import { parseIp } from '../common/wire/ip';
import { parseLink } from '../common/wire/link';
import { parseTcp } from '../common/wire/tcp';
import { plaintextRunsIn } from '../pipeline/streams';

/** The IP packets of a capture file (link headers removed; non-IP frames skipped). */
export function ipPacketsOf(file: string): Uint8Array[] {
  const cap = readCapture(fs.readFileSync(file));
  if (!cap.ok) throw new Error(`${file}: ${cap.error.detail}`);
  const out: Uint8Array[] = [];
  for (const p of cap.value.packets) {
    const link = parseLink(p.linkType, p.data);
    if (link.ok) out.push(p.data.subarray(link.value.ipOffset));
  }
  return out;
}

/** Every non-empty TCP payload in the capture, optionally only those to or from `port`. */
export function tcpPayloadsOf(file: string, port?: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const packet of ipPacketsOf(file)) {
    const ip = parseIp(packet);
    if (!ip.ok || ip.value.protocol !== 6) continue;
    const tcp = parseTcp(packet, ip.value.payloadOffset, ip.value.payloadLength);
    if (!tcp.ok || tcp.value.payloadLength === 0) continue;
    if (port !== undefined && tcp.value.srcPort !== port && tcp.value.dstPort !== port) continue;
    out.push(tcp.value.payload);
  }
  return out;
}

/** How many 16-byte runs of `plaintext` appear in the capture's TCP payloads (0: none). */
export function plaintextRunsInCapture(file: string, plaintext: Uint8Array, port?: number): number {
  return plaintextRunsIn([plaintext], tcpPayloadsOf(file, port));
}
