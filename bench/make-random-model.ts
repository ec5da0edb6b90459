/**
 * Writes a random-weight Hugging Face checkpoint of a real model shape, for bench/decode.ts.
 *
 *   node --import tsx bench/make-random-model.ts --shape qwen2.5-0.5b|tinyllama-1.1b --dtype f32|f16|bf16 --out DIR
 *
 * DIR gets config.json (LlamaForCausalLM) and model.safetensors. Weights are uniform with std 0.02
 * (xorshift PRNG, fixed seed), norms are 1. The file is streamed tensor by tensor in 16 MiB chunks,
 * so multi-GB checkpoints never sit in one JS allocation. No tokenizer: the bench feeds token ids.
 * Generated directories belong under .bench/ (gitignored).
 */
import { closeSync, mkdirSync, openSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { StreamlmError } from '../src/errors.js';
import { f32ToF16Bits } from '../src/export/gguf.js';

export type Shape = 'qwen2.5-0.5b' | 'tinyllama-1.1b';
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

/** Real model shapes. Qwen2.5-0.5B keeps its dims but uses vocab 32000 and no q/k/v biases (llama arch). */
export const SHAPES: Record<Shape, ShapeSpec> = {
  'qwen2.5-0.5b': { hidden: 896, layers: 24, heads: 14, kvHeads: 2, ffn: 4864, vocab: 32000, tied: true, ropeTheta: 1e6, rmsEps: 1e-6, ctx: 32768 },
  'tinyllama-1.1b': { hidden: 2048, layers: 22, heads: 32, kvHeads: 4, ffn: 5632, vocab: 32000, tied: false, ropeTheta: 1e4, rmsEps: 1e-5, ctx: 2048 },
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
  if (dtype !== 'f32' && dtype !== 'f16' && dtype !== 'bf16') throw new StreamlmError(`unknown dtype '${dtype}' (f32, f16, bf16)`, { field: '--dtype' });
  if (!out) throw new StreamlmError('missing output directory', { field: '--out' });
  const t0 = performance.now();
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
