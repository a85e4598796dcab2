// Opens the configured store. The KDC service and `kdc-admin` both come through here.
import { openEmbeddedStore, type EmbeddedStoreOptions } from './embedded';
import { RedisKdcStore, type RedisStoreOptions } from './redis';
import type { KdcStore } from './store';

export type StoreConfig = ({ type: 'embedded' } & EmbeddedStoreOptions) | ({ type: 'redis' } & RedisStoreOptions);

/** Opens a store. Redis connects in the background: the first operation waits up to timeoutMs. */
export async function openStore(config: StoreConfig): Promise<KdcStore> {
  if (config.type === 'embedded') {
    const { type: _t, ...opts } = config;
    return openEmbeddedStore(opts);
  }
  const { type: _t, ...opts } = config;
  return new RedisKdcStore(opts);
}

export * from './store';
