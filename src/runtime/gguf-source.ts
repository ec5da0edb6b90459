import { StreamlmError } from '../errors.js';
import { platform } from '../platform/current.js';
import { readGgufHeader, type GgufHeader, type GgufTensorInfo, type GgufValue } from './gguf.js';
import type { FileSet } from '../platform/types.js';
import type { ModelDir } from './modeldir.js';
import type { BlockDtype, TensorInfo } from './safetensors.js';

/**
 * A .gguf file seen as a Hugging Face model directory: a config.json object made from the
 * `<arch>.*` keys and the tensors under their HF names, so the families, the HParams parser and
 * every later layer cannot tell the two sources apart. llama.cpp's converter reorders some rows
 * (llama q/k for interleaved RoPE; fused QKV into [q; k; v]); row maps undo that when reading.
 */
export interface GgufModelSource extends ModelDir {
  gguf: GgufHeader;
}

type Obj = Record<string, unknown>;

const FLOAT_DTYPES: Record<string, TensorInfo['dtype']> = { F32: 'F32', F16: 'F16', BF16: 'BF16' };
const BLOCK_DTYPES: readonly BlockDtype[] = ['Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q8_0', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'Q8_K'];

/** Typed metadata access; errors name the file and the GGUF key. */
export class GgufMeta {
  constructor(readonly h: GgufHeader) {}

  has(key: string): boolean { return this.h.metadata.has(key); }

  private err(key: string, msg: string): StreamlmError { return new StreamlmError(msg, { file: this.h.file, field: key }); }

