import type { HParams } from '../config.js';
import type { LayerWeights, ModelWeights } from '../transformer.js';
import type { Linear, WeightLoader } from '../weights.js';

/** Llama, Mistral and Qwen2: RMSNorm, RoPE, GQA, SwiGLU; Qwen2 adds q/k/v biases. */
export function loadLlama(hp: HParams, w: WeightLoader): ModelWeights {
  const H = hp.hiddenSize, F = hp.intermediateSize;
  const qDim = hp.numHeads * hp.headDim, kvDim = hp.numKvHeads * hp.headDim;
  const layers: LayerWeights[] = [];
  for (let i = 0; i < hp.numLayers; i++) {
    const p = `model.layers.${i}.`;
    const a = `${p}self_attn.`;
    layers.push({
      norm1: w.norm(`${p}input_layernorm.weight`, null, H),
      norm2: w.norm(`${p}post_attention_layernorm.weight`, null, H),
      qkv: w.linear([{ name: `${a}q_proj.weight` }, { name: `${a}k_proj.weight` }, { name: `${a}v_proj.weight` }], H,
        hp.qkvBias ? [`${a}q_proj.bias`, `${a}k_proj.bias`, `${a}v_proj.bias`] : null, [qDim, kvDim, kvDim]),
      o: w.linear([{ name: `${a}o_proj.weight` }], qDim, hp.oBias ? [`${a}o_proj.bias`] : null, [H]),
      up: w.linear([{ name: `${p}mlp.gate_proj.weight` }, { name: `${p}mlp.up_proj.weight` }], H, null, [F, F]),
      down: w.linear([{ name: `${p}mlp.down_proj.weight` }], F, null, [H]),
    });
  }
  const embed = w.embedding('model.embed_tokens.weight', hp.vocabSize, H);
  return {
    embed,
    layers,
    finalNorm: w.norm('model.norm.weight', null, H),
    lmHead: lmHead(w, hp, 'model.embed_tokens.weight', 'lm_head.weight', embed),
    alibiSlopes: 0,
  };
}

/** The output projection: its own tensor, or the embedding table reused when tied. */
export function lmHead(w: WeightLoader, hp: HParams, embedName: string, headName: string, embed: ModelWeights['embed']): Linear {
  const H = hp.hiddenSize;
  if (!hp.tieWordEmbeddings) return w.linear([{ name: headName }], H, null, [hp.vocabSize]);
  // A tied head in another dtype than the table needs its own converted copy.
  if (w.target !== 'auto' && w.target !== embed.dtype) return w.linear([{ name: embedName }], H, null, [hp.vocabSize]);
  return { dtype: embed.dtype, w: embed.table, ws: 0, bias: 0, N: hp.vocabSize, K: H };
}
