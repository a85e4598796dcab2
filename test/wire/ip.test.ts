import { IP_PROTOCOL, parseIp } from '../../common/wire/ip';
import {
  ETH_IPV4_FIRST_FRAGMENT,
  ETH_IPV4_SECOND_FRAGMENT,
  ETH_IPV4_SYN,
  ETH_IPV6_SYN,
  IPV4_ECN_SYN,
  IPV6_HBH_ATOMIC_FRAGMENT,
  IPV6_HBH_FRAGMENT,
  hex,
} from './fixtures';
import { errorOf, unwrap } from './helpers';

const SRC6 = hex('20010db8000000000000000000000001');
const DST6 = hex('20010db8000000000000000000000002');

/** A bare IPv6 packet: fixed header with `first` as next header, then `rest` as the payload. */
function ipv6(first: number, rest: Uint8Array): Uint8Array {
  const out = new Uint8Array(40 + rest.length);
  out.set([0x60, 0, 0, 0, rest.length >> 8, rest.length & 0xff, first, 64]);
  out.set(SRC6, 8);
  out.set(DST6, 24);
  out.set(rest, 40);
  return out;
}

/** A generic extension header of 8 * (1 + units) bytes. */
function ext(next: number, units = 0, fill = 0): Uint8Array {
  const h = new Uint8Array(8 * (1 + units)).fill(fill);
  h[0] = next;
  h[1] = units;
  return h;
}

const TCP20 = hex('c350 01bb 0000 0007 0000 0009 5010 03e8 0000 0000');

function cat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(parts.flatMap((p) => [...p]));
}

describe('parseIp: IPv4', () => {
  test('real SYN: every field, FCS trailer is not part of the packet', () => {
    const ip = unwrap(parseIp(ETH_IPV4_SYN, 14));
    expect(ip).toMatchObject({
      version: 4,
      offset: 14,
      headerLength: 20,
      totalLength: 60,
      protocol: IP_PROTOCOL.TCP,
      tos: 0,
      ttl: 64,
      id: 0xa912,
      dontFragment: true,
      flowLabel: 0,
      isFragment: false,
      fragmentOffset: 0,
      moreFragments: false,
      srcOffset: 26,
      dstOffset: 30,
      pseudoDstOffset: 30,
      hasAuthHeader: false,
    });
    expect(ip.payloadOffset).toBe(34);
    expect(ip.payloadLength).toBe(40);
    expect(ip.end).toBe(74);
    expect(ETH_IPV4_SYN.length - ip.end).toBe(4);
    expect([...ip.src]).toEqual([192, 168, 1, 102]);
    expect([...ip.dst]).toEqual([193, 1, 193, 64]);
    expect(ip.addressLength).toBe(4);
    expect(ip.src.buffer).toBe(ETH_IPV4_SYN.buffer); // a view, not a copy
  });

  test('ECN and DSCP come from the TOS byte', () => {
    const p = IPV4_ECN_SYN.slice();
    p[1] = (46 << 2) | 3; // EF, CE
    const ip = unwrap(parseIp(p));
    expect(ip.ecn).toBe(3);
    expect(ip.dscp).toBe(46);
    expect(ip.tos).toBe(0xbb);
  });

  test('fragments: first (MF) and second (offset 24)', () => {
    const first = unwrap(parseIp(ETH_IPV4_FIRST_FRAGMENT, 14));
    expect(first).toMatchObject({ isFragment: true, moreFragments: true, fragmentOffset: 0, protocol: 6, totalLength: 44 });
    const second = unwrap(parseIp(ETH_IPV4_SECOND_FRAGMENT, 14));
    expect(second).toMatchObject({ isFragment: true, moreFragments: false, fragmentOffset: 24, totalLength: 36, dontFragment: false });
  });

  test('validation: IHL < 5, IHL past the buffer, total length < IHL, total length past the buffer', () => {
    const p = IPV4_ECN_SYN.slice();
    p[0] = 0x44;
    expect(errorOf(parseIp(p))).toMatchObject({ layer: 'ipv4', kind: 'bad-header-length' });
    p[0] = 0x4f;
    expect(errorOf(parseIp(p.subarray(0, 40)))).toMatchObject({ layer: 'ipv4', kind: 'truncated' });
    const q = IPV4_ECN_SYN.slice();
    q[2] = 0;
    q[3] = 19;
    expect(errorOf(parseIp(q))).toMatchObject({ layer: 'ipv4', kind: 'bad-length' });
    expect(errorOf(parseIp(IPV4_ECN_SYN.subarray(0, 59)))).toMatchObject({ layer: 'ipv4', kind: 'truncated' });
    expect(errorOf(parseIp(IPV4_ECN_SYN, 0, 59))).toMatchObject({ kind: 'truncated' });
    expect(errorOf(parseIp(IPV4_ECN_SYN.subarray(0, 19)))).toMatchObject({ kind: 'truncated' });
  });

  test('IP version other than 4 or 6, and an empty buffer', () => {
    expect(errorOf(parseIp(hex('5500')))).toMatchObject({ kind: 'bad-version' });
    expect(errorOf(parseIp(new Uint8Array(0)))).toMatchObject({ kind: 'truncated' });
    expect(errorOf(parseIp(IPV4_ECN_SYN, 100))).toMatchObject({ kind: 'truncated' });
  });
});

