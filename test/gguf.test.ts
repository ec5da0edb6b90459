import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StreamlmError } from '../src/errors.js';
import { dequantizeQ8_0, exportGguf, f16BitsToF32, f32ToF16Bits, quantizeQ8_0 } from '../src/export/gguf.js';
import { writeSafetensors, type TensorToWrite } from './helpers/safetensors-writer.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const tmp = mkdtempSync(join(tmpdir(), 'streamlm-gguf-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// --- a tiny GGUF reader, written apart from the exporter so it checks the format, not itself ---

interface GgufTensor { name: string; dims: number[]; type: number; offset: number }
interface Gguf { version: number; kv: Map<string, unknown>; tensors: GgufTensor[]; dataStart: number; bytes: Uint8Array }

function readGguf(file: string): Gguf {
  const bytes = new Uint8Array(readFileSync(file));
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = 0;
  const u32 = (): number => { const v = dv.getUint32(p, true); p += 4; return v; };
  const u64 = (): number => { const v = Number(dv.getBigUint64(p, true)); p += 8; return v; };
  const str = (): string => { const n = u64(); const s = new TextDecoder().decode(bytes.subarray(p, p + n)); p += n; return s; };
  const value = (t: number): unknown => {
    switch (t) {
      case 4: return u32();
      case 5: { const v = dv.getInt32(p, true); p += 4; return v; }
      case 6: { const v = dv.getFloat32(p, true); p += 4; return v; }
      case 7: return bytes[p++] !== 0;
      case 8: return str();
      case 9: { const et = u32(); const n = u64(); const a: unknown[] = []; for (let i = 0; i < n; i++) a.push(value(et)); return a; }
      default: throw new Error(`value type ${t} not handled by the test reader`);
    }
  };
  assert.equal(String.fromCharCode(...bytes.subarray(0, 4)), 'GGUF');
  p = 4;
  const version = u32();
  const nt = u64(), nkv = u64();
  const kv = new Map<string, unknown>();
  for (let i = 0; i < nkv; i++) { const k = str(); kv.set(k, value(u32())); }
  const tensors: GgufTensor[] = [];
  for (let i = 0; i < nt; i++) {
    const name = str();
    const nd = u32();
    const dims: number[] = [];
    for (let d = 0; d < nd; d++) dims.push(u64());
    tensors.push({ name, dims, type: u32(), offset: u64() });
  }
  const align = (kv.get('general.alignment') as number | undefined) ?? 32;
  return { version, kv, tensors, dataStart: Math.ceil(p / align) * align, bytes };
}

function tensorF32(g: Gguf, name: string): Float32Array {
  const t = g.tensors.find((x) => x.name === name);
  assert.ok(t, `no tensor ${name}`);
  const n = t.dims.reduce((a, b) => a * b, 1);
  const at = g.dataStart + t.offset;
  if (t.type === 0) return new Float32Array(g.bytes.slice(at, at + n * 4).buffer);
  if (t.type === 1) return Float32Array.from(new Uint16Array(g.bytes.slice(at, at + n * 2).buffer), f16BitsToF32);
  if (t.type === 8) return dequantizeQ8_0(g.bytes.slice(at, at + (n / 32) * 34), n);
  throw new Error(`type ${t.type}`);
}

// --- a tiny random Llama checkpoint ---

interface Tiny { vocab: number; hidden: number; layers: number; heads: number; kvHeads: number; ffn: number; tied: boolean; theta: number; eps: number }
const TINY: Tiny = { vocab: 320, hidden: 64, layers: 2, heads: 4, kvHeads: 2, ffn: 96, tied: false, theta: 10000, eps: 1e-5 };

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; return (s >>> 0) / 4294967296 * 2 - 1; };
}