  num(key: string, dflt?: number): number {
    const v = this.h.metadata.get(key);
    if (v === undefined) {
      if (dflt === undefined) throw this.err(key, 'missing required key');
      return dflt;
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.err(key, `expected a number, got ${describe(v)}`);
    return v;
  }

  /** A positive integer (sizes and counts). */
  int(key: string, dflt?: number): number {
    const v = this.num(key, dflt);
    if (!Number.isSafeInteger(v) || v <= 0) throw this.err(key, `expected a positive integer, got ${v}`);
    return v;
  }

  str(key: string, dflt?: string): string {
    const v = this.h.metadata.get(key);
    if (v === undefined) {
      if (dflt === undefined) throw this.err(key, 'missing required key');
      return dflt;
    }
    if (typeof v !== 'string') throw this.err(key, `expected a string, got ${describe(v)}`);
    return v;
  }

  bool(key: string, dflt: boolean): boolean {
    const v = this.h.metadata.get(key);
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') throw this.err(key, `expected a bool, got ${describe(v)}`);
    return v;
  }

  tokenId(key: string): number | null {
    if (!this.has(key)) return null;
    const v = this.num(key);
    if (!Number.isSafeInteger(v) || v < 0) throw this.err(key, `expected a token id, got ${v}`);
    return v;
  }

  strings(key: string): string[] {
    const v = this.h.metadata.get(key);
    if (!Array.isArray(v) || (v.length > 0 && typeof v[0] !== 'string')) throw this.err(key, `expected an array of strings, got ${describe(v)}`);
    return v as string[];
  }

  /** A numeric array of the given value type (e.g. FLOAT32 scores, INT32 token types) as plain numbers. */
  numbers(key: string, len: number): Float64Array {
    const v = this.h.metadata.get(key);
    if (!ArrayBuffer.isView(v) || v instanceof BigInt64Array || v instanceof BigUint64Array) throw this.err(key, `expected a numeric array, got ${describe(v)}`);
    const a = v;
    if (a.length !== len) throw this.err(key, `has ${a.length} entries, but the vocabulary has ${len} tokens`);
    return Float64Array.from(a);
  }
}

function describe(v: GgufValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return `an array of ${(v as { length: number }).length}`;
  return String(v);
}

// --- architectures ---

interface Arch {
  /** HF config.json made from the metadata. */
  config(m: GgufMeta, a: string, t: Map<string, GgufTensorInfo>): Obj;
  /** HF name for a GGUF tensor name with the block prefix removed (`blk` is the layer, -1 outside blocks). */
  hfName(short: string, blk: number, t: Map<string, GgufTensorInfo>): string | null;
}

const suffix = (s: string): string => s.slice(s.lastIndexOf('.')); // '.weight' or '.bias'

function ropeScaling(m: GgufMeta, a: string, ctx: number): Obj | undefined {
  const type = m.str(`${a}.rope.scaling.type`, m.has(`${a}.rope.scale_linear`) ? 'linear' : 'none');
  if (type === 'none') return undefined;
  const factor = m.has(`${a}.rope.scaling.factor`) ? m.num(`${a}.rope.scaling.factor`) : m.num(`${a}.rope.scale_linear`);
  if (!(factor > 0)) throw new StreamlmError(`must be > 0, got ${factor}`, { file: m.h.file, field: `${a}.rope.scaling.factor` });
  if (type === 'linear') return { rope_type: 'linear', factor };
  if (type === 'yarn') return { rope_type: 'yarn', factor, original_max_position_embeddings: m.int(`${a}.rope.scaling.original_context_length`, ctx) };
  throw new StreamlmError(`rope scaling '${type}' is not supported (none, linear, yarn are)`, { file: m.h.file, field: `${a}.rope.scaling.type` });
}

function common(m: GgufMeta, a: string): Obj {
  const hidden = m.int(`${a}.embedding_length`);
  const heads = m.int(`${a}.attention.head_count`);
  return {
    hidden_size: hidden,
    num_attention_heads: heads,
    num_hidden_layers: m.int(`${a}.block_count`),
    intermediate_size: m.int(`${a}.feed_forward_length`),
    max_position_embeddings: m.int(`${a}.context_length`),
    bos_token_id: m.tokenId('tokenizer.ggml.bos_token_id'),
    eos_token_id: m.tokenId('tokenizer.ggml.eos_token_id'),
    pad_token_id: m.tokenId('tokenizer.ggml.padding_token_id'),
  };
}

const LLAMA_NAMES: Record<string, string> = {
  'attn_norm.weight': 'input_layernorm.weight', 'ffn_norm.weight': 'post_attention_layernorm.weight',
  attn_q: 'self_attn.q_proj', attn_k: 'self_attn.k_proj', attn_v: 'self_attn.v_proj', attn_output: 'self_attn.o_proj',
  'ffn_gate.weight': 'mlp.gate_proj.weight', 'ffn_up.weight': 'mlp.up_proj.weight', 'ffn_down.weight': 'mlp.down_proj.weight',
};

/** Names of one family: per-block table (whole names or stems before .weight/.bias) and the globals. */
function namer(prefix: string, blocks: Record<string, string>, globals: Record<string, string>): Arch['hfName'] {
  return (short, blk) => {
    if (blk < 0) return globals[short] ?? null;
    const whole = blocks[short];
    if (whole) return `${prefix}${blk}.${whole}`;
    const stem = blocks[short.slice(0, short.lastIndexOf('.'))];
    return stem ? `${prefix}${blk}.${stem}${suffix(short)}` : null;
  };
}

function llamaLike(hfArch: string): Arch {
  return {
    config(m, a, t) {
      const c = common(m, a);
      const hidden = c.hidden_size as number, heads = c.num_attention_heads as number;
      const headDim = m.int(`${a}.attention.key_length`, hidden / heads);
      if (m.int(`${a}.attention.value_length`, headDim) !== headDim) {
        throw new StreamlmError(`differs from ${a}.attention.key_length; separate value heads are not supported`, { file: m.h.file, field: `${a}.attention.value_length` });
      }
      const rot = m.int(`${a}.rope.dimension_count`, headDim);
      if (rot !== headDim) throw new StreamlmError(`is ${rot}, but ${a} rotates the whole head (${headDim})`, { file: m.h.file, field: `${a}.rope.dimension_count` });
      const window = m.has(`${a}.attention.sliding_window`) ? m.int(`${a}.attention.sliding_window`) : null;
      const arch = hfArch === 'LlamaForCausalLM' && window !== null ? 'MistralForCausalLM' : hfArch;
      return {
        ...c,
        architectures: [arch],
        model_type: arch === 'Qwen2ForCausalLM' ? 'qwen2' : arch === 'MistralForCausalLM' ? 'mistral' : 'llama',
        num_key_value_heads: m.int(`${a}.attention.head_count_kv`, heads),
        head_dim: headDim,
        rms_norm_eps: m.num(`${a}.attention.layer_norm_rms_epsilon`),
        rope_theta: m.num(`${a}.rope.freq_base`, 10000),
        rope_scaling: ropeScaling(m, a, c.max_position_embeddings as number),
        tie_word_embeddings: !t.has('output.weight'),
        attention_bias: t.has('blk.0.attn_q.bias'),
        ...(arch === 'MistralForCausalLM' ? { sliding_window: window } : {}),
        ...(arch === 'Qwen2ForCausalLM' ? { use_sliding_window: false } : {}),
        vocab_size: t.get('token_embd.weight')?.dims[1],
        hidden_act: 'silu',
      };
    },
    hfName: namer('model.layers.', LLAMA_NAMES, { 'token_embd.weight': 'model.embed_tokens.weight', 'output_norm.weight': 'model.norm.weight', 'output.weight': 'lm_head.weight' }),
  };
}

const ARCHS: Record<string, Arch> = {
  llama: llamaLike('LlamaForCausalLM'),
  qwen2: llamaLike('Qwen2ForCausalLM'),
  gptneox: {
    config(m, a, t) {
      const c = common(m, a);
      const headDim = (c.hidden_size as number) / (c.num_attention_heads as number);
      return {
        ...c,
        architectures: ['GPTNeoXForCausalLM'], model_type: 'gpt_neox',
        layer_norm_eps: m.num(`${a}.attention.layer_norm_epsilon`),
        rotary_pct: m.int(`${a}.rope.dimension_count`) / headDim,
        rotary_emb_base: m.num(`${a}.rope.freq_base`, 10000),
        use_parallel_residual: m.bool(`${a}.use_parallel_residual`, true),
        attention_bias: t.has('blk.0.attn_qkv.bias'),
        tie_word_embeddings: !t.has('output.weight'),
        vocab_size: t.get('token_embd.weight')?.dims[1],
        hidden_act: 'gelu',
      };
    },
    hfName: namer('gpt_neox.layers.', {
      attn_norm: 'input_layernorm', ffn_norm: 'post_attention_layernorm', attn_qkv: 'attention.query_key_value',
      attn_output: 'attention.dense', ffn_up: 'mlp.dense_h_to_4h', ffn_down: 'mlp.dense_4h_to_h',
    }, {
      'token_embd.weight': 'gpt_neox.embed_in.weight', 'output_norm.weight': 'gpt_neox.final_layer_norm.weight',
      'output_norm.bias': 'gpt_neox.final_layer_norm.bias', 'output.weight': 'embed_out.weight',
    }),
  },
  falcon: {
    // Always described as new_decoder_architecture (grouped QKV); one norm is Falcon-7B's shared one.
    config(m, a, t) {
      const c = common(m, a);
      return {
        ...c,
        architectures: ['FalconForCausalLM'], model_type: 'falcon',
        num_kv_heads: m.int(`${a}.attention.head_count_kv`, 1),
        new_decoder_architecture: true, parallel_attn: true, alibi: false,
        num_ln_in_parallel_attn: t.has('blk.0.attn_norm_2.weight') ? 2 : 1,
        ffn_hidden_size: c.intermediate_size,
        layer_norm_epsilon: m.num(`${a}.attention.layer_norm_epsilon`),
        rope_theta: m.num(`${a}.rope.freq_base`, 10000),
        bias: t.has('blk.0.attn_qkv.bias'),
        tie_word_embeddings: !t.has('output.weight'),
        vocab_size: t.get('token_embd.weight')?.dims[1],
        activation: 'gelu',
      };
    },
    hfName: (short, blk, t) => {
      const two = t.has('blk.0.attn_norm_2.weight');
      return namer('transformer.h.', {
        attn_norm: two ? 'ln_attn' : 'input_layernorm', attn_norm_2: 'ln_mlp', attn_qkv: 'self_attention.query_key_value',
        attn_output: 'self_attention.dense', ffn_up: 'mlp.dense_h_to_4h', ffn_down: 'mlp.dense_4h_to_h',
      }, {
        'token_embd.weight': 'transformer.word_embeddings.weight', 'output_norm.weight': 'transformer.ln_f.weight',
        'output_norm.bias': 'transformer.ln_f.bias', 'output.weight': 'lm_head.weight',
      })(short, blk, t);
    },
  },
  mpt: {
    config(m, a, t) {
      const c = common(m, a);
      const hidden = c.hidden_size as number, ff = c.intermediate_size as number;
      if (ff % hidden !== 0) throw new StreamlmError(`${ff} is not a multiple of ${a}.embedding_length ${hidden}`, { file: m.h.file, field: `${a}.feed_forward_length` });
      const clip = m.has(`${a}.attention.clamp_kqv`) ? m.num(`${a}.attention.clamp_kqv`) : undefined;
      return {
        architectures: ['MptForCausalLM'], model_type: 'mpt',
        d_model: hidden, n_heads: c.num_attention_heads, n_layers: c.num_hidden_layers, expansion_ratio: ff / hidden,
        max_seq_len: c.max_position_embeddings, vocab_size: t.get('token_embd.weight')?.dims[1],
        layer_norm_epsilon: m.num(`${a}.attention.layer_norm_epsilon`),
        no_bias: !t.has('blk.0.attn_qkv.bias'),
        attn_config: { alibi: true, alibi_bias_max: m.num(`${a}.attention.max_alibi_bias`, 8), ...(clip !== undefined ? { clip_qkv: clip } : {}) },
        bos_token_id: c.bos_token_id, eos_token_id: c.eos_token_id, pad_token_id: c.pad_token_id,
      };
    },
    hfName: namer('transformer.blocks.', {
      attn_norm: 'norm_1', ffn_norm: 'norm_2', attn_qkv: 'attn.Wqkv', attn_output: 'attn.out_proj',
      ffn_up: 'ffn.up_proj', ffn_down: 'ffn.down_proj',
    }, {
      'token_embd.weight': 'transformer.wte.weight', 'output_norm.weight': 'transformer.norm_f.weight',
      'output_norm.bias': 'transformer.norm_f.bias', 'output.weight': 'lm_head.weight',
    }),
  },
};

export const GGUF_ARCHITECTURES: readonly string[] = Object.keys(ARCHS);

// --- row maps: logical (HF) row r is stored at row map[r] ---

/** llama.cpp's llama q/k: stored row h·hd + 2i + j holds HF row h·hd + j·hd/2 + i. */
export function unpermuteRope(rows: number, heads: number): Int32Array {
  const hd = rows / heads, half = hd / 2, map = new Int32Array(rows);
  for (let h = 0; h < heads; h++) for (let i = 0; i < half; i++) for (let j = 0; j < 2; j++) map[h * hd + j * half + i] = h * hd + 2 * i + j;
  return map;
}

/** GPT-NeoX HF rows are per head [q, k, v]; stored [all q; all k; all v]. */
function neoxQkv(heads: number, hd: number): Int32Array {
  const H = heads * hd, map = new Int32Array(3 * H);
  for (let h = 0; h < heads; h++) for (let s = 0; s < 3; s++) for (let d = 0; d < hd; d++) map[h * 3 * hd + s * hd + d] = s * H + h * hd + d;
  return map;
}

/** Falcon (new decoder layout) HF rows are per kv group [q × per, k, v]; stored [all q; all k; all v]. */
function falconQkv(heads: number, kv: number, hd: number): Int32Array {
  const per = heads / kv, map = new Int32Array((heads + 2 * kv) * hd);
  let r = 0;
  for (let g = 0; g < kv; g++) {
    for (let j = 0; j < per; j++) for (let d = 0; d < hd; d++) map[r++] = (g * per + j) * hd + d;
    for (let d = 0; d < hd; d++) map[r++] = (heads + g) * hd + d;
    for (let d = 0; d < hd; d++) map[r++] = (heads + kv + g) * hd + d;
  }
  return map;
}

function rowMapFor(arch: string, short: string, cfg: Obj): Int32Array | undefined {
  const heads = (cfg.num_attention_heads ?? cfg.n_heads) as number;
  const hidden = (cfg.hidden_size ?? cfg.d_model) as number;
  const hd = (cfg.head_dim as number | undefined) ?? hidden / heads;
  if (arch === 'llama' && short.startsWith('attn_q.')) return unpermuteRope(heads * hd, heads);
  if (arch === 'llama' && short.startsWith('attn_k.')) {
    const kv = cfg.num_key_value_heads as number;
    return unpermuteRope(kv * hd, kv);
  }
  if (arch === 'gptneox' && short.startsWith('attn_qkv.')) return neoxQkv(heads, hd);
  if (arch === 'falcon' && short.startsWith('attn_qkv.')) return falconQkv(heads, cfg.num_kv_heads as number, hd);
  return undefined;
}

/** Expected HF shape of each tensor, from the metadata alone (so a lying tensor is named, not loaded). */
function expectedShape(arch: string, short: string, cfg: Obj): number[] | null {
  const H = (cfg.hidden_size ?? cfg.d_model) as number, heads = (cfg.num_attention_heads ?? cfg.n_heads) as number;
  const hd = (cfg.head_dim as number | undefined) ?? H / heads;
  const kv = (cfg.num_key_value_heads ?? cfg.num_kv_heads ?? heads) as number;
  const F = (cfg.intermediate_size as number | undefined) ?? H * (cfg.expansion_ratio as number);
  const V = cfg.vocab_size as number;
  const qkv = (heads + 2 * kv) * hd;
  const table: Record<string, number[]> = {
    'token_embd.weight': [V, H], 'output.weight': [V, H], 'output_norm.weight': [H], 'output_norm.bias': [H],
    'attn_norm.weight': [H], 'attn_norm.bias': [H], 'attn_norm_2.weight': [H], 'attn_norm_2.bias': [H],
    'ffn_norm.weight': [H], 'ffn_norm.bias': [H],
    'attn_q.weight': [heads * hd, H], 'attn_q.bias': [heads * hd], 'attn_k.weight': [kv * hd, H], 'attn_k.bias': [kv * hd],
    'attn_v.weight': [kv * hd, H], 'attn_v.bias': [kv * hd], 'attn_qkv.weight': [qkv, H], 'attn_qkv.bias': [qkv],
    'attn_output.weight': [H, heads * hd], 'attn_output.bias': [H],
    'ffn_gate.weight': [F, H], 'ffn_up.weight': [F, H], 'ffn_up.bias': [F], 'ffn_down.weight': [H, F], 'ffn_down.bias': [H],
  };
  void arch;
  return table[short] ?? null;
}

/** True when `path` names a GGUF file (by its extension). */
export function isGgufPath(path: string): boolean {
  return /\.gguf$/i.test(path);
}

/** The folder part of a path or URL (for the FileSet beside a .gguf file). */
function parentOf(path: string): string {
  const i = Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\'));
  return i < 0 ? '.' : i === 0 ? '/' : path.slice(0, i);
}

/** The one .gguf file of a FileSet that holds no config.json (a page's download or picked file), or null. */
export function ggufFileIn(files: FileSet): string | null {
  if (files.has('config.json')) return null;
  const g = files.names().filter(isGgufPath);
  return g.length === 1 ? g[0] : null;
}

/**
 * Opens a GGUF model file, reading only its header: the file at `path` (Node), or the file `name`
 * of `files` (a page's Blob, read in slices), with `path` naming it in messages.
 */
export function openGgufModel(path: string, inSet?: { files: FileSet; name: string }): GgufModelSource {
  const src = inSet?.files.open(inSet.name);
  const h = readGgufHeader(path, src);
  const m = new GgufMeta(h);
  const archName = m.str('general.architecture');
  const arch = ARCHS[archName];
  if (!arch) throw new StreamlmError(`architecture '${archName}' is not supported (${GGUF_ARCHITECTURES.join(', ')} are)`, { file: path, field: 'general.architecture' });
  const byName = new Map(h.tensors.map((t) => [t.name, t]));
  if (!byName.has('token_embd.weight')) throw new StreamlmError('the file has no token_embd.weight', { file: path, field: 'tensor token_embd.weight' });
  const config = arch.config(m, archName, byName);
  const layers = (config.num_hidden_layers ?? config.n_layers) as number;

  const tensors = new Map<string, TensorInfo>();
  for (const t of h.tensors) {
    const field = `tensor ${t.name}`;
    const match = /^blk\.(\d+)\.(.+)$/.exec(t.name);
    const blk = match ? Number(match[1]) : -1;
    const short = match ? match[2] : t.name;
    if (match && blk >= layers) throw new StreamlmError(`layer ${blk} is past ${archName}.block_count (${layers})`, { file: path, field });
    const hf = arch.hfName(short, blk, byName);
    if (!hf) throw new StreamlmError(`tensor is not part of the ${archName} architecture as implemented here`, { file: path, field });
    const shape = [...t.dims].reverse();
    const want = expectedShape(archName, short, config);
    if (want && (want.length !== shape.length || want.some((d, i) => d !== shape[i]))) {
      throw new StreamlmError(`shape [${shape.join(', ')}] disagrees with the metadata, which implies [${want.join(', ')}]`, { file: path, field });
    }
    const block = (BLOCK_DTYPES as readonly string[]).includes(t.type.name) ? (t.type.name as BlockDtype) : undefined;
    const dtype = FLOAT_DTYPES[t.type.name] ?? block;
    if (!dtype) throw new StreamlmError(`ggml type ${t.type.name} is not supported (F32, F16, BF16, ${BLOCK_DTYPES.join(', ')} are)`, { file: path, field });
    tensors.set(hf, { name: t.name, dtype, shape, file: path, offset: t.offset, byteLength: t.byteLength, rowMap: rowMapFor(archName, short, config), src });
  }
  return { dir: path, files: inSet?.files ?? platform.dir(parentOf(path)), configFile: path, config, generationConfig: null, tensors, gguf: h };
}
