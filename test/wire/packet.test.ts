import fc from 'fast-check';
import { tcpChecksum, verifyIpv4HeaderChecksum, verifyTcpChecksum } from '../../common/wire/checksum';
import { parseFrame } from '../../common/wire/frame';
import { IP_PROTOCOL, parseIp } from '../../common/wire/ip';
import { LINKTYPE } from '../../common/wire/link';
import type { IpTcpRepr } from '../../common/wire/packet';
import { emitIpTcp, parseIpTcp, recomputeTcpChecksum, rewriteTcp, updateMssInPlace } from '../../common/wire/packet';
import { TCP_FLAGS, parseTcp } from '../../common/wire/tcp';
import {
  TCP_OPTION,
  emitTcpOptions,
  experimentalOption,
  findMss,
  mssOption,
  sackPermittedOption,
  timestampsOption,
  windowScaleOption,
} from '../../common/wire/tcp-options';
import { ipTcpReprArb, optionListArb } from './arbitraries';
import {
  ETH_IPV4_FIRST_FRAGMENT,
  ETH_IPV4_SYN,
  ETH_IPV6_SYN,
  IPV4_ECN_SYN,
  IPV6_HBH_ATOMIC_FRAGMENT,
  IPV6_HBH_FRAGMENT,
  SLL2_IPV6_ACK,
  hex,
} from './fixtures';
import { errorOf, unwrap } from './helpers';

const NOP = { kind: TCP_OPTION.NOP, data: new Uint8Array(0) };

const ECN_SYN_REPR: IpTcpRepr = {
  ip: { version: 4, src: hex('0a000001'), dst: hex('0a000002'), ttl: 64, tos: 0, id: 1, dontFragment: true, flowLabel: 0 },
  tcp: {
    srcPort: 40000,
    dstPort: 80,
    seq: 0xfffffff0,
    ack: 0,
    flags: TCP_FLAGS.SYN | TCP_FLAGS.ECE | TCP_FLAGS.CWR,
    window: 64240,
    urgent: 0,
    options: [mssOption(1460), sackPermittedOption(), timestampsOption(123456, 0), NOP, windowScaleOption(7)],
    payload: new Uint8Array(0),
  },
};

function frameViews(linkType: number, frame: Uint8Array) {
  return unwrap(parseFrame(linkType, frame));
}

