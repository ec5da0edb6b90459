/**
 * Where idle sessions' snapshots live between turns, beyond one process's memory: a directory
 * (survives restarts) or Redis (shared by replicas). The store holds opaque bytes by session id;
 * it knows neither HTTP nor the engine's caches.
 */
export interface SessionStore {
  /** `dir:PATH` or `redis://HOST:PORT/DB`, for logs. */
  readonly name: string;
  /** The snapshot saved under `id`, or null when none. */
  get(id: string): Promise<Uint8Array | null>;
  /** Replaces the snapshot of `id`; a reader sees the old or the new bytes, never a mix. */
  put(id: string, bytes: Uint8Array): Promise<void>;
  delete(id: string): Promise<void>;
  /**
   * Takes the right to run a turn on `id` across processes; returns a release function, or null
   * when another holder has it (the caller answers 409). Stores of one process return a no-op.
   */
  lock(id: string): Promise<(() => Promise<void>) | null>;
  close(): Promise<void>;
}
