import { ETHERTYPE, LINKTYPE, parseLink } from '../../common/wire/link';
import {
  ETH_ARP,
  ETH_IPV4_SYN,
  ETH_IPV6_SYN,
  IPV4_ECN_SYN,
  IPV6_HBH_FRAGMENT,
  SLL2_IPV6_ACK,
  SLL_IPV4_SYNACK,
  VLAN_IPV4_SYN,
  hex,
  qinq,
} from './fixtures';
import { errorOf, unwrap } from './helpers';

const linkOf = (linkType: number, bytes: Uint8Array) => unwrap(parseLink(linkType, bytes));

describe('parseLink', () => {
  test('Ethernet IPv4 and IPv6', () => {
    expect(linkOf(LINKTYPE.ETHERNET, ETH_IPV4_SYN)).toEqual({ ipOffset: 14, etherType: ETHERTYPE.IPV4, vlanTags: [] });
    expect(linkOf(LINKTYPE.ETHERNET, ETH_IPV6_SYN)).toEqual({ ipOffset: 14, etherType: ETHERTYPE.IPV6, vlanTags: [] });
  });

  test('802.1Q tag is walked and its TCI kept', () => {
    expect(linkOf(LINKTYPE.ETHERNET, VLAN_IPV4_SYN)).toEqual({ ipOffset: 18, etherType: ETHERTYPE.IPV4, vlanTags: [0xb000] });
  });

  test('802.1ad + 802.1Q (Q-in-Q) tags, outermost first', () => {
    const l = linkOf(LINKTYPE.ETHERNET, qinq(IPV4_ECN_SYN));
    expect(l.ipOffset).toBe(22);
    expect(l.vlanTags.map((t) => t & 0xfff)).toEqual([100, 200]);
  });

  test('any number of tags, including the legacy 0x9100 TPID', () => {
    const tags = '9100 0001 8100 0002 88a8 0003 8100 0004';
    const l = linkOf(LINKTYPE.ETHERNET, new Uint8Array([...hex(`020000000001 020000000002 ${tags} 86dd`), ...IPV6_HBH_FRAGMENT]));
    expect(l).toEqual({ ipOffset: 30, etherType: ETHERTYPE.IPV6, vlanTags: [1, 2, 3, 4] });
  });

  test('ARP is not-ip; a truncated tag is truncated', () => {
    expect(errorOf(parseLink(LINKTYPE.ETHERNET, ETH_ARP))).toMatchObject({ layer: 'link', kind: 'not-ip', detail: 'ethertype 0x0806' });
    expect(errorOf(parseLink(LINKTYPE.ETHERNET, VLAN_IPV4_SYN.subarray(0, 16)))).toMatchObject({ layer: 'link', kind: 'truncated' });
    expect(errorOf(parseLink(LINKTYPE.ETHERNET, ETH_IPV4_SYN.subarray(0, 13)))).toMatchObject({ kind: 'truncated' });
  });

  test('Linux cooked v1 and v2', () => {
    expect(linkOf(LINKTYPE.LINUX_SLL, SLL_IPV4_SYNACK)).toEqual({ ipOffset: 16, etherType: ETHERTYPE.IPV4, vlanTags: [] });
    expect(linkOf(LINKTYPE.LINUX_SLL2, SLL2_IPV6_ACK)).toEqual({ ipOffset: 20, etherType: ETHERTYPE.IPV6, vlanTags: [] });
    const arpSll2 = SLL2_IPV6_ACK.slice();
    arpSll2[0] = 0x08;
    arpSll2[1] = 0x06;
    expect(errorOf(parseLink(LINKTYPE.LINUX_SLL2, arpSll2))).toMatchObject({ kind: 'not-ip' });
    expect(errorOf(parseLink(LINKTYPE.LINUX_SLL, SLL_IPV4_SYNACK.subarray(0, 15)))).toMatchObject({ kind: 'truncated' });
  });

  test('raw links take the version from the first nibble; DLT 12 and 14 are aliases', () => {
    for (const lt of [LINKTYPE.RAW, LINKTYPE.RAW_DLT12, LINKTYPE.RAW_DLT14]) {
      expect(linkOf(lt, IPV4_ECN_SYN)).toEqual({ ipOffset: 0, etherType: ETHERTYPE.IPV4, vlanTags: [] });
      expect(linkOf(lt, IPV6_HBH_FRAGMENT)).toEqual({ ipOffset: 0, etherType: ETHERTYPE.IPV6, vlanTags: [] });
    }
    expect(errorOf(parseLink(LINKTYPE.RAW, hex('5000')))).toMatchObject({ kind: 'not-ip' });
    expect(errorOf(parseLink(LINKTYPE.RAW, new Uint8Array(0)))).toMatchObject({ kind: 'truncated' });
    expect(linkOf(LINKTYPE.IPV4, IPV4_ECN_SYN).etherType).toBe(ETHERTYPE.IPV4);
    expect(linkOf(LINKTYPE.IPV6, IPV6_HBH_FRAGMENT).etherType).toBe(ETHERTYPE.IPV6);
  });

  test('BSD loopback in either byte order', () => {
    expect(linkOf(LINKTYPE.NULL, new Uint8Array([2, 0, 0, 0, ...IPV4_ECN_SYN])).ipOffset).toBe(4);
    expect(linkOf(LINKTYPE.NULL, new Uint8Array([0, 0, 0, 30, ...IPV6_HBH_FRAGMENT])).etherType).toBe(ETHERTYPE.IPV6);
    expect(linkOf(LINKTYPE.LOOP, new Uint8Array([0, 0, 0, 2, ...IPV4_ECN_SYN])).etherType).toBe(ETHERTYPE.IPV4);
    expect(errorOf(parseLink(LINKTYPE.NULL, new Uint8Array([7, 0, 0, 0, 0x45])))).toMatchObject({ kind: 'not-ip' });
  });

  test('unknown link types are unsupported', () => {
    expect(errorOf(parseLink(105, ETH_IPV4_SYN))).toMatchObject({ layer: 'link', kind: 'unsupported' });
  });
});
