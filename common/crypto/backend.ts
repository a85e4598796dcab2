// The one crypto interface. Two implementations (node:crypto and @noble) must be byte-identical;
// test/crypto proves it with RFC 8439 / RFC 5869 vectors and cross-tests.
export type BackendName = 'node' | 'noble';

export interface ChaChaStream {
  update(input: Uint8Array): Uint8Array;
  close(): void;
}

/**
 * HMAC-SHA256 under one key whose key-derived state (the RFC 2104 pads, or the hash states after
 * them) is computed once: the per-segment MAC of a flow direction. Never shared across keys.
 */
export interface HmacKey {
  /**
   * Writes the first `length` (1..32) bytes of HMAC-SHA256(key, concatenation of `parts`) to
   * out[at, at + length). No copy of the parts is kept.
   */
  macInto(parts: readonly Uint8Array[], out: Uint8Array, at: number, length: number): void;
  /**
   * For a message assembled in place, without gathering parts: write up to `maxMessage` bytes
   * into `scratch` from `messageStart`, then call finishInto with its length, which writes the
   * MAC as macInto does. The scratch is shared by every key of the backend: nothing else may
   * use it between the writes and finishInto.
   */
  readonly scratch: Uint8Array;
  readonly messageStart: number;
  readonly maxMessage: number;
  finishInto(messageLength: number, out: Uint8Array, at: number, length: number): void;
  /** Zeroes the key-derived state; the object is unusable afterwards. Idempotent. */
  destroy(): void;
  readonly destroyed: boolean;
}

export interface CryptoBackend {
  readonly name: BackendName;
  /**
   * RFC 8439 ChaCha20: XOR `input` with the keystream of (key, nonce) starting at 64-byte block
   * `counter` (0 <= counter < 2^32, and counter + blocks must not pass 2^32). Writes into
   * `output` when given (may alias `input`), else into a new array; returns the output.
   */
  chacha20Xor(key: Uint8Array, nonce: Uint8Array, counter: number, input: Uint8Array, output?: Uint8Array): Uint8Array;
  /**
   * Optional: a running ChaCha20 keystream from block `counter` of (key, nonce). Successive
   * update() calls continue where the last one stopped (any lengths). Backends whose per-call
   * set-up is costly offer it so that in-order segments need no new cipher; close() frees it.
   * The caller must not run it past block 2^32 - 1.
   */
  chacha20Stream?(key: Uint8Array, nonce: Uint8Array, counter: number): ChaChaStream;
  /** RFC 8439 AEAD_CHACHA20_POLY1305 seal: returns ciphertext || 16-byte tag. */
  aeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array;
  /** Opens ciphertext || tag; returns the plaintext, or null when authentication fails. */
  aeadOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array | null;
  /** HMAC-SHA256 over the concatenation of `parts` (no copy of the parts is made). */
  hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array;
  /** Prepares `key` for many HMAC-SHA256 calls (see HmacKey); the key itself is not kept. */
  hmacKey(key: Uint8Array): HmacKey;
  /** SHA-256 over the concatenation of `parts`. */
  sha256(...parts: Uint8Array[]): Uint8Array;
  /** RFC 5869 HKDF-SHA256. */
  hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array;
}
