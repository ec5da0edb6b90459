import { StreamlmError } from '../errors.js';
import { parsePartialRotaryFactor, parseRope, type RopeConfig, type RopeType } from './rope.js';

export type { RopeConfig, RopeType };

/**
 * One normalized set of hyperparameters for every family, parsed from an HF config.json (4.x or 5.x).
 * Defaults are transformers 5.17's. Anything we do not implement is an error naming the key,
 * never a silently different model.
 */
export interface HParams {
  /** architectures[0] (mosaicml's MPTForCausalLM becomes MptForCausalLM) */
  architecture: string;
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Trained context (MPT: max_seq_len). */
  maxPositionEmbeddings: number;
  norm: 'rms' | 'layer';
  normEps: number;
  normBias: boolean;
  act: 'silu' | 'gelu' | 'gelu_tanh';
  gatedMlp: boolean;
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
  /**
   * sequential: x += attn(norm1 x); x += mlp(norm2 x).
   * parallel: x += attn(norm1 x) + mlp(norm2 x).
   * parallel_shared_norm: h = norm1 x; x += attn(h) + mlp(h)  (Falcon-7B style).
   */
  residual: 'sequential' | 'parallel' | 'parallel_shared_norm';
  /**
   * ALiBi slopes are those of MPT/BLOOM with `biasMax` (8 for Falcon). Falcon adds its bias before
   * the 1/sqrt(headDim) scaling, so its effective slopes are the standard ones / sqrt(headDim).
   */
  position: { kind: 'rope'; rope: RopeConfig; rotaryDim: number } | { kind: 'alibi'; biasMax: number };
  /** MPT: q, k and v are clamped to [-clipQkv, clipQkv] after the fused projection. */
  clipQkv: number | null;
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
  padTokenId: number | null;
  /**
   * Mistral's trained attention window (keys older than this many positions are invisible), or null
   * when the model attends to its whole context. Caches holding more than this many past tokens
   * must mask the older ones to match transformers.
   */
  slidingWindow: number | null;
}

type Obj = Record<string, unknown>;

/** Typed field access on one config object, with errors naming the file and the key. */
class Fields {
  constructor(readonly o: Obj, readonly file: string, readonly prefix = '') {}

  private where(key: string): { file: string; field: string } {
    return { file: this.file, field: this.prefix + key };
  }

  has(key: string): boolean {
    return this.o[key] !== undefined && this.o[key] !== null;
  }

