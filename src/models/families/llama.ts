import { StreamlmError } from '../../errors.js';
import { activation, common, Fields, heads, kvHeads, rope, type HParams } from '../config.js';
import type { Family } from '../family.js';
import { parsePartialRotaryFactor } from '../rope.js';
import type { LayerWeights, ModelWeights, WeightLoader } from '../weights.js';

/**
 * Llama, Mistral and Qwen2: RMSNorm, RoPE, GQA, SwiGLU; Qwen2 adds q/k/v biases; Mistral attends
 * within `sliding_window`.
 */
/** transformers' per-architecture defaults for the keys a config.json may leave out. */
const VARIANTS = {
  LlamaForCausalLM: { family: 'llama', maxPos: 2048, bos: 1, eos: 2, vocab: 32000 },
  MistralForCausalLM: { family: 'mistral', maxPos: 4096 * 32, bos: 1, eos: 2, vocab: 32000 },
  Qwen2ForCausalLM: { family: 'qwen2', maxPos: 32768, bos: null, eos: null, vocab: 151936 },
} as const;

export const llama: Family = { architectures: Object.keys(VARIANTS), parse, load };

/** The gated MLP runs silu(gate)·up (the swiglu kernel); other gate activations are refused. */
function gatedSilu(f: Fields): HParams['act'] {
  const act = activation(f, 'hidden_act', 'silu');
  if (act !== 'silu') throw new StreamlmError(`gated MLP with activation '${f.str('hidden_act', 'silu')}' is not implemented (only silu)`, { file: f.file, field: 'hidden_act' });
  return act;
}

function parse(f: Fields, arch: string): HParams {
  const defaults = VARIANTS[arch as keyof typeof VARIANTS];
  const family = defaults.family;
  const hiddenSize = f.int('hidden_size');
  const numHeads = f.int('num_attention_heads');
  const headDim = heads(f, hiddenSize, numHeads, 'head_dim');
  const maxPositionEmbeddings = f.int('max_position_embeddings', defaults.maxPos);

  let slidingWindow: number | null = null;
  if (family === 'qwen2') {
    if (f.bool('use_sliding_window', false)) f.unsupported('use_sliding_window', 'sliding-window layers are not implemented');
    const types = f.o.layer_types;
    if (Array.isArray(types) && types.some((t) => t !== 'full_attention')) {
      f.unsupported('layer_types', 'only full_attention layers are implemented');
    }
  } else if (family === 'mistral' && f.o.sliding_window !== null) {
    // MistralConfig's default is 4096 when the key is absent; only an explicit null turns it off.
    const w = f.int('sliding_window', 4096);
    if (w < maxPositionEmbeddings) slidingWindow = w;
  }
  // Llama's default RoPE uses the whole head (partial_rotary_factor only feeds the scaled variants), so refuse the ambiguity.
  const partial = parsePartialRotaryFactor(f.o, f.file, 1);
  if (partial !== 1) {
    throw new StreamlmError(`${partial} is not supported: ${family} rotates the whole head`, { file: f.file, field: 'partial_rotary_factor' });
  }

  // transformers hard-codes these: Qwen2 always has q/k/v biases, Mistral never has any.
  const attentionBias = family === 'qwen2' ? true : family === 'llama' && f.bool('attention_bias', false);
  return {
    ...common(f, arch, defaults.bos, defaults.eos),
    vocabSize: f.int('vocab_size', defaults.vocab),
    hiddenSize,
    intermediateSize: f.int('intermediate_size'),
    numLayers: f.int('num_hidden_layers'),
    numHeads,
    numKvHeads: kvHeads(f, 'num_key_value_heads', numHeads),
    headDim,
    maxPositionEmbeddings,
    norm: 'rms',
    normEps: f.num('rms_norm_eps', 1e-6),
    normBias: false,
    act: gatedSilu(f),
    gatedMlp: true,
    qkvBias: attentionBias,
    oBias: family === 'llama' ? attentionBias : false,
    mlpBias: family === 'llama' ? f.bool('mlp_bias', false) : false,
    residual: 'sequential',
    position: rope(f, headDim, maxPositionEmbeddings, 10000, 1),
    clipQkv: null,
    tieWordEmbeddings: f.bool('tie_word_embeddings', false),
    slidingWindow,
  };
}

/** Tensor names: model.layers.N.{self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj}; q/k/v and gate/up fused. */
function load(hp: HParams, w: WeightLoader): ModelWeights {
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
      window: hp.slidingWindow ?? 0,
    });
  }
  const embed = w.embedding('model.embed_tokens.weight', hp.vocabSize, H);
  return {
    embed,
    layers,
    finalNorm: w.norm('model.norm.weight', null, H),
    lmHead: w.lmHead(hp, 'model.embed_tokens.weight', 'lm_head.weight', embed),
    alibiSlopes: 0,
  };
}
