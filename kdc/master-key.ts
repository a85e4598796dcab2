// The master key: 32 bytes from a stash file (mode 0600) or the environment, never from the
// store. Every principal key is sealed under it with AEAD ChaCha20-Poly1305, and the associated
// data binds the sealed key to principal name, kvno and master key id: a sealed key copied to
// another principal or kvno, or under another master key, does not open.
//
// A MasterKeyRing holds the current master key and, during a rotation, additional ones; each sealed
// key names the master key id it is sealed under. The id is a fingerprint (HMAC of the key), so
// it says which key without saying anything about it.
import type { CryptoBackend } from '../common/crypto/backend';
import { constantTimeEqual } from '../common/crypto/compare';
import type { RandomSource } from '../common/crypto/random';
import { readPrivateFile, writePrivateFile } from './key-file';
import type { SealedKey, StoreMeta } from './store/store';

export const MASTER_KEY_ENV = 'CIPHERGATE_MASTER_KEY';
export const MASTER_KEY_LEN = 32;
export const PRINCIPAL_KEY_LEN = 32;
const NONCE_LEN = 12;
const ID_INFO = new TextEncoder().encode('ciphergate/1 master key id');
const KEY_AAD = 'ciphergate/1 principal key';
const CHECK_AAD = 'ciphergate/1 master key check';
const CHECK_PLAINTEXT = new TextEncoder().encode('ciphergate master key check v1');

export interface MasterKey {
  /** 16 hex digits: HMAC-SHA256(key, "ciphergate/1 master key id")[0..8]. */
  id: string;
  key: Uint8Array;
}

export class MasterKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MasterKeyError';
  }
}

export function masterKeyId(backend: CryptoBackend, key: Uint8Array): string {
  return Buffer.from(backend.hmacSha256(key, ID_INFO).subarray(0, 8)).toString('hex');
}

export function makeMasterKey(backend: CryptoBackend, key: Uint8Array): MasterKey {
  if (key.length !== MASTER_KEY_LEN) throw new MasterKeyError(`master key: expected ${MASTER_KEY_LEN} bytes, got ${key.length}`);
  return { id: masterKeyId(backend, key), key };
}

/**
 * Decodes a master key: 32 raw bytes, or text holding 64 hex digits or base64 of 32 bytes
 * (surrounding whitespace ignored). `where` names the source in errors.
 */
export function decodeMasterKey(data: Uint8Array | string, where: string): Uint8Array {
  if (typeof data !== 'string' && data.length === MASTER_KEY_LEN) return new Uint8Array(data);
  const text = (typeof data === 'string' ? data : Buffer.from(data).toString('latin1')).trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return new Uint8Array(Buffer.from(text, 'hex'));
  if (/^[A-Za-z0-9+/]{43}=$/.test(text) || /^[A-Za-z0-9_-]{43}$/.test(text)) {
    const b = Buffer.from(text, text.endsWith('=') ? 'base64' : 'base64url');
    if (b.length === MASTER_KEY_LEN) return new Uint8Array(b);
  }
  throw new MasterKeyError(`${where}: expected a 32-byte master key as 64 hex digits, base64, or 32 raw bytes`);
}

export function loadMasterKeyFile(backend: CryptoBackend, file: string): MasterKey {
  const buf = readPrivateFile(file, 'master key file');
  try {
    return makeMasterKey(backend, decodeMasterKey(buf, `master key file ${file}`));
  } finally {
    buf.fill(0);
  }
}

export function loadMasterKeyEnv(backend: CryptoBackend, env: NodeJS.ProcessEnv = process.env, name = MASTER_KEY_ENV): MasterKey {
  const v = env[name];
  if (v === undefined || v === '') throw new MasterKeyError(`environment variable ${name} is not set`);
  return makeMasterKey(backend, decodeMasterKey(v, `environment variable ${name}`));
}

/** Creates a stash file (0600, hex, never overwriting) holding `key`. */
export function writeMasterKeyFile(file: string, key: Uint8Array): void {
  writePrivateFile(file, Buffer.from(key).toString('hex') + '\n', 'master key file');
}

function aad(kind: string, ...parts: (string | number)[]): Uint8Array {
  // Length-prefixed fields, so no two (name, kvno, id) triples encode alike.
  const chunks: Buffer[] = [Buffer.from(kind)];
  for (const p of parts) {
    if (typeof p === 'number') {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(p);
      chunks.push(b);
    } else {
      const s = Buffer.from(p, 'utf8');
      const len = Buffer.alloc(2);
      len.writeUInt16BE(s.length);
      chunks.push(len, s);
    }
  }
  return new Uint8Array(Buffer.concat(chunks));
}

export class MasterKeyRing {
  private readonly byId = new Map<string, MasterKey>();

  constructor(
    private readonly backend: CryptoBackend,
    readonly current: MasterKey,
    additional: readonly MasterKey[] = [],
  ) {
    for (const k of [current, ...additional]) if (!this.byId.has(k.id)) this.byId.set(k.id, k);
  }

  get ids(): string[] {
    return [...this.byId.keys()];
  }

  /** Every loaded master key, current first. */
  get keys(): MasterKey[] {
    return [...this.byId.values()];
  }

