// EndpointSet reads addresses in place (matchAt, the per-packet path): it must agree with
// cidrContains, the definition, for any address, prefix, family and offset.
import fc from 'fast-check';
import { EndpointSet } from '../../common/engine/endpoints';
import { cidrContains, parseCidr } from '../../common/protocol/cidr';
import { ipAddressToString } from '../../common/wire/address';

const family = fc.constantFrom(4, 16);

test('matchAt agrees with cidrContains at any offset; the longest prefix wins', () => {
  fc.assert(
    fc.property(
      family.chain((n) => fc.tuple(fc.constant(n), fc.uint8Array({ minLength: n, maxLength: n }), fc.uint8Array({ minLength: n, maxLength: n }), fc.nat(n * 8), fc.nat(n * 8))),
      fc.nat(5),
      fc.boolean(),
      ([n, network, addr, p1, p2], at, otherFamily) => {
        const text = (prefix: number) => `${ipAddressToString(network)}/${prefix}`;
        const rules = [p1, p2].map((prefix, i) => {
          const cidr = parseCidr(text(prefix));
          if (!cidr.ok) throw new Error(cidr.error);
          return { cidr: cidr.value, port: 443, meta: i };
        });
        const set = new EndpointSet(rules);
        const probe = otherFamily && n === 16 ? addr.subarray(0, 4) : addr; // a v4 address against v6 rules
        const bytes = new Uint8Array(at + probe.length + 3).fill(0xff);
        bytes.set(probe, at);
        const inside = rules.filter((r) => cidrContains(r.cidr, probe)).sort((a, b) => b.cidr.prefix - a.cidr.prefix);
        const want = inside[0]?.meta;
        expect(set.matchAt(bytes, at, probe.length, 443)?.meta).toBe(want);
        expect(set.match(probe, 443)?.meta).toBe(want);
        expect(set.matchAt(bytes, at, probe.length, 80)).toBeUndefined();
        expect(set.coversAddress(probe)).toBe(inside.length > 0);
      },
    ),
    { numRuns: 300 },
  );
});
