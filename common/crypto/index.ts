// Backend selection. Both backends are byte-identical (test/crypto); they differ in speed.
//
// defaultBackend = node. On the per-segment path its cost is per native call (set-up and the
// Buffer each call returns) more than per byte, so the segment code keeps calls few: a running
// keystream fetched ahead (KeystreamCursor) and HMAC keys prepared once (hmacKey), with digests
// read back as strings. Noble, pure JS, pays per byte: it is slower on full-size segments.
// Figures: `ciphergate bench engine` (bench/results/engine-latest.json).
import type { BackendName, CryptoBackend } from './backend';
import { nobleBackend } from './noble-backend';
import { nodeBackend } from './node-backend';

export type { BackendName, CryptoBackend } from './backend';

export const backendNames: readonly BackendName[] = ['node', 'noble'];

export function isBackendName(name: string): name is BackendName {
  return (backendNames as readonly string[]).includes(name);
}

export function getBackend(name: BackendName): CryptoBackend {
  switch (name) {
    case 'node':
      return nodeBackend;
    case 'noble':
      return nobleBackend;
    default:
      throw new RangeError(`unknown crypto backend ${JSON.stringify(name)}; expected one of ${backendNames.join(', ')}`);
  }
}

export const defaultBackend: CryptoBackend = nodeBackend;
