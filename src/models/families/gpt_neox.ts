import { activation, common, Fields, heads, rope, type HParams } from '../config.js';
import type { Family } from '../family.js';
import type { LayerWeights, ModelWeights, WeightLoader } from '../weights.js';
import { qkvRowMap } from './qkv.js';

/** GPT-NeoX (Pythia): LayerNorm with biases, partial rotary, parallel residual, fused per-head QKV. */
export const gptNeox: Family = { architectures: ['GPTNeoXForCausalLM'], parse, load };

function parse(f: Fields, arch: string): HParams {
  const hiddenSize = f.int('hidden_size');
  const numHeads = f.int('num_attention_heads');
  const headDim = heads(f, hiddenSize, numHeads, null);
  const bias = f.bool('attention_bias', true);
  return {
    ...common(f, arch, 0, 2),
    vocabSize: f.int('vocab_size', 50432),
    hiddenSize,
    intermediateSize: f.int('intermediate_size', 24576),
    numLayers: f.int('num_hidden_layers'),
    numHeads,
    numKvHeads: numHeads,
    headDim,
    maxPositionEmbeddings: f.int('max_position_embeddings', 2048),
    norm: 'layer',
    normEps: f.num('layer_norm_eps', 1e-5),
    normBias: true,
    act: activation(f, 'hidden_act', 'gelu'),
    gatedMlp: false,
    qkvBias: bias,
    oBias: bias,
    mlpBias: true,
    residual: f.bool('use_parallel_residual', true) ? 'parallel' : 'sequential',
    position: rope(f, headDim, f.int('max_position_embeddings', 2048), f.num('rotary_emb_base', 10000), f.num('rotary_pct', 0.25)),
    clipQkv: null,
    tieWordEmbeddings: f.bool('tie_word_embeddings', false),
    slidingWindow: null,
  };
}

/** Tensor names: gpt_neox.layers.N.{attention.query_key_value, attention.dense, mlp.dense_h_to_4h, mlp.dense_4h_to_h}. */
function load(hp: HParams, w: WeightLoader): ModelWeights {
  const H = hp.hiddenSize, F = hp.intermediateSize, hd = hp.headDim, nH = hp.numHeads;
  // query_key_value rows are per head [q, k, v]; the shared blocks want [all q; all k; all v].
  const map = qkvRowMap(nH, hd, (h) => [h * 3 * hd, h * 3 * hd + hd, h * 3 * hd + 2 * hd]);
  const layers: LayerWeights[] = [];
  for (let i = 0; i < hp.numLayers; i++) {
    const p = `gpt_neox.layers.${i}.`;
    layers.push({
      norm1: w.norm(`${p}input_layernorm.weight`, `${p}input_layernorm.bias`, H),
      norm2: w.norm(`${p}post_attention_layernorm.weight`, `${p}post_attention_layernorm.bias`, H),
      qkv: w.linear([{ name: `${p}attention.query_key_value.weight`, rowMap: map }], H, [`${p}attention.query_key_value.bias`], [3 * H]),
      o: w.linear([{ name: `${p}attention.dense.weight` }], H, [`${p}attention.dense.bias`], [H]),
      up: w.linear([{ name: `${p}mlp.dense_h_to_4h.weight` }], H, [`${p}mlp.dense_h_to_4h.bias`], [F]),
      down: w.linear([{ name: `${p}mlp.dense_4h_to_h.weight` }], F, [`${p}mlp.dense_4h_to_h.bias`], [H]),
    });
  }
  const embed = w.embedding('gpt_neox.embed_in.weight', hp.vocabSize, H);
  return {
    embed, layers,
    finalNorm: w.norm('gpt_neox.final_layer_norm.weight', 'gpt_neox.final_layer_norm.bias', H),
    lmHead: w.lmHead(hp, 'gpt_neox.embed_in.weight', 'embed_out.weight', embed),
    alibiSlopes: 0,
  };
}
