// The optional native ChaCha20-Poly1305 (native/aead: two N-API calls over the OpenSSL node
// links). scripts/setup.sh builds it; when it is missing the node backend falls back to
// createCipheriv, which gives the same bytes at about five times the cost per call.
import { loadNativeAddon } from '../native-addon';

export interface NativeAead {
  /** out = ciphertext || tag; out.length must be plaintext.length + 16. */
  seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array, out: Uint8Array): void;
  /** out = plaintext when the tag verifies (else zeroed, false); out.length = sealed.length - 16. */
  open(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array, out: Uint8Array): boolean;
}

/** The addon, or null when it is not built (or CIPHERGATE_NATIVE_AEAD=0). */
export const nativeAead: NativeAead | null = loadNativeAddon<NativeAead>('aead', 'cg_aead', 'CIPHERGATE_NATIVE_AEAD');
