import type { Model } from '../model.js';

export interface StreamEvalOptions {
  /** Cache policy, as in `Session`. */
  cache: string;
  evictChunk?: number;
  /** Predictions at index >= this count toward `pplAfterWindow`. */
  afterWindow: number;
  /** Bucket size of `nllPer1k` (default 1000). */
  bucket?: number;
  /** Called after every token with the number done. */
  onProgress?: (done: number) => void;
}

export interface StreamEvalResult {
  cache: string;
  tokens: number;
  ppl: number;
  ppl_after_window: number | null;
  /** Mean NLL (nats) of each bucket of predictions, in stream order. */
  nll_per_1k: number[];
  tok_s: number;
  peak_rss_mb: number;
}

/** −log softmax(logits)[target], in float64. */
export function nll(logits: Float32Array, target: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return Math.log(sum) + max - logits[target];
}

/**
 * The paper's streaming evaluation: each token is predicted from the cache, then appended, then
 * the policy evicts. Token t's logits score token t+1, so N tokens give N−1 predictions.
 */
export function evalStream(model: Model, ids: readonly number[], opts: StreamEvalOptions): StreamEvalResult {
  const bucket = opts.bucket ?? 1000;
  const session = model.session({ cache: opts.cache, evictChunk: opts.evictChunk, maxTokens: ids.length + 1, prefillChunk: 1 });
  let sum = 0, sumAfter = 0, nAfter = 0, bSum = 0, bN = 0;
  const buckets: number[] = [];
  const t0 = performance.now();
  try {
    for (let t = 0; t + 1 < ids.length; t++) {
      const l = nll(session.step(ids[t]), ids[t + 1]);
      sum += l;
      if (t >= opts.afterWindow) { sumAfter += l; nAfter++; }
      bSum += l; bN++;
      if (bN === bucket) { buckets.push(bSum / bN); bSum = 0; bN = 0; }
      opts.onProgress?.(t + 1);
    }
  } finally {
    session.close();
  }
  if (bN > 0) buckets.push(bSum / bN);
  const n = ids.length - 1;
  const secs = (performance.now() - t0) / 1000;
  return {
    cache: session.policy.name,
    tokens: ids.length,
    ppl: Math.exp(sum / n),
    ppl_after_window: nAfter > 0 ? Math.exp(sumAfter / nAfter) : null,
    nll_per_1k: buckets,
    tok_s: n / secs,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
  };
}
