// Published vectors (RFC 8439, RFC 5869), kept as data in test/vectors, against both backends.
// A mismatch here means a transcription error or a broken backend, never "close enough".
import rfc5869 from '../vectors/rfc5869.json';
import rfc8439 from '../vectors/rfc8439.json';
import { chacha20Block } from '../../common/crypto/chacha20-block';
import { backendNames, getBackend } from '../../common/crypto';
import { fromHex, toHex } from './hex';

describe.each(backendNames)('%s backend', (name) => {
  const backend = getBackend(name);

  test.each(rfc8439.chacha20Block)('RFC 8439 $section ChaCha20 block function', (v) => {
    const keystream = backend.chacha20Xor(fromHex(v.key), fromHex(v.nonce), v.counter, new Uint8Array(64));
    expect(toHex(keystream)).toBe(v.keystream);
  });

  test.each(rfc8439.chacha20Encrypt)('RFC 8439 $section ChaCha20 encryption', (v) => {
    const key = fromHex(v.key);
    const nonce = fromHex(v.nonce);
    expect(toHex(backend.chacha20Xor(key, nonce, v.counter, fromHex(v.plaintext)))).toBe(v.ciphertext);
    expect(toHex(backend.chacha20Xor(key, nonce, v.counter, fromHex(v.ciphertext)))).toBe(v.plaintext);
    // in place gives the same bytes
    const buf = fromHex(v.plaintext);
    expect(backend.chacha20Xor(key, nonce, v.counter, buf, buf)).toBe(buf);
    expect(toHex(buf)).toBe(v.ciphertext);
  });

  test.each(rfc8439.poly1305KeyGen)('RFC 8439 $section Poly1305 key generation (block 0 prefix)', (v) => {
    const otk = backend.chacha20Xor(fromHex(v.key), fromHex(v.nonce), 0, new Uint8Array(32));
    expect(toHex(otk)).toBe(v.oneTimeKey);
  });

  test.each(rfc8439.aead)('RFC 8439 $section AEAD_CHACHA20_POLY1305 seal and open', (v) => {
    const key = fromHex(v.key);
    const nonce = fromHex(v.nonce);
    const aad = fromHex(v.aad);
    const sealed = backend.aeadSeal(key, nonce, fromHex(v.plaintext), aad);
    expect(toHex(sealed)).toBe(v.ciphertext + v.tag);
    const opened = backend.aeadOpen(key, nonce, fromHex(v.ciphertext + v.tag), aad);
    expect(opened).not.toBeNull();
    expect(toHex(opened!)).toBe(v.plaintext);
  });

  test.each(rfc5869.cases)('RFC 5869 $section HKDF-SHA256', (v) => {
    const ikm = fromHex(v.ikm);
    const salt = fromHex(v.salt);
    expect(toHex(backend.hkdf(ikm, salt, fromHex(v.info), v.length))).toBe(v.okm);
    // Extract is HMAC(salt, ikm): the PRK checks hmacSha256, including the empty-key case.
    expect(toHex(backend.hmacSha256(salt, ikm))).toBe(v.prk);
  });

  test('SHA-256 of "abc" and of the empty string (FIPS 180-2 examples)', () => {
    expect(toHex(backend.sha256(new TextEncoder().encode('abc')))).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
    expect(toHex(backend.sha256())).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    // parts are hashed as their concatenation
    expect(toHex(backend.sha256(new TextEncoder().encode('a'), new Uint8Array(0), new TextEncoder().encode('bc')))).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
  });
});

// The pure-TS block function stands in for noble at counter 2^32-1 only; it must meet the RFC too.
test.each(rfc8439.chacha20Block)('chacha20Block: RFC 8439 $section', (v) => {
  expect(toHex(chacha20Block(fromHex(v.key), fromHex(v.nonce), v.counter))).toBe(v.keystream);
});
