import { parseFrame } from '../../common/wire/frame';
import { LINKTYPE } from '../../common/wire/link';
import { TCP_FLAGS, hasFlag } from '../../common/wire/tcp';
import {
  ETH_ARP,
  ETH_IPV4_FIRST_FRAGMENT,
  ETH_IPV4_SECOND_FRAGMENT,
  ETH_IPV4_SYN,
  ETH_IPV6_SYN,
  IPV4_ECN_SYN,
  IPV6_HBH_ATOMIC_FRAGMENT,
  IPV6_HBH_FRAGMENT,
  SLL2_IPV6_ACK,
  SLL_IPV4_SYNACK,
  VLAN_IPV4_SYN,
  qinq,
} from './fixtures';
import { errorOf, unwrap } from './helpers';

describe('parseFrame: link -> IP -> TCP in one call', () => {
  test.each([
    ['Ethernet IPv4 SYN', LINKTYPE.ETHERNET, ETH_IPV4_SYN, 36861, 80, TCP_FLAGS.SYN],
    ['802.1Q IPv4 SYN', LINKTYPE.ETHERNET, VLAN_IPV4_SYN, 59856, 80, TCP_FLAGS.SYN],
    ['Q-in-Q IPv4 ECN SYN', LINKTYPE.ETHERNET, qinq(IPV4_ECN_SYN), 40000, 80, 0xc2],
    ['Ethernet IPv6 SYN', LINKTYPE.ETHERNET, ETH_IPV6_SYN, 63943, 25, TCP_FLAGS.SYN],
    ['SLL IPv4 SYN-ACK', LINKTYPE.LINUX_SLL, SLL_IPV4_SYNACK, 80, 40000, 0x52],
    ['SLL2 IPv6 ACK', LINKTYPE.LINUX_SLL2, SLL2_IPV6_ACK, 50000, 443, TCP_FLAGS.ACK],
    ['raw IPv4', LINKTYPE.RAW, IPV4_ECN_SYN, 40000, 80, 0xc2],
    ['IPv6 atomic fragment', LINKTYPE.IPV6, IPV6_HBH_ATOMIC_FRAGMENT, 443, 50000, 0x18],
  ])('%s', (_name, linkType, frame, srcPort, dstPort, flags) => {
    const { link, ip, tcp } = unwrap(parseFrame(linkType, frame));
    expect(ip.offset).toBe(link.ipOffset);
    expect(tcp.offset).toBe(ip.payloadOffset);
    expect(tcp.payloadEnd).toBe(ip.end);
    expect(tcp).toMatchObject({ srcPort, dstPort, flags });
    expect(hasFlag(tcp.flags, TCP_FLAGS.SYN)).toBe((flags & TCP_FLAGS.SYN) !== 0);
  });

  test('typed errors: not-ip, fragment, not-tcp, bad-version', () => {
    expect(errorOf(parseFrame(LINKTYPE.ETHERNET, ETH_ARP))).toMatchObject({ layer: 'link', kind: 'not-ip' });
    expect(errorOf(parseFrame(LINKTYPE.ETHERNET, ETH_IPV4_FIRST_FRAGMENT))).toMatchObject({ layer: 'ipv4', kind: 'fragment' });
    expect(errorOf(parseFrame(LINKTYPE.ETHERNET, ETH_IPV4_SECOND_FRAGMENT))).toMatchObject({ layer: 'ipv4', kind: 'fragment' });
    expect(errorOf(parseFrame(LINKTYPE.IPV6, IPV6_HBH_FRAGMENT))).toMatchObject({ layer: 'ipv6', kind: 'fragment' });
    const udp = ETH_IPV4_SYN.slice();
    udp[23] = 17;
    expect(errorOf(parseFrame(LINKTYPE.ETHERNET, udp))).toMatchObject({ layer: 'ipv4', kind: 'not-tcp', detail: 'protocol 17' });
    const mislabelled = ETH_IPV6_SYN.slice();
    mislabelled[12] = 0x08;
    mislabelled[13] = 0x00;
    expect(errorOf(parseFrame(LINKTYPE.ETHERNET, mislabelled))).toMatchObject({ kind: 'bad-version' });
    expect(errorOf(parseFrame(LINKTYPE.IPV4, IPV6_HBH_ATOMIC_FRAGMENT))).toMatchObject({ kind: 'bad-version' });
    expect(errorOf(parseFrame(LINKTYPE.ETHERNET, ETH_IPV4_SYN.subarray(0, 60)))).toMatchObject({ layer: 'ipv4', kind: 'truncated' });
  });
});