function tinyWeights(c: Tiny, seed = 7, scale = 0.25): Map<string, { shape: number[]; data: Float32Array }> {
  const r = rng(seed);
  const hd = c.hidden / c.heads;
  const w = new Map<string, { shape: number[]; data: Float32Array }>();
  const add = (name: string, shape: number[], norm = false): void => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = norm ? 1 + 0.1 * r() : scale * r();
    w.set(name, { shape, data });
  };
  add('model.embed_tokens.weight', [c.vocab, c.hidden]);
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}.`;
    add(p + 'input_layernorm.weight', [c.hidden], true);
    add(p + 'self_attn.q_proj.weight', [c.heads * hd, c.hidden]);
    add(p + 'self_attn.k_proj.weight', [c.kvHeads * hd, c.hidden]);
    add(p + 'self_attn.v_proj.weight', [c.kvHeads * hd, c.hidden]);
    add(p + 'self_attn.o_proj.weight', [c.hidden, c.heads * hd]);
    add(p + 'post_attention_layernorm.weight', [c.hidden], true);
    add(p + 'mlp.gate_proj.weight', [c.ffn, c.hidden]);
    add(p + 'mlp.up_proj.weight', [c.ffn, c.hidden]);
    add(p + 'mlp.down_proj.weight', [c.hidden, c.ffn]);
  }
  add('model.norm.weight', [c.hidden], true);
  if (!c.tied) add('lm_head.weight', [c.vocab, c.hidden]);
  return w;
}

let dirs = 0;
function writeTiny(c: Tiny, opts: { dtype?: 'F32' | 'F16' | 'BF16'; drop?: string; arch?: string } = {}): { dir: string; w: ReturnType<typeof tinyWeights> } {
  const dir = join(tmp, `m${dirs++}`);
  mkdirSync(dir);
  const w = tinyWeights(c);
  const tensors: TensorToWrite[] = [];
  for (const [name, t] of w) if (name !== opts.drop) tensors.push({ name, dtype: opts.dtype ?? 'F32', shape: t.shape, data: t.data });
  writeSafetensors(join(dir, 'model.safetensors'), tensors);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    architectures: [opts.arch ?? 'LlamaForCausalLM'], vocab_size: c.vocab, hidden_size: c.hidden, num_hidden_layers: c.layers,
    num_attention_heads: c.heads, num_key_value_heads: c.kvHeads, intermediate_size: c.ffn, rope_theta: c.theta,
    rms_norm_eps: c.eps, max_position_embeddings: 256, tie_word_embeddings: c.tied,
  }));
  return { dir, w };
}

// --- reference forward (HF layout: rotate_half RoPE), in f64 ---

function refLogprobs(c: Tiny, w: ReturnType<typeof tinyWeights>, ids: number[]): Float64Array {
  const hd = c.hidden / c.heads, T = ids.length;
  const get = (n: string): Float32Array => w.get(n)!.data;
  const mv = (W: Float32Array, x: Float64Array, rows: number): Float64Array => {
    const cols = x.length, y = new Float64Array(rows);
    for (let r = 0; r < rows; r++) { let s = 0; for (let k = 0; k < cols; k++) s += W[r * cols + k] * x[k]; y[r] = s; }
    return y;
  };
  const rms = (x: Float64Array, g: Float32Array): Float64Array => {
    let s = 0; for (const v of x) s += v * v;
    const inv = 1 / Math.sqrt(s / x.length + c.eps);
    return x.map((v, i) => v * inv * g[i]);
  };
  const rope = (v: Float64Array, nh: number, pos: number): void => {
    for (let h = 0; h < nh; h++) for (let i = 0; i < hd / 2; i++) {
      const f = pos / Math.pow(c.theta, (2 * i) / hd), cs = Math.cos(f), sn = Math.sin(f);
      const a = v[h * hd + i], b = v[h * hd + i + hd / 2];
      v[h * hd + i] = a * cs - b * sn;
      v[h * hd + i + hd / 2] = b * cs + a * sn;
    }
  };
  let xs = ids.map((id) => Float64Array.from(get('model.embed_tokens.weight').subarray(id * c.hidden, (id + 1) * c.hidden)));
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}.`;
    const qs: Float64Array[] = [], ks: Float64Array[] = [], vs: Float64Array[] = [];
    for (let t = 0; t < T; t++) {
      const h = rms(xs[t], get(p + 'input_layernorm.weight'));
      const q = mv(get(p + 'self_attn.q_proj.weight'), h, c.heads * hd), k = mv(get(p + 'self_attn.k_proj.weight'), h, c.kvHeads * hd);
      rope(q, c.heads, t); rope(k, c.kvHeads, t);
      qs.push(q); ks.push(k); vs.push(mv(get(p + 'self_attn.v_proj.weight'), h, c.kvHeads * hd));
    }
    xs = xs.map((x, t) => {
      const att = new Float64Array(c.heads * hd);
      for (let h = 0; h < c.heads; h++) {
        const j = Math.floor(h / (c.heads / c.kvHeads));
        const sc = Array.from({ length: t + 1 }, (_, s) => {
          let d = 0; for (let i = 0; i < hd; i++) d += qs[t][h * hd + i] * ks[s][j * hd + i];
          return d / Math.sqrt(hd);
        });
        const m = Math.max(...sc), e = sc.map((v) => Math.exp(v - m)), z = e.reduce((a, b) => a + b, 0);
        for (let s = 0; s <= t; s++) for (let i = 0; i < hd; i++) att[h * hd + i] += (e[s] / z) * vs[s][j * hd + i];
      }
      const x1 = x.map((v, i) => v + mv(get(p + 'self_attn.o_proj.weight'), att, c.hidden)[i]);
      const h2 = rms(x1, get(p + 'post_attention_layernorm.weight'));
      const g = mv(get(p + 'mlp.gate_proj.weight'), h2, c.ffn), u = mv(get(p + 'mlp.up_proj.weight'), h2, c.ffn);
      const a = g.map((v, i) => (v / (1 + Math.exp(-v))) * u[i]);
      const d = mv(get(p + 'mlp.down_proj.weight'), a, c.hidden);
      return x1.map((v, i) => v + d[i]);
    });
  }
  const logits = mv(get(c.tied ? 'model.embed_tokens.weight' : 'lm_head.weight'), rms(xs[T - 1], get('model.norm.weight')), c.vocab);
  const m = Math.max(...logits), lz = Math.log(logits.reduce((a, v) => a + Math.exp(v - m), 0)) + m;
  return logits.map((v) => v - lz);
}

