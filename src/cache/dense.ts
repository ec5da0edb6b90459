import type { KVCache } from './kvcache.js';
import type { CachePolicy, Forward, RunOptions } from './policy.js';
import { runCached } from './run.js';

/** Keeps every token: memory and cost grow with the stream, up to the session's maxTokens. */
export class Dense implements CachePolicy {
  readonly name = 'dense';
  readonly sinks = 0;
  readonly keep = null;
  readonly bounded = false;
  readonly carriesKV = true;
  readonly evictChunk = 1;
  readonly numGroups = 1;
  capacity(_prefillChunk: number, maxTokens: number): number { return maxTokens; }
  groupOf(): number { return 0; }
  evict(): void {}
  evictCount(): number { return 0; }
  run(cache: KVCache, ids: readonly number[], forward: Forward, opts: RunOptions): Float32Array { return runCached(this, cache, ids, forward, opts); }
  largestWithin(slots: number): string | null { return slots >= 1 ? `a dense cache of ${slots} tokens` : null; }
}