describe('emitIpTcp / parseIpTcp', () => {
  test('emits the hand-checked ECN SYN byte for byte, and parses it back', () => {
    expect(unwrap(emitIpTcp(ECN_SYN_REPR))).toEqual(IPV4_ECN_SYN);
    expect(unwrap(parseIpTcp(IPV4_ECN_SYN))).toEqual(ECN_SYN_REPR);
  });

  test('emits an IPv6 ACK byte for byte', () => {
    const repr: IpTcpRepr = {
      ip: { version: 6, src: hex('20010db8000000000000000000000001'), dst: hex('20010db8000000000000000000000002'), ttl: 255, tos: 0, id: 0, dontFragment: false, flowLabel: 0 },
      tcp: { srcPort: 50000, dstPort: 443, seq: 7, ack: 9, flags: TCP_FLAGS.ACK, window: 1000, urgent: 0, options: [], payload: new Uint8Array(0) },
    };
    expect(unwrap(emitIpTcp(repr))).toEqual(SLL2_IPV6_ACK.subarray(20));
  });

  test('parses real packets; extension headers skipped, link padding ignored', () => {
    const v6 = unwrap(parseIpTcp(IPV6_HBH_ATOMIC_FRAGMENT));
    expect(v6.ip).toMatchObject({ version: 6, tos: 2, flowLabel: 0x12345, ttl: 64 });
    expect(new TextDecoder().decode(v6.tcp.payload)).toBe('hello, fragmented world');
    const v4 = unwrap(parseIpTcp(ETH_IPV4_SYN.subarray(14)));
    expect(v4.tcp).toMatchObject({ srcPort: 36861, seq: 3750886907, window: 5840 });
    expect(v4.tcp.options.map((o) => o.kind)).toEqual([2, 4, 8, 1, 3]);
  });

  test('errors: fragment, not TCP, bad checksums unless verification is off', () => {
    expect(errorOf(parseIpTcp(IPV6_HBH_FRAGMENT))).toMatchObject({ layer: 'ipv6', kind: 'fragment' });
    expect(errorOf(parseIpTcp(ETH_IPV4_FIRST_FRAGMENT.subarray(14)))).toMatchObject({ layer: 'ipv4', kind: 'fragment' });
    const udp = IPV4_ECN_SYN.slice();
    udp[9] = IP_PROTOCOL.UDP;
    expect(errorOf(parseIpTcp(udp))).toMatchObject({ kind: 'not-tcp' });
    const badIp = IPV4_ECN_SYN.slice();
    badIp[8] = 63;
    expect(errorOf(parseIpTcp(badIp))).toMatchObject({ layer: 'ipv4', kind: 'bad-checksum' });
    const badTcp = IPV4_ECN_SYN.slice();
    badTcp[39] = 9;
    expect(errorOf(parseIpTcp(badTcp))).toMatchObject({ layer: 'tcp', kind: 'bad-checksum' });
    expect(unwrap(parseIpTcp(badTcp, { verifyChecksums: false })).tcp.options).toHaveLength(5);
  });

  test('emit rejects wrong address lengths, more than 40 option bytes, and oversize packets', () => {
    const wrongAddr = { ...ECN_SYN_REPR, ip: { ...ECN_SYN_REPR.ip, src: new Uint8Array(16) } };
    expect(errorOf(emitIpTcp(wrongAddr))).toMatchObject({ kind: 'bad-address' });
    const tooMany = { ...ECN_SYN_REPR, tcp: { ...ECN_SYN_REPR.tcp, options: [...ECN_SYN_REPR.tcp.options, timestampsOption(1, 2), timestampsOption(3, 4), NOP] } };
    expect(errorOf(emitIpTcp(tooMany))).toMatchObject({ layer: 'tcp-options', kind: 'bad-option' });
    const huge = { ...ECN_SYN_REPR, tcp: { ...ECN_SYN_REPR.tcp, payload: new Uint8Array(65500) } };
    expect(errorOf(emitIpTcp(huge))).toMatchObject({ kind: 'bad-length' });
  });

  test('property: parse(emit(x)) = x, checksums valid', () => {
    fc.assert(
      fc.property(ipTcpReprArb, (repr) => {
        const bytes = unwrap(emitIpTcp(repr));
        expect(unwrap(parseIpTcp(bytes))).toEqual(repr);
      }),
      { numRuns: 500 },
    );
  });
});

