import { captureRecords, detectCaptureFormat, readCapture } from '../../common/pcap/reader';
import { writePcap } from '../../common/pcap/writer';
import { LINKTYPE } from '../../common/wire/link';
import { ETH_IPV4_SYN, IPV4_ECN_SYN, IPV6_HBH_ATOMIC_FRAGMENT, hex } from '../wire/fixtures';
import { errorOf, unwrap } from '../wire/helpers';
import { block, classic, epb, idb, option, shb, u32 } from './builders';

describe('classic pcap', () => {
  test.each([
    ['little-endian microseconds', 0xa1b2c3d4, true, 123456000n],
    ['big-endian microseconds', 0xa1b2c3d4, false, 123456000n],
    ['little-endian nanoseconds', 0xa1b23c4d, true, 123456n],
    ['big-endian nanoseconds', 0xa1b23c4d, false, 123456n],
  ])('%s', (_name, magic, le, fracNs) => {
    const bytes = classic(magic, le, LINKTYPE.ETHERNET, [[1700000000, 123456, ETH_IPV4_SYN], [1700000001, 0, ETH_IPV4_SYN.subarray(0, 54), 78]]);
    expect(detectCaptureFormat(bytes)).toBe('pcap');
    const cap = unwrap(readCapture(bytes));
    expect(cap.format).toBe('pcap');
    expect(cap.packets).toHaveLength(2);
    const [a, b] = cap.packets;
    expect(a).toMatchObject({ linkType: 1, originalLength: 78, interfaceId: 0 });
    expect(a!.data).toEqual(ETH_IPV4_SYN);
    expect(a!.timestampNs).toBe(1700000000_000000000n + fracNs);
    expect(a!.timestampMs).toBeCloseTo(1700000000000 + Number(fracNs) / 1e6, 3);
    expect(b!.data).toHaveLength(54);
    expect(b!.originalLength).toBe(78);
    expect(a!.data.buffer).toBe(bytes.buffer); // a view, not a copy
  });

  test('modified (Kuznetzov) pcap records carry 8 extra header bytes', () => {
    const bytes = classic(0xa1b2cd34, true, LINKTYPE.RAW, [[5, 6, IPV4_ECN_SYN]], 8);
    const cap = unwrap(readCapture(bytes));
    expect(cap.packets[0]!.data).toEqual(IPV4_ECN_SYN);
    expect(cap.packets[0]!.timestampNs).toBe(5_000006000n);
  });

  test('FCS bits above the 16-bit link type are ignored', () => {
    const bytes = classic(0xa1b2c3d4, true, 0x14000000 | LINKTYPE.ETHERNET, [[0, 0, ETH_IPV4_SYN]]);
    expect(unwrap(readCapture(bytes)).packets[0]!.linkType).toBe(1);
  });

  test('a truncated final record is an error with its index and offset; earlier packets stream out', () => {
    const whole = classic(0xa1b2c3d4, true, 1, [[0, 0, ETH_IPV4_SYN], [1, 0, ETH_IPV4_SYN]]);
    const cut = whole.subarray(0, whole.length - 10);
    expect(errorOf(readCapture(cut))).toMatchObject({ layer: 'pcap', kind: 'truncated', index: 1, offset: 24 + 16 + 78 });
    const results = [...captureRecords(cut)];
    expect(results.map((r) => r.ok)).toEqual([true, false]);
    expect(errorOf(readCapture(whole.subarray(0, 24 + 16 + 78 + 5)))).toMatchObject({ kind: 'truncated', index: 1 });
    expect(unwrap(readCapture(whole.subarray(0, 24))).packets).toEqual([]);
  });

  test('malformed files: bad magic, short header, bad version, absurd record length', () => {
    expect(errorOf(readCapture(hex('00112233 44556677')))).toMatchObject({ layer: 'pcap', kind: 'bad-magic' });
    expect(errorOf(readCapture(hex('d4c3')))).toMatchObject({ kind: 'truncated' });
    expect(errorOf(readCapture(hex('d4c3b2a1 0200')))).toMatchObject({ kind: 'truncated' });
    const v1 = classic(0xa1b2c3d4, true, 1, []);
    v1[4] = 1;
    expect(errorOf(readCapture(v1))).toMatchObject({ kind: 'bad-version' });
    const huge = classic(0xa1b2c3d4, true, 1, [[0, 0, ETH_IPV4_SYN]]);
    huge.set([0, 0, 0, 0x10], 24 + 8);
    expect(errorOf(readCapture(huge))).toMatchObject({ kind: 'bad-length', index: 0, offset: 24 });
  });
});

