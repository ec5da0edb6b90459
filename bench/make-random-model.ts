/**
 * Writes a random-weight Hugging Face checkpoint of a real model shape, for bench/decode.ts, or a
 * GGUF file at a block type, for bench/memory.ts.
 *
 *   node --import tsx bench/make-random-model.ts --shape qwen2.5-0.5b|tinyllama-1.1b|qwen2.5-3b --dtype f32|f16|bf16 --out DIR
 *   node --import tsx bench/make-random-model.ts --shape ... --dtype q4_K|q5_K|q6_K|q4_0|... --out FILE.gguf
 *
 * DIR gets config.json (LlamaForCausalLM) and model.safetensors. Weights are uniform with std 0.02
 * (xorshift PRNG, fixed seed), norms are 1. The file is streamed tensor by tensor in 16 MiB chunks,
 * so multi-GB checkpoints never sit in one JS allocation. No tokenizer: the bench feeds token ids.
 * A block-type GGUF (llama arch, stand-in vocabulary) is written directly: see makeRandomGguf.
 * Generated files belong under .bench/ (gitignored).
 */
import { closeSync, mkdirSync, openSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { StreamlmError } from '../src/errors.js';
import { f32ToF16Bits, GGUF_TYPES, llamaMetadata, writeGguf, type ExportGgufResult, type GgufDtype, type GgufTensorPlan, type LlamaDims } from '../src/export/gguf.js';
import { chooseOutputType, chooseType, quantizeRow, rowBytes, type QuantType } from '../src/runtime/quant/index.js';

export type Shape = 'qwen2.5-0.5b' | 'tinyllama-1.1b' | 'qwen2.5-3b';
export type SourceDtype = 'f32' | 'f16' | 'bf16';

export interface ShapeSpec {
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  vocab: number;
  tied: boolean;
  ropeTheta: number;
  rmsEps: number;
  ctx: number;
}

/**
 * Real model shapes. Qwen2.5-0.5B keeps its dims but uses vocab 32000 and no q/k/v biases (llama
 * arch); Qwen2.5-3B keeps its vocabulary (151936, tied) and drops only the biases.
 */
export const SHAPES: Record<Shape, ShapeSpec> = {
  'qwen2.5-0.5b': { hidden: 896, layers: 24, heads: 14, kvHeads: 2, ffn: 4864, vocab: 32000, tied: true, ropeTheta: 1e6, rmsEps: 1e-6, ctx: 32768 },
  'tinyllama-1.1b': { hidden: 2048, layers: 22, heads: 32, kvHeads: 4, ffn: 5632, vocab: 32000, tied: false, ropeTheta: 1e4, rmsEps: 1e-5, ctx: 2048 },
  'qwen2.5-3b': { hidden: 2048, layers: 36, heads: 16, kvHeads: 2, ffn: 11008, vocab: 151936, tied: true, ropeTheta: 1e6, rmsEps: 1e-6, ctx: 32768 },
};

export function isShape(s: string): s is Shape {
  return s in SHAPES;
}

/** HF tensor names and shapes of a shape, in file order. */
export function tensorList(spec: ShapeSpec): { name: string; shape: number[] }[] {
  const hd = spec.hidden / spec.heads;
  const out: { name: string; shape: number[] }[] = [{ name: 'model.embed_tokens.weight', shape: [spec.vocab, spec.hidden] }];
  for (let l = 0; l < spec.layers; l++) {
    const p = `model.layers.${l}.`;
    out.push(
      { name: p + 'input_layernorm.weight', shape: [spec.hidden] },
      { name: p + 'self_attn.q_proj.weight', shape: [spec.heads * hd, spec.hidden] },
      { name: p + 'self_attn.k_proj.weight', shape: [spec.kvHeads * hd, spec.hidden] },
      { name: p + 'self_attn.v_proj.weight', shape: [spec.kvHeads * hd, spec.hidden] },
      { name: p + 'self_attn.o_proj.weight', shape: [spec.hidden, spec.heads * hd] },
      { name: p + 'post_attention_layernorm.weight', shape: [spec.hidden] },
      { name: p + 'mlp.gate_proj.weight', shape: [spec.ffn, spec.hidden] },
      { name: p + 'mlp.up_proj.weight', shape: [spec.ffn, spec.hidden] },
      { name: p + 'mlp.down_proj.weight', shape: [spec.hidden, spec.ffn] },
    );
  }
  out.push({ name: 'model.norm.weight', shape: [spec.hidden] });
  if (!spec.tied) out.push({ name: 'lm_head.weight', shape: [spec.vocab, spec.hidden] });
  return out;
}

export function configJson(spec: ShapeSpec, dtype: SourceDtype): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: spec.hidden,
    intermediate_size: spec.ffn,
    num_hidden_layers: spec.layers,
    num_attention_heads: spec.heads,
    num_key_value_heads: spec.kvHeads,
    head_dim: spec.hidden / spec.heads,
    vocab_size: spec.vocab,
    max_position_embeddings: spec.ctx,
    rms_norm_eps: spec.rmsEps,
    rope_theta: spec.ropeTheta,
    rope_scaling: null,
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: spec.tied,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: { f32: 'float32', f16: 'float16', bf16: 'bfloat16' }[dtype],
  };
}

