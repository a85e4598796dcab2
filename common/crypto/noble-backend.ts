// CryptoBackend on @noble/ciphers and @noble/hashes (pure JS, audited). Byte-identical to the
// node backend; test/crypto proves it.
import { chacha20, chacha20poly1305 } from '@noble/ciphers/chacha';
import { hkdf as nobleHkdf } from '@noble/hashes/hkdf';
import { hmac } from '@noble/hashes/hmac';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2';
import type { CryptoBackend, HmacKey } from './backend';
import { chacha20Block } from './chacha20-block';
import {
  BLOCK_BYTES,
  COUNTER_SPACE,
  TAG_BYTES,
  checkBytes,
  checkChachaXorArgs,
  checkHkdfLength,
  checkKeyNonce,
  checkMacOutput,
  checkMessageLength,
  checkParts,
} from './checks';

const LAST_COUNTER = COUNTER_SPACE - 1;
const lastBlock = new Uint8Array(BLOCK_BYTES);

function chacha20Xor(
  key: Uint8Array,
  nonce: Uint8Array,
  counter: number,
  input: Uint8Array,
  output?: Uint8Array,
): Uint8Array {
  const op = 'noble chacha20Xor';
  checkChachaXorArgs(op, key, nonce, counter, input, output);
  const out = output ?? new Uint8Array(input.length);
  if (input.length === 0) return out;
  const blocks = Math.ceil(input.length / BLOCK_BYTES);
  if (counter + blocks - 1 < LAST_COUNTER) return chacha20(key, nonce, input, out, counter);
  // noble refuses block counter 2^32-1 (see chacha20-block.ts): noble for the blocks before it,
  // the RFC block function for the last one.
  const head = (blocks - 1) * BLOCK_BYTES;
  if (head > 0) chacha20(key, nonce, input.subarray(0, head), out.subarray(0, head), counter);
  chacha20Block(key, nonce, LAST_COUNTER, lastBlock);
  for (let i = head; i < input.length; i++) out[i] = input[i]! ^ lastBlock[i - head]!;
  lastBlock.fill(0);
  return out;
}

function aeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  const op = 'noble aeadSeal';
  checkKeyNonce(op, key, nonce);
  checkBytes(op, 'plaintext', plaintext);
  checkBytes(op, 'aad', aad);
  return chacha20poly1305(key, nonce, aad).encrypt(plaintext);
}

function aeadOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array | null {
  const op = 'noble aeadOpen';
  checkKeyNonce(op, key, nonce);
  checkBytes(op, 'sealed', sealed);
  checkBytes(op, 'aad', aad);
  if (sealed.length < TAG_BYTES) return null;
  try {
    // Arguments are checked above, so the only thing decrypt can reject is the tag.
    return chacha20poly1305(key, nonce, aad).decrypt(sealed);
  } catch {
    return null;
  }
}

function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const op = 'noble hmacSha256';
  checkBytes(op, 'key', key);
  checkParts(op, parts);
  const mac = hmac.create(nobleSha256, key);
  for (const part of parts) mac.update(part);
  return mac.digest();
}

// noble's HMAC keeps the hash states after both pads; each MAC starts from a clone of them.
const messageScratch = new Uint8Array(4096);
class NobleHmacKey implements HmacKey {
  private readonly base: ReturnType<typeof hmac.create>;
  private readonly digest = new Uint8Array(32);
  destroyed = false;

  constructor(key: Uint8Array) {
    checkBytes('noble hmacKey', 'key', key);
    this.base = hmac.create(nobleSha256, key);
  }

  get scratch(): Uint8Array {
    return messageScratch;
  }

  get messageStart(): number {
    return 0;
  }

  get maxMessage(): number {
    return messageScratch.length;
  }

  macInto(parts: readonly Uint8Array[], out: Uint8Array, at: number, length: number): void {
    const op = 'noble macInto';
    if (this.destroyed) throw new TypeError(`${op}: the key was destroyed`);
    checkParts(op, parts);
    checkMacOutput(op, out, at, length);
    const mac = this.base.clone();
    for (const part of parts) mac.update(part);
    this.digestInto(mac, out, at, length);
  }

  finishInto(messageLength: number, out: Uint8Array, at: number, length: number): void {
    const op = 'noble finishInto';
    if (this.destroyed) throw new TypeError(`${op}: the key was destroyed`);
    checkMessageLength(op, messageLength, messageScratch.length);
    checkMacOutput(op, out, at, length);
    const mac = this.base.clone();
    mac.update(messageScratch.subarray(0, messageLength));
    this.digestInto(mac, out, at, length);
  }

  private digestInto(mac: ReturnType<typeof hmac.create>, out: Uint8Array, at: number, length: number): void {
    mac.digestInto(this.digest); // also wipes the clone's states
    out.set(this.digest.subarray(0, length), at);
    this.digest.fill(0);
  }

  destroy(): void {
    this.base.destroy();
    this.destroyed = true;
  }
}

function sha256(...parts: Uint8Array[]): Uint8Array {
  checkParts('noble sha256', parts);
  const hash = nobleSha256.create();
  for (const part of parts) hash.update(part);
  return hash.digest();
}

function hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  const op = 'noble hkdf';
  checkBytes(op, 'ikm', ikm);
  checkBytes(op, 'salt', salt);
  checkBytes(op, 'info', info);
  checkHkdfLength(op, length);
  return nobleHkdf(nobleSha256, ikm, salt, info, length);
}

export const nobleBackend: CryptoBackend = {
  name: 'noble',
  chacha20Xor,
  aeadSeal,
  aeadOpen,
  hmacSha256,
  hmacKey: (key) => new NobleHmacKey(key),
  sha256,
  hkdf,
};
