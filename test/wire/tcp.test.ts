import { TCP_FLAGS, formatTcpFlags, hasFlag, parseTcp } from '../../common/wire/tcp';
import { ETH_IPV4_SYN, IPV4_ECN_SYN, IPV6_HBH_ATOMIC_FRAGMENT, SLL_IPV4_SYNACK, hex } from './fixtures';
import { errorOf, unwrap } from './helpers';

describe('parseTcp', () => {
  test('real SYN: fields and absolute offsets', () => {
    const tcp = unwrap(parseTcp(ETH_IPV4_SYN, 34, 40));
    expect(tcp).toMatchObject({
      offset: 34,
      srcPort: 36861,
      dstPort: 80,
      seq: 3750886907,
      ack: 0,
      headerLength: 40,
      flags: TCP_FLAGS.SYN,
      reservedBits: 0,
      window: 5840,
      checksum: 0x2a1c,
      urgent: 0,
      optionsStart: 54,
      optionsEnd: 74,
      payloadStart: 74,
      payloadEnd: 74,
    });
    expect(tcp.payloadLength).toBe(0);
    expect(tcp.segmentLength).toBe(1);
    expect(tcp.length).toBe(40);
    expect(tcp.optionBytes).toEqual(hex('0204 05b4 0402 080a ffff 54e9 0000 0000 0103 0306'));
  });

  test('sequence and acknowledgement numbers are unsigned 32-bit', () => {
    const syn = unwrap(parseTcp(IPV4_ECN_SYN, 20, 40));
    expect(syn.seq).toBe(0xfffffff0);
    const synack = unwrap(parseTcp(SLL_IPV4_SYNACK, 36, 40));
    expect(synack.ack).toBe(0xfffffff1);
    expect(synack.seq).toBe(0x12345678);
  });

  test('an ECN SYN is SYN|ECE|CWR: flags are tested by mask', () => {
    const { flags } = unwrap(parseTcp(IPV4_ECN_SYN, 20, 40));
    expect(flags).toBe(0xc2);
    expect(flags === TCP_FLAGS.SYN).toBe(false);
    expect(hasFlag(flags, TCP_FLAGS.SYN)).toBe(true);
    expect(hasFlag(flags, TCP_FLAGS.ECE | TCP_FLAGS.CWR)).toBe(true);
    expect(hasFlag(flags, TCP_FLAGS.SYN | TCP_FLAGS.ACK)).toBe(false);
    expect(formatTcpFlags(flags)).toBe('SYN|ECE|CWR');
    expect(formatTcpFlags(0)).toBe('-');
  });

  test('payload view', () => {
    const tcp = unwrap(parseTcp(IPV6_HBH_ATOMIC_FRAGMENT, 56, 55));
    expect(new TextDecoder().decode(tcp.payload)).toBe('hello, fragmented world');
    expect(tcp.payloadStart).toBe(88);
    expect(tcp.segmentLength).toBe(23);
    expect(hasFlag(tcp.flags, TCP_FLAGS.PSH | TCP_FLAGS.ACK)).toBe(true);
  });

  test('validation: short segment, data offset < 5, data offset past the segment, range past the buffer', () => {
    expect(errorOf(parseTcp(IPV4_ECN_SYN, 20, 19))).toMatchObject({ layer: 'tcp', kind: 'truncated' });
    const p = IPV4_ECN_SYN.slice();
    p[32] = 0x40;
    expect(errorOf(parseTcp(p, 20, 40))).toMatchObject({ layer: 'tcp', kind: 'bad-header-length' });
    p[32] = 0xf0;
    expect(errorOf(parseTcp(p, 20, 40))).toMatchObject({ layer: 'tcp', kind: 'bad-header-length' });
    expect(errorOf(parseTcp(IPV4_ECN_SYN, 20, 41))).toMatchObject({ layer: 'tcp', kind: 'truncated' });
    expect(errorOf(parseTcp(IPV4_ECN_SYN, -1, 20))).toMatchObject({ kind: 'truncated' });
  });
});
