// The native ChaCha20-Poly1305 (native/aead) that the node backend uses when it is built:
// scripts/setup.sh builds it, so here it must be present. Checked against the RFC 8439 vectors
// and the noble backend (an independent implementation), and for its handling of misuse.
import fc from 'fast-check';
import rfc8439 from '../vectors/rfc8439.json';
import { nativeAead } from '../../common/crypto/native-aead';
import { nobleBackend } from '../../common/crypto/noble-backend';
import { fromHex, toHex } from './hex';

const addon = () => {
  if (nativeAead === null) throw new Error('native/aead is not built: run `npm run build:native` (scripts/setup.sh does)');
  return nativeAead;
};

test('the addon is built and loaded (the node backend would silently fall back without it)', () => {
  expect(nativeAead).not.toBeNull();
});

test.each(rfc8439.aead)('RFC 8439 $section: seal and open', (v) => {
  const a = addon();
  const key = fromHex(v.key);
  const nonce = fromHex(v.nonce);
  const aad = fromHex(v.aad);
  const plaintext = fromHex(v.plaintext);
  const sealed = new Uint8Array(plaintext.length + 16);
  a.seal(key, nonce, plaintext, aad, sealed);
  expect(toHex(sealed)).toBe(v.ciphertext + v.tag);
  const opened = new Uint8Array(plaintext.length);
  expect(a.open(key, nonce, sealed, aad, opened)).toBe(true);
  expect(toHex(opened)).toBe(v.plaintext);
});

test('same bytes as the noble backend for any key, nonce, plaintext and AAD; any flipped bit fails to open and leaves zeros', () => {
  const a = addon();
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 12, maxLength: 12 }),
      fc.uint8Array({ maxLength: 700 }),
      fc.uint8Array({ maxLength: 80 }),
      fc.nat(),
      (key, nonce, plaintext, aad, flip) => {
        const sealed = new Uint8Array(plaintext.length + 16);
        a.seal(key, nonce, plaintext, aad, sealed);
        expect(toHex(sealed)).toBe(toHex(nobleBackend.aeadSeal(key, nonce, plaintext, aad)));
        const opened = new Uint8Array(plaintext.length);
        expect(a.open(key, nonce, sealed, aad, opened)).toBe(true);
        expect(toHex(opened)).toBe(toHex(plaintext));
        const bit = flip % (sealed.length * 8);
        sealed[bit >> 3]! ^= 1 << (bit & 7);
        const garbage = new Uint8Array(plaintext.length).fill(0xaa);
        expect(a.open(key, nonce, sealed, aad, garbage)).toBe(false);
        expect(garbage.every((b) => b === 0)).toBe(true);
      },
    ),
    { numRuns: 300 },
  );
});

/** The error's name: errors made by an addon come from the main realm, not jest's, so instanceof fails. */
function thrownName(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).name;
  }
  return 'nothing thrown';
}

test('misuse throws instead of reading or writing out of bounds', () => {
  const a = addon();
  const key = new Uint8Array(32);
  const nonce = new Uint8Array(12);
  const pt = new Uint8Array(10);
  expect(thrownName(() => a.seal(new Uint8Array(31), nonce, pt, pt, new Uint8Array(26)))).toBe('RangeError');
  expect(thrownName(() => a.seal(key, new Uint8Array(8), pt, pt, new Uint8Array(26)))).toBe('RangeError');
  expect(() => a.seal(key, nonce, pt, pt, new Uint8Array(25))).toThrow(/plaintext.length \+ 16/);
  expect(thrownName(() => a.open(key, nonce, new Uint8Array(15), pt, new Uint8Array(0)))).toBe('RangeError');
  expect(thrownName(() => a.open(key, nonce, new Uint8Array(26), pt, new Uint8Array(11)))).toBe('RangeError');
  expect(thrownName(() => (a.seal as (...x: unknown[]) => void)(key, nonce, 'text', pt, new Uint8Array(26)))).toBe('TypeError');
  expect(thrownName(() => (a.seal as (...x: unknown[]) => void)(key, nonce, pt))).toBe('TypeError');
});
