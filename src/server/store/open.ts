import { StreamlmError } from '../../errors.js';
import { DirStore } from './dir.js';
import { RedisStore } from './redis.js';
import type { SessionStore } from './types.js';

export type StoreSpec = { kind: 'dir'; path: string } | { kind: 'redis'; url: string };

/** Checks `--session-store` before the model loads: `dir:PATH` or `redis://HOST:PORT[/DB]`. */
export function parseStoreSpec(spec: string): StoreSpec {
  if (spec.startsWith('dir:') && spec.length > 4) return { kind: 'dir', path: spec.slice(4) };
  if (/^rediss?:\/\/[^\s/]+(\/\d+)?$/.test(spec)) return { kind: 'redis', url: spec };
  throw new StreamlmError(`expected dir:PATH or redis://HOST:PORT[/DB], got '${spec}'`, { field: '--session-store' });
}

/**
 * Opens the store. `namespace` (model fingerprint and cache settings) goes into every key, so a
 * server with another model or other settings never reads these snapshots.
 */
export async function openStore(spec: StoreSpec, namespace: string, ttlS?: number, lockMs?: number): Promise<SessionStore> {
  if (spec.kind === 'dir') return new DirStore(spec.path, namespace);
  const store = new RedisStore(spec.url, namespace, { ttlS, lockMs });
  try {
    await store.connect();
  } catch (e) {
    await store.close();
    throw new StreamlmError(`cannot reach Redis at ${spec.url}: ${e instanceof Error ? e.message : String(e)}`, { field: '--session-store' });
  }
  return store;
}