  /** The same keys with `id` as the one new seals use (the store's recorded master key). */
  withCurrent(id: string): MasterKeyRing {
    const mk = this.byId.get(id);
    if (!mk) throw new MasterKeyError(`master key ${id} is not loaded (loaded: ${this.ids.join(', ')})`);
    return mk === this.current ? this : new MasterKeyRing(this.backend, mk, this.keys);
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  /** Seals a principal key under the current master key, bound to (name, kvno, master key id). */
  seal(name: string, kvno: number, key: Uint8Array, random: RandomSource, now: number, validUntil: number | null = null): SealedKey {
    if (key.length !== PRINCIPAL_KEY_LEN) throw new MasterKeyError(`principal key: expected ${PRINCIPAL_KEY_LEN} bytes, got ${key.length}`);
    const nonce = random(NONCE_LEN);
    const sealed = this.backend.aeadSeal(this.current.key, nonce, key, aad(KEY_AAD, name, kvno, this.current.id));
    return {
      kvno,
      masterKeyId: this.current.id,
      nonce: Buffer.from(nonce).toString('hex'),
      sealed: Buffer.from(sealed).toString('hex'),
      createdAt: now,
      validUntil,
    };
  }

  /** Opens a sealed principal key; MasterKeyError when the master key is unknown or the seal does not verify. */
  unseal(name: string, sk: SealedKey): Uint8Array {
    const mk = this.byId.get(sk.masterKeyId);
    if (!mk) throw new MasterKeyError(`principal ${name} kvno ${sk.kvno} is sealed under master key ${sk.masterKeyId}, which is not loaded (loaded: ${this.ids.join(', ')})`);
    const nonce = Buffer.from(sk.nonce, 'hex');
    const sealed = Buffer.from(sk.sealed, 'hex');
    const key = nonce.length === NONCE_LEN ? this.backend.aeadOpen(mk.key, nonce, sealed, aad(KEY_AAD, name, sk.kvno, mk.id)) : null;
    if (key === null || key.length !== PRINCIPAL_KEY_LEN) {
      throw new MasterKeyError(`principal ${name} kvno ${sk.kvno}: sealed key does not verify (tampered, or moved from another principal or kvno)`);
    }
    return key;
  }

  /** Re-seals under the current master key (a no-op copy when it already is). */
  reseal(name: string, sk: SealedKey, random: RandomSource): SealedKey {
    if (sk.masterKeyId === this.current.id) return sk;
    const key = this.unseal(name, sk);
    try {
      return { ...this.seal(name, sk.kvno, key, random, sk.createdAt, sk.validUntil) };
    } finally {
      key.fill(0);
    }
  }

  /** A known constant sealed under the current master key, stored in StoreMeta. */
  makeCheck(random: RandomSource): StoreMeta['masterKeyCheck'] {
    const nonce = random(NONCE_LEN);
    const sealed = this.backend.aeadSeal(this.current.key, nonce, CHECK_PLAINTEXT, aad(CHECK_AAD, this.current.id));
    return { nonce: Buffer.from(nonce).toString('hex'), sealed: Buffer.from(sealed).toString('hex') };
  }

  /**
   * Checks that the store's master key (meta.masterKeyId) is in this ring and is the same key
   * (its check value opens). Throws MasterKeyError saying which key the store expects.
   */
  verifyMeta(meta: StoreMeta): void {
    const mk = this.byId.get(meta.masterKeyId);
    if (!mk) {
      throw new MasterKeyError(`the store's principal keys are sealed under master key ${meta.masterKeyId}, but the loaded master key is ${this.ids.join(', ')}`);
    }
    const opened = this.backend.aeadOpen(
      mk.key,
      Buffer.from(meta.masterKeyCheck.nonce, 'hex'),
      Buffer.from(meta.masterKeyCheck.sealed, 'hex'),
      aad(CHECK_AAD, mk.id),
    );
    if (opened === null || !constantTimeEqual(opened, CHECK_PLAINTEXT)) {
      throw new MasterKeyError(`master key ${mk.id} does not open the store's check value: the store's meta record was altered`);
    }
  }
}

/** Where a master key comes from: a stash file, or an environment variable. */
export type MasterKeySource = { file: string } | { env: string };

export function describeSource(s: MasterKeySource): string {
  return 'file' in s ? `file ${s.file}` : `environment variable ${s.env}`;
}

export function loadMasterKey(backend: CryptoBackend, s: MasterKeySource, env: NodeJS.ProcessEnv = process.env): MasterKey {
  return 'file' in s ? loadMasterKeyFile(backend, s.file) : loadMasterKeyEnv(backend, env, s.env);
}

/** The current master key plus additional ones still needed during a rotation. */
export function loadMasterKeyRing(
  backend: CryptoBackend,
  cfg: { current: MasterKeySource; additional: readonly MasterKeySource[] },
  env: NodeJS.ProcessEnv = process.env,
): MasterKeyRing {
  return new MasterKeyRing(
    backend,
    loadMasterKey(backend, cfg.current, env),
    cfg.additional.map((p) => loadMasterKey(backend, p, env)),
  );
}
