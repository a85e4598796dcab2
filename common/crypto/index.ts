// Backend selection. Both backends are byte-identical (test/crypto); they differ in speed.
//
// defaultBackend = node. Measured once with a throwaway script (best of 7 runs; a 2-core VM
// shared with other jobs, so +-20%): Node 20.20.2, OpenSSL 3.0.19, x86-64; ns per call.
//                                      node    noble
//   keystreamXor   64 B, aligned        2100     1200
//   keystreamXor   64 B, offset 7       2400     1700
//   keystreamXor 1460 B, aligned        3200     5200
//   keystreamXor 1460 B, offset 1       3400     5400
//   hmacSha256   1480 B                 2900    11000
// A protected full-size segment needs one of each: node ~6.1 us (~165k segments/s per core),
// noble ~16 us. Noble is only faster on tiny segments; node's cost there is the per-call
// cipher object (createCipheriv ~1.4 us), which node offers no way to reuse.
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
