/**
 * A test-side GGUF writer (all tensors f32) and HF -> GGUF conversions for the architectures our
 * exporter does not write (gptneox, falcon, mpt). Written from llama.cpp's conventions, apart from
 * src/runtime/gguf-source.ts, so loading these files checks that mapping rather than mirroring it.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { writeSafetensors } from './safetensors-writer.js';
import { join } from 'node:path';
import { readSafetensorsHeader, readTensorBytes } from '../../src/runtime/safetensors.js';
import { vocabFromHf } from '../../src/export/gguf-vocab.js';

export type Kv = [string, 'u32' | 'f32' | 'str' | 'bool' | 'strs' | 'i32s' | 'f32s', unknown];
export interface T { name: string; shape: number[]; data: Float32Array }

export function writeGgufF32(path: string, kv: Kv[], tensors: T[]): void {
  const parts: Uint8Array[] = [];
  let len = 0;
  const push = (b: Uint8Array): void => { parts.push(b); len += b.length; };
  const u32 = (v: number): void => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, v, true); push(b); };
  const i32 = (v: number): void => { const b = new Uint8Array(4); new DataView(b.buffer).setInt32(0, v, true); push(b); };
  const u64 = (v: number): void => { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(v), true); push(b); };
  const f32 = (v: number): void => { const b = new Uint8Array(4); new DataView(b.buffer).setFloat32(0, v, true); push(b); };
  const str = (s: string): void => { const b = new TextEncoder().encode(s); u64(b.length); push(b); };
  u32(0x46554747); u32(3); u64(tensors.length); u64(kv.length);
  for (const [k, t, v] of kv) {
    str(k);
    if (t === 'u32') { u32(4); u32(v as number); }
    else if (t === 'f32') { u32(6); f32(v as number); }
    else if (t === 'str') { u32(8); str(v as string); }
    else if (t === 'bool') { u32(7); push(Uint8Array.of(v ? 1 : 0)); }
    else if (t === 'strs') { u32(9); u32(8); u64((v as string[]).length); for (const s of v as string[]) str(s); }
    else if (t === 'f32s') { u32(9); u32(6); u64((v as Float32Array).length); for (const x of v as Float32Array) f32(x); }
    else { u32(9); u32(5); u64((v as Int32Array).length); for (const x of v as Int32Array) i32(x); }
  }
  let off = 0;
  for (const t of tensors) {
    str(t.name); u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) u64(t.shape[i]);
    u32(0); u64(off);
    off += Math.ceil(t.data.byteLength / 32) * 32;
  }
  push(new Uint8Array((32 - (len % 32)) % 32));
  for (const t of tensors) {
    push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    push(new Uint8Array((32 - (t.data.byteLength % 32)) % 32));
  }
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  writeFileSync(path, out);
}

function readF32(dir: string): Map<string, T> {
  const out = new Map<string, T>();
  for (const t of readSafetensorsHeader(join(dir, 'model.safetensors')).tensors) {
    if (t.dtype !== 'F32') throw new Error(`${t.name}: ${t.dtype}`);
    const b = new Uint8Array(t.byteLength);
    readTensorBytes(t, b);
    out.set(t.name, { name: t.name, shape: t.shape, data: new Float32Array(b.buffer) });
  }
  return out;
}

/** Rows [q; k; v] from fused rows laid out as `groups` × (qPer q heads, `kvPer` k heads, `kvPer` v heads). */
function toQkv(x: Float32Array, cols: number, groups: number, qPer: number, kvPer: number, hd: number): Float32Array {
  const out = new Float32Array(x.length);
  const per = (qPer + 2 * kvPer) * hd, qRows = groups * qPer * hd, kRows = groups * kvPer * hd;
  let q = 0, k = qRows, v = qRows + kRows;
  for (let g = 0; g < groups; g++) {
    const base = g * per;
    for (let r = 0; r < qPer * hd; r++) out.set(x.subarray((base + r) * cols, (base + r + 1) * cols), (q++) * cols);
    for (let r = 0; r < kvPer * hd; r++) out.set(x.subarray((base + qPer * hd + r) * cols, (base + qPer * hd + r + 1) * cols), (k++) * cols);
    for (let r = 0; r < kvPer * hd; r++) out.set(x.subarray((base + (qPer + kvPer) * hd + r) * cols, (base + (qPer + kvPer) * hd + r + 1) * cols), (v++) * cols);
  }
  return out;
}

