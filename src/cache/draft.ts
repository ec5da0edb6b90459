import type { CachePolicy } from './policy.js';

/**
 * Evictions plain decoding would make while feeding `n` tokens one at a time into a cache of
 * `length` tokens (evict before each append, and once after the last): `before[j]` tokens are gone
 * by the time token j is fed, `after` once all n are in. A draft appends its tokens without evicting
 * (a rejected one must not push a real token out), so these numbers say what each draft row must
 * not see and how much to evict once the accepted count is known.
 */
export function plainEvictions(policy: CachePolicy, length: number, n: number): { before: number[]; after: number } {
  const before: number[] = [];
  let len = length, gone = 0;
  for (let j = 0; j < n; j++) {
    const r = policy.evictCount(len);
    len -= r; gone += r;
    before.push(gone);
    len++;
  }
  return { before, after: gone + policy.evictCount(len) };
}
