import { StreamlmError } from '../../errors.js';
import { DirStore } from './dir.js';
import type { SessionStore } from './types.js';

export interface StoreSpec { kind: 'dir'; path: string }

/** Checks `--session-store` before the model loads: `dir:PATH`. */
export function parseStoreSpec(spec: string): StoreSpec {
  if (spec.startsWith('dir:') && spec.length > 4) return { kind: 'dir', path: spec.slice(4) };
  throw new StreamlmError(`expected dir:PATH, got '${spec}'`, { field: '--session-store' });
}

/**
 * Opens the store. `namespace` (model fingerprint and cache settings) goes into every key, so a
 * server with another model or other settings never reads these snapshots.
 */
export function openStore(spec: StoreSpec, namespace: string): SessionStore {
  return new DirStore(spec.path, namespace);
}
