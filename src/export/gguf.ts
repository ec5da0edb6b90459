/**
 * GGUF v3 writer for Llama-family Hugging Face checkpoints, so llama.cpp can run the same weights
 * we do (bench/decode.ts). Streams tensor by tensor: one tensor in memory at a time, written to
 * `outFile + '.tmp'` and renamed at the end.
 *
 * File layout (ggml's gguf.cpp):
 *   u32 magic 'GGUF' | u32 version 3 | u64 n_tensors | u64 n_kv
 *   n_kv × (string key, u32 type, value)          string = u64 length + utf-8 bytes
 *   n_tensors × (string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset)
 *   pad to alignment, then the data; each tensor's offset (from the data start) is aligned.
 * `ne[0]` is the fastest dimension, so an HF `[out, in]` weight has `ne = [in, out]`.
 */
import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { StreamlmError, check } from '../errors.js';
import { parseHParams } from '../models/registry.js';
import { openModelDir } from '../runtime/modeldir.js';
import { readTensorBytes, type TensorInfo } from '../runtime/safetensors.js';
import { f16BitsToF32, f32ToF16Bits } from '../runtime/quant/f16.js';
import { chooseOutputType, chooseType, quantizeRow, quantType, rowBytes } from '../runtime/quant/index.js';
import { vocabFromHf, type GgufVocab } from './gguf-vocab.js';

/** Weight precision of the exported file. Norms and other 1-D tensors stay f32, as in llama.cpp's convert. */
export type GgufDtype = 'f32' | 'f16' | 'q8_0' | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'q4_K' | 'q5_K' | 'q6_K';

/** Every GgufDtype, for flag checks and help. */
export const GGUF_TYPES: readonly GgufDtype[] = ['f32', 'f16', 'q8_0', 'q6_K', 'q5_K', 'q5_1', 'q5_0', 'q4_K', 'q4_1', 'q4_0'];

export interface ExportGgufOptions {
  /** Precision of 2-D weights. Default 'f32'. */
  dtype?: GgufDtype;
  /**
   * Per-tensor types that replace `dtype` for 2-D weights whose GGUF name matches (first match
   * wins), e.g. llama.cpp-style mixes or error attribution in bench/gguf-ppl.ts. Fallback still applies.
   */
  overrides?: { pattern: RegExp; dtype: GgufDtype }[];
  /** Called after each tensor is written. */
  onTensor?: (name: string, done: number, total: number) => void;
}

export interface ExportGgufResult {
  file: string;
  tensors: number;
  /** Bytes of tensor data (without header and padding). */
  dataBytes: number;
  /** How many tensors were stored in each ggml type. */
  types: Record<string, number>;
  /** Tensors whose rows cannot hold the requested blocks, and what they were stored as instead. */
  fallbacks: { name: string; reason: string }[];
}

// --- format constants (gguf-py/gguf/constants.py; append-only upstream) ---

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

/** GGUF metadata value types. */
export const GgufType = {
  UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7,
  STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12,
} as const;

/** ggml tensor types used here. */
export const GgmlType = { F32: 0, F16: 1, Q8_0: 8, BF16: 30 } as const;

/** llama_ftype, written as general.file_type. */
const FILE_TYPE: Record<GgufDtype, number> = { f32: 0, f16: 1, q8_0: 7, q4_0: 2, q4_1: 3, q5_0: 8, q5_1: 9, q4_K: 14, q5_K: 16, q6_K: 18 };

/** SentencePiece token types (llama_token_type). */
const TOKEN_NORMAL = 1, TOKEN_UNKNOWN = 2, TOKEN_CONTROL = 3, TOKEN_BYTE = 6;

export const Q8_0_BLOCK = 32;
/** Bytes per Q8_0 block: f16 scale + 32 int8. */
export const Q8_0_BLOCK_BYTES = 34;

// --- number conversions ---

// f16 conversions live with the quantizers (src/runtime/quant/f16.ts); re-exported for callers here.
export { f32ToF16Bits, f16BitsToF32 };

/** Converts `n` f32 values to f16 bits into `out`. */
export function f32ToF16Array(src: Float32Array, out: Uint16Array): void {
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16Bits(src[i]);
}

/**
 * Q8_0 quantization of rows of `k` floats (k % 32 == 0), as ggml's quantize_row_q8_0_ref:
 * per block `d = max|x| / 127`, `q = round(x / d)` (half away from zero), `d` stored as f16.
 * Writes `src.length / 32` blocks of 34 bytes into `out`.
 */