const ST_DTYPE: Record<SourceDtype, string> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };
const BYTES: Record<SourceDtype, number> = { f32: 4, f16: 2, bf16: 2 };
const CHUNK = 1 << 22; // elements per write

/** Bytes model.safetensors will have for this shape and dtype. */
export function checkpointBytes(spec: ShapeSpec, dtype: SourceDtype): number {
  return tensorList(spec).reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1) * BYTES[dtype], 0);
}

/** Writes config.json and model.safetensors for `shape` into `out` (created if missing). */
export function makeRandomModel(shape: Shape, dtype: SourceDtype, out: string, seed = 0x2545f491): void {
  const spec = SHAPES[shape];
  mkdirSync(out, { recursive: true });
  const tensors = tensorList(spec);
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', generator: 'streamlm bench/make-random-model.ts', shape } };
  let off = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1) * BYTES[dtype];
    header[t.name] = { dtype: ST_DTYPE[dtype], shape: t.shape, data_offsets: [off, off + n] };
    off += n;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const lenBuf = new Uint8Array(8);
  new DataView(lenBuf.buffer).setBigUint64(0, BigInt(json.length), true);

  const file = join(out, 'model.safetensors');
  const fd = openSync(file + '.tmp', 'w');
  writeSync(fd, lenBuf);
  writeSync(fd, new TextEncoder().encode(json));

  let state = seed >>> 0 || 1;
  const a = 0.02 * Math.sqrt(3); // uniform on [-a, a] has std 0.02
  const f32 = new Float32Array(CHUNK);
  const u16 = new Uint16Array(CHUNK);
  const f32Bits = new Uint32Array(f32.buffer);
  for (const t of tensors) {
    const n = t.shape.reduce((x, y) => x * y, 1);
    const isNorm = t.shape.length === 1;
    for (let done = 0; done < n; done += CHUNK) {
      const m = Math.min(CHUNK, n - done);
      if (isNorm) f32.fill(1, 0, m);
      else {
        for (let i = 0; i < m; i++) {
          state ^= state << 13; state ^= state >>> 17; state ^= state << 5;
          f32[i] = ((state >>> 0) / 4294967296 * 2 - 1) * a;
        }
      }
      let bytes: Uint8Array;
      if (dtype === 'f32') bytes = new Uint8Array(f32.buffer, 0, m * 4);
      else {
        if (dtype === 'f16') for (let i = 0; i < m; i++) u16[i] = f32ToF16Bits(f32[i]);
        else for (let i = 0; i < m; i++) { const u = f32Bits[i]; u16[i] = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff; } // bf16, nearest even
        bytes = new Uint8Array(u16.buffer, 0, m * 2);
      }
      writeSync(fd, bytes);
    }
  }
  closeSync(fd);
  renameSync(file + '.tmp', file);
  writeFileSync(join(out, 'config.json'), JSON.stringify(configJson(spec, dtype), null, 2) + '\n');
}

/** Random rows quantized per (type, row width); rows of every tensor are drawn from these. */
const POOL_ROWS = 64;

/**
 * Writes `out` as a GGUF (llama arch, stand-in vocabulary) of `shape` at the block type `dtype`,
 * with llama.cpp's per-tensor rules (chooseType: fallback where rows cannot hold the blocks; the
 * output projection, or a tied embedding, at q6_K). Each 2-D tensor's rows are drawn at random
 * (xorshift) from POOL_ROWS random rows (std 0.02) per type and width, quantized by our own
 * quantizer: quantizing all of a 3B model in TS takes hours (~3.6 µs per weight here), and the
 * memory and speed runs need only real blocks in the real layout, not distinct ones.
 */
