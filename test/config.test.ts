import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamlmError } from '../src/errors.js';
import type { HParams } from '../src/models/config.js';
import { parseHParams } from '../src/models/registry.js';
import type { TensorInfo } from '../src/runtime/safetensors.js';

// config.json files written by transformers 5.17 save_pretrained() for tiny models (dropout/init fields removed).
const V5: Record<string, Record<string, unknown>> = {
  llama: {"architectures": ["LlamaForCausalLM"], "attention_bias": false, "bos_token_id": 1, "eos_token_id": 2, "head_dim": 16, "hidden_act": "silu", "hidden_size": 64, "intermediate_size": 128, "max_position_embeddings": 2048, "mlp_bias": false, "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2, "pretraining_tp": 1, "rms_norm_eps": 1e-06, "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}, "tie_word_embeddings": true, "vocab_size": 100},
  llama_rope_llama3: {"architectures": ["LlamaForCausalLM"], "attention_bias": false, "bos_token_id": 1, "eos_token_id": [5, 6], "head_dim": 16, "hidden_act": "silu", "hidden_size": 64, "intermediate_size": 128, "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 4, "pretraining_tp": 1, "rms_norm_eps": 1e-06, "rope_parameters": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_theta": 500000.0, "rope_type": "llama3"}, "tie_word_embeddings": false, "vocab_size": 100},
  mistral: {"architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "head_dim": 16, "hidden_act": "silu", "hidden_size": 64, "intermediate_size": 128, "max_position_embeddings": 131072, "model_type": "mistral", "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 1, "rms_norm_eps": 1e-06, "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}, "sliding_window": null, "tie_word_embeddings": false, "vocab_size": 100},
  qwen2: {"architectures": ["Qwen2ForCausalLM"], "bos_token_id": null, "eos_token_id": null, "hidden_act": "silu", "hidden_size": 64, "intermediate_size": 128, "layer_types": ["full_attention", "full_attention"], "max_position_embeddings": 32768, "max_window_layers": 28, "model_type": "qwen2", "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"}, "sliding_window": null, "tie_word_embeddings": false, "use_sliding_window": false, "vocab_size": 100},
  gpt_neox: {"architectures": ["GPTNeoXForCausalLM"], "attention_bias": true, "bos_token_id": 0, "eos_token_id": 2, "hidden_act": "gelu", "hidden_size": 64, "intermediate_size": 256, "layer_norm_eps": 1e-05, "max_position_embeddings": 2048, "model_type": "gpt_neox", "num_attention_heads": 4, "num_hidden_layers": 2, "rope_parameters": {"partial_rotary_factor": 0.25, "rope_theta": 10000, "rope_type": "default"}, "tie_word_embeddings": false, "use_parallel_residual": true, "vocab_size": 100},
  falcon_new: {"activation": "gelu", "alibi": false, "architectures": ["FalconForCausalLM"], "bias": false, "bos_token_id": 11, "eos_token_id": 11, "ffn_hidden_size": 256, "hidden_size": 64, "layer_norm_epsilon": 1e-05, "max_position_embeddings": 2048, "model_type": "falcon", "multi_query": true, "new_decoder_architecture": true, "num_attention_heads": 4, "num_hidden_layers": 2, "num_kv_heads": 2, "num_ln_in_parallel_attn": null, "parallel_attn": true, "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}, "tie_word_embeddings": true, "vocab_size": 100},
  falcon_7b: {"activation": "gelu", "alibi": false, "architectures": ["FalconForCausalLM"], "bias": false, "bos_token_id": 11, "eos_token_id": 11, "ffn_hidden_size": 256, "hidden_size": 64, "layer_norm_epsilon": 1e-05, "max_position_embeddings": 2048, "model_type": "falcon", "multi_query": true, "new_decoder_architecture": false, "num_attention_heads": 4, "num_hidden_layers": 2, "num_kv_heads": 4, "num_ln_in_parallel_attn": null, "parallel_attn": true, "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}, "tie_word_embeddings": true, "vocab_size": 100},
  falcon_rw: {"activation": "gelu", "alibi": true, "architectures": ["FalconForCausalLM"], "bias": true, "bos_token_id": 11, "eos_token_id": 11, "ffn_hidden_size": 256, "hidden_size": 64, "layer_norm_epsilon": 1e-05, "max_position_embeddings": 2048, "model_type": "falcon", "multi_query": false, "new_decoder_architecture": false, "num_attention_heads": 4, "num_hidden_layers": 2, "num_kv_heads": 4, "num_ln_in_parallel_attn": null, "parallel_attn": false, "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}, "tie_word_embeddings": true, "vocab_size": 100},
  mpt: {"architectures": ["MptForCausalLM"], "attn_config": {"alibi": true, "alibi_bias_max": 8, "attn_type": "multihead_attention", "clip_qkv": 6.0, "prefix_lm": false, "qk_ln": false, "softmax_scale": null}, "bos_token_id": null, "d_model": 64, "eos_token_id": null, "expansion_ratio": 4, "layer_norm_epsilon": 1e-05, "learned_pos_emb": true, "logit_scale": null, "max_seq_len": 256, "model_type": "mpt", "n_heads": 4, "n_layers": 2, "no_bias": true, "norm_type": "low_precision_layernorm", "tie_word_embeddings": true, "vocab_size": 100},
};

const F = 'm/config.json';
const parse = (c: Record<string, unknown>): HParams => parseHParams(c, F);

function rejects(cfg: Record<string, unknown>, ...parts: string[]): void {
  assert.throws(() => parse(cfg), (e: unknown) => {
    assert.ok(e instanceof StreamlmError, `expected StreamlmError, got ${String(e)}`);
    for (const p of [F, ...parts]) assert.ok(e.message.includes(p), `"${e.message}" lacks "${p}"`);
    return true;
  });
}

test('Llama (5.x form): every field', () => {
  assert.deepEqual(parse(V5.llama), {
    architecture: 'LlamaForCausalLM', modelType: 'llama',
    vocabSize: 100, hiddenSize: 64, intermediateSize: 128, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16,
    maxPositionEmbeddings: 2048, norm: 'rms', normEps: 1e-6, normBias: false, act: 'silu', gatedMlp: true,
    qkvBias: false, oBias: false, mlpBias: false, residual: 'sequential',
    position: { kind: 'rope', rope: { type: 'default', theta: 10000, factor: 1, originalMaxPositionEmbeddings: 2048 }, rotaryDim: 16 },
    clipQkv: null, tieWordEmbeddings: true, bosTokenId: 1, eosTokenIds: [2], padTokenId: null, slidingWindow: null,
  } satisfies HParams);
});

test('Llama 3.2 (4.x form) and its 5.x twin give the same llama3 RoPE', () => {
  const v4 = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 128256, hidden_size: 2048, intermediate_size: 8192,
    num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, max_position_embeddings: 131072,
    rms_norm_eps: 1e-5, rope_theta: 500000.0, tie_word_embeddings: true, bos_token_id: 128000, eos_token_id: [128001, 128008, 128009],
    rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
    attention_bias: false, mlp_bias: false, hidden_act: 'silu',
  };
  const hp = parse(v4);
  assert.equal(hp.normEps, 1e-5);
  assert.deepEqual(hp.eosTokenIds, [128001, 128008, 128009]);
  assert.deepEqual(hp.position, {
    kind: 'rope', rotaryDim: 64,
    rope: { type: 'llama3', theta: 500000, factor: 32, originalMaxPositionEmbeddings: 8192, lowFreqFactor: 1, highFreqFactor: 4 },
  });
  const v5 = parse(V5.llama_rope_llama3);
  assert.deepEqual(v5.position.kind === 'rope' && v5.position.rope, { type: 'llama3', theta: 500000, factor: 8, originalMaxPositionEmbeddings: 8192, lowFreqFactor: 1, highFreqFactor: 4 });
  assert.deepEqual(v5.eosTokenIds, [5, 6]);
  assert.equal(v5.tieWordEmbeddings, false);
});

test('Mistral: sliding window kept when smaller than the context', () => {
  const m = parse(V5.mistral);
  assert.equal(m.numKvHeads, 1);
  assert.equal(m.maxPositionEmbeddings, 131072);
  assert.equal(m.slidingWindow, null);
  const v01 = { ...V5.mistral, sliding_window: 4096, max_position_embeddings: 32768, rope_parameters: undefined, rope_theta: 10000.0 };
  assert.equal(parse(v01).slidingWindow, 4096);
  assert.equal(parse({ ...v01, sliding_window: 32768 }).slidingWindow, null);
  // MistralConfig's defaults apply to absent keys: a 131072 context...
  const bare = { ...V5.mistral } as Record<string, unknown>;
  delete bare.max_position_embeddings;
  assert.equal(parse(bare).maxPositionEmbeddings, 4096 * 32);
  // ...and a 4096 window when sliding_window is absent rather than null.
  delete bare.sliding_window;
  assert.equal(parse(bare).slidingWindow, 4096);
  rejects({ ...V5.mistral, sliding_window: 0 }, 'sliding_window');
  assert.equal(parse({ ...V5.mistral, attention_bias: true }).qkvBias, false, 'MistralAttention has no biases whatever the config says');
  assert.deepEqual([parse({ ...V5.llama, attention_bias: true }).qkvBias, parse({ ...V5.llama, attention_bias: true }).oBias], [true, true]);
});

test('Qwen2: q/k/v biases, no o bias; sliding windows refused', () => {
  const q = parse(V5.qwen2);
  assert.deepEqual([q.qkvBias, q.oBias, q.mlpBias], [true, false, false]);
  assert.equal(q.position.kind === 'rope' && q.position.rope.theta, 1e6);
  assert.equal(q.bosTokenId, null);
  assert.deepEqual(q.eosTokenIds, []);
  // Qwen2.5-0.5B, 4.x form
  const q25 = {
    architectures: ['Qwen2ForCausalLM'], bos_token_id: 151643, eos_token_id: 151643, hidden_act: 'silu', hidden_size: 896,
    intermediate_size: 4864, max_position_embeddings: 32768, max_window_layers: 24, model_type: 'qwen2', num_attention_heads: 14,
    num_hidden_layers: 24, num_key_value_heads: 2, rms_norm_eps: 1e-6, rope_theta: 1000000.0, sliding_window: 32768,
    tie_word_embeddings: true, use_sliding_window: false, vocab_size: 151936, rope_scaling: null,
  };
  const h = parse(q25);
  assert.deepEqual([h.headDim, h.numKvHeads, h.tieWordEmbeddings, h.slidingWindow], [64, 2, true, null]);
  rejects({ ...q25, use_sliding_window: true }, 'use_sliding_window');
  rejects({ ...V5.qwen2, layer_types: ['full_attention', 'sliding_attention'] }, 'layer_types');
});

test('GPT-NeoX: partial rotary, parallel residual, LayerNorm with bias (5.x and Pythia 4.x)', () => {
  const n = parse(V5.gpt_neox);
  const pythia70m = {
    architectures: ['GPTNeoXForCausalLM'], bos_token_id: 0, eos_token_id: 0, hidden_act: 'gelu', hidden_size: 512,
    intermediate_size: 2048, layer_norm_eps: 1e-5, max_position_embeddings: 2048, model_type: 'gpt_neox', num_attention_heads: 8,
    num_hidden_layers: 6, rotary_emb_base: 10000, rotary_pct: 0.25, tie_word_embeddings: false, use_parallel_residual: true, vocab_size: 50304,
  };
  const p = parse(pythia70m);
  for (const h of [n, p]) {
    assert.deepEqual([h.norm, h.normBias, h.normEps, h.act, h.gatedMlp, h.residual], ['layer', true, 1e-5, 'gelu', false, 'parallel']);
    assert.deepEqual([h.qkvBias, h.oBias, h.mlpBias, h.numKvHeads], [true, true, true, h.numHeads]);
  }
  assert.equal(n.position.kind === 'rope' && n.position.rotaryDim, 4);
  assert.equal(p.position.kind === 'rope' && p.position.rotaryDim, 16);
  assert.deepEqual(p.eosTokenIds, [0]);
  assert.equal(parse({ ...pythia70m, use_parallel_residual: false, hidden_act: 'gelu_new' }).residual, 'sequential');
  assert.equal(parse({ ...pythia70m, hidden_act: 'gelu_new' }).act, 'gelu_tanh');
  assert.deepEqual(parse({ ...pythia70m, rotary_emb_base: 1234 }).position, { kind: 'rope', rotaryDim: 16, rope: { type: 'default', theta: 1234, factor: 1, originalMaxPositionEmbeddings: 2048 } });
  rejects({ ...pythia70m, hidden_act: 'relu' }, 'hidden_act', 'relu');
});

test('Falcon: the three decoder layouts, MQA and ALiBi', () => {
  const nw = parse(V5.falcon_new);
  assert.deepEqual([nw.residual, nw.numKvHeads, nw.intermediateSize, nw.tieWordEmbeddings], ['parallel', 2, 256, true]);
  assert.equal(parse({ ...V5.falcon_new, num_ln_in_parallel_attn: 1 }).residual, 'parallel_shared_norm');
  const f7 = parse(V5.falcon_7b);
  assert.deepEqual([f7.residual, f7.numKvHeads, f7.qkvBias, f7.normBias, f7.act, f7.bosTokenId], ['parallel_shared_norm', 1, false, true, 'gelu', 11]);
  assert.deepEqual(f7.position, { kind: 'rope', rotaryDim: 16, rope: { type: 'default', theta: 10000, factor: 1, originalMaxPositionEmbeddings: 2048 } });
  const rw = parse(V5.falcon_rw);
  assert.deepEqual([rw.residual, rw.numKvHeads, rw.qkvBias, rw.oBias, rw.mlpBias], ['sequential', 4, true, true, true]);
  assert.deepEqual(rw.position, { kind: 'alibi', biasMax: 8 });
  // falcon-7b as first ported (4.27), without ffn_hidden_size or rope fields, and the RW-era key names
  const old = {
    alibi: false, architectures: ['FalconForCausalLM'], bias: false, bos_token_id: 11, eos_token_id: 11, hidden_size: 4544,
    layer_norm_epsilon: 1e-5, model_type: 'falcon', multi_query: true, new_decoder_architecture: false, num_attention_heads: 71,
    num_hidden_layers: 32, parallel_attn: true, vocab_size: 65024,
  };
  const o = parse(old);
  assert.deepEqual([o.headDim, o.intermediateSize, o.numKvHeads, o.residual], [64, 4 * 4544, 1, 'parallel_shared_norm']);
  const rwKeys = { architectures: ['FalconForCausalLM'], n_embed: 256, n_head: 4, n_layer: 3, n_head_kv: 2, new_decoder_architecture: true, vocab_size: 10 };
  const r = parse(rwKeys);
  assert.deepEqual([r.hiddenSize, r.numHeads, r.numLayers, r.numKvHeads], [256, 4, 3, 2]);
  rejects({ ...V5.falcon_new, parallel_attn: false }, 'parallel_attn');
  rejects({ ...V5.falcon_rw, rope_scaling: { type: 'linear', factor: 2 } }, 'rope_scaling', 'alibi');
});

test('MPT: no biases, ALiBi, clip_qkv, unsupported attention options', () => {
  const m = parse(V5.mpt);
  assert.deepEqual(m, {
    architecture: 'MptForCausalLM', modelType: 'mpt',
    vocabSize: 100, hiddenSize: 64, intermediateSize: 256, numLayers: 2, numHeads: 4, numKvHeads: 4, headDim: 16,
    maxPositionEmbeddings: 256, norm: 'layer', normEps: 1e-5, normBias: false, act: 'gelu', gatedMlp: false,
    qkvBias: false, oBias: false, mlpBias: false, residual: 'sequential', position: { kind: 'alibi', biasMax: 8 },
    clipQkv: 6, tieWordEmbeddings: true, bosTokenId: null, eosTokenIds: [], padTokenId: null, slidingWindow: null,
  } satisfies HParams);
  const withAttn = (a: Record<string, unknown>): Record<string, unknown> => ({ ...V5.mpt, attn_config: { ...(V5.mpt.attn_config as object), ...a } });
  rejects(withAttn({ qk_ln: true }), 'attn_config.qk_ln');
  rejects(withAttn({ prefix_lm: true }), 'attn_config.prefix_lm');
  rejects(withAttn({ attn_type: 'multiquery_attention' }), 'attn_config.attn_type', 'multiquery_attention');
  rejects(withAttn({ alibi: false }), 'attn_config.alibi');
  rejects(withAttn({ softmax_scale: 0.5 }), 'attn_config.softmax_scale');
  assert.equal(parse(withAttn({ softmax_scale: 0.25 })).headDim, 16);
  rejects({ ...V5.mpt, logit_scale: 'inv_sqrt_d_model' }, 'logit_scale');
  // transformers' MptMLP is 4·d_model whatever expansion_ratio says (modeling_mpt.py); the
  // checkpoint's up_proj rows decide when the tensors are known (mosaicml's code uses the ratio).
  const biased = parse({ ...V5.mpt, no_bias: false, expansion_ratio: 2 });
  assert.deepEqual([biased.qkvBias, biased.normBias, biased.intermediateSize], [true, true, 256]);
  const up = (rows: number): Map<string, TensorInfo> => new Map([['transformer.blocks.0.ffn.up_proj.weight',
    { name: 'transformer.blocks.0.ffn.up_proj.weight', dtype: 'F32', shape: [rows, 64], file: 'model.safetensors', offset: 0, byteLength: rows * 64 * 4 }]]);
  assert.equal(parseHParams({ ...V5.mpt, expansion_ratio: 2 }, 'config.json', up(128)).intermediateSize, 128);
  assert.equal(parseHParams({ ...V5.mpt, expansion_ratio: 2 }, 'config.json', up(256)).intermediateSize, 256);
  // mosaicml's own checkpoints name the class MPTForCausalLM; transformers loads them as MptForCausalLM.
  assert.equal(parse({ ...V5.mpt, architectures: ['MPTForCausalLM'] }).architecture, 'MptForCausalLM');
});

test('errors name the file and key', () => {
  rejects({ architectures: ['GPT2LMHeadModel'] }, 'architectures', 'GPT2LMHeadModel', 'LlamaForCausalLM', 'MptForCausalLM');
  rejects({}, 'architectures');
  const noHidden = { ...V5.llama } as Record<string, unknown>;
  delete noHidden.hidden_size;
  rejects(noHidden, 'hidden_size', 'missing');
  rejects({ ...V5.llama, num_attention_heads: 4.5 }, 'num_attention_heads');
  rejects({ ...V5.llama, num_key_value_heads: 3 }, 'num_key_value_heads');
  rejects({ ...V5.llama, eos_token_id: ['x'] }, 'eos_token_id');
  rejects({ ...V5.llama, rope_parameters: { rope_type: 'longrope', rope_theta: 1 } }, 'rope_parameters.rope_type', 'longrope');
  rejects({ ...V5.llama, hidden_size: 66, head_dim: undefined }, 'num_attention_heads', 'divisible');
  rejects({ ...V5.llama, rms_norm_eps: '1e-6' }, 'rms_norm_eps');
  rejects({ ...V5.llama, partial_rotary_factor: 0.5 }, 'partial_rotary_factor');
});
