// Capture files are hostile input too: readCapture and captureRecords never throw, and every
// error is a typed 'pcap' error with an offset.
import fc from 'fast-check';
import { captureRecords, readCapture } from '../../common/pcap/reader';
import { writePcap } from '../../common/pcap/writer';
import { ETH_IPV4_SYN, IPV4_ECN_SYN, IPV6_HBH_ATOMIC_FRAGMENT } from '../wire/fixtures';
import { classic, epb, idb, option, shb } from './builders';

const VALID: Uint8Array[] = [
  writePcap(1, [{ data: ETH_IPV4_SYN, timestampNs: 1n }, { data: ETH_IPV4_SYN.subarray(0, 30), timestampNs: 2n }]),
  classic(0xa1b23c4d, false, 101, [[1, 2, IPV4_ECN_SYN], [3, 4, IPV4_ECN_SYN]]),
  classic(0xa1b2cd34, true, 101, [[1, 2, IPV4_ECN_SYN]], 8),
  new Uint8Array([...shb(true), ...idb(1, true, option(9, [9], true)), ...epb(0, 5n, ETH_IPV4_SYN, true), ...shb(false), ...idb(229, false),
    ...epb(0, 7n, IPV6_HBH_ATOMIC_FRAGMENT, false)]),
];

function check(bytes: Uint8Array): void {
  const r = readCapture(bytes);
  if (!r.ok) {
    expect(r.error.layer).toBe('pcap');
    expect(typeof r.error.offset).toBe('number');
  } else {
    for (const p of r.value.packets) {
      expect(p.data.byteOffset + p.data.length).toBeLessThanOrEqual(bytes.byteOffset + bytes.length);
      expect(p.originalLength).toBeGreaterThanOrEqual(p.data.length);
    }
  }
  let errors = 0;
  for (const x of captureRecords(bytes)) if (!x.ok) errors++;
  expect(errors).toBe(r.ok ? 0 : 1);
}

describe('capture reading never throws', () => {
  test('arbitrary bytes, and arbitrary bytes behind each magic', () => {
    const magics = [[], [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0], [0xa1, 0xb2, 0x3c, 0x4d, 0, 2, 0, 4], [0x0a, 0x0d, 0x0d, 0x0a]];
    fc.assert(
      fc.property(fc.constantFrom(...magics), fc.uint8Array({ maxLength: 300 }), (magic, rest) => {
        check(new Uint8Array([...magic, ...rest]));
      }),
      { numRuns: 3000 },
    );
  });

  test('mutated valid captures: truncations, byte sets, bit flips', () => {
    fc.assert(
      fc.property(fc.constantFrom(...VALID), fc.array(fc.tuple(fc.nat(), fc.nat(255), fc.boolean()), { minLength: 1, maxLength: 4 }), fc.nat(), (valid, edits, cut) => {
        const b = valid.slice();
        for (const [at, v, flip] of edits) {
          if (flip) b[at % b.length]! ^= 1 << (v & 7);
          else b[at % b.length] = v;
        }
        check(b);
        check(b.subarray(0, cut % (b.length + 1)));
      }),
      { numRuns: 3000 },
    );
  });
});