export function quantizeQ8_0(src: Float32Array, out: Uint8Array): void {
  check(src.length % Q8_0_BLOCK === 0, `length ${src.length} is not a multiple of ${Q8_0_BLOCK}`, { field: 'q8_0' });
  const nb = src.length / Q8_0_BLOCK;
  check(out.length >= nb * Q8_0_BLOCK_BYTES, 'output too small', { field: 'q8_0' });
  const i8 = new Int8Array(out.buffer, out.byteOffset, out.length);
  for (let b = 0; b < nb; b++) {
    const base = b * Q8_0_BLOCK;
    let amax = 0;
    for (let j = 0; j < Q8_0_BLOCK; j++) {
      const a = Math.abs(src[base + j]);
      if (a > amax) amax = a;
    }
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    const h = f32ToF16Bits(d);
    const o = b * Q8_0_BLOCK_BYTES;
    out[o] = h & 0xff;
    out[o + 1] = h >>> 8;
    for (let j = 0; j < Q8_0_BLOCK; j++) {
      const v = Math.fround(src[base + j] * id);
      i8[o + 2 + j] = v >= 0 ? Math.floor(v + 0.5) : -Math.floor(-v + 0.5);
    }
  }
}

/** Dequantizes Q8_0 blocks back to floats (for tests and checks). */
export function dequantizeQ8_0(src: Uint8Array, n: number, out: Float32Array = new Float32Array(n)): Float32Array {
  const i8 = new Int8Array(src.buffer, src.byteOffset, src.length);
  for (let b = 0; b < n / Q8_0_BLOCK; b++) {
    const o = b * Q8_0_BLOCK_BYTES;
    const d = f16BitsToF32(src[o] | (src[o + 1] << 8));
    for (let j = 0; j < Q8_0_BLOCK; j++) out[b * Q8_0_BLOCK + j] = d * i8[o + 2 + j];
  }
  return out;
}

/** Reads a safetensors tensor's bytes and returns them as f32. */
function toF32(info: TensorInfo, raw: Uint8Array, file: string): Float32Array {
  const n = raw.byteLength / (info.dtype === 'F32' ? 4 : 2);
  if (info.dtype === 'F32') return new Float32Array(raw.buffer, raw.byteOffset, n);
  const u16 = new Uint16Array(raw.buffer, raw.byteOffset, n);
  const out = new Float32Array(n);
  if (info.dtype === 'BF16') {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) bits[i] = u16[i] << 16;
  } else if (info.dtype === 'F16') {
    const table = f16Table();
    for (let i = 0; i < n; i++) out[i] = table[u16[i]];
  } else {
    throw new StreamlmError(`dtype ${info.dtype} is not supported (F32, F16, BF16 are)`, { file, field: info.name });
  }
  return out;
}

let f16TableCache: Float32Array | undefined;
function f16Table(): Float32Array {
  if (!f16TableCache) {
    f16TableCache = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16TableCache[h] = f16BitsToF32(h);
  }
  return f16TableCache;
}

// --- checkpoint description ---

/** A Llama-family model's dims as the GGUF header states them (`llamaMetadata`). */
export interface LlamaDims {
  /** GGUF architecture: llama permutes q/k rows for interleaved RoPE; qwen2 keeps HF's rotate_half. */
  arch: 'llama' | 'qwen2';
  vocab: number;
  hidden: number;
  layers: number;
  ffn: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  ropeTheta: number;
  rmsEps: number;
  ctx: number;
  tied: boolean;
  ropeScaling?: { type: 'linear'; factor: number };
  config: Record<string, unknown>;
}

