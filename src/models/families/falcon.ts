import type { HParams } from '../config.js';
import type { LayerWeights, ModelWeights } from '../transformer.js';
import type { WeightLoader } from '../weights.js';
import { lmHead } from './llama.js';
import { qkvRowMap } from './qkv.js';

/**
 * Falcon. Three fused QKV layouts: grouped [q × (nH/nKv), k, v] per kv head (new decoder
 * architecture), [q heads…, k, v] (multi-query), and per head [q, k, v] (multi-head).
 */
export function loadFalcon(hp: HParams, w: WeightLoader, config: Record<string, unknown>): ModelWeights {
  const H = hp.hiddenSize, F = hp.intermediateSize, hd = hp.headDim, nH = hp.numHeads, nKv = hp.numKvHeads;
  let map: Int32Array;
  const newArch = config.new_decoder_architecture === true;
  if (nKv === nH && !newArch) {
    map = qkvRowMap(nH, hd, (h) => [h * 3 * hd, h * 3 * hd + hd, h * 3 * hd + 2 * hd]);
  } else if (!newArch) {
    map = qkvRowMap(nH, hd, (h) => [h * hd, nH * hd, (nH + 1) * hd], nKv, () => 0);
  } else {
    const per = nH / nKv, group = (per + 2) * hd;
    map = qkvRowMap(nH, hd, (h) => {
      const g = Math.floor(h / per), j = h % per;
      return [g * group + j * hd, g * group + per * hd, g * group + (per + 1) * hd];
    }, nKv, (j) => j * per);
  }
  const qkvRows = (nH + 2 * nKv) * hd;
  const layers: LayerWeights[] = [];
  for (let i = 0; i < hp.numLayers; i++) {
    const p = `transformer.h.${i}.`;
    const a = `${p}self_attention.`;
    const norms = w.has(`${p}ln_attn.weight`)
      ? { norm1: w.norm(`${p}ln_attn.weight`, `${p}ln_attn.bias`, H), norm2: w.norm(`${p}ln_mlp.weight`, `${p}ln_mlp.bias`, H) }
      : {
        norm1: w.norm(`${p}input_layernorm.weight`, `${p}input_layernorm.bias`, H),
        norm2: hp.residual === 'sequential' ? w.norm(`${p}post_attention_layernorm.weight`, `${p}post_attention_layernorm.bias`, H) : null,
      };
    layers.push({
      ...norms,
      qkv: w.linear([{ name: `${a}query_key_value.weight`, rowMap: map }], H, hp.qkvBias ? [`${a}query_key_value.bias`] : null, [qkvRows]),
      o: w.linear([{ name: `${a}dense.weight` }], nH * hd, hp.oBias ? [`${a}dense.bias`] : null, [H]),
      up: w.linear([{ name: `${p}mlp.dense_h_to_4h.weight` }], H, hp.mlpBias ? [`${p}mlp.dense_h_to_4h.bias`] : null, [F]),
      down: w.linear([{ name: `${p}mlp.dense_4h_to_h.weight` }], F, hp.mlpBias ? [`${p}mlp.dense_4h_to_h.bias`] : null, [H]),
    });
  }
  const embed = w.embedding('transformer.word_embeddings.weight', hp.vocabSize, H);
  return {
    embed, layers,
    finalNorm: w.norm('transformer.ln_f.weight', 'transformer.ln_f.bias', H),
    lmHead: lmHead(w, hp, 'transformer.word_embeddings.weight', 'lm_head.weight', embed),
    // Falcon adds the ALiBi bias before the 1/√headDim scaling, so its slopes carry the scale.
    alibiSlopes: hp.position.kind === 'alibi' ? w.constant(bloomAlibiSlopes(nH).map((s) => s / Math.sqrt(hd))) : 0,
  };
}

/** BLOOM's slopes: 2^(−8i/n) for the largest power of two n ≤ heads, then odd powers of the next. */
export function bloomAlibiSlopes(nHeads: number): Float32Array {
  const n = 2 ** Math.floor(Math.log2(nHeads));
  const slopes: number[] = [];
  for (let i = 1; i <= n; i++) slopes.push(2 ** (-8 * i / n));
  for (let i = 1; slopes.length < nHeads; i += 2) slopes.push(2 ** (-4 * i / n));
  return Float32Array.from(slopes);
}