/** Writes the fixture in `dir` (GPTNeoX, Falcon or MPT, f32) as a GGUF file the way llama.cpp's converter lays it out. */
export function convertFixture(dir: string, out: string): void {
  const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, never>;
  const w = readF32(dir);
  const arch = ({ GPTNeoXForCausalLM: 'gptneox', FalconForCausalLM: 'falcon', MptForCausalLM: 'mpt' } as Record<string, string>)[c.architectures[0]];
  const tensors: T[] = [];
  const add = (hf: string, name: string, fix?: (t: T) => Float32Array): void => {
    const t = w.get(hf);
    if (!t) return;
    tensors.push({ name, shape: t.shape, data: fix ? fix(t) : t.data });
  };
  const kv: Kv[] = [['general.architecture', 'str', arch], ['general.alignment', 'u32', 32]];
  let layers: number;
  if (arch === 'gptneox') {
    const H = c.hidden_size as number, nh = c.num_attention_heads as number, hd = H / nh;
    layers = c.num_hidden_layers;
    const rp = c.rope_parameters as Record<string, number>;
    kv.push(['gptneox.context_length', 'u32', c.max_position_embeddings], ['gptneox.embedding_length', 'u32', H], ['gptneox.block_count', 'u32', layers],
      ['gptneox.feed_forward_length', 'u32', c.intermediate_size], ['gptneox.attention.head_count', 'u32', nh],
      ['gptneox.attention.layer_norm_epsilon', 'f32', c.layer_norm_eps], ['gptneox.rope.dimension_count', 'u32', hd * rp.partial_rotary_factor],
      ['gptneox.rope.freq_base', 'f32', rp.rope_theta], ['gptneox.use_parallel_residual', 'bool', c.use_parallel_residual]);
    add('gpt_neox.embed_in.weight', 'token_embd.weight');
    for (let l = 0; l < layers; l++) {
      const p = `gpt_neox.layers.${l}.`, b = `blk.${l}.`;
      for (const s of ['weight', 'bias']) {
        add(`${p}input_layernorm.${s}`, `${b}attn_norm.${s}`);
        add(`${p}attention.query_key_value.${s}`, `${b}attn_qkv.${s}`, (t) => toQkv(t.data, t.shape[1] ?? 1, nh, 1, 1, hd));
        add(`${p}attention.dense.${s}`, `${b}attn_output.${s}`);
        add(`${p}post_attention_layernorm.${s}`, `${b}ffn_norm.${s}`);
        add(`${p}mlp.dense_h_to_4h.${s}`, `${b}ffn_up.${s}`);
        add(`${p}mlp.dense_4h_to_h.${s}`, `${b}ffn_down.${s}`);
      }
    }
    add('gpt_neox.final_layer_norm.weight', 'output_norm.weight');
    add('gpt_neox.final_layer_norm.bias', 'output_norm.bias');
    add('embed_out.weight', 'output.weight');
  } else if (arch === 'falcon') {
    const H = c.hidden_size as number, nh = c.num_attention_heads as number, hd = H / nh;
    const kvh = c.new_decoder_architecture ? (c.num_kv_heads as number) : c.multi_query ? 1 : nh;
    layers = c.num_hidden_layers;
    kv.push(['falcon.context_length', 'u32', c.max_position_embeddings], ['falcon.embedding_length', 'u32', H], ['falcon.block_count', 'u32', layers],
      ['falcon.feed_forward_length', 'u32', c.ffn_hidden_size], ['falcon.attention.head_count', 'u32', nh], ['falcon.attention.head_count_kv', 'u32', kvh],
      ['falcon.attention.layer_norm_epsilon', 'f32', c.layer_norm_epsilon], ['falcon.rope.freq_base', 'f32', (c.rope_parameters as Record<string, number>).rope_theta]);
    add('transformer.word_embeddings.weight', 'token_embd.weight');
    for (let l = 0; l < layers; l++) {
      const p = `transformer.h.${l}.`, b = `blk.${l}.`;
      for (const s of ['weight', 'bias']) {
        add(`${p}input_layernorm.${s}`, `${b}attn_norm.${s}`);
        add(`${p}ln_attn.${s}`, `${b}attn_norm.${s}`);
        add(`${p}ln_mlp.${s}`, `${b}attn_norm_2.${s}`);
        add(`${p}self_attention.query_key_value.${s}`, `${b}attn_qkv.${s}`, (t) => toQkv(t.data, t.shape[1] ?? 1, kvh, nh / kvh, 1, hd));
        add(`${p}self_attention.dense.${s}`, `${b}attn_output.${s}`);
        add(`${p}mlp.dense_h_to_4h.${s}`, `${b}ffn_up.${s}`);
        add(`${p}mlp.dense_4h_to_h.${s}`, `${b}ffn_down.${s}`);
      }
    }
    add('transformer.ln_f.weight', 'output_norm.weight');
    add('transformer.ln_f.bias', 'output_norm.bias');
    add('lm_head.weight', 'output.weight');
  } else {
    const H = c.d_model as number, a = c.attn_config as Record<string, number>;
    layers = c.n_layers;
    kv.push(['mpt.context_length', 'u32', c.max_seq_len], ['mpt.embedding_length', 'u32', H], ['mpt.block_count', 'u32', layers],
      ['mpt.feed_forward_length', 'u32', H * (c.expansion_ratio as number)], ['mpt.attention.head_count', 'u32', c.n_heads],
      ['mpt.attention.layer_norm_epsilon', 'f32', c.layer_norm_epsilon], ['mpt.attention.max_alibi_bias', 'f32', a.alibi_bias_max]);
    if (a.clip_qkv) kv.push(['mpt.attention.clamp_kqv', 'f32', a.clip_qkv]);
    add('transformer.wte.weight', 'token_embd.weight');
    for (let l = 0; l < layers; l++) {
      const p = `transformer.blocks.${l}.`, b = `blk.${l}.`;
      for (const s of ['weight', 'bias']) {
        add(`${p}norm_1.${s}`, `${b}attn_norm.${s}`);
        add(`${p}attn.Wqkv.${s}`, `${b}attn_qkv.${s}`);
        add(`${p}attn.out_proj.${s}`, `${b}attn_output.${s}`);
        add(`${p}norm_2.${s}`, `${b}ffn_norm.${s}`);
        add(`${p}ffn.up_proj.${s}`, `${b}ffn_up.${s}`);
        add(`${p}ffn.down_proj.${s}`, `${b}ffn_down.${s}`);
      }
    }
    add('transformer.norm_f.weight', 'output_norm.weight');
    add('transformer.norm_f.bias', 'output_norm.bias');
  }
  // llama.cpp needs a vocabulary to load a file; the fixture's byte-level BPE serves.
  const v = vocabFromHf(dir, tensors[0].shape[0], c);
  if (v) {
    kv.push(['tokenizer.ggml.model', 'str', 'gpt2'], ['tokenizer.ggml.pre', 'str', v.pre], ['tokenizer.ggml.tokens', 'strs', v.tokens],
      ['tokenizer.ggml.token_type', 'i32s', v.types], ['tokenizer.ggml.merges', 'strs', v.merges]);
    if (v.bos !== null) kv.push(['tokenizer.ggml.bos_token_id', 'u32', v.bos]);
    if (v.eos !== null) kv.push(['tokenizer.ggml.eos_token_id', 'u32', v.eos]);
  }
  writeGgufF32(out, kv, tensors);
}