/** The exporter's view of a checkpoint: the shared HParams parser and model-directory reader. */
function readDims(hfDir: string): { dims: LlamaDims; tensors: Map<string, TensorInfo> } {
  const md = openModelDir(hfDir);
  const file = md.configFile;
  const hp = parseHParams(md.config, file, md.tensors);
  if (hp.architecture !== 'LlamaForCausalLM' && hp.architecture !== 'MistralForCausalLM' && hp.architecture !== 'Qwen2ForCausalLM') {
    throw new StreamlmError(`${hp.architecture} is not exported to GGUF (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM are)`, { file, field: 'architectures' });
  }
  // llama.cpp's llama architecture attends to the whole context: a window would be silently dropped.
  if (hp.slidingWindow !== null) {
    throw new StreamlmError(`${hp.slidingWindow} is not exported to GGUF (llama.cpp's llama architecture has no attention window)`, { file, field: 'sliding_window' });
  }
  if (hp.position.kind !== 'rope') throw new StreamlmError('a Llama-family model without RoPE', { file, field: 'architectures' });
  const rope = hp.position.rope;
  if (rope.type !== 'default' && rope.type !== 'linear') {
    throw new StreamlmError(`rope type ${rope.type} is not exported to GGUF (default, linear are)`, { file, field: 'rope_scaling' });
  }
  const dims: LlamaDims = {
    arch: hp.architecture === 'Qwen2ForCausalLM' ? 'qwen2' : 'llama',
    config: md.config,
    vocab: hp.vocabSize,
    hidden: hp.hiddenSize,
    layers: hp.numLayers,
    ffn: hp.intermediateSize,
    heads: hp.numHeads,
    kvHeads: hp.numKvHeads,
    headDim: hp.headDim,
    ropeTheta: rope.theta,
    rmsEps: hp.normEps,
    ctx: hp.maxPositionEmbeddings,
    tied: hp.tieWordEmbeddings,
    ropeScaling: rope.type === 'linear' ? { type: 'linear', factor: rope.factor } : undefined,
  };
  return { dims, tensors: md.tensors };
}

/** One tensor of the output: its GGUF name and shape, and how to make its bytes. */
interface Plan {
  name: string;
  /** HF shape, slowest dimension first. */
  shape: number[];
  type: number;
  bytes: number;
  src: TensorInfo;
  /** Rows permuted for llama.cpp's interleaved RoPE: the head count to permute with. */
  permuteHeads?: number;
}

function bytesOf(type: number, n: number, cols: number): number {
  if (type === GgmlType.F32) return n * 4;
  if (type === GgmlType.F16) return n * 2;
  return (n / cols) * rowBytes(quantType(type), cols);
}

function plan(dims: LlamaDims, tensors: Map<string, TensorInfo>, dtype: GgufDtype, file: string, fallbacks: ExportGgufResult['fallbacks'],
  overrides: { pattern: RegExp; dtype: GgufDtype }[] = []): Plan[] {
  const out: Plan[] = [];
  const add = (hf: string, name: string, opts: { optional?: boolean; permuteHeads?: number; output?: boolean } = {}): void => {
    const src = tensors.get(hf);
    if (!src) {
      if (opts.optional) return;
      throw new StreamlmError('tensor missing', { file, field: hf });
    }
    const n = src.shape.reduce((a, b) => a * b, 1);
    const cols = src.shape[src.shape.length - 1];
    let type: number = GgmlType.F32;
    const want = overrides.find((o) => o.pattern.test(name))?.dtype ?? dtype;
    if (src.shape.length >= 2 && want !== 'f32') {
      // Rows that cannot hold the blocks fall back per tensor, as llama.cpp does (chooseType).
      const choice = opts.output && want === dtype ? chooseOutputType(want, cols) : chooseType(want, cols);
      type = choice.type.id;
      if (choice.fallback) fallbacks.push({ name, reason: choice.reason });
    }
    out.push({ name, shape: src.shape, type, bytes: bytesOf(type, n, cols), src, permuteHeads: opts.permuteHeads });
  };
  // A tied head is token_embd itself: it gets the output's type (chooseOutputType), as in llama.cpp.
  add('model.embed_tokens.weight', 'token_embd.weight', { output: dims.tied });
  for (let l = 0; l < dims.layers; l++) {
    const p = `model.layers.${l}.`, b = `blk.${l}.`;
    add(p + 'input_layernorm.weight', b + 'attn_norm.weight');
    const qh = dims.arch === 'llama' ? dims.heads : undefined, kh = dims.arch === 'llama' ? dims.kvHeads : undefined;
    add(p + 'self_attn.q_proj.weight', b + 'attn_q.weight', { permuteHeads: qh });
    add(p + 'self_attn.q_proj.bias', b + 'attn_q.bias', { optional: true, permuteHeads: qh });
    add(p + 'self_attn.k_proj.weight', b + 'attn_k.weight', { permuteHeads: kh });
    add(p + 'self_attn.k_proj.bias', b + 'attn_k.bias', { optional: true, permuteHeads: kh });
    add(p + 'self_attn.v_proj.weight', b + 'attn_v.weight');
    add(p + 'self_attn.v_proj.bias', b + 'attn_v.bias', { optional: true });
    add(p + 'self_attn.o_proj.weight', b + 'attn_output.weight');
    add(p + 'self_attn.o_proj.bias', b + 'attn_output.bias', { optional: true });
    add(p + 'post_attention_layernorm.weight', b + 'ffn_norm.weight');
    add(p + 'mlp.gate_proj.weight', b + 'ffn_gate.weight');
    add(p + 'mlp.down_proj.weight', b + 'ffn_down.weight');
    add(p + 'mlp.up_proj.weight', b + 'ffn_up.weight');
  }
  add('model.norm.weight', 'output_norm.weight');
  // Tied checkpoints have no lm_head: llama.cpp then reuses token_embd, as we do.
  if (!dims.tied) add('lm_head.weight', 'output.weight', { output: true });
  for (const p of out) {
    const s = p.src.shape;
    const want = expectShape(p.name, dims);
    if (want && (s.length !== want.length || s.some((v, i) => v !== want[i]))) {
      throw new StreamlmError(`shape [${s.join(', ')}] does not match config.json ([${want.join(', ')}])`, { file, field: p.src.name });
    }
  }
  return out;
}

