// aeadOpen must return null, never plaintext, when any byte of ciphertext, tag or AAD changed,
// or when key, nonce or length are wrong.
import fc from 'fast-check';
import { backendNames, getBackend } from '../../common/crypto';

const key32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const nonce12 = fc.uint8Array({ minLength: 12, maxLength: 12 });
const flip = fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })); // (position seed, xor mask != 0)

describe.each(backendNames)('%s backend', (name) => {
  const backend = getBackend(name);
  const sealedCase = fc.tuple(key32, nonce12, fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 64 }));

  test('any changed byte of ciphertext or tag is rejected', () => {
    fc.assert(
      fc.property(sealedCase, flip, ([key, nonce, plaintext, aad], [seed, mask]) => {
        const sealed = backend.aeadSeal(key, nonce, plaintext, aad);
        const tampered = sealed.slice();
        const at = seed % tampered.length;
        tampered[at] = tampered[at]! ^ mask;
        expect(backend.aeadOpen(key, nonce, tampered, aad)).toBeNull();
      }),
      { numRuns: 300 },
    );
  });

  test('any changed, added or removed byte of the AAD is rejected', () => {
    fc.assert(
      fc.property(sealedCase, flip, ([key, nonce, plaintext, aad], [seed, mask]) => {
        const sealed = backend.aeadSeal(key, nonce, plaintext, aad);
        const longer = new Uint8Array(aad.length + 1);
        longer.set(aad);
        expect(backend.aeadOpen(key, nonce, sealed, longer)).toBeNull();
        if (aad.length === 0) return;
        const changed = aad.slice();
        const at = seed % changed.length;
        changed[at] = changed[at]! ^ mask;
        expect(backend.aeadOpen(key, nonce, sealed, changed)).toBeNull();
        expect(backend.aeadOpen(key, nonce, sealed, aad.subarray(1))).toBeNull();
      }),
      { numRuns: 200 },
    );
  });

  test('wrong key, wrong nonce, truncation and too-short input are rejected', () => {
    fc.assert(
      fc.property(sealedCase, ([key, nonce, plaintext, aad]) => {
        const sealed = backend.aeadSeal(key, nonce, plaintext, aad);
        const otherKey = key.slice();
        otherKey[0] = otherKey[0]! ^ 1;
        const otherNonce = nonce.slice();
        otherNonce[11] = otherNonce[11]! ^ 0x80;
        expect(backend.aeadOpen(otherKey, nonce, sealed, aad)).toBeNull();
        expect(backend.aeadOpen(key, otherNonce, sealed, aad)).toBeNull();
        expect(backend.aeadOpen(key, nonce, sealed.subarray(0, sealed.length - 1), aad)).toBeNull();
        expect(backend.aeadOpen(key, nonce, sealed.subarray(1), aad)).toBeNull();
      }),
      { numRuns: 100 },
    );
    const key = new Uint8Array(32);
    const nonce = new Uint8Array(12);
    for (let n = 0; n < 16; n++) expect(backend.aeadOpen(key, nonce, new Uint8Array(n), new Uint8Array(0))).toBeNull();
    // the empty plaintext still carries a tag that must verify
    const empty = backend.aeadSeal(key, nonce, new Uint8Array(0), new Uint8Array(0));
    expect(empty).toHaveLength(16);
    expect(backend.aeadOpen(key, nonce, empty, new Uint8Array(0))).toHaveLength(0);
  });
});
