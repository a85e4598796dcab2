// Boundary checks (programming errors throw precise TypeError/RangeError), backend selection,
// constant-time compare, zeroize, and the random sources.
import { backendNames, defaultBackend, getBackend, isBackendName } from '../../common/crypto';
import type { BackendName } from '../../common/crypto/backend';
import { constantTimeEqual, zeroize } from '../../common/crypto/compare';
import { keystreamXor } from '../../common/crypto/keystream';
import { seededRandom, systemRandom } from '../../common/crypto/random';
import { toHex } from './hex';

const key = new Uint8Array(32);
const nonce = new Uint8Array(12);
const none = new Uint8Array(0);

describe.each(backendNames)('%s backend input checks', (name) => {
  const b = getBackend(name);

  test('key and nonce sizes', () => {
    for (const k of [new Uint8Array(16), new Uint8Array(31), new Uint8Array(33)]) {
      expect(() => b.chacha20Xor(k, nonce, 0, none)).toThrow(/key must be 32 bytes/);
      expect(() => b.aeadSeal(k, nonce, none, none)).toThrow(RangeError);
      expect(() => b.aeadOpen(k, nonce, new Uint8Array(16), none)).toThrow(RangeError);
    }
    for (const n of [new Uint8Array(8), new Uint8Array(16), new Uint8Array(24)]) {
      expect(() => b.chacha20Xor(key, n, 0, none)).toThrow(/nonce must be 12 bytes/);
      expect(() => b.aeadSeal(key, n, none, none)).toThrow(RangeError);
    }
  });

  test('non-Uint8Array arguments are TypeErrors', () => {
    const notBytes = [[1, 2, 3], 'abc', null, undefined, new Uint16Array(16), new ArrayBuffer(32)] as unknown as Uint8Array[];
    for (const v of notBytes) {
      expect(() => b.chacha20Xor(v, nonce, 0, none)).toThrow(TypeError);
      expect(() => b.chacha20Xor(key, nonce, 0, v)).toThrow(TypeError);
      expect(() => b.hmacSha256(v, none)).toThrow(TypeError);
      expect(() => b.hmacSha256(key, none, v)).toThrow(/part 1 must be a Uint8Array/);
      expect(() => b.sha256(v)).toThrow(TypeError);
      expect(() => b.hkdf(key, v, none, 32)).toThrow(TypeError);
      expect(() => b.aeadSeal(key, nonce, v, none)).toThrow(TypeError);
    }
  });

  test('counter range and the 2^32 block limit', () => {
    expect(b.chacha20Xor(key, nonce, 2 ** 32 - 1, new Uint8Array(64))).toHaveLength(64);
    expect(b.chacha20Xor(key, nonce, 2 ** 32 - 2, new Uint8Array(128))).toHaveLength(128);
    expect(() => b.chacha20Xor(key, nonce, 2 ** 32 - 1, new Uint8Array(65))).toThrow(/pass the 2\^32 block limit/);
    for (const c of [-1, 2 ** 32, 1.5, NaN]) {
      expect(() => b.chacha20Xor(key, nonce, c, new Uint8Array(1))).toThrow(/counter must be an integer/);
    }
  });

  test('output length and overlap', () => {
    const input = new Uint8Array(10);
    expect(() => b.chacha20Xor(key, nonce, 0, input, new Uint8Array(9))).toThrow(/output must be 10 bytes/);
    expect(() => b.chacha20Xor(key, nonce, 0, input, new Uint8Array(11))).toThrow(RangeError);
    const shared = new Uint8Array(20);
    expect(() => b.chacha20Xor(key, nonce, 0, shared.subarray(0, 10), shared.subarray(5, 15))).toThrow(/partially overlaps/);
    expect(() => keystreamXor(b, key, 0, shared.subarray(5, 15), shared.subarray(0, 10))).toThrow(/partially overlaps/);
    // adjacent (disjoint) views of one buffer are fine
    expect(() => b.chacha20Xor(key, nonce, 0, shared.subarray(0, 10), shared.subarray(10, 20))).not.toThrow();
  });

  test('hkdf length', () => {
    expect(b.hkdf(key, none, none, 1)).toHaveLength(1);
    expect(b.hkdf(key, none, none, 8160)).toHaveLength(8160);
    for (const l of [0, -1, 8161, 1.5, NaN]) expect(() => b.hkdf(key, none, none, l)).toThrow(/length must be an integer/);
  });

  test('keystreamXor checks the key even for empty input', () => {
    expect(() => keystreamXor(b, new Uint8Array(31), 0, none)).toThrow(/key must be 32 bytes/);
  });
});

