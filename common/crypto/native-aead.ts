// The optional native ChaCha20-Poly1305 (native/aead: two N-API calls over the OpenSSL node
// links). scripts/setup.sh builds it; when it is missing the node backend falls back to
// createCipheriv, which gives the same bytes at about five times the cost per call.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface NativeAead {
  /** out = ciphertext || tag; out.length must be plaintext.length + 16. */
  seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array, out: Uint8Array): void;
  /** out = plaintext when the tag verifies (else zeroed, false); out.length = sealed.length - 16. */
  open(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array, out: Uint8Array): boolean;
}

const ADDON = path.join('native', 'aead', 'build', 'Release', 'cg_aead.node');

/** The package root: the nearest directory above this file with native/aead in it (source or dist/ layout). */
function addonPath(): string | null {
  for (let dir = __dirname, i = 0; i < 5; i++, dir = path.dirname(dir)) {
    const p = path.join(dir, ADDON);
    if (fs.existsSync(p)) return p;
  }
  return null;
}

function load(): NativeAead | null {
  if (process.env.CIPHERGATE_NATIVE_AEAD === '0') return null;
  const p = addonPath();
  if (p === null) return null;
  try {
    const m = { exports: {} as NativeAead };
    process.dlopen(m, p);
    return m.exports;
  } catch {
    return null; // built for another node ABI, say: the fallback is correct, only slower
  }
}

/** The addon, or null when it is not built (or CIPHERGATE_NATIVE_AEAD=0). */
export const nativeAead: NativeAead | null = load();