describe('rewriteTcp', () => {
  const TAG = experimentalOption(253, 0x4347, new Uint8Array(12).fill(0xab));

  test('IPv4 in an Ethernet frame: new options and payload, IP header kept, FCS dropped', () => {
    const frame = ETH_IPV4_SYN.slice();
    const { ip, tcp } = frameViews(LINKTYPE.ETHERNET, frame);
    const options = emitTcpOptions([mssOption(1400), sackPermittedOption(), NOP, NOP, TAG]);
    const payload = new TextEncoder().encode('early data');
    const out = unwrap(rewriteTcp(frame, ip, tcp, { options, payload }));
    expect(out.length).toBe(20 + 20 + options.length + payload.length);
    const back = unwrap(parseIpTcp(out)); // verifies both checksums
    expect(back.tcp).toMatchObject({ srcPort: 36861, dstPort: 80, seq: 3750886907, flags: TCP_FLAGS.SYN, window: 5840 });
    expect(emitTcpOptions(back.tcp.options)).toEqual(options);
    expect(back.tcp.payload).toEqual(payload);
    // Header identical except total length (2..3) and checksum (10..11).
    const inHeader = frame.subarray(14, 34);
    for (let i = 0; i < 20; i++) if (i !== 2 && i !== 3 && i !== 10 && i !== 11) expect(out[i]).toBe(inHeader[i]);
  });

  test('keeps what is not changed; the same options and payload give back the same packet', () => {
    const frame = ETH_IPV4_SYN.slice();
    const { ip, tcp } = frameViews(LINKTYPE.ETHERNET, frame);
    expect(unwrap(rewriteTcp(frame, ip, tcp, {}))).toEqual(frame.subarray(14, 74));
    const v6 = frameViews(LINKTYPE.ETHERNET, ETH_IPV6_SYN);
    const onlyPayload = unwrap(rewriteTcp(ETH_IPV6_SYN, v6.ip, v6.tcp, { payload: hex('01020304') }));
    expect(onlyPayload.subarray(60, 72)).toEqual(ETH_IPV6_SYN.subarray(74, 86)); // options unchanged
    expect(unwrap(parseIpTcp(onlyPayload)).tcp.payload).toEqual(hex('01020304'));
  });

  test('IPv6 extension headers are copied byte for byte; payload length updated', () => {
    const ip = unwrap(parseIp(IPV6_HBH_ATOMIC_FRAGMENT));
    const tcp = unwrap(parseTcp(IPV6_HBH_ATOMIC_FRAGMENT, ip.payloadOffset, ip.payloadLength));
    const out = unwrap(rewriteTcp(IPV6_HBH_ATOMIC_FRAGMENT, ip, tcp, { options: emitTcpOptions([TAG]), payload: new Uint8Array(5) }));
    expect(out.subarray(0, 4)).toEqual(IPV6_HBH_ATOMIC_FRAGMENT.subarray(0, 4));
    expect(out.subarray(6, 56)).toEqual(IPV6_HBH_ATOMIC_FRAGMENT.subarray(6, 56));
    expect((out[4]! << 8) | out[5]!).toBe(16 + 20 + 16 + 5);
    expect(unwrap(parseIpTcp(out)).tcp.payload).toEqual(new Uint8Array(5));
  });

  test('pseudo-header uses a routing header final destination after the copy too', () => {
    const srh = new Uint8Array(40);
    srh.set([IP_PROTOCOL.TCP, 4, 4, 1, 1, 0, 0, 0]);
    srh.set(hex('20010db8000000000000000000000099'), 8);
    const tcpBytes = hex('c350 01bb 0000 0007 0000 0009 5018 03e8 0000 0000 6869');
    const pkt = new Uint8Array([...hex('6000 0000 003e 2b40'), ...new Uint8Array(16).fill(1), ...new Uint8Array(16).fill(2), ...srh, ...tcpBytes]);
    const ip = unwrap(parseIp(pkt));
    const tcp = unwrap(parseTcp(pkt, ip.payloadOffset, ip.payloadLength));
    recomputeTcpChecksum(pkt, ip, tcp);
    const out = unwrap(rewriteTcp(pkt, ip, tcp, { payload: hex('7a7a7a') }));
    const ip2 = unwrap(parseIp(out));
    expect(ip2.pseudoDstOffset).toBe(48);
    expect(verifyTcpChecksum(ip2, out, ip2.payloadOffset, ip2.payloadLength)).toBe(true);
    // and the checksum really depends on the final destination, not the IPv6 destination
    expect(tcpChecksum({ ...ip2, pseudoDstOffset: ip2.dstOffset }, out, ip2.payloadOffset, ip2.payloadLength)).not.toBe(
      tcpChecksum(ip2, out, ip2.payloadOffset, ip2.payloadLength),
    );
  });

  test('a bad IPv4 header checksum stays bad (incremental update)', () => {
    const frame = ETH_IPV4_SYN.slice();
    frame[14 + 10]! ^= 0xff;
    const { ip, tcp } = frameViews(LINKTYPE.ETHERNET, frame);
    const out = unwrap(rewriteTcp(frame, ip, tcp, { payload: hex('00') }));
    expect(verifyIpv4HeaderChecksum(out, 0, 20)).toBe(false);
  });

  test('errors: options over 40 or not a multiple of 4, fragments, AH, foreign views', () => {
    const frame = ETH_IPV4_SYN.slice();
    const { ip, tcp } = frameViews(LINKTYPE.ETHERNET, frame);
    expect(errorOf(rewriteTcp(frame, ip, tcp, { options: new Uint8Array(44) }))).toMatchObject({ kind: 'bad-option' });
    expect(errorOf(rewriteTcp(frame, ip, tcp, { options: new Uint8Array(6) }))).toMatchObject({ kind: 'bad-option' });
    expect(errorOf(rewriteTcp(frame, ip, tcp, { payload: new Uint8Array(65500) }))).toMatchObject({ kind: 'bad-length' });
    expect(errorOf(rewriteTcp(frame.slice(), ip, tcp, {}))).toMatchObject({ kind: 'unsupported' });
    const fip = unwrap(parseIp(IPV6_HBH_FRAGMENT));
    const ftcp = unwrap(parseTcp(IPV6_HBH_FRAGMENT, fip.payloadOffset, fip.payloadLength));
    expect(errorOf(rewriteTcp(IPV6_HBH_FRAGMENT, fip, ftcp, {}))).toMatchObject({ kind: 'fragment' });
    const ah = new Uint8Array([...hex('6000 0000 0024 3340'), ...new Uint8Array(32), ...hex('0602 0000 0000 0001 0000 0001 0000 0000'), ...hex('c350 01bb 0000 0007 0000 0009 5010 03e8 0000 0000')]);
    ah[5] = 36;
    const aip = unwrap(parseIp(ah));
    const atcp = unwrap(parseTcp(ah, aip.payloadOffset, aip.payloadLength));
    expect(errorOf(rewriteTcp(ah, aip, atcp, {}))).toMatchObject({ kind: 'unsupported' });
  });

  test('property: rewriteTcp(emit(x), y) = emit(x with y) byte for byte', () => {
    fc.assert(
      fc.property(ipTcpReprArb, optionListArb, fc.uint8Array({ maxLength: 300 }), (repr, options, payload) => {
        const pkt = unwrap(emitIpTcp(repr));
        const { ip, tcp } = frameViews(LINKTYPE.RAW, pkt);
        const rewritten = unwrap(rewriteTcp(pkt, ip, tcp, { options: emitTcpOptions(options), payload }));
        expect(rewritten).toEqual(unwrap(emitIpTcp({ ip: repr.ip, tcp: { ...repr.tcp, options, payload } })));
      }),
      { numRuns: 300 },
    );
  });
});

