// CryptoBackend on node:crypto (OpenSSL). This is the per-packet path: one native cipher or HMAC
// object per call is the floor node allows (a cipher cannot be re-keyed or re-IVed), so the code
// around it avoids extra copies and allocations.
import { createCipheriv, createDecipheriv, createHash, createHmac, hash } from 'node:crypto';
import type { ChaChaStream, CryptoBackend, HmacKey } from './backend';
import { nativeAead } from './native-aead';
import {
  TAG_BYTES,
  checkBytes,
  checkChachaXorArgs,
  checkCounter,
  checkHkdfLength,
  checkKeyNonce,
  checkMacOutput,
  checkMessageLength,
  checkParts,
} from './checks';

// OpenSSL's 'chacha20' IV is 4-byte little-endian block counter || 12-byte nonce.
// createCipheriv copies the IV into the cipher context, so one buffer serves every call.
const iv = new Uint8Array(16);
const ivView = new DataView(iv.buffer);
const HASH_BYTES = 32;

// Results are plain Uint8Array views (no copy) over node's fresh Buffers: Buffer#slice returns a
// view, not a copy, so handing out Buffers would make `result.slice()` alias what zeroize wipes.
function plain(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
}

function chacha20Xor(
  key: Uint8Array,
  nonce: Uint8Array,
  counter: number,
  input: Uint8Array,
  output?: Uint8Array,
): Uint8Array {
  const op = 'node chacha20Xor';
  checkChachaXorArgs(op, key, nonce, counter, input, output);
  if (input.length === 0) return output ?? new Uint8Array(0);
  ivView.setUint32(0, counter, true);
  iv.set(nonce, 4);
  const result = createCipheriv('chacha20', key, iv).update(input);
  if (output === undefined) return plain(result);
  output.set(result);
  return output;
}

function chacha20Stream(key: Uint8Array, nonce: Uint8Array, counter: number): ChaChaStream {
  const op = 'node chacha20Stream';
  checkKeyNonce(op, key, nonce);
  checkCounter(op, counter, 0);
  ivView.setUint32(0, counter, true);
  iv.set(nonce, 4);
  const cipher = createCipheriv('chacha20', key, iv);
  return {
    update: (input) => plain(cipher.update(input)),
    // final() frees the OpenSSL context, which cleanses the key schedule it holds.
    close: () => void cipher.final(),
  };
}

function aeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  const op = 'node aeadSeal';
  checkKeyNonce(op, key, nonce);
  checkBytes(op, 'plaintext', plaintext);
  checkBytes(op, 'aad', aad);
  const sealed = new Uint8Array(plaintext.length + TAG_BYTES);
  if (nativeAead !== null) {
    nativeAead.seal(key, nonce, plaintext, aad, sealed);
    return sealed;
  }
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad, { plaintextLength: plaintext.length });
  sealed.set(cipher.update(plaintext));
  cipher.final();
  sealed.set(cipher.getAuthTag(), plaintext.length);
  return sealed;
}

function aeadOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array | null {
  const op = 'node aeadOpen';
  checkKeyNonce(op, key, nonce);
  checkBytes(op, 'sealed', sealed);
  checkBytes(op, 'aad', aad);
  // Too short to hold a tag cannot authenticate: that is hostile input, not a programming error.
  if (sealed.length < TAG_BYTES) return null;
  const textLength = sealed.length - TAG_BYTES;
  if (nativeAead !== null) {
    const plaintext = new Uint8Array(textLength);
    return nativeAead.open(key, nonce, sealed, aad, plaintext) ? plaintext : null;
  }
  const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_BYTES });
  decipher.setAuthTag(sealed.subarray(textLength));
  decipher.setAAD(aad, { plaintextLength: textLength });
  const plaintext = decipher.update(sealed.subarray(0, textLength));
  try {
    decipher.final();
  } catch {
    plaintext.fill(0); // never let unauthenticated plaintext linger
    return null;
  }
  return plain(plaintext);
}

// HMAC (RFC 2104) from two one-shot hashes: creating an Hmac object per call costs more than
// hashing a full-size segment, and this runs twice per protected segment. The key-derived pads
// are copied into scratch buffers that are zeroed before returning. Digests come back as latin1
// ('binary') strings: a Buffer result costs a backing-store allocation, more than hashing 64 bytes.
const SHA256_BLOCK = 64;
const MAX_MESSAGE = 4096;
const innerScratch = new Uint8Array(SHA256_BLOCK + MAX_MESSAGE);
const outerScratch = new Uint8Array(SHA256_BLOCK + HASH_BYTES);

/** The RFC 2104 pads of `key` (a key longer than the block is hashed first). */
function pads(key: Uint8Array): { ipad: Uint8Array; opad: Uint8Array } {
  const k = key.length > SHA256_BLOCK ? hash('sha256', key, 'buffer') : key;
  const ipad = new Uint8Array(SHA256_BLOCK).fill(0x36);
  const opad = new Uint8Array(SHA256_BLOCK).fill(0x5c);
  for (let i = 0; i < k.length; i++) {
    ipad[i]! ^= k[i]!;
    opad[i]! ^= k[i]!;
  }
  if (k !== key) k.fill(0);
  return { ipad, opad };
}

