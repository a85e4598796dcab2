import fc from 'fast-check';
import {
  checksumAdjust,
  checksumAdjust32,
  checksumAdjustAt,
  internetChecksum,
  ipv4HeaderChecksum,
  onesComplementSum,
  tcpChecksum,
  tcpChecksumWithPayloadSum,
  verifyIpv4HeaderChecksum,
  verifyTcpChecksum,
  xorWordsWithSum,
} from '../../common/wire/checksum';
import { parseIp } from '../../common/wire/ip';
import { parseTcp } from '../../common/wire/tcp';
import { ETH_IPV4_SYN, ETH_IPV6_SYN, IPV4_ECN_SYN, IPV6_HBH_ATOMIC_FRAGMENT, IPV6_HBH_FRAGMENT, hex } from './fixtures';
import { unwrap } from './helpers';

/** Textbook RFC 1071: add 16-bit words with end-around carry after every addition. */
function referenceSum(b: Uint8Array, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i < end; i += 2) {
    sum += (b[i]! << 8) | (i + 1 < end ? b[i + 1]! : 0);
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  return sum;
}

function views(frame: Uint8Array, ipOffset: number) {
  const ip = unwrap(parseIp(frame, ipOffset));
  const tcp = unwrap(parseTcp(frame, ip.payloadOffset, ip.payloadLength));
  return { ip, tcp };
}

describe('known vectors', () => {
  test('RFC 1071 section 3 example', () => {
    const b = hex('0001 f203 f4f5 f6f7');
    expect(onesComplementSum(b, 0, 8)).toBe(0xddf2);
    expect(internetChecksum(b)).toBe(0x220d);
  });

  test('odd length pads the last byte with zero', () => {
    expect(onesComplementSum(hex('0102 03'), 0, 3)).toBe(0x0402);
  });

  test('IPv4 header checksums of real packets', () => {
    expect(ipv4HeaderChecksum(ETH_IPV4_SYN, 14, 20)).toBe(0x4d59);
    expect(verifyIpv4HeaderChecksum(ETH_IPV4_SYN, 14, 20)).toBe(true);
    const classic = hex('4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7');
    expect(ipv4HeaderChecksum(classic, 0, 20)).toBe(0xb861);
    classic[8] = 0x3f;
    expect(verifyIpv4HeaderChecksum(classic, 0, 20)).toBe(false);
  });

  test('TCP checksums over v4 and v6 pseudo-headers (v6 with extension headers, first fragment too)', () => {
    for (const [frame, at, sum] of [
      [ETH_IPV4_SYN, 14, 0x2a1c],
      [IPV4_ECN_SYN, 0, 0xb989],
      [ETH_IPV6_SYN, 14, 0xda47],
      [IPV6_HBH_ATOMIC_FRAGMENT, 0, 0x7e6a],
      [IPV6_HBH_FRAGMENT, 0, 0x7e6a],
    ] as const) {
      const { ip, tcp } = views(frame, at);
      expect(tcpChecksum(ip, frame, tcp.offset, tcp.length)).toBe(sum);
      expect(verifyTcpChecksum(ip, frame, tcp.offset, tcp.length)).toBe(true);
      const damaged = frame.slice();
      damaged[tcp.offset + 5]! ^= 0x10;
      expect(verifyTcpChecksum({ ...ip, bytes: damaged }, damaged, tcp.offset, tcp.length)).toBe(false);
    }
  });
});

