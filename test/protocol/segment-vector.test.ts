// Test vector for CG1 segment protection (docs/PROTOCOL.md section 5): a fixed segment, fixed
// keys and offsets, the exact protected packet bytes. Both backends must produce it and undo it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { getBackend, backendNames } from '../../common/crypto';
import { DEFAULT_OPTION_CONFIG } from '../../common/protocol/options';
import { directionKeys, protectSegment, unprotectSegment } from '../../common/protocol/segment';
import { parseIp } from '../../common/wire/ip';
import { parseTcp } from '../../common/wire/tcp';

interface Vector {
  description: string;
  encKey: string;
  macKey: string;
  offset: number;
  payloadOffset: number;
  plainPacket: string;
  protectedPacket: string;
}

const vectors = JSON.parse(readFileSync(join(__dirname, '..', 'vectors', 'segment.json'), 'utf8')) as { vectors: Vector[] };
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));

function views(packet: Uint8Array) {
  const ip = parseIp(packet);
  if (!ip.ok) throw new Error(ip.error.detail);
  const tcp = parseTcp(packet, ip.value.payloadOffset, ip.value.payloadLength);
  if (!tcp.ok) throw new Error(tcp.error.detail);
  return { ip: ip.value, tcp: tcp.value };
}

describe.each(backendNames)('CG1 segment vectors, %s backend', (name) => {
  const backend = getBackend(name);
  test.each(vectors.vectors.map((v) => [v.description, v] as const))('%s', (_d, v) => {
    const keys = directionKeys(backend, hex(v.encKey), hex(v.macKey));
    const plain = hex(v.plainPacket);
    const { ip, tcp } = views(plain);
    const out = protectSegment(keys, DEFAULT_OPTION_CONFIG, { packet: plain, ip, tcp, offset: v.offset, payloadOffset: v.payloadOffset, stripPayload: false });
    if (!out.ok) throw new Error(out.error);
    expect(Buffer.from(out.value).toString('hex')).toBe(v.protectedPacket);
    const back = views(out.value);
    const undone = unprotectSegment(keys, DEFAULT_OPTION_CONFIG, out.value, back.ip, back.tcp, v.offset, v.payloadOffset);
    if (!undone.ok) throw new Error(undone.error);
    expect(Buffer.from(undone.value).toString('hex')).toBe(v.plainPacket);
  });
});
