/**
 * FlashSVD bench (issue 7): dense vs low-rank materialized vs low-rank streaming, for one-shot
 * prefills of several prompt lengths, then a few decode steps.
 *
 *   node --import tsx bench/lowrank.ts [--json] [--rank-ratio 0.4] [--prompts 512,2048,8192]
 *        [--tinyllama-prompts 512] [--no-tinyllama] [--threads 2] [--decode 16]
 *   node --import tsx bench/lowrank.ts --ppl [--tokens 4096] [--ratios 1,0.8,0.6,0.4] [--caches sink:4+1020,sink:4+252]
 *        (docs/lowrank.md table; eval-ppl on 1 thread, which is faster than 2 on a shared 2-vCPU box)
 *   ML_MATRIX=/path/to/ml-matrix node --import tsx bench/lowrank.ts --svd                (SVD routes)
 *
 * Models: the shipped model under models/ if present, else test/fixtures/llama (compressed here with
 * svd at --rank-ratio); and a random-weight TinyLlama-1.1B-shape checkpoint (dense in f16, which is
 * what fits in wasm32 memory; low-rank with random f32 factors at the same ranks compress would
 * choose). Each (model, variant) runs in its own child process so peak RSS is per variant.
 * Peak activation memory = Runtime bytes allocated above the session's KV cache during prefill
 * (Runtime.peakScratchBytes; weights and KV excluded). Generated checkpoints live in .bench/lowrank/.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadModel } from '../src/model.js';
import { compress } from '../src/lowrank/compress.js';
import { peakActivationBytes } from '../src/models/flashsvd.js';
import { lowRankSection } from '../src/models/lowrank.js';

const ROOT = resolve(import.meta.dirname, '..');
const OUT = join(ROOT, '.bench', 'lowrank');
const VARIANTS = ['dense', 'lowrank_materialized', 'lowrank_streaming'] as const;
type Variant = typeof VARIANTS[number];

function arg(name: string, def?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}
const flag = (name: string): boolean => process.argv.includes(`--${name}`);
const log = (s: string): void => { process.stderr.write(s + '\n'); };

interface ChildResult { prompt: number; peak_activation_mb: number; peak_rss_mb: number; prefill_tok_s: number; decode_tok_s: number; logits: number[] }

// --- child: one model, one variant, every prompt length ---
async function child(): Promise<void> {
  const dir = arg('model')!, variant = arg('child') as Variant;
  const prompts = arg('prompts')!.split(',').map(Number);
  const decode = Number(arg('decode', '16'));
  const lowrank = variant === 'lowrank_streaming' ? 'streaming' : 'materialized';
  const m = await loadModel(dir, { threads: Number(arg('threads', '2')), lowrank });
  const V = m.hparams.vocabSize;
  const ids = (n: number, seed: number): number[] => Array.from({ length: n }, (_, i) => (i * 7919 + seed * 104729 + 13) % V);
  // Warm-up: let V8 tier up the kernels (PLATFORM.md: at least 400 ms).
  const tw = performance.now();
  while (performance.now() - tw < 600) { const s = m.session({ cache: 'dense', maxTokens: 80, prefillChunk: 64 }); s.prefill(ids(64, 0)); s.step(1); s.close(); }
  for (const p of prompts) {
    const s = m.session({ cache: 'dense', maxTokens: p + decode + 1, prefillChunk: p });
    const t0 = performance.now();
    const { result: logits, bytes } = peakActivationBytes(m.net.rt, () => s.prefill(ids(p, 1)));
    const t1 = performance.now();
    let id = 0;
    for (let i = 0; i < decode; i++) { const l = s.step(id); id = l.indexOf(Math.max(...l.subarray(0, 64))); }
    const t2 = performance.now();
    s.close();
    const r: ChildResult = {
      prompt: p, peak_activation_mb: bytes / 2 ** 20, peak_rss_mb: process.resourceUsage().maxRSS / 1024,
      prefill_tok_s: p / ((t1 - t0) / 1000), decode_tok_s: decode / ((t2 - t1) / 1000), logits: Array.from(logits),
    };
    console.log(JSON.stringify(r));
  }
  await m.close();
}

function runChild(dir: string, variant: Variant, prompts: number[]): ChildResult[] {
  const args = ['--import', 'tsx', join(ROOT, 'bench', 'lowrank.ts'), '--child', variant, '--model', dir, '--prompts', prompts.join(','),
    '--threads', arg('threads', '2')!, '--decode', arg('decode', '16')!];
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error(`${variant} on ${dir} failed (exit ${r.status})`);
  log(`  ${variant}: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l) as ChildResult);
}

function maxRel(a: number[], b: number[]): number {
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i] - b[i])); m = Math.max(m, Math.abs(b[i])); }
  return d / m;
}

interface Summary {
  model: string; rank_ratio: number; prompt_tokens: number[];
  peak_activation_mb: Record<Variant, number[]>; peak_rss_mb: Record<Variant, number[]>;
  prefill_tok_s: Record<Variant, number[]>; decode_tok_s: Record<Variant, number[]>;
  max_rel_diff_streaming_vs_materialized: number; activation_reduction_streaming_vs_materialized: number[];
}

function benchModel(label: string, dense: string, lowrank: string, ratio: number, prompts: number[]): Summary {
  log(`${label}: prompts ${prompts.join(', ')}`);
  const res = {} as Record<Variant, ChildResult[]>;
  for (const v of VARIANTS) res[v] = runChild(v === 'dense' ? dense : lowrank, v, prompts);
  const pick = (k: keyof ChildResult): Record<Variant, number[]> =>
    Object.fromEntries(VARIANTS.map((v) => [v, res[v].map((r) => +(r[k] as number).toFixed(k === 'peak_activation_mb' ? 3 : 1))])) as Record<Variant, number[]>;
  const diffs = prompts.map((_, i) => maxRel(res.lowrank_streaming[i].logits, res.lowrank_materialized[i].logits));
  const s: Summary = {
    model: label, rank_ratio: ratio, prompt_tokens: prompts,
    peak_activation_mb: pick('peak_activation_mb'), peak_rss_mb: pick('peak_rss_mb'),
    prefill_tok_s: pick('prefill_tok_s'), decode_tok_s: pick('decode_tok_s'),
    max_rel_diff_streaming_vs_materialized: Math.max(...diffs),
    activation_reduction_streaming_vs_materialized: prompts.map((_, i) => +(1 - res.lowrank_streaming[i].peak_activation_mb / res.lowrank_materialized[i].peak_activation_mb).toFixed(3)),
  };
  const rows = prompts.map((p, i) => `${String(p).padStart(6)} | ${VARIANTS.map((v) => `${s.peak_activation_mb[v][i].toFixed(1).padStart(8)} MB ${s.prefill_tok_s[v][i].toFixed(0).padStart(6)} tok/s ${s.decode_tok_s[v][i].toFixed(1).padStart(6)} dec ${s.peak_rss_mb[v][i].toFixed(0).padStart(5)} RSS`).join(' | ')}`);
  log([`prompt | ${VARIANTS.join(' | ')}`, ...rows, `max rel diff streaming vs materialized: ${s.max_rel_diff_streaming_vs_materialized.toExponential(2)}`].join('\n'));
  return s;
}

// --- random TinyLlama-1.1B-shape checkpoints ---
const TINY = { hidden: 2048, layers: 22, heads: 32, kvHeads: 4, ffn: 5632, vocab: 32000 };

function tinyConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: TINY.hidden, intermediate_size: TINY.ffn,
    num_hidden_layers: TINY.layers, num_attention_heads: TINY.heads, num_key_value_heads: TINY.kvHeads, vocab_size: TINY.vocab,
    max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 10000, hidden_act: 'silu', tie_word_embeddings: false,
    bos_token_id: 1, eos_token_id: 2, ...extra,
  };
}

/** Streams tensors to DIR/model.safetensors: each `fill(view)` writes one tensor's values. */
function writeRandomCheckpoint(dir: string, config: Record<string, unknown>, tensors: { name: string; shape: number[]; dtype: 'F32' | 'F16'; std: number }[]): void {
  const tmp = dir + '.tmp';
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1) * (t.dtype === 'F32' ? 4 : 2);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + n] };
    off += n;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const fd = openSync(join(tmp, 'model.safetensors'), 'w');
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(json.length), true);
  writeSync(fd, len);
  writeSync(fd, new TextEncoder().encode(json));
  let s = 0x9e3779b9;
  const CH = 1 << 22;
  const f32 = new Float32Array(CH), u16 = new Uint16Array(CH);
  for (const t of tensors) {
    let n = t.shape.reduce((a, b) => a * b, 1);
    const a = t.std * Math.sqrt(3) * 2 / 2 ** 32;
    while (n > 0) {
      const m = Math.min(n, CH);
      if (t.std === 0) {                       // norms: ones
        if (t.dtype === 'F32') { f32.fill(1, 0, m); writeSync(fd, new Uint8Array(f32.buffer, 0, m * 4)); } else { u16.fill(0x3c00, 0, m); writeSync(fd, new Uint8Array(u16.buffer, 0, m * 2)); }
      } else if (t.dtype === 'F32') {
        for (let i = 0; i < m; i++) { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; f32[i] = ((s >>> 0) - 2 ** 31) * a; }
        writeSync(fd, new Uint8Array(f32.buffer, 0, m * 4));
      } else {
        // f16 bit patterns with exponents 8..9: |x| in [2^-7, 2^-5), std about 0.02.
        for (let i = 0; i < m; i++) { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; u16[i] = (s & 0x8000) | ((8 + ((s >>> 16) & 1)) << 10) | ((s >>> 17) & 0x3ff); }
        writeSync(fd, new Uint8Array(u16.buffer, 0, m * 2));
      }
      n -= m;
    }
  }
  closeSync(fd);
  writeFileSync(join(tmp, 'config.json'), JSON.stringify(config, null, 2));
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
}