/** A random Llama whose widths hold k-quant super-blocks (256) except the FFN's (576, as the shipped models). */
export function writeRandomLlama(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const H = 256, F = 576, V = 320, L = 1, heads = 4, kv = 2, hd = H / heads;
  let s = 12345;
  const rnd = (): number => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return s / 2 ** 32 - 0.5; };
  const t = (name: string, shape: number[], scale: number, base = 0) => ({ name, dtype: 'F32' as const, shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => base + scale * rnd()) });
  const tensors = [t('model.embed_tokens.weight', [V, H], 1), t('model.norm.weight', [H], 0.2, 1), t('lm_head.weight', [V, H], 0.3)];
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    tensors.push(t(p + 'input_layernorm.weight', [H], 0.2, 1), t(p + 'post_attention_layernorm.weight', [H], 0.2, 1),
      t(p + 'self_attn.q_proj.weight', [heads * hd, H], 0.25), t(p + 'self_attn.k_proj.weight', [kv * hd, H], 0.25),
      t(p + 'self_attn.v_proj.weight', [kv * hd, H], 0.25), t(p + 'self_attn.o_proj.weight', [H, heads * hd], 0.25),
      t(p + 'mlp.gate_proj.weight', [F, H], 0.25), t(p + 'mlp.up_proj.weight', [F, H], 0.25), t(p + 'mlp.down_proj.weight', [H, F], 0.2));
  }
  writeSafetensors(join(dir, 'model.safetensors'), tensors);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], vocab_size: V, hidden_size: H, num_hidden_layers: L, num_attention_heads: heads,
    num_key_value_heads: kv, intermediate_size: F, rope_theta: 10000, rms_norm_eps: 1e-5, max_position_embeddings: 256, tie_word_embeddings: false,
  }));
}


/**
 * Per-tensor types that give writeRandomLlama's fused linears parts of different kinds, as
 * llama.cpp's Q4_K_M does (attn_v at Q6_K next to Q4_K q/k): with `dtype: 'q4_K'`, q/k/v become
 * q4_K + f16 + q6_K and gate/up q4_K + q8_0.
 */
export const MIXED_OVERRIDES: { pattern: RegExp; dtype: 'q6_K' | 'f16' | 'q8_0' }[] = [
  { pattern: /attn_v\.weight$/, dtype: 'q6_K' },
  { pattern: /attn_k\.weight$/, dtype: 'f16' },
  { pattern: /ffn_up\.weight$/, dtype: 'q8_0' },
];