// --- tests ---

test('f32 export: header, metadata, tensor names, shapes, offsets and alignment', () => {
  const { dir, w } = writeTiny(TINY);
  const out = join(tmp, 'tiny-f32.gguf');
  const r = exportGguf(dir, out, { dtype: 'f32' });
  assert.ok(!existsSync(out + '.tmp'));
  const g = readGguf(out);
  assert.equal(g.version, 3);
  assert.equal(g.kv.get('general.architecture'), 'llama');
  assert.equal(g.kv.get('general.alignment'), 32);
  assert.equal(g.kv.get('general.file_type'), 0);
  assert.equal(g.kv.get('llama.embedding_length'), 64);
  assert.equal(g.kv.get('llama.block_count'), 2);
  assert.equal(g.kv.get('llama.feed_forward_length'), 96);
  assert.equal(g.kv.get('llama.attention.head_count'), 4);
  assert.equal(g.kv.get('llama.attention.head_count_kv'), 2);
  assert.equal(g.kv.get('llama.context_length'), 256);
  assert.equal(g.kv.get('llama.rope.dimension_count'), 16);
  assert.equal(g.kv.get('llama.rope.freq_base'), 10000);
  assert.ok(Math.abs((g.kv.get('llama.attention.layer_norm_rms_epsilon') as number) - 1e-5) < 1e-10);
  assert.equal(g.kv.get('tokenizer.ggml.model'), 'llama');
  const toks = g.kv.get('tokenizer.ggml.tokens') as string[];
  assert.equal(toks.length, 320);
  assert.equal(new Set(toks).size, 320);
  assert.equal(toks[3 + 10], '<0x0A>');
  assert.equal((g.kv.get('tokenizer.ggml.scores') as number[]).length, 320);
  assert.equal((g.kv.get('tokenizer.ggml.token_type') as number[]).length, 320);

  const names = g.tensors.map((t) => t.name);
  assert.equal(names.length, r.tensors);
  assert.equal(names.length, 1 + 2 * 9 + 2);
  for (const n of ['token_embd.weight', 'output_norm.weight', 'output.weight', 'blk.0.attn_norm.weight', 'blk.0.attn_q.weight', 'blk.0.attn_k.weight',
    'blk.0.attn_v.weight', 'blk.0.attn_output.weight', 'blk.0.ffn_norm.weight', 'blk.0.ffn_gate.weight', 'blk.0.ffn_up.weight', 'blk.1.ffn_down.weight']) {
    assert.ok(names.includes(n), `missing ${n}`);
  }
  const dims = (n: string): number[] => g.tensors.find((t) => t.name === n)!.dims;
  assert.deepEqual(dims('token_embd.weight'), [64, 320]); // ne[0] = the fastest (input) dimension
  assert.deepEqual(dims('blk.0.attn_k.weight'), [64, 32]);
  assert.deepEqual(dims('blk.0.ffn_down.weight'), [96, 64]);
  assert.deepEqual(dims('output_norm.weight'), [64]);

  assert.equal(g.dataStart % 32, 0);
  let end = 0;
  for (const t of [...g.tensors].sort((a, b) => a.offset - b.offset)) {
    assert.equal(t.offset % 32, 0, `${t.name} offset not aligned`);
    assert.ok(t.offset >= end, `${t.name} overlaps`);
    end = t.offset + t.dims.reduce((a, b) => a * b, 1) * 4;
  }
  assert.equal(statSync(out).size, g.dataStart + Math.ceil(end / 32) * 32);

  // Unpermuted tensors are copied bit for bit.
  assert.deepEqual(tensorF32(g, 'blk.1.attn_v.weight'), w.get('model.layers.1.self_attn.v_proj.weight')!.data);
  assert.deepEqual(tensorF32(g, 'output.weight'), w.get('lm_head.weight')!.data);
  assert.deepEqual(tensorF32(g, 'output_norm.weight'), w.get('model.norm.weight')!.data);
  // q/k rows are permuted: GGUF row h·hd + 2i + j = HF row h·hd + j·hd/2 + i.
  for (const [gn, hn, nh] of [['blk.0.attn_q.weight', 'model.layers.0.self_attn.q_proj.weight', 4], ['blk.1.attn_k.weight', 'model.layers.1.self_attn.k_proj.weight', 2]] as const) {
    const a = tensorF32(g, gn), b = w.get(hn)!.data, hd = 16;
    for (let h = 0; h < nh; h++) for (let i = 0; i < hd / 2; i++) for (let j = 0; j < 2; j++) {
      const ro = (h * hd + 2 * i + j) * 64, rs = (h * hd + j * (hd / 2) + i) * 64;
      assert.deepEqual(a.subarray(ro, ro + 64), b.subarray(rs, rs + 64));
    }
  }
});

