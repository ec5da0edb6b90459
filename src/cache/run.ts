import { StreamlmError } from '../errors.js';
import type { KVCache } from './kvcache.js';
import type { CachePolicy, Forward, RunOptions } from './policy.js';

/**
 * How a policy that carries K/V feeds tokens: per chunk, evict, append, forward, evict. Evicting
 * before the append too keeps room for a chunk after a draft that deferred its eviction.
 */
export function runCached(policy: CachePolicy, cache: KVCache, ids: readonly number[], forward: Forward, opts: RunOptions): Float32Array {
  if (ids.length === 0) throw new StreamlmError('no tokens to feed', { field: 'prompt' });
  const all = opts.logits === 'all';
  const parts: Float32Array[] = [];
  for (let i = 0; i < ids.length; i += opts.chunk) {
    const part = ids.slice(i, i + opts.chunk);
    policy.evict(cache.book);
    if (cache.length + part.length > cache.capacity)
      throw new StreamlmError(`the ${policy.name} cache is full (${cache.capacity} slots, ${cache.length} used); create the session with a larger maxTokens, feed fewer tokens at once, or use a bounded policy`, { field: 'maxTokens' });
    const batch = opts.evictAfter === false ? cache.appendDraft(part, policy) : cache.append(part, policy);
    const logits = forward(part, batch, all ? 'all' : 'last');
    if (opts.evictAfter !== false) policy.evict(cache.book);
    if (all || i + opts.chunk >= ids.length) parts.push(logits);
  }
  if (parts.length === 1) return parts[0];
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}
