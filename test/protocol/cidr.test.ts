import { cidrContains, parseCidr } from '../../common/protocol/cidr';
import { addressAllowed } from '../../kdc/issuer';

const ip = (s: string): Uint8Array =>
  s.includes(':') ? Uint8Array.from(Buffer.from(s.replace(/:/g, ''), 'hex')) : Uint8Array.from(s.split('.').map(Number));

describe('CIDR', () => {
  it.each([
    ['10.0.0.0/8', '10.255.1.2', true],
    ['10.0.0.0/8', '11.0.0.0', false],
    ['10.1.2.3/8', '10.9.9.9', true], // host bits are cleared
    ['192.168.1.128/25', '192.168.1.200', true],
    ['192.168.1.128/25', '192.168.1.127', false],
    ['0.0.0.0/0', '8.8.8.8', true],
    ['0.0.0.0/0', '0000:0000:0000:0000:0000:ffff:0808:0808', false], // families never cross
    ['192.0.2.7', '192.0.2.7', true],
    ['192.0.2.7', '192.0.2.8', false],
    ['2001:db8::/32', '2001:0db8:ffff:0000:0000:0000:0000:0001', true],
    ['2001:db8::/33', '2001:0db8:8000:0000:0000:0000:0000:0001', false],
    ['::/0', '0000:0000:0000:0000:0000:0000:0000:0001', true],
    ['::/0', '1.2.3.4', false],
    ['fe80::1/128', 'fe80:0000:0000:0000:0000:0000:0000:0001', true],
  ])('%s contains %s: %s', (cidr, addr, expected) => {
    const c = parseCidr(cidr);
    if (!c.ok) throw new Error(c.error);
    expect(cidrContains(c.value, ip(addr))).toBe(expected);
  });

  it.each(['10.0.0.0/33', '2001:db8::/129', '10.0.0/8', '010.0.0.0/8', '10.0.0.0/08', '10.0.0.0/', 'fe80::1%eth0/64', '', 'x/8', '10.0.0.0/-1'])(
    'rejects %j',
    (text) => expect(parseCidr(text).ok).toBe(false),
  );

  it('empty allowedNets allows any address; unparsable entries match nothing', () => {
    expect(addressAllowed([], ip('1.2.3.4'))).toBe(true);
    expect(addressAllowed(['garbage'], ip('1.2.3.4'))).toBe(false);
    expect(addressAllowed(['garbage', '1.2.3.0/24'], ip('1.2.3.4'))).toBe(true);
  });
});