export function makeRandomGguf(shape: Shape, dtype: GgufDtype, out: string, seed = 0x2545f491): ExportGgufResult {
  const spec = SHAPES[shape];
  let state = seed >>> 0 || 1;
  const next = (): number => { state ^= state << 13; state ^= state >>> 17; state ^= state << 5; return state >>> 0; };
  const a = 0.02 * Math.sqrt(3);
  const pools = new Map<string, Uint8Array>();
  const pool = (type: QuantType, K: number): Uint8Array => {
    const key = `${type.name}/${K}`;
    let p = pools.get(key);
    if (!p) {
      const rb = rowBytes(type, K), x = new Float32Array(K);
      p = new Uint8Array(POOL_ROWS * rb);
      for (let r = 0; r < POOL_ROWS; r++) {
        for (let i = 0; i < K; i++) x[i] = (next() / 4294967296 * 2 - 1) * a;
        quantizeRow(type, x, p.subarray(r * rb, (r + 1) * rb));
      }
      pools.set(key, p);
    }
    return p;
  };
  const fallbacks: ExportGgufResult['fallbacks'] = [];
  const hd = spec.hidden / spec.heads;
  const plans: GgufTensorPlan[] = [];
  const add = (name: string, shapeHf: number[], output = false): void => {
    if (shapeHf.length === 1) {
      plans.push({ name, shape: shapeHf, type: 0, bytes: shapeHf[0] * 4, encode: () => new Uint8Array(Float32Array.from({ length: shapeHf[0] }, () => 1).buffer) });
      return;
    }
    const [N, K] = shapeHf;
    const choice = output ? chooseOutputType(dtype, K) : chooseType(dtype, K);
    if (choice.fallback) fallbacks.push({ name, reason: choice.reason });
    const type = choice.type, rb = rowBytes(type, K);
    plans.push({
      name, shape: shapeHf, type: type.id, bytes: N * rb, encode: () => {
        const src = pool(type, K), bytes = new Uint8Array(N * rb);
        for (let r = 0; r < N; r++) { const j = next() % POOL_ROWS; bytes.set(src.subarray(j * rb, (j + 1) * rb), r * rb); }
        return bytes;
      },
    });
  };
  add('token_embd.weight', [spec.vocab, spec.hidden], spec.tied);
  for (let l = 0; l < spec.layers; l++) {
    const b = `blk.${l}.`;
    add(b + 'attn_norm.weight', [spec.hidden]);
    add(b + 'attn_q.weight', [spec.heads * hd, spec.hidden]);
    add(b + 'attn_k.weight', [spec.kvHeads * hd, spec.hidden]);
    add(b + 'attn_v.weight', [spec.kvHeads * hd, spec.hidden]);
    add(b + 'attn_output.weight', [spec.hidden, spec.heads * hd]);
    add(b + 'ffn_norm.weight', [spec.hidden]);
    add(b + 'ffn_gate.weight', [spec.ffn, spec.hidden]);
    add(b + 'ffn_down.weight', [spec.hidden, spec.ffn]);
    add(b + 'ffn_up.weight', [spec.ffn, spec.hidden]);
  }
  add('output_norm.weight', [spec.hidden]);
  if (!spec.tied) add('output.weight', [spec.vocab, spec.hidden], true);
  const dims: LlamaDims = {
    arch: 'llama', vocab: spec.vocab, hidden: spec.hidden, layers: spec.layers, ffn: spec.ffn, heads: spec.heads, kvHeads: spec.kvHeads,
    headDim: hd, ropeTheta: spec.ropeTheta, rmsEps: spec.rmsEps, ctx: spec.ctx, tied: spec.tied, config: {},
  };
  return { ...writeGguf(out, llamaMetadata(dims, dtype, `random ${shape}`, null), plans), fallbacks };
}

function main(argv: string[]): void {
  const args = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) throw new StreamlmError(`expected --flag value, got ${argv[i]}`, { field: argv[i] });
    args.set(argv[i].slice(2), argv[i + 1]);
  }
  const shape = args.get('shape') ?? '';
  const dtype = args.get('dtype') ?? 'f32';
  const out = args.get('out');
  if (!isShape(shape)) throw new StreamlmError(`unknown shape '${shape}' (${Object.keys(SHAPES).join(', ')})`, { field: '--shape' });
  if (!out) throw new StreamlmError('missing output directory', { field: '--out' });
  const t0 = performance.now();
  const block = GGUF_TYPES.find((t) => t === dtype && t !== 'f32' && t !== 'f16');
  if (block) {
    if (!out.endsWith('.gguf')) throw new StreamlmError(`a ${block} model is written as GGUF: give a FILE.gguf, got '${out}'`, { field: '--out' });
    const r = makeRandomGguf(shape, block, resolve(out));
    const fb = r.fallbacks.length ? `; ${r.fallbacks.length} fallbacks (${r.fallbacks[0].reason})` : '';
    console.error(`wrote ${out} (${(r.dataBytes / 1e9).toFixed(2)} GB, ${Object.entries(r.types).map(([t, n]) => `${n} ${t}`).join(', ')}${fb}) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    return;
  }
  if (dtype !== 'f32' && dtype !== 'f16' && dtype !== 'bf16') throw new StreamlmError(`unknown dtype '${dtype}' (f32, f16, bf16, or a block type: ${GGUF_TYPES.filter((t) => t !== 'f32' && t !== 'f16').join(', ')})`, { field: '--dtype' });
  makeRandomModel(shape, dtype, resolve(out));
  const gb = checkpointBytes(SHAPES[shape], dtype) / 1e9;
  console.error(`wrote ${out}/model.safetensors (${gb.toFixed(2)} GB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  try {
    main(process.argv.slice(2));
  } catch (e) {
    if (e instanceof StreamlmError) { console.error(e.message); process.exit(1); }
    throw e;
  }
}