function expectShape(name: string, d: LlamaDims): number[] | undefined {
  const q = d.heads * d.headDim, kv = d.kvHeads * d.headDim;
  const short = name.replace(/^blk\.\d+\./, '');
  const table: Record<string, number[]> = {
    'token_embd.weight': [d.vocab, d.hidden], 'output.weight': [d.vocab, d.hidden],
    'output_norm.weight': [d.hidden], 'attn_norm.weight': [d.hidden], 'ffn_norm.weight': [d.hidden],
    'attn_q.weight': [q, d.hidden], 'attn_k.weight': [kv, d.hidden], 'attn_v.weight': [kv, d.hidden],
    'attn_output.weight': [d.hidden, q], 'ffn_gate.weight': [d.ffn, d.hidden], 'ffn_up.weight': [d.ffn, d.hidden],
    'ffn_down.weight': [d.hidden, d.ffn], 'attn_q.bias': [q], 'attn_k.bias': [kv], 'attn_v.bias': [kv],
  };
  return table[short];
}

/**
 * HF stores q/k rows per head as [first halves | second halves] (rotate_half RoPE); llama.cpp's
 * llama arch rotates adjacent pairs. convert_hf_to_gguf.py's `permute`: reshape rows to
 * (heads, 2, headDim/2), swap the last two axes. New row h·hd + 2i + j = old row h·hd + j·hd/2 + i.
 */