/** HMAC(pads, concatenation of parts) as a 32-character latin1 string. */
function hmacBinary(ipad: Uint8Array, opad: Uint8Array, parts: readonly Uint8Array[]): string {
  let total = 0;
  for (let i = 0; i < parts.length; i++) total += parts[i]!.length;
  if (total > MAX_MESSAGE) {
    const h = createHash('sha256').update(ipad);
    for (const part of parts) h.update(part);
    return outerBinary(opad, h.digest('binary'));
  }
  let at = SHA256_BLOCK;
  for (let i = 0; i < parts.length; i++) {
    innerScratch.set(parts[i]!, at);
    at += parts[i]!.length;
  }
  return scratchBinary(ipad, opad, total);
}

/** HMAC(pads, the `length`-byte message at SHA256_BLOCK in innerScratch). */
function scratchBinary(ipad: Uint8Array, opad: Uint8Array, length: number): string {
  innerScratch.set(ipad, 0);
  const inner = hash('sha256', innerScratch.subarray(0, SHA256_BLOCK + length), 'binary');
  innerScratch.fill(0, 0, SHA256_BLOCK);
  return outerBinary(opad, inner);
}

function outerBinary(opad: Uint8Array, inner: string): string {
  outerScratch.set(opad, 0);
  for (let i = 0; i < HASH_BYTES; i++) outerScratch[SHA256_BLOCK + i] = inner.charCodeAt(i);
  const out = hash('sha256', outerScratch, 'binary');
  outerScratch.fill(0, 0, SHA256_BLOCK);
  return out;
}

function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const op = 'node hmacSha256';
  checkBytes(op, 'key', key);
  checkParts(op, parts);
  const { ipad, opad } = pads(key);
  const mac = hmacBinary(ipad, opad, parts);
  ipad.fill(0);
  opad.fill(0);
  const out = new Uint8Array(HASH_BYTES);
  for (let i = 0; i < HASH_BYTES; i++) out[i] = mac.charCodeAt(i);
  return out;
}

class NodeHmacKey implements HmacKey {
  private readonly ipad: Uint8Array;
  private readonly opad: Uint8Array;
  destroyed = false;

  constructor(key: Uint8Array) {
    checkBytes('node hmacKey', 'key', key);
    ({ ipad: this.ipad, opad: this.opad } = pads(key));
  }

  get scratch(): Uint8Array {
    return innerScratch;
  }

  get messageStart(): number {
    return SHA256_BLOCK;
  }

  get maxMessage(): number {
    return MAX_MESSAGE;
  }

  macInto(parts: readonly Uint8Array[], out: Uint8Array, at: number, length: number): void {
    const op = 'node macInto';
    if (this.destroyed) throw new TypeError(`${op}: the key was destroyed`);
    checkParts(op, parts);
    checkMacOutput(op, out, at, length);
    const mac = hmacBinary(this.ipad, this.opad, parts);
    for (let i = 0; i < length; i++) out[at + i] = mac.charCodeAt(i);
  }

  finishInto(messageLength: number, out: Uint8Array, at: number, length: number): void {
    const op = 'node finishInto';
    if (this.destroyed) throw new TypeError(`${op}: the key was destroyed`);
    checkMessageLength(op, messageLength, MAX_MESSAGE);
    checkMacOutput(op, out, at, length);
    const mac = scratchBinary(this.ipad, this.opad, messageLength);
    for (let i = 0; i < length; i++) out[at + i] = mac.charCodeAt(i);
  }

  destroy(): void {
    this.ipad.fill(0);
    this.opad.fill(0);
    this.destroyed = true;
  }
}

function sha256(...parts: Uint8Array[]): Uint8Array {
  checkParts('node sha256', parts);
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return plain(hash.digest());
}

// RFC 5869 over HMAC rather than hkdfSync, which caps info at 1024 bytes: both backends must
// accept the same inputs.
function hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  const op = 'node hkdf';
  checkBytes(op, 'ikm', ikm);
  checkBytes(op, 'salt', salt);
  checkBytes(op, 'info', info);
  checkHkdfLength(op, length);
  const prk = createHmac('sha256', salt).update(ikm).digest();
  const okm = new Uint8Array(length);
  const counter = new Uint8Array(1);
  let previous: Uint8Array = new Uint8Array(0);
  for (let offset = 0, i = 1; offset < length; offset += HASH_BYTES, i++) {
    counter[0] = i;
    const block = createHmac('sha256', prk).update(previous).update(info).update(counter).digest();
    okm.set(block.subarray(0, Math.min(HASH_BYTES, length - offset)), offset);
    previous.fill(0);
    previous = block;
  }
  previous.fill(0);
  prk.fill(0);
  return okm;
}

export const nodeBackend: CryptoBackend = {
  name: 'node',
  chacha20Xor,
  chacha20Stream,
  aeadSeal,
  aeadOpen,
  hmacSha256,
  hmacKey: (key) => new NodeHmacKey(key),
  sha256,
  hkdf,
};