test('the q/k permutation turns HF rotate_half RoPE into interleaved RoPE with the same scores', () => {
  // One head: scores q·k after RoPE must match between HF (rotate_half on W) and GGUF (pairs on permuted W).
  const { dir, w } = writeTiny({ ...TINY, heads: 1, kvHeads: 1, hidden: 32, ffn: 32 });
  const out = join(tmp, 'one-head.gguf');
  exportGguf(dir, out);
  const g = readGguf(out);
  const hd = 32, r = rng(3);
  const x = Float64Array.from({ length: 32 }, () => r()), y = Float64Array.from({ length: 32 }, () => r());
  const proj = (W: Float32Array, v: Float64Array): Float64Array => Float64Array.from({ length: hd }, (_, o) => v.reduce((s, vk, k) => s + W[o * 32 + k] * vk, 0));
  const angle = (pos: number, i: number): number => pos / Math.pow(10000, (2 * i) / hd);
  const half = (v: Float64Array, pos: number): Float64Array => {
    const o = new Float64Array(hd);
    for (let i = 0; i < hd / 2; i++) { const c = Math.cos(angle(pos, i)), s = Math.sin(angle(pos, i)); o[i] = v[i] * c - v[i + hd / 2] * s; o[i + hd / 2] = v[i + hd / 2] * c + v[i] * s; }
    return o;
  };
  const pairs = (v: Float64Array, pos: number): Float64Array => {
    const o = new Float64Array(hd);
    for (let i = 0; i < hd / 2; i++) { const c = Math.cos(angle(pos, i)), s = Math.sin(angle(pos, i)); o[2 * i] = v[2 * i] * c - v[2 * i + 1] * s; o[2 * i + 1] = v[2 * i + 1] * c + v[2 * i] * s; }
    return o;
  };
  const dot = (a: Float64Array, b: Float64Array): number => a.reduce((s, v, i) => s + v * b[i], 0);
  const Wq = w.get('model.layers.0.self_attn.q_proj.weight')!.data, Wk = w.get('model.layers.0.self_attn.k_proj.weight')!.data;
  const Gq = tensorF32(g, 'blk.0.attn_q.weight'), Gk = tensorF32(g, 'blk.0.attn_k.weight');
  for (const [pq, pk] of [[5, 2], [17, 0], [40, 39]]) {
    const hf = dot(half(proj(Wq, x), pq), half(proj(Wk, y), pk));
    const gg = dot(pairs(proj(Gq, x), pq), pairs(proj(Gk, y), pk));
    assert.ok(Math.abs(hf - gg) < 1e-9 * (1 + Math.abs(hf)), `${hf} vs ${gg}`);
  }
});