export function permuteRows(x: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const hd = rows / heads, half = hd / 2;
  const out = new Float32Array(x.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const dst = (h * hd + 2 * i + j) * cols, src = (h * hd + j * half + i) * cols;
        out.set(x.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

// --- header encoding ---

type MetaValue =
  | { t: 'u32'; v: number } | { t: 'f32'; v: number } | { t: 'str'; v: string } | { t: 'bool'; v: boolean }
  | { t: 'strs'; v: string[] } | { t: 'f32s'; v: Float32Array } | { t: 'i32s'; v: Int32Array };

const utf8 = new TextEncoder();

class ByteSink {
  private chunks: Uint8Array[] = [];
  private cur = new Uint8Array(1 << 16);
  private view = new DataView(this.cur.buffer);
  private pos = 0;
  length = 0;

  private room(n: number): void {
    if (this.pos + n <= this.cur.length) return;
    this.chunks.push(this.cur.subarray(0, this.pos));
    this.cur = new Uint8Array(Math.max(1 << 16, n));
    this.view = new DataView(this.cur.buffer);
    this.pos = 0;
  }
  u32(v: number): void { this.room(4); this.view.setUint32(this.pos, v, true); this.pos += 4; this.length += 4; }
  i32(v: number): void { this.room(4); this.view.setInt32(this.pos, v, true); this.pos += 4; this.length += 4; }
  u64(v: number): void { this.room(8); this.view.setBigUint64(this.pos, BigInt(v), true); this.pos += 8; this.length += 8; }
  f32(v: number): void { this.room(4); this.view.setFloat32(this.pos, v, true); this.pos += 4; this.length += 4; }
  u8(v: number): void { this.room(1); this.cur[this.pos++] = v; this.length += 1; }
  bytes(b: Uint8Array): void { this.room(b.length); this.cur.set(b, this.pos); this.pos += b.length; this.length += b.length; }
  str(s: string): void { const b = utf8.encode(s); this.u64(b.length); this.bytes(b); }
  finish(): Uint8Array {
    this.chunks.push(this.cur.subarray(0, this.pos));
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) { out.set(c, o); o += c.length; }
    return out;
  }
}

function writeMeta(sink: ByteSink, key: string, m: MetaValue): void {
  sink.str(key);
  switch (m.t) {
    case 'u32': sink.u32(GgufType.UINT32); sink.u32(m.v); break;
    case 'f32': sink.u32(GgufType.FLOAT32); sink.f32(m.v); break;
    case 'bool': sink.u32(GgufType.BOOL); sink.u8(m.v ? 1 : 0); break;
    case 'str': sink.u32(GgufType.STRING); sink.str(m.v); break;
    case 'strs': sink.u32(GgufType.ARRAY); sink.u32(GgufType.STRING); sink.u64(m.v.length); for (const s of m.v) sink.str(s); break;
    case 'f32s': sink.u32(GgufType.ARRAY); sink.u32(GgufType.FLOAT32); sink.u64(m.v.length); for (const v of m.v) sink.f32(v); break;
    case 'i32s': sink.u32(GgufType.ARRAY); sink.u32(GgufType.INT32); sink.u64(m.v.length); for (const v of m.v) sink.i32(v); break;
  }
}

/**
 * A stand-in SentencePiece vocab of `n` tokens, laid out like Llama's: <unk>, <s>, </s>, the 256
 * byte tokens <0x00>..<0xFF>, then `tok_N`. llama.cpp needs a vocab to load a model; the bench
 * feeds token ids directly, so the pieces never matter.
 */
function dummyVocab(n: number): { tokens: string[]; scores: Float32Array; types: Int32Array } {
  const tokens: string[] = [], scores = new Float32Array(n), types = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let tok: string, type = TOKEN_NORMAL;
    if (i === 0) { tok = '<unk>'; type = TOKEN_UNKNOWN; }
    else if (i === 1) { tok = '<s>'; type = TOKEN_CONTROL; }
    else if (i === 2) { tok = '</s>'; type = TOKEN_CONTROL; }
    else if (i < 259) { tok = `<0x${(i - 3).toString(16).toUpperCase().padStart(2, '0')}>`; type = TOKEN_BYTE; }
    else tok = `tok_${i}`;
    tokens.push(tok);
    scores[i] = type === TOKEN_NORMAL ? -i : 0;
    types[i] = type;
  }
  return { tokens, scores, types };
}

/** The `general.*`, `<arch>.*` and `tokenizer.*` keys; `vocab` null: a stand-in SentencePiece vocabulary. */
export function llamaMetadata(dims: LlamaDims, dtype: GgufDtype, name: string, vocab: GgufVocab | null): GgufMetadata {
  const a = dims.arch;
  const kv: [string, MetaValue][] = [
    ['general.architecture', { t: 'str', v: a }],
    ['general.name', { t: 'str', v: name }],
    ['general.alignment', { t: 'u32', v: GGUF_ALIGNMENT }],
    ['general.file_type', { t: 'u32', v: FILE_TYPE[dtype] }],
    [`${a}.vocab_size`, { t: 'u32', v: dims.vocab }],
    [`${a}.context_length`, { t: 'u32', v: dims.ctx }],
    [`${a}.embedding_length`, { t: 'u32', v: dims.hidden }],
    [`${a}.block_count`, { t: 'u32', v: dims.layers }],
    [`${a}.feed_forward_length`, { t: 'u32', v: dims.ffn }],
    [`${a}.attention.head_count`, { t: 'u32', v: dims.heads }],
    [`${a}.attention.head_count_kv`, { t: 'u32', v: dims.kvHeads }],
    [`${a}.rope.freq_base`, { t: 'f32', v: dims.ropeTheta }],
    [`${a}.attention.layer_norm_rms_epsilon`, { t: 'f32', v: dims.rmsEps }],
    [`${a}.rope.dimension_count`, { t: 'u32', v: dims.headDim }],
  ];
  if (dims.headDim * dims.heads !== dims.hidden) {
    kv.push([`${a}.attention.key_length`, { t: 'u32', v: dims.headDim }]);
    kv.push([`${a}.attention.value_length`, { t: 'u32', v: dims.headDim }]);
  }
  if (dims.ropeScaling) {
    kv.push([`${a}.rope.scaling.type`, { t: 'str', v: dims.ropeScaling.type }]);
    kv.push([`${a}.rope.scaling.factor`, { t: 'f32', v: dims.ropeScaling.factor }]);
  }
  if (vocab) {
    kv.push(
      ['tokenizer.ggml.model', { t: 'str', v: vocab.model }],
      ['tokenizer.ggml.pre', { t: 'str', v: vocab.pre }],
      ['tokenizer.ggml.tokens', { t: 'strs', v: vocab.tokens }],
      ['tokenizer.ggml.token_type', { t: 'i32s', v: vocab.types }],
      ['tokenizer.ggml.merges', { t: 'strs', v: vocab.merges }],
      ['tokenizer.ggml.add_bos_token', { t: 'bool', v: vocab.addBos }],
    );
    if (vocab.bos !== null) kv.push(['tokenizer.ggml.bos_token_id', { t: 'u32', v: vocab.bos }]);
    if (vocab.eos !== null) kv.push(['tokenizer.ggml.eos_token_id', { t: 'u32', v: vocab.eos }]);
    if (vocab.pad !== null) kv.push(['tokenizer.ggml.padding_token_id', { t: 'u32', v: vocab.pad }]);
    if (vocab.chatTemplate !== null) kv.push(['tokenizer.chat_template', { t: 'str', v: vocab.chatTemplate }]);
    return kv;
  }
  const dummy = dummyVocab(dims.vocab);
  kv.push(
    ['tokenizer.ggml.model', { t: 'str', v: 'llama' }],
    ['tokenizer.ggml.tokens', { t: 'strs', v: dummy.tokens }],
    ['tokenizer.ggml.scores', { t: 'f32s', v: dummy.scores }],
    ['tokenizer.ggml.token_type', { t: 'i32s', v: dummy.types }],
    ['tokenizer.ggml.bos_token_id', { t: 'u32', v: 1 }],
    ['tokenizer.ggml.eos_token_id', { t: 'u32', v: 2 }],
    ['tokenizer.ggml.unknown_token_id', { t: 'u32', v: 0 }],
    ['tokenizer.ggml.add_bos_token', { t: 'bool', v: false }],
  );
  return kv;
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

// --- export ---

/**
 * Writes `outFile` as GGUF v3 (llama or qwen2 arch) from the Llama-style HF checkpoint in `hfDir`,
 * with its tokenizer.json as a `gpt2` vocabulary (a stand-in vocabulary when there is none).
 * llama q/k rows are permuted to llama.cpp's RoPE layout, so llama.cpp computes the same function.
 */
export function exportGguf(hfDir: string, outFile: string, opts: ExportGgufOptions = {}): ExportGgufResult {
  const dtype = opts.dtype ?? 'f32';
  if (!(dtype in FILE_TYPE)) throw new StreamlmError(`unknown dtype ${String(dtype)} (${GGUF_TYPES.join(', ')})`, { field: 'dtype' });
  const { dims, tensors } = readDims(hfDir);
  const fallbacks: ExportGgufResult['fallbacks'] = [];
  for (const o of opts.overrides ?? []) {
    if (!(o.dtype in FILE_TYPE)) throw new StreamlmError(`unknown dtype ${String(o.dtype)} for ${String(o.pattern)} (${GGUF_TYPES.join(', ')})`, { field: 'overrides' });
  }
  const plans = plan(dims, tensors, dtype, hfDir, fallbacks, opts.overrides);
  const kv = llamaMetadata(dims, dtype, hfDir.split('/').filter(Boolean).pop() ?? 'model', vocabFromHf(hfDir, dims.vocab, dims.config));
  const r = writeGguf(outFile, kv, plans.map((p) => ({ ...p, encode: () => encodeTensor(p) })), opts.onTensor);
  return { ...r, fallbacks };
}

/** One tensor to write: GGUF name, shape (slowest dimension first), ggml type, byte count, and its bytes on demand. */
export interface GgufTensorPlan { name: string; shape: number[]; type: number; bytes: number; encode: () => Uint8Array }

/** Header metadata as `writeGguf` takes it (from `llamaMetadata`). */
export type GgufMetadata = [string, MetaValue][];

/**
 * Writes a GGUF v3 file: header, then each tensor's bytes at its aligned offset, one tensor in
 * memory at a time. Written to `outFile.tmp` and renamed, so a failed write leaves no file.
 */
export function writeGguf(outFile: string, kv: GgufMetadata, plans: GgufTensorPlan[], onTensor?: ExportGgufOptions['onTensor']): Omit<ExportGgufResult, 'fallbacks'> {
  const types: Record<string, number> = {};
  for (const p of plans) { const t = quantType(p.type).name; types[t] = (types[t] ?? 0) + 1; }
  const head = new ByteSink();
  head.u32(GGUF_MAGIC);
  head.u32(GGUF_VERSION);
  head.u64(plans.length);
  head.u64(kv.length);
  for (const [k, v] of kv) writeMeta(head, k, v);
  let offset = 0;
  const offsets: number[] = [];
  for (const p of plans) {
    head.str(p.name);
    head.u32(p.shape.length);
    for (let i = p.shape.length - 1; i >= 0; i--) head.u64(p.shape[i]);
    head.u32(p.type);
    head.u64(offset);
    offsets.push(offset);
    offset = alignUp(offset + p.bytes, GGUF_ALIGNMENT);
  }
  const header = head.finish();
  const dataStart = alignUp(header.length, GGUF_ALIGNMENT);

  const tmp = outFile + '.tmp';
  const fd = openSync(tmp, 'w');
  let ok = false;
  try {
    writeSync(fd, header);
    writeSync(fd, new Uint8Array(dataStart - header.length));
    let pos = dataStart, dataBytes = 0;
    for (let i = 0; i < plans.length; i++) {
      const p = plans[i];
      const want = dataStart + offsets[i];
      if (want > pos) { writeSync(fd, new Uint8Array(want - pos)); pos = want; }
      const bytes = p.encode();
      check(bytes.length === p.bytes, `encoded ${bytes.length} bytes, expected ${p.bytes}`, { file: outFile, field: p.name });
      writeAll(fd, bytes);
      pos += bytes.length;
      dataBytes += bytes.length;
      onTensor?.(p.name, i + 1, plans.length);
    }
    const end = alignUp(pos, GGUF_ALIGNMENT);
    if (end > pos) writeSync(fd, new Uint8Array(end - pos));
    ok = true;
    closeSync(fd);
    renameSync(tmp, outFile);
    return { file: outFile, tensors: plans.length, dataBytes, types };
  } finally {
    if (!ok) {
      closeSync(fd);
      rmSync(tmp, { force: true });
    }
  }
}

function writeAll(fd: number, b: Uint8Array): void {
  let off = 0;
  while (off < b.length) off += writeSync(fd, b, off, Math.min(b.length - off, 1 << 30));
}

function encodeTensor(p: Plan): Uint8Array {
  const raw = new Uint8Array(p.src.byteLength);
  readTensorBytes(p.src, raw);
  const sameType =
    (p.src.dtype === 'F32' && p.type === GgmlType.F32) || (p.src.dtype === 'F16' && p.type === GgmlType.F16);
  if (sameType && !p.permuteHeads) return raw;
  let x = toF32(p.src, raw, p.src.file);
  if (p.permuteHeads) {
    const rows = p.shape[0], cols = p.shape.length > 1 ? p.shape[1] : 1;
    x = permuteRows(x, rows, cols, p.permuteHeads);
  }
  if (p.type === GgmlType.F32) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  if (p.type === GgmlType.F16) {
    const out = new Uint16Array(x.length);
    f32ToF16Array(x, out);
    return new Uint8Array(out.buffer);
  }
  const out = new Uint8Array(p.bytes);
  if (p.type === GgmlType.Q8_0) {
    quantizeQ8_0(x, out); // ggml's round-to-nearest rule, as llama.cpp writes Q8_0
    return out;
  }
  const type = quantType(p.type), cols = p.shape[p.shape.length - 1], rb = rowBytes(type, cols);
  for (let r = 0; r < x.length / cols; r++) quantizeRow(type, x.subarray(r * cols, (r + 1) * cols), out.subarray(r * rb, (r + 1) * rb));
  return out;
}
