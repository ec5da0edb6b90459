import { StreamlmError } from '../../errors.js';
import type { TensorInfo } from '../../runtime/safetensors.js';
import { common, Fields, heads, type HParams, type Obj } from '../config.js';
import type { Family } from '../family.js';
import type { LayerWeights, ModelWeights, WeightLoader } from '../weights.js';

/** MPT: ALiBi instead of rotary, LayerNorm (bias only when present), plain GELU MLP, tied head. */
export const mpt: Family = { architectures: ['MptForCausalLM'], parse, fromTensors, load };

function parse(f: Fields, arch: string): HParams {
  const rawAttn = f.o.attn_config ?? {};
  if (typeof rawAttn !== 'object' || rawAttn === null || Array.isArray(rawAttn)) f.unsupported('attn_config', 'expected an object');
  const a = new Fields(rawAttn as Obj, f.file, 'attn_config.');
  a.only('attn_type', ['multihead_attention'], 'only multihead_attention is implemented');
  if (a.bool('qk_ln', false)) a.unsupported('qk_ln', 'query/key LayerNorm is not implemented');
  if (a.bool('prefix_lm', false)) a.unsupported('prefix_lm', 'prefix-LM attention is not implemented');
  if (!a.bool('alibi', true)) a.unsupported('alibi', 'MPT is implemented with ALiBi only (as in transformers)');
  const hiddenSize = f.int('d_model', 2048);
  const numHeads = f.int('n_heads', 16);
  const headDim = heads(f, hiddenSize, numHeads, null);
  if (a.has('softmax_scale') && Math.abs(a.num('softmax_scale') * Math.sqrt(headDim) - 1) > 1e-6) {
    a.unsupported('softmax_scale', 'only the default 1/sqrt(head_dim) is implemented');
  }
  if (f.has('logit_scale')) f.unsupported('logit_scale', 'scaled logits are not implemented');
  f.only('norm_type', ['low_precision_layernorm', 'layernorm'], 'only LayerNorm is implemented');
  const clip = a.has('clip_qkv') ? a.num('clip_qkv') : null;
  if (clip !== null && !(clip > 0)) a.unsupported('clip_qkv', 'expected a positive number');
  const bias = !f.bool('no_bias', true);
  return {
    ...common(f, arch, null, null),
    vocabSize: f.int('vocab_size', 50368),
    hiddenSize,
    // transformers' MptMLP is 4·d_model whatever expansion_ratio says; fromTensors reads the real width.
    intermediateSize: 4 * hiddenSize,
    numLayers: f.int('n_layers', 24),
    numHeads,
    numKvHeads: numHeads,
    headDim,
    maxPositionEmbeddings: f.int('max_seq_len', 2048),
    norm: 'layer',
    normEps: f.num('layer_norm_epsilon', 1e-5),
    normBias: bias,
    act: 'gelu',
    gatedMlp: false,
    qkvBias: bias,
    oBias: bias,
    mlpBias: bias,
    residual: 'sequential',
    position: { kind: 'alibi', biasMax: a.num('alibi_bias_max', 8) },
    clipQkv: clip,
    // MPT's lm_head is always the embedding (transformers ties it regardless of the flag).
    tieWordEmbeddings: true,
    slidingWindow: null,
  };
}

/**
 * The FFN width is the up projection's row count: transformers builds 4·d_model and ignores
 * `expansion_ratio`, and the original MosaicML code builds expansion_ratio·d_model, so neither
 * number in config.json is reliable. Every block's shapes are then checked against this width.
 */
function fromTensors(hp: HParams, tensors: ReadonlyMap<string, TensorInfo>, file: string): HParams {
  const p = 'transformer.blocks.0.ffn.up_proj';
  const t = tensors.get(`${p}.weight`) ?? tensors.get(`${p}.lr_b`);
  if (!t) return hp;   // the loader names the missing tensor
  const F = t.shape[0];
  if (t.shape.length !== 2 || !(F > 0)) throw new StreamlmError(`tensor has shape [${t.shape}]; expected [ffn width, ${hp.hiddenSize}]`, { file: t.file || file, field: t.name });
  return { ...hp, intermediateSize: F };
}

/** Tensor names: transformer.blocks.N.{norm_1, attn.Wqkv, attn.out_proj, norm_2, ffn.up_proj, ffn.down_proj}. */
function load(hp: HParams, w: WeightLoader): ModelWeights {
  const H = hp.hiddenSize, F = hp.intermediateSize;
  const b = (name: string) => (hp.qkvBias || hp.mlpBias) && w.has(name) ? [name] : null;
  const layers: LayerWeights[] = [];
  for (let i = 0; i < hp.numLayers; i++) {
    const p = `transformer.blocks.${i}.`;
    layers.push({
      norm1: w.norm(`${p}norm_1.weight`, `${p}norm_1.bias`, H),
      norm2: w.norm(`${p}norm_2.weight`, `${p}norm_2.bias`, H),
      qkv: w.linear([{ name: `${p}attn.Wqkv.weight` }], H, b(`${p}attn.Wqkv.bias`), [3 * H]),
      o: w.linear([{ name: `${p}attn.out_proj.weight` }], H, b(`${p}attn.out_proj.bias`), [H]),
      up: w.linear([{ name: `${p}ffn.up_proj.weight` }], H, b(`${p}ffn.up_proj.bias`), [F]),
      down: w.linear([{ name: `${p}ffn.down_proj.weight` }], F, b(`${p}ffn.down_proj.bias`), [H]),
    });
  }
  const embed = w.embedding('transformer.wte.weight', hp.vocabSize, H);
  const biasMax = hp.position.kind === 'alibi' ? hp.position.biasMax : 8;
  return {
    embed, layers,
    finalNorm: w.norm('transformer.norm_f.weight', 'transformer.norm_f.bias', H),
    lmHead: w.lmHead(hp, 'transformer.wte.weight', 'lm_head.weight', embed),
    alibiSlopes: w.constant(mptAlibiSlopes(hp.numHeads, biasMax)),
  };
}

/**
 * ALiBi slopes 2^(−biasMax·i/n) for a power-of-two head count n; other counts interleave the
 * slopes of the next power of two, odd ones first, as MPT does.
 */
function mptAlibiSlopes(nHeads: number, biasMax: number): Float32Array {
  const n2 = 2 ** Math.ceil(Math.log2(nHeads));
  const s: number[] = [];
  for (let i = 1; i <= n2; i++) s.push(1 / 2 ** (i * (biasMax / n2)));
  const order = n2 === nHeads ? s : [...s.filter((_, i) => i % 2 === 1), ...s.filter((_, i) => i % 2 === 0)];
  return Float32Array.from(order.slice(0, nHeads));
}
