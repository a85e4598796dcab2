import fc from 'fast-check';
import { isIPv4, isIPv6 } from 'node:net';
import { ipAddressToString, parseIpAddress } from '../../common/wire/address';
import { canonicalFlowKey, flowKey, flowKeyFromTuple, srcIsFirst } from '../../common/wire/flow-key';
import { parseIp } from '../../common/wire/ip';
import type { IpTcpRepr } from '../../common/wire/packet';
import { emitIpTcp } from '../../common/wire/packet';
import { ipTcpReprArb } from './arbitraries';
import { ETH_IPV4_SYN, ETH_IPV6_SYN, hex } from './fixtures';
import { errorOf, unwrap } from './helpers';

describe('ipAddressToString', () => {
  test.each([
    ['c0a80166', '192.168.1.102'],
    ['00000000', '0.0.0.0'],
    ['20010db8000000000000000000000001', '2001:db8::1'],
    ['00000000000000000000000000000000', '::'],
    ['00000000000000000000000000000001', '::1'],
    ['20010db8000000010000000000000000', '2001:db8:0:1::'],
    ['20010db8000000000001000000000001', '2001:db8::1:0:0:1'], // first of two equal runs
    ['20010db8000100010001000100010001', '2001:db8:1:1:1:1:1:1'],
    ['20010db800000001000100010001000a', '2001:db8:0:1:1:1:1:a'], // a single zero group is not compressed
    ['00000000000000000000ffffc0000280', '::ffff:192.0.2.128'],
    ['26070f8b0400c0c0300000000000001a', '2607:f8b:400:c0c0:3000::1a'],
  ])('%s -> %s', (h, text) => {
    expect(ipAddressToString(hex(h))).toBe(text);
    expect(unwrap(parseIpAddress(text))).toEqual(hex(h));
  });

  test('other lengths render as invalid instead of throwing', () => {
    expect(ipAddressToString(new Uint8Array(5))).toBe('<invalid address: 5 bytes>');
  });

  test('agrees with the WHATWG URL serializer (RFC 5952) for non-mapped IPv6', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.array(fc.nat(7), { maxLength: 8 }), (a, zeroed) => {
        for (const g of zeroed) a[2 * g] = a[2 * g + 1] = 0; // make zero runs common
        const text = ipAddressToString(a);
        if (text.startsWith('::ffff:') && text.includes('.')) return;
        expect(`[${text}]`).toBe(new URL(`http://[${text}]/`).hostname);
        expect(unwrap(parseIpAddress(text))).toEqual(a);
      }),
      { numRuns: 500 },
    );
  });
});

describe('parseIpAddress', () => {
  test.each(['1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.-1', '', 'a.b.c.d', ':', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7:8::', '12345::', '::1.2.3', '1.2.3.4::', 'g::1', ':1::2', '1::2:'])('rejects %j, as node does', (text) => {
    expect(errorOf(parseIpAddress(text))).toMatchObject({ kind: 'bad-address' });
    expect(isIPv4(text) || isIPv6(text)).toBe(false);
  });

  test('rejects zone ids, which node accepts: an address on the wire has no zone', () => {
    expect(isIPv6('fe80::1%eth0')).toBe(true);
    expect(errorOf(parseIpAddress('fe80::1%eth0'))).toMatchObject({ layer: 'ipv6', kind: 'bad-address' });
  });

  test.each(['::ffff:1.2.3.4', '1:2:3:4:5:6:1.2.3.4', '1::1.2.3.4', 'FE80::A', '1:2:3:4:5:6:7::'])('accepts %j like node does', (text) => {
    expect(isIPv6(text)).toBe(true);
    expect(unwrap(parseIpAddress(text))).toHaveLength(16);
  });
});

describe('flow keys', () => {
  test('directional and canonical keys of both directions', () => {
    const ip = unwrap(parseIp(ETH_IPV4_SYN, 14));
    const fwd = flowKey(ip, 36861, 80);
    expect(fwd).toHaveLength(7);
    expect(fwd).toBe(flowKeyFromTuple(hex('c0a80166'), hex('c101c140'), 36861, 80));
    expect(srcIsFirst(ip, 36861, 80)).toBe(true); // 192.168... < 193.1...
    expect(canonicalFlowKey(ip, 36861, 80)).toBe(fwd);
    const v6 = unwrap(parseIp(ETH_IPV6_SYN, 14));
    expect(flowKey(v6, 63943, 25)).toHaveLength(19);
  });

  test('property: both directions share the canonical key, disagree on srcIsFirst, differ directionally', () => {
    fc.assert(
      fc.property(ipTcpReprArb, (repr) => {
        const reverse: IpTcpRepr = {
          ip: { ...repr.ip, src: repr.ip.dst, dst: repr.ip.src },
          tcp: { ...repr.tcp, srcPort: repr.tcp.dstPort, dstPort: repr.tcp.srcPort },
        };
        const a = unwrap(parseIp(unwrap(emitIpTcp(repr))));
        const b = unwrap(parseIp(unwrap(emitIpTcp(reverse))));
        const { srcPort, dstPort } = repr.tcp;
        expect(canonicalFlowKey(a, srcPort, dstPort)).toBe(canonicalFlowKey(b, dstPort, srcPort));
        expect(flowKeyFromTuple(repr.ip.src, repr.ip.dst, srcPort, dstPort, { canonical: true })).toBe(canonicalFlowKey(a, srcPort, dstPort));
        const selfFlow = ipAddressToString(repr.ip.src) === ipAddressToString(repr.ip.dst) && srcPort === dstPort;
        if (!selfFlow) {
          expect(srcIsFirst(a, srcPort, dstPort)).toBe(!srcIsFirst(b, dstPort, srcPort));
          expect(flowKey(a, srcPort, dstPort)).not.toBe(flowKey(b, dstPort, srcPort));
        }
        expect(flowKey(a, srcPort, dstPort)).toBe(flowKeyFromTuple(repr.ip.src, repr.ip.dst, srcPort, dstPort));
      }),
      { numRuns: 300 },
    );
  });

  test('distinct tuples give distinct keys', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 12, maxLength: 12 }), fc.uint8Array({ minLength: 12, maxLength: 12 }), (x, y) => {
        const k = (t: Uint8Array) => flowKeyFromTuple(t.subarray(0, 4), t.subarray(4, 8), (t[8]! << 8) | t[9]!, (t[10]! << 8) | t[11]!);
        expect(k(x) === k(y)).toBe(x.every((v, i) => v === y[i]));
      }),
    );
    expect(() => flowKeyFromTuple(new Uint8Array(4), new Uint8Array(16), 1, 2)).toThrow(RangeError);
  });
});