function tinyDense(): string {
  const dir = join(OUT, 'tinyllama-dense-f16');
  if (existsSync(join(dir, 'config.json'))) return dir;
  log('writing random TinyLlama-shape dense f16 checkpoint ...');
  const { hidden: H, ffn: F, heads, kvHeads, vocab } = TINY;
  const hd = H / heads;
  const t: { name: string; shape: number[]; dtype: 'F32' | 'F16'; std: number }[] = [{ name: 'model.embed_tokens.weight', shape: [vocab, H], dtype: 'F16', std: 0.02 }];
  for (let l = 0; l < TINY.layers; l++) {
    const p = `model.layers.${l}.`;
    t.push({ name: p + 'input_layernorm.weight', shape: [H], dtype: 'F16', std: 0 }, { name: p + 'post_attention_layernorm.weight', shape: [H], dtype: 'F16', std: 0 });
    for (const [n, N, K] of [['self_attn.q_proj', heads * hd, H], ['self_attn.k_proj', kvHeads * hd, H], ['self_attn.v_proj', kvHeads * hd, H], ['self_attn.o_proj', H, heads * hd],
      ['mlp.gate_proj', F, H], ['mlp.up_proj', F, H], ['mlp.down_proj', H, F]] as const) t.push({ name: `${p}${n}.weight`, shape: [N, K], dtype: 'F16', std: 0.02 });
  }
  t.push({ name: 'model.norm.weight', shape: [H], dtype: 'F16', std: 0 }, { name: 'lm_head.weight', shape: [vocab, H], dtype: 'F16', std: 0.02 });
  writeRandomCheckpoint(dir, tinyConfig({ torch_dtype: 'float16' }), t);
  return dir;
}

