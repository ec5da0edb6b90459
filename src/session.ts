import { KVCache } from './cache/kvcache.js';
import { parsePolicy, type CachePolicy, type PolicyOptions } from './cache/policy.js';
import { StreamlmError } from './errors.js';
import type { ForwardOptions, Transformer } from './models/transformer.js';

export interface SessionOptions extends PolicyOptions {
  /** Cache policy: `dense`, `window:W`, `sink:S+W` or `recompute:W` (default `sink:4+1020`). */
  cache?: string;
  /** Prompt tokens per forward during prefill (default 64). */
  prefillChunk?: number;
  /** Slots for a dense cache, which never evicts (default: the model's trained context). */
  maxTokens?: number;
  /**
   * A pre-allocated cache (from `Model.allocCache`) to use instead of allocating one. The session
   * resets it and never frees it, so such sessions may be closed in any order.
   */
  kv?: KVCache;
}

/** KV slots a session with `policy` needs: what it keeps plus one prefill chunk. */
export function cacheCapacity(policy: CachePolicy, prefillChunk: number, maxPositions: number, maxTokens?: number): number {
  if (policy.recompute) return policy.keep + 1;
  if (Number.isFinite(policy.keep)) return policy.keep + prefillChunk;
  return maxTokens ?? maxPositions;
}

/** Cache occupancy, for status lines and metrics. */
export interface CacheStats { policy: string; length: number; sinks: number; seen: number; evicted: number; capacity: number; bytes: number }

/**
 * One stream of text through one model: the KV cache plus its eviction policy.
 * Per-token steps follow the paper exactly: the token attends to the cache and itself, is appended,
 * then the policy evicts. Prefill appends a chunk at once, so late tokens in a chunk may see up to
 * `prefillChunk − 1` extra recent tokens.
 */
export class Session {
  readonly policy: CachePolicy;
  readonly cache: KVCache;
  readonly prefillChunk: number;
  /** Recompute keeps tokens, not K/V, between steps. */
  private history: number[] = [];
  private closed = false;

  constructor(private readonly net: Transformer, private readonly release: () => void, opts: SessionOptions = {}) {
    this.policy = parsePolicy(opts.cache ?? 'sink:4+1020', opts);
    this.prefillChunk = opts.prefillChunk ?? 64;
    if (!Number.isInteger(this.prefillChunk) || this.prefillChunk < 1) throw new StreamlmError(`prefillChunk must be a positive integer, got ${opts.prefillChunk}`, { field: 'prefillChunk' });
    const hp = net.hp;
    const capacity = cacheCapacity(this.policy, this.prefillChunk, hp.maxPositionEmbeddings, opts.maxTokens);
    const kvDim = hp.numKvHeads * hp.headDim;
    if (opts.kv) {
      const kv = opts.kv;
      if (kv.k.length !== hp.numLayers || kv.kvDim !== kvDim) throw new StreamlmError(`the given KV cache has ${kv.k.length} layers of width ${kv.kvDim}; this model needs ${hp.numLayers} of width ${kvDim}`, { field: 'kv' });
      if (kv.capacity < capacity) throw new StreamlmError(`the given KV cache has ${kv.capacity} slots; ${this.policy.name} with prefill chunk ${this.prefillChunk} needs ${capacity}`, { field: 'kv' });
      kv.reset();
      this.cache = kv;
    } else {
      this.cache = new KVCache(net.rt, hp.numLayers, kvDim, capacity);
    }
  }

  /** Feeds prompt tokens; returns the logits after the last one. */
  prefill(ids: readonly number[], opts: ForwardOptions = {}): Float32Array {
    if (ids.length === 0) throw new StreamlmError('prefill needs at least one token', { field: 'prompt' });
    if (this.policy.recompute) {
      let last: Float32Array | null = null;
      // Only the last token's logits are wanted, so only its window needs computing.
      this.history.push(...ids.slice(0, -1));
      this.trimHistory();
      last = this.step(ids[ids.length - 1], opts);
      return last;
    }
    let logits: Float32Array | null = null;
    for (let i = 0; i < ids.length; i += this.prefillChunk) {
      logits = this.forward(ids.slice(i, i + this.prefillChunk), opts);
    }
    return logits!;
  }

  /** Appends one token; returns the logits predicting the next. */
  step(id: number, opts: ForwardOptions = {}): Float32Array {
    if (!this.policy.recompute) return this.forward([id], opts);
    const window = [...this.history, id];
    this.cache.reset();
    const batch = this.cache.append(window, this.policy);
    const logits = this.net.forward(window, batch, opts);
    this.history.push(id);
    this.trimHistory();
    return logits;
  }

  /** Runs tokens through the model and returns logits for each of them (M, vocab). */
  forwardAll(ids: readonly number[]): Float32Array {
    if (this.policy.recompute) throw new StreamlmError('forwardAll is not defined for recompute policies; use step()', { field: 'cache' });
    return this.forward(ids, { logits: 'all' });
  }

  stats(): CacheStats {
    const c = this.cache;
    const sinks = Math.min(c.length, this.policy.sinks);
    return { policy: this.policy.name, length: c.length, sinks, seen: c.seen, evicted: c.evicted, capacity: c.capacity, bytes: c.bytes };
  }

  /**
   * Frees the cache memory. Sessions that allocated their own cache must be closed in reverse order
   * of creation; with a pre-allocated `kv` the cache is only handed back to its owner.
   */
  close(): void { if (!this.closed) { this.closed = true; this.release(); } }

  private forward(ids: readonly number[], opts: ForwardOptions): Float32Array {
    this.policy.evict(this.cache.book);
    if (this.cache.length + ids.length > this.cache.capacity)
      throw new StreamlmError(`dense cache is full (${this.cache.capacity} tokens); create the session with a larger maxTokens or use a sink policy`, { field: 'maxTokens' });
    const batch = this.cache.append(ids, this.policy);
    const logits = this.net.forward(ids, batch, opts);
    this.policy.evict(this.cache.book);
    return logits;
  }

  private trimHistory(): void {
    if (this.history.length > this.policy.keep) this.history.splice(0, this.history.length - this.policy.keep);
  }
}