describe('in-place edits', () => {
  test('recomputeTcpChecksum restores a damaged checksum', () => {
    const pkt = IPV4_ECN_SYN.slice();
    const { ip, tcp } = frameViews(LINKTYPE.RAW, pkt);
    pkt[36] = 0;
    pkt[37] = 0;
    recomputeTcpChecksum(pkt, ip, tcp);
    expect(pkt).toEqual(IPV4_ECN_SYN);
  });

  test('updateMssInPlace at even and odd offsets keeps the checksum valid', () => {
    const pkt = ETH_IPV4_SYN.slice();
    const { ip, tcp } = frameViews(LINKTYPE.ETHERNET, pkt);
    expect(updateMssInPlace(pkt, tcp, 1380)).toBe(true);
    expect(findMss(pkt, tcp.optionsStart, tcp.optionsEnd)).toBe(1380);
    expect(verifyTcpChecksum(ip, pkt, tcp.offset, tcp.length)).toBe(true);
    const odd = unwrap(emitIpTcp({ ...ECN_SYN_REPR, tcp: { ...ECN_SYN_REPR.tcp, options: [NOP, mssOption(9000), NOP, NOP, NOP] } }));
    const v = frameViews(LINKTYPE.RAW, odd);
    expect(updateMssInPlace(odd, v.tcp, 1220)).toBe(true);
    expect(findMss(odd, v.tcp.optionsStart, v.tcp.optionsEnd)).toBe(1220);
    expect(verifyTcpChecksum(v.ip, odd, v.tcp.offset, v.tcp.length)).toBe(true);
    const none = unwrap(emitIpTcp({ ...ECN_SYN_REPR, tcp: { ...ECN_SYN_REPR.tcp, options: [] } }));
    const n = frameViews(LINKTYPE.RAW, none);
    const before = none.slice();
    expect(updateMssInPlace(none, n.tcp, 1000)).toBe(false);
    expect(none).toEqual(before);
  });
});