function tinyLowRank(ratio: number): string {
  const dir = join(OUT, `tinyllama-lowrank-r${ratio}`);
  if (existsSync(join(dir, 'config.json'))) return dir;
  log(`writing random TinyLlama-shape low-rank checkpoint (rank ratio ${ratio}, f32 factors) ...`);
  const { hidden: H, ffn: F, heads, kvHeads, vocab } = TINY;
  const hd = H / heads;
  const t: { name: string; shape: number[]; dtype: 'F32' | 'F16'; std: number }[] = [{ name: 'model.embed_tokens.weight', shape: [vocab, H], dtype: 'F32', std: 0.02 }];
  const ranks = new Map<string, number>();
  for (let l = 0; l < TINY.layers; l++) {
    const p = `model.layers.${l}.`;
    t.push({ name: p + 'input_layernorm.weight', shape: [H], dtype: 'F32', std: 0 }, { name: p + 'post_attention_layernorm.weight', shape: [H], dtype: 'F32', std: 0 });
    for (const [n, N, K] of [['self_attn.q_proj', heads * hd, H], ['self_attn.k_proj', kvHeads * hd, H], ['self_attn.v_proj', kvHeads * hd, H], ['self_attn.o_proj', H, heads * hd],
      ['mlp.gate_proj', F, H], ['mlp.up_proj', F, H], ['mlp.down_proj', H, F]] as const) {
      const r = Math.max(1, Math.round(ratio * Math.min(N, K)));
      ranks.set(p + n, r);
      // B·A has entries of std √r·σ_a·σ_b; match the dense 0.02.
      const std = Math.sqrt(0.02 / Math.sqrt(r));
      t.push({ name: `${p}${n}.lr_a`, shape: [r, K], dtype: 'F32', std }, { name: `${p}${n}.lr_b`, shape: [N, r], dtype: 'F32', std });
    }
  }
  t.push({ name: 'model.norm.weight', shape: [H], dtype: 'F32', std: 0 }, { name: 'lm_head.weight', shape: [vocab, H], dtype: 'F32', std: 0.02 });
  writeRandomCheckpoint(dir, tinyConfig({ torch_dtype: 'float32', streamlm_lowrank: lowRankSection({ method: 'random', rankRatio: ratio, energy: null, ranks }) }), t);
  return dir;
}

