import { activation, common, Fields, heads, kvHeads, rope, type HParams, type Obj } from '../config.js';
import type { Family } from '../family.js';
import type { LayerWeights, ModelWeights, WeightLoader } from '../weights.js';
import { qkvRowMap } from './qkv.js';

/** Falcon (RW): multi-query or grouped attention, parallel blocks, RoPE or ALiBi. */
export const falcon: Family = { architectures: ['FalconForCausalLM'], parse, load };

function parse(f: Fields, arch: string): HParams {
  // Pre-5.x Falcon configs (and the RW checkpoints) spell these n_embed, n_head, n_layer, n_head_kv.
  const pick = (a: string, b: string): string => (f.has(a) ? a : b);
  const hiddenSize = f.int(pick('hidden_size', 'n_embed'), 4544);
  const numHeads = f.int(pick('num_attention_heads', 'n_head'), 71);
  const headDim = heads(f, hiddenSize, numHeads, null);
  const newArch = f.bool('new_decoder_architecture', false);
  const parallelAttn = f.bool('parallel_attn', true);
  const alibi = f.bool('alibi', false);

  let numKvHeads: number;
  let residual: HParams['residual'];
  if (newArch) {
    numKvHeads = kvHeads(f, pick('num_kv_heads', 'n_head_kv'), numHeads);
    // transformers builds ln_attn/ln_mlp only when parallel_attn is set, and crashes otherwise.
    if (!parallelAttn) f.unsupported('parallel_attn', 'new_decoder_architecture always runs attention and MLP in parallel');
    const nLn = f.has('num_ln_in_parallel_attn') ? f.int('num_ln_in_parallel_attn') : 2;
    if (nLn !== 1 && nLn !== 2) f.unsupported('num_ln_in_parallel_attn', 'expected 1 or 2');
    residual = nLn === 2 ? 'parallel' : 'parallel_shared_norm';
  } else {
    numKvHeads = f.bool('multi_query', true) ? 1 : numHeads;
    residual = parallelAttn ? 'parallel_shared_norm' : 'sequential';
  }
  if (alibi && (f.has('rope_scaling') || f.has('rope_parameters'))) {
    const key = f.has('rope_scaling') ? 'rope_scaling' : 'rope_parameters';
    const p = f.o[key] as Obj;
    const type = p?.rope_type ?? p?.type ?? 'default';
    if (type !== 'default') f.unsupported(key, 'RoPE scaling has no meaning when alibi is true');
  }
  const bias = f.bool('bias', false);
  return {
    ...common(f, arch, 11, 11),
    vocabSize: f.int('vocab_size', 65024),
    hiddenSize,
    intermediateSize: f.has('ffn_hidden_size') ? f.int('ffn_hidden_size') : 4 * hiddenSize,
    numLayers: f.int(pick('num_hidden_layers', 'n_layer'), 32),
    numHeads,
    numKvHeads,
    headDim,
    maxPositionEmbeddings: f.int('max_position_embeddings', 2048),
    norm: 'layer',
    normEps: f.num('layer_norm_epsilon', 1e-5),
    normBias: true,
    act: activation(f, 'activation', 'gelu'),
    gatedMlp: false,
    qkvBias: bias,
    oBias: bias,
    mlpBias: bias,
    residual,
    position: alibi ? { kind: 'alibi', biasMax: 8 } : rope(f, headDim, f.int('max_position_embeddings', 2048), 10000, 1),
    clipQkv: null,
    tieWordEmbeddings: f.bool('tie_word_embeddings', true),
    slidingWindow: null,
  };
}

/**
 * Falcon. Three fused QKV layouts: grouped [q × (nH/nKv), k, v] per kv head (new decoder
 * architecture), [q heads…, k, v] (multi-query), and per head [q, k, v] (multi-head).
 */
function load(hp: HParams, w: WeightLoader, config: Record<string, unknown>): ModelWeights {
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
    lmHead: w.lmHead(hp, 'transformer.word_embeddings.weight', 'lm_head.weight', embed),
    // Falcon adds the ALiBi bias before the 1/√headDim scaling, so its slopes carry the scale.
    alibiSlopes: hp.position.kind === 'alibi' ? w.constant(bloomAlibiSlopes(nH).map((s) => s / Math.sqrt(hd))) : 0,
  };
}

/** BLOOM's slopes: 2^(−8i/n) for the largest power of two n ≤ heads, then odd powers of the next. */
function bloomAlibiSlopes(nHeads: number): Float32Array {
  const n = 2 ** Math.floor(Math.log2(nHeads));
  const slopes: number[] = [];
  for (let i = 1; i <= n; i++) slopes.push(2 ** (-8 * i / n));
  for (let i = 1; slopes.length < nHeads; i += 2) slopes.push(2 ** (-4 * i / n));
  return Float32Array.from(slopes);
}
