import type { Model } from '../model.js';

export interface AttentionMap {
  layer: number;
  /** (T, T) attention averaged over heads: row = query, column = key. */
  mean: Float32Array;
  /** Mean attention on position 0 over heads and queries 1..T−1. */
  sinkShare: number;
  /** Share of heads whose mean attention on position 0 exceeds 0.3 (Gu et al. 2025's metric). */
  sinkHeads: number;
}

/** Attention of the first `T` tokens on each other, per layer, from one dense forward. */
export function attentionMaps(model: Model, ids: readonly number[], T = 64): AttentionMap[] {
  const toks = ids.slice(0, T);
  const n = toks.length;
  const nH = model.hparams.numHeads;
  const maps: AttentionMap[] = [];
  const s = model.session({ cache: 'dense', maxTokens: n, prefillChunk: n });
  try {
    s.prefill(toks, {
      onAttention: (layer, probs) => {
        // probs: (n, nH, nSlots) with nSlots == n for a fresh dense cache.
        const slots = probs.length / (n * nH);
        const mean = new Float32Array(n * n);
        let share = 0, heads = 0;
        for (let h = 0; h < nH; h++) {
          let onZero = 0;
          for (let q = 0; q < n; q++)
            for (let k = 0; k < n; k++) {
              const p = probs[(q * nH + h) * slots + k];
              mean[q * n + k] += p / nH;
              if (k === 0 && q > 0) onZero += p;
            }
          const avg = n > 1 ? onZero / (n - 1) : 1;
          share += avg / nH;
          if (avg > 0.3) heads++;
        }
        maps.push({ layer, mean, sinkShare: share, sinkHeads: heads / nH });
      },
    });
  } finally {
    s.close();
  }
  return maps;
}