function smallModel(): { label: string; dir: string } {
  const models = join(ROOT, 'models');
  // The CLI's default model first (src/cli/common.ts), then any other shipped one.
  const names = existsSync(models) ? ['novels-8m-sink', 'novels-8m', ...readdirSync(models).sort()] : [];
  for (const d of names) if (existsSync(join(models, d, 'config.json'))) return { label: `models/${d}`, dir: join(models, d) };
  return { label: 'test/fixtures/llama', dir: join(ROOT, 'test', 'fixtures', 'llama') };
}

async function compressed(dir: string, name: string, ratio: number, method: 'svd' | 'whiten' = 'svd'): Promise<string> {
  const out = join(OUT, `${name}-${method}-r${ratio}`);
  if (!existsSync(join(out, 'config.json'))) {
    const calib = method === 'whiten' ? readdirSync(join(ROOT, '..', 'shared', 'corpus', 'train')).sort().slice(0, 2).map((f) => join(ROOT, '..', 'shared', 'corpus', 'train', f)) : undefined;
    const r = await compress({ model: dir, out, rankRatio: ratio, method, calib, calibTokens: Number(arg('calib-tokens', '4096')), threads: Number(arg('threads', '2')) });
    log(`compressed ${name} (${method}, ${ratio}) in ${r.seconds.toFixed(1)} s: params ${r.denseParams} -> ${r.factorParams}`);
  }
  return out;
}

// --- perplexity vs rank (docs/lowrank.md) ---
async function pplTable(): Promise<void> {
  const { label, dir } = smallModel();
  const tokens = arg('tokens', '4096')!;
  const ratios = arg('ratios', '1,0.8,0.6,0.4')!.split(',').map(Number);
  const text = join(ROOT, '..', 'shared', 'corpus', 'longeval', 'pg18c__Austen_PrideAndPrejudice.txt');
  const caches = arg('caches', 'sink:4+1020,sink:4+252')!;
  const ppl = (d: string): Record<string, number> => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'eval-ppl', '--model', d, '--text', text, '--cache', caches, '--tokens', tokens, '--json', '--threads', arg('threads', '1')!],
      { encoding: 'utf8', maxBuffer: 1 << 28 });
    if (r.status !== 0) throw new Error(r.stderr);
    const res = (JSON.parse(r.stdout.trim().split('\n').pop()!) as { results: { cache: string; ppl: number }[] }).results;
    return Object.fromEntries(res.map((x) => [x.cache, +x.ppl.toFixed(3)]));
  };
  const size = (d: string): number => readdirSync(d).filter((f) => f.endsWith('.safetensors')).reduce((n, f) => n + (spawnSync('stat', ['-c', '%s', join(d, f)], { encoding: 'utf8' }).stdout.trim() as unknown as number) * 1, 0);
  const rows: Record<string, unknown>[] = [{ method: 'dense', ratio: null, ppl: ppl(dir), mb: size(dir) / 1e6 }];
  log(JSON.stringify(rows[0]));
  for (const method of ['svd', 'whiten'] as const) for (const ratio of ratios) {
    const d = await compressed(dir, label.replace(/\W+/g, '_'), ratio, method);
    rows.push({ method, ratio, ppl: ppl(d), mb: size(d) / 1e6 });
    log(JSON.stringify(rows[rows.length - 1]));
  }
  console.log(JSON.stringify({ model: label, text: 'longeval/pg18c__Austen_PrideAndPrejudice.txt', tokens: Number(tokens), caches: caches.split(','), rows }));
}