test('f16 export: 2-D weights f16 (round to nearest even), norms f32; bf16 input converts', () => {
  for (const src of ['F32', 'BF16'] as const) {
    const { dir } = writeTiny(TINY, { dtype: src });
    const out = join(tmp, `tiny-f16-${src}.gguf`);
    exportGguf(dir, out, { dtype: 'f16' });
    const g = readGguf(out);
    assert.equal(g.kv.get('general.file_type'), 1);
    for (const t of g.tensors) assert.equal(t.type, t.dims.length === 1 ? 0 : 1, t.name);
    const f32 = readGguf(join(tmp, 'tiny-f32.gguf'));
    const a = tensorF32(g, 'blk.0.ffn_up.weight'), b = tensorF32(f32, 'blk.0.ffn_up.weight');
    for (let i = 0; i < a.length; i++) {
      const want = src === 'F32' ? f16BitsToF32(f32ToF16Bits(b[i])) : a[i];
      assert.equal(a[i], want);
      assert.ok(Math.abs(a[i] - b[i]) <= Math.abs(b[i]) * (src === 'F32' ? 2 ** -11 : 2 ** -8) + 1e-7);
    }
  }
});

test('q8_0 export: blocks of 32 (f16 scale + 32 int8), round-trip error within half a step', () => {
  const { dir } = writeTiny(TINY);
  const out = join(tmp, 'tiny-q8.gguf');
  const r = exportGguf(dir, out, { dtype: 'q8_0' });
  const g = readGguf(out);
  assert.equal(g.kv.get('general.file_type'), 7);
  let bytes = 0;
  for (const t of g.tensors) {
    const n = t.dims.reduce((a, b) => a * b, 1);
    assert.equal(t.type, t.dims.length === 1 ? 0 : 8, t.name);
    bytes += t.dims.length === 1 ? n * 4 : (n / 32) * 34;
  }
  assert.equal(r.dataBytes, bytes);
  const f32 = readGguf(join(tmp, 'tiny-f32.gguf'));
  for (const name of ['blk.0.attn_q.weight', 'blk.1.ffn_down.weight', 'token_embd.weight']) {
    const q = tensorF32(g, name), x = tensorF32(f32, name);
    let se = 0, sx = 0;
    for (let b = 0; b < x.length / 32; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
      for (let j = 0; j < 32; j++) {
        const e = Math.abs(q[b * 32 + j] - x[b * 32 + j]);
        assert.ok(e <= (amax / 127) * 0.5 * 1.002 + amax * 2 ** -11, `${name}[${b * 32 + j}] error ${e}`);
        se += e * e; sx += x[b * 32 + j] ** 2;
      }
    }
    assert.ok(Math.sqrt(se / sx) < 0.01, `${name} relative RMS error ${Math.sqrt(se / sx)}`);
  }
  // Exact values: zeros stay zero, the block maximum maps to ±127.
  const blk = new Float32Array(32); blk[5] = -0.5; blk[9] = 0.25;
  const enc = new Uint8Array(34);
  quantizeQ8_0(blk, enc);
  const i8 = new Int8Array(enc.buffer);
  assert.equal(i8[2 + 5], -127);
  assert.equal(i8[2 + 9], 64); // 0.25 / (0.5/127) = 63.5, rounded away from zero
  assert.equal(i8[2 + 0], 0);
});

test('tied embeddings: no output.weight, as llama.cpp expects', () => {
  const { dir } = writeTiny({ ...TINY, tied: true });
  const out = join(tmp, 'tied.gguf');
  exportGguf(dir, out);
  const names = readGguf(out).tensors.map((t) => t.name);
  assert.ok(!names.includes('output.weight'));
  assert.ok(names.includes('token_embd.weight'));
});