describe('pcapng', () => {
  test('two sections of opposite byte order, interfaces with different link types and resolutions, SPB, unknown blocks', () => {
    const bytes = new Uint8Array([
      ...shb(true),
      ...idb(LINKTYPE.ETHERNET, true), // default resolution: microseconds
      ...idb(LINKTYPE.RAW, true, option(9, [9], true)), // nanoseconds
      ...block(0x0bad, [1, 2, 3], true), // unknown block: skipped
      ...epb(0, 1700000000_123456n, ETH_IPV4_SYN, true),
      ...epb(1, 1700000000_123456789n, IPV4_ECN_SYN, true, 100),
      ...block(3, [...u32(IPV4_ECN_SYN.length, true), ...ETH_IPV4_SYN.subarray(0, IPV4_ECN_SYN.length)], true), // SPB on interface 0
      ...shb(false),
      // 2^-20 s units, plus a 10 s offset
      ...idb(LINKTYPE.IPV6, false, [...option(9, [0x80 | 20], false), ...option(14, [0, 0, 0, 0, 0, 0, 0, 10], false)]),
      ...block(5, [0, 0, 0, 0], false), // interface statistics: skipped
      ...epb(0, (1n << 20n) * 3n + (1n << 19n), IPV6_HBH_ATOMIC_FRAGMENT, false),
    ]);
    expect(detectCaptureFormat(bytes)).toBe('pcapng');
    const cap = unwrap(readCapture(bytes));
    expect(cap.format).toBe('pcapng');
    expect(cap.packets.map((p) => [p.linkType, p.interfaceId, p.timestampNs, p.data.length, p.originalLength])).toEqual([
      [1, 0, 1700000000_123456000n, ETH_IPV4_SYN.length, ETH_IPV4_SYN.length],
      [101, 1, 1700000000_123456789n, IPV4_ECN_SYN.length, 100],
      [1, 0, 0n, IPV4_ECN_SYN.length, IPV4_ECN_SYN.length],
      [229, 0, 13_500000000n, IPV6_HBH_ATOMIC_FRAGMENT.length, IPV6_HBH_ATOMIC_FRAGMENT.length],
    ]);
    expect(cap.packets[3]!.data).toEqual(IPV6_HBH_ATOMIC_FRAGMENT);
    expect(cap.packets[1]!.timestampMs).toBeCloseTo(1700000000123.456, 3); // truncated to microseconds
  });

  test('malformed blocks are typed errors with index and offset', () => {
    const good = [...shb(true), ...idb(1, true)];
    const e1 = epb(0, 0n, ETH_IPV4_SYN, true);
    // trailing length disagrees
    const badTrailer = [...good, ...e1.slice(0, -4), 0, 0, 0, 0];
    expect(errorOf(readCapture(new Uint8Array(badTrailer)))).toMatchObject({ layer: 'pcap', kind: 'bad-record', index: 0, offset: good.length });
    // packet on an interface never declared
    expect(errorOf(readCapture(new Uint8Array([...good, ...epb(3, 0n, ETH_IPV4_SYN, true)])))).toMatchObject({ kind: 'bad-record' });
    // truncated final block, after one good packet
    const twoPackets = [...good, ...e1, ...e1];
    const cut = new Uint8Array(twoPackets.slice(0, -7));
    expect(errorOf(readCapture(cut))).toMatchObject({ kind: 'truncated', index: 1, offset: good.length + e1.length });
    expect([...captureRecords(cut)].map((r) => r.ok)).toEqual([true, false]);
    // block length not a multiple of 4 / below the minimum
    const odd = [...good, ...e1];
    odd.splice(good.length + 4, 4, ...u32(13, true));
    expect(errorOf(readCapture(new Uint8Array(odd)))).toMatchObject({ kind: 'bad-length' });
    // caplen overrunning its block
    const over = [...good, ...e1];
    over.splice(good.length + 20, 4, ...u32(200, true));
    expect(errorOf(readCapture(new Uint8Array(over)))).toMatchObject({ kind: 'bad-length' });
    // bad byte-order magic, unsupported major version
    const bom = shb(true);
    bom[8] = 0;
    expect(errorOf(readCapture(new Uint8Array(bom)))).toMatchObject({ kind: 'bad-magic' });
    const v2 = shb(true);
    v2[12] = 2;
    expect(errorOf(readCapture(new Uint8Array(v2)))).toMatchObject({ kind: 'bad-version' });
    // an interface option overrunning its block
    expect(errorOf(readCapture(new Uint8Array([...shb(true), ...block(1, [1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 200, 0], true)])))).toMatchObject({ kind: 'bad-record' });
  });
});

describe('writePcap', () => {
  test('header, record layout, snaplen cut, timestamps from ns or ms', () => {
    const big = new Uint8Array(262144 + 10);
    const out = writePcap(LINKTYPE.ETHERNET, [
      { data: ETH_IPV4_SYN, timestampNs: 1700000000_123456789n },
      { data: IPV4_ECN_SYN, timestampMs: 1500.25, originalLength: 99 },
      { data: big },
    ]);
    expect(out.subarray(0, 24)).toEqual(hex('d4c3b2a1 0200 0400 00000000 00000000 00000400 01000000'));
    const cap = unwrap(readCapture(out));
    expect(cap.packets.map((p) => [p.timestampNs, p.data.length, p.originalLength])).toEqual([
      [1700000000_123456000n, 78, 78],
      [1_500250000n, 60, 99],
      [0n, 262144, 262154],
    ]);
    expect(cap.packets[0]!.data).toEqual(ETH_IPV4_SYN);
  });

  test('rejects timestamps and link types a pcap file cannot hold', () => {
    expect(() => writePcap(1, [{ data: new Uint8Array(1), timestampNs: -1000n }])).toThrow(RangeError);
    expect(() => writePcap(1, [{ data: new Uint8Array(1), timestampNs: 2n ** 32n * 1_000_000_000n }])).toThrow(RangeError);
    expect(() => writePcap(70000, [])).toThrow(RangeError);
  });
});