// --- SVD routes: one-sided Jacobi (ours, exact), ml-matrix's EVD of the Gram W·Wᵀ, randomized on the wasm GEMM ---
async function svdTimings(): Promise<void> {
  const { factorize, factorizeRandomized, rankByRatio } = await import('../src/lowrank/svd.js');
  const { Runtime } = await import('../src/runtime/runtime.js');
  // ml-matrix is not a dependency; point ML_MATRIX at an installed copy to include it.
  type MlMatrix = { EigenvalueDecomposition: new (m: unknown, o: unknown) => unknown; Matrix: { from1DArray(r: number, c: number, a: ArrayLike<number>): unknown } };
  let ml: MlMatrix | null = null;
  try { ml = (await import(process.env.ML_MATRIX ?? 'ml-matrix')) as MlMatrix; } catch { ml = null; }
  const rt = await Runtime.create({ threads: Number(arg('threads', '2')) });
  const rows: Record<string, unknown>[] = [];
  for (const [N, K, exact] of [[256, 688, true], [512, 1376, true], [2048, 5632, false]] as const) {
    let s = 7;
    const w = Float64Array.from({ length: N * K }, () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32 - 0.5; });
    const r = Math.round(0.4 * Math.min(N, K));
    const row: Record<string, unknown> = { N, K, r };
    if (exact) {
      let t = performance.now();
      factorize(w, N, K, rankByRatio(0.4));
      row.jacobi_s = +((performance.now() - t) / 1000).toFixed(2);
      if (ml) {
        t = performance.now();
        const g = new Float64Array(N * N);
        for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) { let a = 0; for (let k = 0; k < K; k++) a += w[i * K + k] * w[j * K + k]; g[i * N + j] = a; }
        new ml.EigenvalueDecomposition(ml.Matrix.from1DArray(N, N, g), { assumeSymmetric: true });
        row.ml_matrix_gram_evd_s = +((performance.now() - t) / 1000).toFixed(2);
      }
    }
    const t = performance.now();
    factorizeRandomized(rt, Float32Array.from(w), N, K, r);
    row.randomized_s = +((performance.now() - t) / 1000).toFixed(2);
    rows.push(row);
    log(JSON.stringify(row));
  }
  await rt.close();
  console.log(JSON.stringify({ svd_timings: rows }));
}

async function main(): Promise<void> {
  if (arg('child')) return child();
  mkdirSync(OUT, { recursive: true });
  if (flag('ppl')) return pplTable();
  if (flag('svd')) return svdTimings();
  const ratio = Number(arg('rank-ratio', '0.4'));
  const prompts = arg('prompts', '512,2048,8192')!.split(',').map(Number);
  const small = smallModel();
  const lr = await compressed(small.dir, small.label.replace(/\W+/g, '_'), ratio);
  const out: Record<string, unknown> = { ...benchModel(small.label, small.dir, lr, ratio, prompts) };
  if (!flag('no-tinyllama')) {
    const tp = arg('tinyllama-prompts', '512')!.split(',').map(Number);
    out.tinyllama = benchModel('random TinyLlama-1.1B shape (dense f16, low-rank f32 factors)', tinyDense(), tinyLowRank(ratio), ratio, tp);
  }
  console.log(JSON.stringify(out));
}

await main();