test('backend selection', () => {
  expect(backendNames).toEqual(['node', 'noble']);
  for (const n of backendNames) expect(getBackend(n).name).toBe(n);
  expect(defaultBackend.name).toBe('node');
  expect(isBackendName('noble')).toBe(true);
  expect(isBackendName('openssl')).toBe(false);
  expect(() => getBackend('openssl' as BackendName)).toThrow(/unknown crypto backend "openssl"/);
});

test('constantTimeEqual', () => {
  expect(constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3]))).toBe(true);
  expect(constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4]))).toBe(false);
  expect(constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2]))).toBe(false);
  expect(constantTimeEqual(none, new Uint8Array(0))).toBe(true);
  expect(constantTimeEqual(Buffer.from([9, 9]), new Uint8Array([9, 9]))).toBe(true);
  expect(() => constantTimeEqual('ab' as unknown as Uint8Array, none)).toThrow(TypeError);
});

test('zeroize overwrites every buffer it is given and skips absent ones', () => {
  const a = new Uint8Array([1, 2, 3]);
  const big = new Uint8Array(64).fill(0xaa);
  const view = big.subarray(8, 16);
  zeroize(a, undefined, view, null);
  expect([...a]).toEqual([0, 0, 0]);
  expect(big.subarray(8, 16).every((x) => x === 0)).toBe(true);
  expect(big[7]).toBe(0xaa); // only the view, not its whole buffer
  expect(big[16]).toBe(0xaa);
});

test('systemRandom returns fresh arrays of the asked size', () => {
  expect(systemRandom(0)).toHaveLength(0);
  const a = systemRandom(32);
  const b = systemRandom(32);
  expect(a).toHaveLength(32);
  expect(toHex(a)).not.toBe(toHex(b));
  expect(() => systemRandom(-1)).toThrow(RangeError);
  expect(() => systemRandom(1.5)).toThrow(RangeError);
});

test('seededRandom is deterministic, seed-sensitive and a continuous stream', () => {
  const a = seededRandom(42);
  const b = seededRandom(42);
  const first = toHex(a(10)) + toHex(a(23)) + toHex(a(0)) + toHex(a(31));
  expect(toHex(b(64))).toBe(first); // draws are consecutive slices of one stream
  expect(toHex(seededRandom(43)(64))).not.toBe(first);
  expect(toHex(seededRandom('42')(64))).not.toBe(first);
  expect(toHex(seededRandom('x')(16))).toBe(toHex(seededRandom('x')(16)));
  expect(() => a(-1)).toThrow(RangeError);
  expect(() => seededRandom({} as unknown as number)).toThrow(TypeError);
});

test.each(backendNames)('%s backend returns plain Uint8Arrays, so slice() copies', (name) => {
  const b = getBackend(name);
  const results = [
    b.chacha20Xor(key, nonce, 0, new Uint8Array(10)),
    b.aeadSeal(key, nonce, new Uint8Array(5), none),
    b.aeadOpen(key, nonce, b.aeadSeal(key, nonce, new Uint8Array(5), none), none)!,
    b.hmacSha256(key, none),
    b.sha256(none),
    b.hkdf(key, none, none, 40),
    keystreamXor(b, key, 0, new Uint8Array(10)),
    keystreamXor(b, key, 7, new Uint8Array(10)),
  ];
  for (const r of results) {
    expect(r.constructor).toBe(Uint8Array);
    const before = toHex(r);
    const copy = r.slice();
    r.fill(0xee); // as zeroize would
    expect(toHex(copy)).toBe(before);
  }
});

// = ChaCha20(SHA-256("ciphergate/1 seeded random:number:1"), zero nonce, counter 0), first 16 bytes
test('seededRandom stream is pinned (simulations replay across versions)', () => {
  expect(toHex(seededRandom(1)(16))).toBe('afd03ddc5b11f2a75a10498e442a144a');
});
