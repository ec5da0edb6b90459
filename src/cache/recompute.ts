import { StreamlmError } from '../errors.js';
import type { SlotBook } from './book.js';
import type { KVCache } from './kvcache.js';
import type { CachePolicy, Forward, RunOptions } from './policy.js';

/**
 * Sliding window with re-computation, the paper's quality baseline: each token re-runs the `keep`
 * tokens before it from scratch, O(W) forwards of work per token. The book keeps their ids only.
 */
export class Recompute implements CachePolicy {
  readonly name: string;
  readonly sinks = 0;
  readonly bounded = true;
  readonly carriesKV = false;
  readonly evictChunk = 1;
  readonly numGroups = 1;
  constructor(readonly keep: number) { this.name = `recompute:${keep}`; }
  /** The window plus the token it predicts from, whatever the prefill chunk. */
  capacity(): number { return this.keep + 1; }
  groupOf(): number { return 0; }
  evict(book: SlotBook): void {
    if (book.length > this.keep) book.remove(0, book.length - this.keep);
  }
  evictCount(length: number): number { return Math.max(0, length - this.keep); }
  run(cache: KVCache, ids: readonly number[], forward: Forward, opts: RunOptions): Float32Array {
    if (ids.length === 0) throw new StreamlmError('no tokens to feed', { field: 'prompt' });
    if (opts.evictAfter === false) throw new StreamlmError(`${this.name} re-runs its window every step, so it cannot hold a draft to take back; use a policy that keeps K/V`, { field: 'cache' });
    if (opts.logits === 'all') {
      const parts = ids.map((id) => this.step(cache, id, forward));
      const all = new Float32Array(parts.length * parts[0].length);
      parts.forEach((p, i) => all.set(p, i * p.length));
      return all;
    }
    // Only the last token's logits are wanted, so only its window needs computing.
    for (const id of ids.slice(0, -1)) { cache.record(id, this); this.evict(cache.book); }
    return this.step(cache, ids[ids.length - 1], forward);
  }
  largestWithin(slots: number): string | null { return slots >= 2 ? `recompute:${slots - 1}` : null; }

  private step(cache: KVCache, id: number, forward: Forward): Float32Array {
    const window = [...cache.book.tokens(), id];
    const logits = forward(window, cache.replay(window, this, 1), 'last');
    this.evict(cache.book);
    return logits;
  }
}