describe('properties', () => {
  test('the wide (32-bit word) path equals the textbook sum at every alignment and length', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.nat(7), fc.nat(3), (data, pad, skip) => {
        // Place the data at an arbitrary byte offset inside a larger buffer.
        const buf = new Uint8Array(pad + data.length + 3);
        buf.set(data, pad);
        const view = buf.subarray(pad);
        const start = Math.min(skip, data.length);
        expect(onesComplementSum(view, start, data.length)).toBe(referenceSum(view, start, data.length));
      }),
      { numRuns: 500 },
    );
  });

  // Data that is all zero after the change is the one case where eqn. 3 gives 0x0000 and the full
  // sum 0xffff (both one's-complement zero); a TCP or IPv4 header can never be all zero, and
  // keeping byte 0 non-zero and unchanged here rules it out.
  test('RFC 1624 incremental update = full recomputation (16-bit, 32-bit, odd offsets)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 8, maxLength: 200 }), fc.nat(), fc.nat(0xffffffff), (raw, pos, value) => {
        const data = new Uint8Array([0x45, 0, ...raw]);
        const old = internetChecksum(data);
        const b = data.slice();
        // 16-bit word at an even offset
        const w = 2 + 2 * (pos % Math.floor((b.length - 2) / 2));
        const oldWord = (b[w]! << 8) | b[w + 1]!;
        b[w] = (value >>> 8) & 0xff;
        b[w + 1] = value & 0xff;
        expect(checksumAdjust(old, oldWord, value & 0xffff)).toBe(internetChecksum(b));
        // 16-bit value at any (possibly odd) offset
        const c = data.slice();
        const at = 1 + (pos % (c.length - 2));
        const oldValue = (c[at]! << 8) | c[at + 1]!;
        c[at] = (value >>> 8) & 0xff;
        c[at + 1] = value & 0xff;
        expect(checksumAdjustAt(old, at, oldValue, value & 0xffff)).toBe(internetChecksum(c));
        // 32-bit field at an even offset
        const d = data.slice();
        const q = 2 + 2 * (pos % Math.floor((d.length - 4) / 2));
        const oldValue32 = ((d[q]! << 24) | (d[q + 1]! << 16) | (d[q + 2]! << 8) | d[q + 3]!) >>> 0;
        d.set([value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff], q);
        expect(checksumAdjust32(old, oldValue32, value)).toBe(internetChecksum(d));
      }),
      { numRuns: 1000 },
    );
  });
});

describe('xorWordsWithSum', () => {
  // Every alignment the two regions can share, any length (odd tails included), all-ones
  // payloads up to 64 KiB (the largest sums).
  test('XORs the key into the region in place and returns the RFC 1071 sum of the result', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ maxLength: 1600 }), fc.integer({ min: 0, max: 65535 }).map((n) => new Uint8Array(n).fill(0xff))),
        fc.nat(3),
        fc.nat(3),
        fc.nat(2),
        (a, phase, outBase, keyBase) => {
          const n = a.length;
          const outBuffer = new ArrayBuffer((n + 35) & ~3);
          const keyBuffer = new ArrayBuffer((n + 35) & ~3);
          const out = new Uint8Array(outBuffer, 4 * outBase, n + 8).fill(0x5a);
          const key = new Uint8Array(keyBuffer, 4 * keyBase, n + 8);
          const outAt = phase + 1;
          const keyAt = phase + 1 + 4 * (outBase % 2);
          key.forEach((_, i) => (key[i] = (i * 151 + 7) & 0xff));
          if (n > 1600) key.fill(0); // all-ones result
          out.set(a, outAt);
          const sum = xorWordsWithSum(out, new Int32Array(outBuffer), outAt, key, new Int32Array(keyBuffer), keyAt, n);
          const want = Uint8Array.from(a, (x, i) => x ^ key[keyAt + i]!);
          expect(Buffer.from(out.subarray(outAt, outAt + n)).equals(Buffer.from(want))).toBe(true);
          expect(out[outAt - 1]).toBe(0x5a);
          expect(out[outAt + n]).toBe(0x5a);
          expect(sum % 0xffff).toBe(referenceSum(want, 0, n) % 0xffff);
          expect(sum).toBeLessThanOrEqual(0xffff);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('regions aligned differently are a programming error', () => {
    const b = new Uint8Array(16);
    expect(() => xorWordsWithSum(b, new Int32Array(b.buffer), 1, new Uint8Array(16), new Int32Array(4), 2, 4)).toThrow(RangeError);
  });

  test('with the payload sum known, the TCP checksum is the same', () => {
    const frame = ETH_IPV4_SYN.slice();
    const { ip, tcp } = views(frame, 14);
    const payloadSum = onesComplementSum(frame, tcp.payloadStart, tcp.payloadEnd);
    expect(tcpChecksumWithPayloadSum(ip, frame, tcp.offset, tcp.headerLength, tcp.payloadLength, payloadSum)).toBe(tcpChecksum(ip, frame, tcp.offset, tcp.length));
  });
});
