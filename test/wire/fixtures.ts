// Real packets as static bytes. Captured ones name their source; hand-built ones were checked
// with tshark (all checksums "Good") when they were written.

export function hex(s: string): Uint8Array {
  const clean = s.replace(/[\s:]/g, '');
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * zeek tcp_options.pcap frame 1: Ethernet + IPv4 + TCP SYN 192.168.1.102:36861 -> 193.1.193.64:80,
 * seq 3750886907, win 5840, options [mss 1460, sackOK, TS val 4294923497 ecr 0, nop, wscale 6],
 * followed by a 4-byte Ethernet FCS that is not part of the IP packet.
 */
export const ETH_IPV4_SYN = hex(`
  0019 e3e7 5d23 000b db63 58a6 0800 4500
  003c a912 4000 4006 4d59 c0a8 0166 c101
  c140 8ffd 0050 df91 fdfb 0000 0000 a002
  16d0 2a1c 0000 0204 05b4 0402 080a ffff
  54e9 0000 0000 0103 0306 6199 607c`);

/**
 * zeek http-vlan-0.pcap frame 1: 802.1Q tag (TCI 0xb000: PCP 5, VID 0) + IPv4 + TCP SYN
 * 141.142.228.5:59856 -> 192.150.187.43:80, options [mss 1460, nop, wscale 4, nop, nop, TS, sackOK, eol].
 */
export const VLAN_IPV4_SYN = hex(`
  0010 db88 d2ef c8bc c896 d2a0 8100 b000
  0800 4500 0040 df8e 4000 4006 6dd3 8d8e
  e405 c096 bb2b e9d0 0050 fe21 323a 0000
  0000 b002 ffff 3bc0 0000 0204 05b4 0103
  0304 0101 080a 164a dd20 0000 0000 0402
  0000`);

/**
 * zeek communityid_ipv6.pcap frame 1: Ethernet + IPv6 + TCP SYN
 * [2001:470:e5bf:dead:4957:2174:e82c:4887]:63943 -> [2607:f8b0:400c:c03::1a]:25, seq 60852272,
 * options [mss 1420, nop, wscale 8, nop, nop, sackOK].
 */
export const ETH_IPV6_SYN = hex(`
  0005 73a0 07d1 68a3 c4f9 49f6 86dd 6000
  0000 0020 0640 2001 0470 e5bf dead 4957
  2174 e82c 4887 2607 f8b0 400c 0c03 0000
  0000 0000 001a f9c7 0019 03a0 8830 0000
  0000 8002 2000 da47 0000 0204 058c 0103
  0308 0101 0402`);

/**
 * zeek ipv4_fragmented-syn.pcap frame 1: the first fragment (MF set) of a SYN whose 40-byte
 * TCP header does not fit in it (only 24 TCP bytes here).
 */
export const ETH_IPV4_FIRST_FRAGMENT = hex(`
  1e0b 8b14 f6f9 98ee cbbd 07fe 0800 4500
  002c 0001 2000 4006 8eba c0a8 0164 0a00
  0005 3039 0050 0000 03e8 0000 0000 a002
  2000 c573 0000 0204 05b4`);

/** Frame 2 of the same capture: the second fragment (offset 24, no more fragments). */
export const ETH_IPV4_SECOND_FRAGMENT = hex(`
  1e0b 8b14 f6f9 98ee cbbd 07fe 0800 4500
  0024 0001 0003 4006 aebf c0a8 0164 0a00
  0005 0402 080a 00bc 614e 0000 0000 0103
  0307`);

/**
 * Hand-built bare IPv4 (LINKTYPE_IPV4) ECN-setup SYN: flags CWR|ECE|SYN (0xc2),
 * 10.0.0.1:40000 -> 10.0.0.2:80, seq 0xfffffff0, win 64240,
 * options [mss 1460, sackOK, TS val 123456 ecr 0, nop, wscale 7].
 */
export const IPV4_ECN_SYN = hex(`
  4500 003c 0001 4000 4006 26b9 0a00 0001
  0a00 0002 9c40 0050 ffff fff0 0000 0000
  a0c2 faf0 b989 0000 0204 05b4 0402 080a
  0001 e240 0000 0000 0103 0307`);

/**
 * Hand-built Linux cooked v1 (LINKTYPE_LINUX_SLL): packet type 0 (to us), ARPHRD_ETHER,
 * 6-byte address, protocol 0x0800; IPv4 SYN-ACK with ECE 10.0.0.2:80 -> 10.0.0.1:40000,
 * seq 0x12345678, ack 0xfffffff1.
 */
export const SLL_IPV4_SYNACK = hex(`
  0000 0001 0006 0200 0000 000a 0000 0800
  4500 003c 0000 4000 4006 26ba 0a00 0002
  0a00 0001 0050 9c40 1234 5678 ffff fff1
  a052 fe88 2126 0000 0204 05b4 0402 080a
  00ab 0000 0001 0e24 0103 0307`);

/**
 * Hand-built Linux cooked v2 (LINKTYPE_LINUX_SLL2): protocol 0x86dd, ifindex 2, ARPHRD_ETHER,
 * packet type 4 (outgoing); IPv6 ACK [2001:db8::1]:50000 -> [2001:db8::2]:443, hop limit 255.
 */
export const SLL2_IPV6_ACK = hex(`
  86dd 0000 0000 0002 0001 0406 0200 0000
  000b 0000 6000 0000 0014 06ff 2001 0db8
  0000 0000 0000 0000 0000 0001 2001 0db8
  0000 0000 0000 0000 0000 0002 c350 01bb
  0000 0007 0000 0009 5010 03e8 8b5c 0000`);

/**
 * Hand-built bare IPv6 (LINKTYPE_IPV6), traffic class 0x02 (ECT(0)), flow label 0x12345:
 * hop-by-hop (PadN) -> fragment (offset 0, M=1, id 0xdeadbeef) -> TCP PSH|ACK
 * [2001:db8::1]:443 -> [2001:db8::2]:50000, options [nop, nop, TS 1 2], payload
 * "hello, fragmented world". A first fragment: the TCP header is all here.
 */
export const IPV6_HBH_FRAGMENT = hex(`
  6021 2345 0047 0040 2001 0db8 0000 0000
  0000 0000 0000 0001 2001 0db8 0000 0000
  0000 0000 0000 0002 2c00 0104 0000 0000
  0600 0001 dead beef 01bb c350 0000 03e8
  0000 07d0 8018 01f5 7e6a 0000 0101 080a
  0000 0001 0000 0002 6865 6c6c 6f2c 2066
  7261 676d 656e 7465 6420 776f 726c 64`);

/** The same packet as an atomic fragment (offset 0, M=0): a complete TCP segment. */
export const IPV6_HBH_ATOMIC_FRAGMENT = hex(`
  6021 2345 0047 0040 2001 0db8 0000 0000
  0000 0000 0000 0001 2001 0db8 0000 0000
  0000 0000 0000 0002 2c00 0104 0000 0000
  0600 0000 dead beef 01bb c350 0000 03e8
  0000 07d0 8018 01f5 7e6a 0000 0101 080a
  0000 0001 0000 0002 6865 6c6c 6f2c 2066
  7261 676d 656e 7465 6420 776f 726c 64`);

/** An ARP request (who-has 10.0.0.2 tell 10.0.0.1), padded to 60 bytes. */
export const ETH_ARP = hex(`
  ffff ffff ffff 0200 0000 000a 0806 0001
  0800 0604 0001 0200 0000 000a 0a00 0001
  0000 0000 0000 0a00 0002 0000 0000 0000
  0000 0000 0000 0000 0000 0000`);

/** Ethernet header + 802.1ad outer tag (VID 100) + 802.1Q inner tag (VID 200), then an IP packet. */
export function qinq(ipPacket: Uint8Array): Uint8Array {
  return new Uint8Array([...hex('0200 0000 000b 0200 0000 000a 88a8 0064 8100 00c8 0800'), ...ipPacket]);
}