describe('parseIp: IPv6', () => {
  test('real SYN', () => {
    const ip = unwrap(parseIp(ETH_IPV6_SYN, 14));
    expect(ip).toMatchObject({ version: 6, headerLength: 40, totalLength: 72, protocol: 6, ttl: 64, tos: 0, flowLabel: 0, isFragment: false });
    expect(ip.hopLimit).toBe(64);
    expect(ip.addressLength).toBe(16);
    expect(ip.src).toEqual(hex('2001 0470 e5bf dead 4957 2174 e82c 4887'));
    expect(ip.dst).toEqual(hex('2607 f8b0 400c 0c03 0000 0000 0000 001a'));
  });

  test('hop-by-hop + fragment header (first fragment): walked to TCP', () => {
    const ip = unwrap(parseIp(IPV6_HBH_FRAGMENT));
    expect(ip).toMatchObject({
      version: 6,
      headerLength: 56,
      totalLength: 111,
      protocol: IP_PROTOCOL.TCP,
      tos: 0x02,
      flowLabel: 0x12345,
      id: 0xdeadbeef,
      isFragment: true,
      moreFragments: true,
      fragmentOffset: 0,
    });
    expect(ip.ecn).toBe(2);
    const atomic = unwrap(parseIp(IPV6_HBH_ATOMIC_FRAGMENT));
    expect(atomic).toMatchObject({ isFragment: false, headerLength: 56, protocol: 6, id: 0xdeadbeef });
  });

  test('a later fragment stops the walk: protocol from the fragment header, payload is fragment data', () => {
    const frag = hex('0600 05a9 0000 0001'); // next TCP, offset 1448 (181 * 8), M=1
    const ip = unwrap(parseIp(ipv6(IP_PROTOCOL.FRAGMENT, cat(frag, ext(IP_PROTOCOL.DESTINATION_OPTIONS, 0, 0xff)))));
    expect(ip).toMatchObject({ isFragment: true, fragmentOffset: 1448, moreFragments: true, protocol: 6, headerLength: 48, id: 1 });
  });

  test('destination options, routing (no segments left), AH: all walked', () => {
    const ah = new Uint8Array(24); // len field 4 => (4 + 2) * 4 = 24 bytes
    ah[0] = IP_PROTOCOL.TCP;
    ah[1] = 4;
    const chain = cat(ext(IP_PROTOCOL.ROUTING), ext(IP_PROTOCOL.AH, 1), ah, TCP20);
    const ip = unwrap(parseIp(ipv6(IP_PROTOCOL.DESTINATION_OPTIONS, chain)));
    expect(ip).toMatchObject({ headerLength: 40 + 8 + 16 + 24, protocol: 6, hasAuthHeader: true, pseudoDstOffset: 24 });
  });

  test('ESP and No-Next-Header end the walk', () => {
    expect(unwrap(parseIp(ipv6(IP_PROTOCOL.HOP_BY_HOP, cat(ext(IP_PROTOCOL.ESP), hex('0000 0001 0000 0001'))))))
      .toMatchObject({ protocol: IP_PROTOCOL.ESP, headerLength: 48 });
    expect(unwrap(parseIp(ipv6(IP_PROTOCOL.NO_NEXT_HEADER, new Uint8Array(0))))).toMatchObject({ protocol: 59, headerLength: 40, totalLength: 40 });
  });

  test('segment routing header with segments left: pseudo-header uses the final segment', () => {
    const srh = new Uint8Array(8 + 32);
    srh.set([IP_PROTOCOL.TCP, 4, 4, 1, 1, 0, 0, 0]); // type 4, segments left 1, last entry 1
    srh.set(hex('20010db8 00000000 00000000 000000ff'), 8); // segment list[0]: final destination
    srh.set(DST6, 24);
    const ip = unwrap(parseIp(ipv6(IP_PROTOCOL.ROUTING, cat(srh, TCP20))));
    expect(ip.pseudoDstOffset).toBe(48);
    expect(ip.dstOffset).toBe(24);
    const rpl = srh.slice();
    rpl[2] = 3;
    expect(errorOf(parseIp(ipv6(IP_PROTOCOL.ROUTING, cat(rpl, TCP20))))).toMatchObject({ layer: 'ipv6', kind: 'unsupported' });
  });

  test('malformed chains: hop-by-hop not first, header past the payload, jumbogram, truncated', () => {
    expect(errorOf(parseIp(ipv6(IP_PROTOCOL.DESTINATION_OPTIONS, cat(ext(IP_PROTOCOL.HOP_BY_HOP), ext(6), TCP20)))))
      .toMatchObject({ layer: 'ipv6', kind: 'bad-extension' });
    expect(errorOf(parseIp(ipv6(IP_PROTOCOL.HOP_BY_HOP, ext(6, 3).subarray(0, 16))))).toMatchObject({ kind: 'bad-extension' });
    expect(errorOf(parseIp(ipv6(IP_PROTOCOL.FRAGMENT, hex('0600 0000'))))).toMatchObject({ kind: 'bad-extension' });
    const jumbo = ipv6(IP_PROTOCOL.HOP_BY_HOP, new Uint8Array(0));
    expect(errorOf(parseIp(jumbo))).toMatchObject({ kind: 'unsupported' });
    expect(errorOf(parseIp(ETH_IPV6_SYN, 14, 50))).toMatchObject({ layer: 'ipv6', kind: 'truncated' });
    expect(errorOf(parseIp(ETH_IPV6_SYN.subarray(0, 30), 14))).toMatchObject({ layer: 'ipv6', kind: 'truncated' });
  });
});