  num(key: string, dflt?: number): number {
    const v = this.o[key];
    if (v === undefined || v === null) {
      if (dflt === undefined) throw new StreamlmError('missing required number', this.where(key));
      return dflt;
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new StreamlmError(`expected a number, got ${JSON.stringify(v)}`, this.where(key));
    return v;
  }

  /** A positive integer (sizes, counts). */
  int(key: string, dflt?: number): number {
    const v = this.num(key, dflt);
    if (!Number.isSafeInteger(v) || v <= 0) throw new StreamlmError(`expected a positive integer, got ${v}`, this.where(key));
    return v;
  }

  bool(key: string, dflt: boolean): boolean {
    const v = this.o[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') throw new StreamlmError(`expected true or false, got ${JSON.stringify(v)}`, this.where(key));
    return v;
  }

  str(key: string, dflt: string): string {
    const v = this.o[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'string') throw new StreamlmError(`expected a string, got ${JSON.stringify(v)}`, this.where(key));
    return v;
  }

  tokenId(key: string, dflt: number | null): number | null {
    const v = this.o[key];
    if (v === undefined) return dflt;
    if (v === null) return null;
    if (!Number.isSafeInteger(v) || (v as number) < 0) throw new StreamlmError(`expected a token id, got ${JSON.stringify(v)}`, this.where(key));
    return v as number;
  }

  /** eos_token_id: an id or a list of ids. */
  tokenIds(key: string, dflt: number | null): number[] {
    const v = this.o[key] === undefined ? dflt : this.o[key];
    if (v === null) return [];
    const list = Array.isArray(v) ? v : [v];
    if (!list.every((x) => Number.isSafeInteger(x) && x >= 0)) {
      throw new StreamlmError(`expected a token id or a list of them, got ${JSON.stringify(v)}`, this.where(key));
    }
    return [...new Set(list as number[])];
  }

  /** Errors unless the key is absent or equal to one of `ok`. */
  only(key: string, ok: unknown[], why: string): void {
    if (!this.has(key)) return;
    if (!ok.includes(this.o[key])) throw new StreamlmError(`${JSON.stringify(this.o[key])} is not supported: ${why}`, this.where(key));
  }

  unsupported(key: string, why: string): never {
    throw new StreamlmError(`${JSON.stringify(this.o[key])} is not supported: ${why}`, this.where(key));
  }
}

const ACTS: Record<string, HParams['act']> = {
  silu: 'silu',
  swish: 'silu',
  gelu: 'gelu',
  gelu_new: 'gelu_tanh',
  gelu_fast: 'gelu_tanh',
  gelu_pytorch_tanh: 'gelu_tanh',
};

function activation(f: Fields, key: string, dflt: string): HParams['act'] {
  const name = f.str(key, dflt);
  const act = ACTS[name];
  if (!act) f.unsupported(key, `supported activations: ${Object.keys(ACTS).join(', ')}`);
  return act;
}

type Common = Pick<HParams, 'architecture' | 'modelType' | 'bosTokenId' | 'eosTokenIds' | 'padTokenId'>;

function common(f: Fields, architecture: string, bos: number | null, eos: number | null): Common {
  return {
    architecture,
    modelType: f.str('model_type', ''),
    bosTokenId: f.tokenId('bos_token_id', bos),
    eosTokenIds: f.tokenIds('eos_token_id', eos),
    padTokenId: f.tokenId('pad_token_id', null),
  };
}

function rope(f: Fields, headDim: number, maxPos: number, defaultTheta: number, defaultPartial: number): HParams['position'] {
  const r = parseRope(f.o, f.file, defaultTheta, maxPos);
  const rotaryDim = Math.floor(headDim * parsePartialRotaryFactor(f.o, f.file, defaultPartial));
  if (rotaryDim < 2 || rotaryDim % 2 !== 0) {
    throw new StreamlmError(`gives ${rotaryDim} rotary dims of ${headDim}; an even number >= 2 is needed`, { file: f.file, field: 'partial_rotary_factor' });
  }
  return { kind: 'rope', rope: r, rotaryDim };
}

function heads(f: Fields, hidden: number, numHeads: number, headDimKey: string | null): number {
  if (headDimKey && f.has(headDimKey)) return f.int(headDimKey);
  if (hidden % numHeads !== 0) {
    throw new StreamlmError(`hidden size ${hidden} is not divisible by ${numHeads} heads`, { file: f.file, field: 'num_attention_heads' });
  }
  return hidden / numHeads;
}

function kvHeads(f: Fields, key: string, numHeads: number): number {
  const kv = f.int(key, numHeads);
  if (numHeads % kv !== 0) throw new StreamlmError(`${numHeads} attention heads are not a multiple of ${kv} kv heads`, { file: f.file, field: key });
  return kv;
}

/** Llama, Mistral and Qwen2 share one layout: RMSNorm, SwiGLU-style gated MLP, RoPE. */
function llamaLike(f: Fields, arch: string): HParams {
  const family = arch === 'LlamaForCausalLM' ? 'llama' : arch === 'MistralForCausalLM' ? 'mistral' : 'qwen2';
  const hiddenSize = f.int('hidden_size');
  const numHeads = f.int('num_attention_heads');
  const headDim = heads(f, hiddenSize, numHeads, 'head_dim');
  const defaults = {
    llama: { maxPos: 2048, bos: 1, eos: 2, vocab: 32000 },
    mistral: { maxPos: 4096 * 32, bos: 1, eos: 2, vocab: 32000 },
    qwen2: { maxPos: 32768, bos: null, eos: null, vocab: 151936 },
  }[family];
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
    act: activation(f, 'hidden_act', 'silu'),
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

function gptNeox(f: Fields, arch: string): HParams {
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

function falcon(f: Fields, arch: string): HParams {
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

function mpt(f: Fields, arch: string): HParams {
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
    intermediateSize: hiddenSize * f.int('expansion_ratio', 4),
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

const PARSERS: Record<string, (f: Fields, arch: string) => HParams> = {
  LlamaForCausalLM: llamaLike,
  MistralForCausalLM: llamaLike,
  Qwen2ForCausalLM: llamaLike,
  GPTNeoXForCausalLM: gptNeox,
  FalconForCausalLM: falcon,
  MptForCausalLM: mpt,
};

/** Supported values of config.json `architectures[0]`. */
export const SUPPORTED_ARCHITECTURES: readonly string[] = Object.keys(PARSERS);

/** Remote-code class names whose checkpoints transformers loads with a native class; HParams carries the native name. */
const ALIASES: Record<string, string> = { MPTForCausalLM: 'MptForCausalLM' };

/** Parses an HF config.json object; `file` is its path, for error messages. */
export function parseHParams(config: Record<string, unknown>, file: string): HParams {
  const archs = config.architectures;
  if (!Array.isArray(archs) || archs.length === 0 || typeof archs[0] !== 'string') {
    throw new StreamlmError(`missing or not a list of names; expected one of ${SUPPORTED_ARCHITECTURES.join(', ')}`, { file, field: 'architectures' });
  }
  const arch = ALIASES[archs[0]] ?? archs[0];
  const parse = PARSERS[arch];
  if (!parse) {
    throw new StreamlmError(`${JSON.stringify(arch)} is not supported; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}`, { file, field: 'architectures' });
  }
  return parse(new Fields(config, file), arch);
}
