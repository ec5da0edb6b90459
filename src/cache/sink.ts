import type { SlotBook } from './book.js';
import type { KVCache } from './kvcache.js';
import type { CachePolicy, Forward, RunOptions } from './policy.js';
import { runCached } from './run.js';

/**
 * StreamingLLM: keep the first `sinks` tokens ever seen plus the last `window`. `window:W` is the
 * same rule with no sinks, so the two stay comparable token for token.
 */
export class SinkWindow implements CachePolicy {
  readonly name: string;
  readonly keep: number;
  readonly bounded = true;
  readonly carriesKV = true;
  readonly numGroups: number;
  constructor(readonly sinks: number, readonly window: number, readonly evictChunk: number) {
    this.name = sinks > 0 ? `sink:${sinks}+${window}` : `window:${window}`;
    this.keep = sinks + window;
    // Sinks keep their stream offset 0; the window shifts as tokens leave: two rotation groups.
    this.numGroups = sinks > 0 ? 2 : 1;
  }
  /** What the policy keeps plus one prefill chunk appended before the eviction that follows it. */
  capacity(prefillChunk: number): number { return this.keep + prefillChunk; }
  groupOf(pos: number): number { return this.sinks > 0 && pos >= this.sinks ? 1 : 0; }
  evict(book: SlotBook): void {
    const n = this.evictCount(book.length);
    if (n > 0) book.remove(this.sinks, this.sinks + n);
  }
  evictCount(length: number): number {
    const over = length - this.keep;
    return over <= 0 ? 0 : Math.min(Math.max(over, this.evictChunk), length - this.sinks);
  }
  run(cache: KVCache, ids: readonly number[], forward: Forward, opts: RunOptions): Float32Array { return runCached(this, cache, ids, forward, opts); }
  largestWithin(slots: number, prefillChunk: number): string | null {
    const w = slots - prefillChunk - this.sinks;
    if (w < 1) return null;
    return this.sinks > 0 ? `sink:${this.sinks}+${w}` : `window:${w}`;
  }
}