test('bad input: missing tensor, unknown architecture, missing config, bad dtype', () => {
  const isErr = (...parts: string[]) => (e: unknown): boolean => {
    assert.ok(e instanceof StreamlmError, String(e));
    for (const p of parts) assert.ok(e.message.includes(p), `"${e.message}" should name ${p}`);
    return true;
  };
  const missing = writeTiny(TINY, { drop: 'model.layers.1.mlp.up_proj.weight' });
  assert.throws(() => exportGguf(missing.dir, join(tmp, 'x.gguf')), isErr('model.layers.1.mlp.up_proj.weight', 'missing'));
  assert.ok(!existsSync(join(tmp, 'x.gguf')) && !existsSync(join(tmp, 'x.gguf.tmp')));
  const arch = writeTiny(TINY, { arch: 'GPTNeoXForCausalLM' });
  assert.throws(() => exportGguf(arch.dir, join(tmp, 'x.gguf')), isErr('config.json', 'architectures', 'GPTNeoXForCausalLM'));
  const empty = join(tmp, 'empty');
  mkdirSync(empty);
  assert.throws(() => exportGguf(empty, join(tmp, 'x.gguf')), isErr('config.json', 'not found'));
  assert.throws(() => exportGguf(missing.dir, join(tmp, 'x.gguf'), { dtype: 'q4' as 'f32' }), isErr('dtype'));
  // The exporter reads config.json through the engine's parser: a Mistral window shorter than the
  // context would be dropped by llama.cpp's llama architecture, so it is refused; a window at least
  // as long as the context is no window, and exports.
  const mistral = writeTiny(TINY, { arch: 'MistralForCausalLM' });
  const cfgFile = join(mistral.dir, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
  writeFileSync(cfgFile, JSON.stringify({ ...cfg, sliding_window: 16 }));
  assert.throws(() => exportGguf(mistral.dir, join(tmp, 'x.gguf')), isErr('config.json', 'sliding_window', '16'));
  writeFileSync(cfgFile, JSON.stringify({ ...cfg, sliding_window: 256 }));
  exportGguf(mistral.dir, join(tmp, 'mistral.gguf'));
  assert.ok(existsSync(join(tmp, 'mistral.gguf')));
  writeFileSync(cfgFile, JSON.stringify({ ...cfg, num_key_value_heads: 3 }));
  assert.throws(() => exportGguf(mistral.dir, join(tmp, 'x.gguf')), isErr('config.json', 'num_key_value_heads'));
});

const LLAMACPP = join(ROOT, 'bench/llamacpp/node_modules/node-llama-cpp/package.json');

test('llama.cpp loads the export and computes the same next-token distribution', { skip: !existsSync(LLAMACPP) && 'node-llama-cpp not installed (npm --prefix bench/llamacpp install)' }, () => {
  const c = TINY;
  const { dir, w } = writeTiny(c);
  const ids = [1, 17, 200, 5, 42, 300, 9, 77];
  const ref = refLogprobs(c, w, ids);
  const top = [...ref.keys()].sort((a, b) => ref[b] - ref[a]).slice(0, 10);
  for (const dtype of ['f32', 'f16', 'q8_0'] as const) {
    const out = join(tmp, `probe-${dtype}.gguf`);
    exportGguf(dir, out, { dtype });
    const job = { model: out, threads: 1, prompt: [], gen: 0, vocab: c.vocab, warmupSteps: 0, probe: ids };
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/llamacpp/run.ts'), JSON.stringify(job)], {
      cwd: ROOT, env: { ...process.env, UV_THREADPOOL_SIZE: '1' }, encoding: 'utf8', timeout: 120_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const got = new Map((JSON.parse(r.stdout.trim().split('\n').pop()!) as { logprobs: [number, number][] }).logprobs);
    const tol = dtype === 'f32' ? 0.01 : dtype === 'f16' ? 0.02 : 0.15;
    // Log-probabilities relative to the reference's top token, so a renormalised top-k list still compares.
    const base = got.get(top[0]);
    assert.ok(base !== undefined, `${dtype}: reference top token ${top[0]} missing from llama.cpp's list`);
    for (const id of top) {
      const lp = got.get(id);
      assert.ok(lp !== undefined && Math.abs(lp - base - (ref[id] - ref[top[0]])) < tol, `${dtype}: token ${id} log p ${lp} vs reference ${ref[id]}`);
    }
  }
});
