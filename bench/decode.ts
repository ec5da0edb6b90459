/**
 * bench:decode — prompt (prefill) and decode tok/s of streamlm against llama.cpp (node-llama-cpp
 * 3.21.1) on the same random weights of a real model shape, same threads, same precision.
 *
 *   npm run bench:decode -- [--json] [--shape qwen2.5-0.5b[,tinyllama-1.1b,novels-8m]|all] [--threads 2]
 *                           [--dtypes f32,f16,q8_0,q4_0,q4_K] [--prompt 128] [--gen 128] [--reps 3]
 *                           [--no-llamacpp | --no-ours] [--clean]
 *
 * Per shape it makes the random checkpoint under .bench/ when missing (bench/make-random-model.ts:
 * an f32 one for f32, an f16 one for the other dtypes), exports it to GGUF (src/export/gguf.ts), then for
 * each dtype runs llama.cpp and ours, each in its own child process, `--reps` times alternately
 * (which side goes first alternates too), keeping each side's median. llama.cpp runs with UV_THREADPOOL_SIZE=1 (see bench/llamacpp/run.ts).
 * Ours loads the HF directory for f32, f16 and q8_0 (q8_0 quantized at load) and the same GGUF file
 * as llama.cpp for the block types (q4_0, q4_K, ...). `novels-8m` is the shipped model
 * (models/novels-8m, bf16, tied embeddings) rather than random weights: there per-token overhead,
 * not bandwidth, decides; its f16 row runs our bf16 kernel against llama.cpp's f16.
 * Both sides: an untimed warm-up (the prompt + 8 steps), then the prompt in one batch, then `--gen`
 * single-token steps, each feeding back the greedy token. Token ids are fed directly.
 *
 * Roofline: read bandwidth measured in the same run (bench/bandwidth.ts: wasm SIMD128 read loop,
 * `--threads` threads, 1 GiB) divided by the weight bytes one decode step reads (every matmul
 * weight incl. the output head, plus norms; the one embedding row is left out).
 *
 * Output: a table on stderr and, with --json, one JSON line per shape and dtype on stdout:
 * {"shape","dtype","threads","ours":{"prefill_tok_s","decode_tok_s"},"llamacpp":{...},
 *  "decode_ratio","prefill_ratio","roofline_decode_tok_s", ...extra fields}.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { StreamlmError } from '../src/errors.js';
import { exportGguf, GGUF_TYPES, Q8_0_BLOCK, Q8_0_BLOCK_BYTES, type GgufDtype } from '../src/export/gguf.js';
import { readGgufHeader } from '../src/runtime/gguf.js';
import { measureBandwidth } from './bandwidth.js';
import { checkpointBytes, isShape, makeRandomModel, SHAPES, tensorList, type Shape, type ShapeSpec, type SourceDtype } from './make-random-model.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BENCH_DIR = join(ROOT, '.bench');
const LLAMACPP_PKG = join(ROOT, 'bench/llamacpp/node_modules/node-llama-cpp/package.json');
const INSTALL_HINT = 'npm --prefix bench/llamacpp install';
/** wasm32 memory ceiling, less room for the KV cache and activations. */
const WASM_WEIGHT_LIMIT = 4 * 2 ** 30 - 256 * 2 ** 20;
const WARMUP_STEPS = 8;
/** The shipped model timed by `--shape novels-8m` (plain Llama: llama.cpp runs it as is). */
const SHIPPED_DIR = join(ROOT, 'models/novels-8m');
type BenchShape = Shape | 'novels-8m';
const BENCH_SHAPES: BenchShape[] = [...Object.keys(SHAPES) as Shape[], 'novels-8m'];
const RAW_DTYPES: readonly GgufDtype[] = ['f32', 'f16', 'q8_0'];

/** The dims of a shape; novels-8m's come from its config.json. */
function specOf(shape: BenchShape): ShapeSpec {
  if (shape !== 'novels-8m') return SHAPES[shape];
  const c = JSON.parse(readFileSync(join(SHIPPED_DIR, 'config.json'), 'utf8')) as Record<string, number | boolean>;
  return {
    hidden: c.hidden_size as number, layers: c.num_hidden_layers as number, heads: c.num_attention_heads as number,
    kvHeads: c.num_key_value_heads as number, ffn: c.intermediate_size as number, vocab: c.vocab_size as number,
    tied: c.tie_word_embeddings === true, ropeTheta: 1e4, rmsEps: c.rms_norm_eps as number, ctx: c.max_position_embeddings as number,
  };
}

/** `simd`: the kernels build ours ran (Model.simd); absent for llama.cpp. */
interface Speeds { prefill_tok_s: number; decode_tok_s: number; simd?: string | null }

/** What a child process is asked to time. */
interface ChildJob {
  /** HF dir (ours) or GGUF file (llama.cpp). */
  model: string;
  dtype: GgufDtype;
  threads: number;
  prompt: number[];
  gen: number;
  vocab: number;
  warmupSteps: number;
}

interface Options {
  json: boolean;
  shapes: BenchShape[];
  threads: number;
  dtypes: GgufDtype[];
  prompt: number;
  gen: number;
  reps: number;
  llamacpp: boolean;
  ours: boolean;
  clean: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { json: false, shapes: ['qwen2.5-0.5b'], threads: 2, dtypes: ['f32', 'f16', 'q8_0', 'q4_0', 'q4_K'], prompt: 128, gen: 128, reps: 3, llamacpp: true, ours: true, clean: false };
  const int = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new StreamlmError(`must be an integer >= ${min}, got '${v ?? ''}'`, { field: flag });
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): string | undefined => argv[++i];
    switch (a) {
      case '--json': o.json = true; break;
      case '--no-llamacpp': o.llamacpp = false; break;
      case '--no-ours': o.ours = false; break;
      case '--clean': o.clean = true; break;
      case '--threads': o.threads = int(a, next(), 1); break;
      case '--prompt': o.prompt = int(a, next(), 1); break;
      case '--gen': o.gen = int(a, next(), 1); break;
      case '--reps': o.reps = int(a, next(), 1); break;
      case '--shape': {
        const v = next() ?? '';
        const list = v === 'all' ? BENCH_SHAPES : v.split(',');
        o.shapes = list.map((s) => {
          if (!isShape(s) && s !== 'novels-8m') throw new StreamlmError(`unknown shape '${s}' (${BENCH_SHAPES.join(', ')}, all)`, { field: '--shape' });
          return s;
        });
        break;
      }
      case '--dtypes': {
        o.dtypes = (next() ?? '').split(',').map((d) => {
          const t = GGUF_TYPES.find((g) => g === d);
          if (!t) throw new StreamlmError(`unknown dtype '${d}' (${GGUF_TYPES.join(', ')})`, { field: '--dtypes' });
          return t;
        });
        break;
      }
      default: throw new StreamlmError(`unknown flag '${a}'`, { field: a });
    }
  }
  return o;
}

/** Bytes of weights one decode step reads at `dtype`: every 2-D weight but the embedding table, plus norms. */
export function weightBytesPerToken(spec: ShapeSpec, dtype: GgufDtype): number {
  const perElem = dtype === 'f32' ? 4 : dtype === 'f16' ? 2 : Q8_0_BLOCK_BYTES / Q8_0_BLOCK;
  let bytes = 0;
  for (const t of tensorList(spec)) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.shape.length === 1) bytes += n * 4;
    else if (t.name !== 'model.embed_tokens.weight' || spec.tied) bytes += n * perElem; // tied: the table is the head
  }
  return bytes;
}

/** Weight bytes one decode step reads from a GGUF file: every tensor but the embedding table, unless it is also the head. */
function ggufBytesPerToken(file: string): number {
  const h = readGgufHeader(file);
  const tied = !h.tensors.some((t) => t.name === 'output.weight');
  return h.tensors.reduce((a, t) => a + (t.name === 'token_embd.weight' && !tied ? 0 : t.byteLength), 0);
}

/** Prompt ids: a fixed pseudo-random sequence that avoids the special ids 0-2. */
function promptIds(n: number, vocab: number): number[] {
  const out: number[] = [];
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out.push(3 + ((s >>> 8) % (vocab - 3)));
  }
  return out;
}

function nextId(logits: Float32Array, vocab: number): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best < 3 ? 3 + (best % (vocab - 3)) : best;
}

// --- children ---

/** Times ours in this process (the child side of `--child ours`). */
async function runOurs(job: ChildJob): Promise<Speeds & { load_s: number }> {
  const { loadModel } = await import('../src/index.js');
  const t0 = performance.now();
  // f32 converts a bf16/f16 directory (the shipped model) to f32; f16 keeps the checkpoint's half type.
  const dtype = job.dtype === 'q8_0' ? 'q8_0' : job.dtype === 'f32' ? 'f32' : 'auto';
  const model = await loadModel(job.model, { threads: job.threads, dtype });
  const loadS = (performance.now() - t0) / 1000;
  const n = job.prompt.length;
  const run = (steps: number): { prefillS: number; decodeS: number } => {
    const s = model.session({ cache: 'dense', maxTokens: n + steps + 1, prefillChunk: n });
    try {
      const a = performance.now();
      let id = nextId(s.prefill(job.prompt), job.vocab);
      const b = performance.now();
      for (let i = 0; i < steps; i++) id = nextId(s.step(id), job.vocab);
      const c = performance.now();
      return { prefillS: (b - a) / 1000, decodeS: (c - b) / 1000 };
    } finally {
      s.close();
    }
  };
  run(job.warmupSteps);
  const r = run(job.gen);
  await model.close();
  const simd = model.simd;
  return { prefill_tok_s: n / r.prefillS, decode_tok_s: job.gen / r.decodeS, load_s: loadS, simd };
}

function spawnChild(which: 'ours' | 'llamacpp', job: ChildJob): Speeds & { load_s: number } {
  const script = which === 'ours' ? join(ROOT, 'bench/decode.ts') : join(ROOT, 'bench/llamacpp/run.ts');
  const args = which === 'ours' ? ['--import', 'tsx', script, '--child', JSON.stringify(job)] : ['--import', 'tsx', script, JSON.stringify(job)];
  const env = { ...process.env };
  if (which === 'llamacpp') env.UV_THREADPOOL_SIZE = '1';
  const r = spawnSync(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', timeout: 30 * 60_000 });
  const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !last.startsWith('{')) {
    throw new StreamlmError(`${which} run failed (exit ${r.status ?? r.signal}): ${last || 'no output'}`, { file: job.model });
  }
  return JSON.parse(last) as Speeds & { load_s: number };
}

// --- files ---

function ensureFreeDisk(bytes: number, what: string): void {
  const fs = statfsSync(BENCH_DIR);
  const free = fs.bavail * fs.bsize;
  if (free < bytes + 2 ** 30) {
    throw new StreamlmError(`needs ${(bytes / 1e9).toFixed(1)} GB free for ${what}, ${(free / 1e9).toFixed(1)} GB free`, { file: BENCH_DIR });
  }
}

function sourceDir(shape: Shape, src: SourceDtype, log: (s: string) => void): string {
  const dir = join(BENCH_DIR, `${shape}-${src}`);
  if (!existsSync(join(dir, 'model.safetensors')) || !existsSync(join(dir, 'config.json'))) {
    const bytes = checkpointBytes(SHAPES[shape], src);
    ensureFreeDisk(bytes, dir);
    log(`making random ${shape} ${src} checkpoint (${(bytes / 1e9).toFixed(2)} GB) in ${dir}`);
    makeRandomModel(shape, src, dir);
  }
  return dir;
}

function ggufFile(outDir: string, dir: string, dtype: GgufDtype, bytes: number, log: (s: string) => void): string {
  const file = join(outDir, `model-${dtype}.gguf`);
  if (!existsSync(file)) {
    ensureFreeDisk(bytes, file);
    log(`exporting ${file}`);
    exportGguf(dir, file, { dtype });
  }
  return file;
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1].trim();
  } catch { /* not Linux */ }
  return cpus()[0]?.model ?? 'unknown CPU';
}

// --- main ---

const r2 = (x: number): number => Math.round(x * 100) / 100;
const r3 = (x: number): number => Math.round(x * 1000) / 1000;

async function main(argv: string[]): Promise<void> {
  const opts = parseArgs(argv);
  const log = (s: string): void => { process.stderr.write(s + '\n'); };
  if (opts.llamacpp && !existsSync(LLAMACPP_PKG)) {
    throw new StreamlmError(`the llama.cpp side needs node-llama-cpp, which is not installed in bench/llamacpp. Install it with:\n  ${INSTALL_HINT}\n(or pass --no-llamacpp to time streamlm alone)`);
  }
  const load1 = loadavg()[0];
  log(`CPU ${cpuModel()}, ${cpus().length} logical cores, Node ${process.version}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  if (load1 > 0.5) {
    log(`warning: load average is ${load1.toFixed(2)}: other processes skew these timings, and llama.cpp (whose threads`);
    log('spin at barriers) loses far more to a busy CPU than ours does, so ratios come out too high. Time on an idle machine.');
  }
  mkdirSync(BENCH_DIR, { recursive: true });

  // Bandwidth is measured at the start, before each dtype and at the end, and the best reading
  // kept: other processes on the machine make single readings low.
  log(`measuring memory bandwidth (${opts.threads} threads) ...`);
  let bw = await measureBandwidth(opts.threads);
  log(`  read ${(bw.readBytesPerS / 1e9).toFixed(1)} GB/s (${bw.method}); 1-thread TypedArray.set copy ${(bw.copyBytesPerS / 1e9).toFixed(1)} GB/s (read + write)`);
  const remeasure = async (): Promise<void> => {
    const again = await measureBandwidth(opts.threads, 1 << 30, 4);
    if (again.readBytesPerS > bw.readBytesPerS) bw = again;
  };

  type Timed = Speeds & { load_s: number };
  // The machine is shared and noisy: each side's median over its reps, not its best.
  const median = (v: number[]): number => {
    const s = [...v].sort((x, y) => x - y);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const medianOf = (runs: Timed[]): Timed | null => (runs.length === 0 ? null : {
    prefill_tok_s: median(runs.map((r) => r.prefill_tok_s)),
    decode_tok_s: median(runs.map((r) => r.decode_tok_s)),
    load_s: median(runs.map((r) => r.load_s)),
    simd: runs[0].simd,
  });
  const results: { shape: BenchShape; dtype: GgufDtype; wbytes: number; ours: Timed | null; llama: Timed | null }[] = [];
  const skipped: string[] = [];
  const made = new Set<string>();
  for (const shape of opts.shapes) {
    const spec = specOf(shape);
    const prompt = promptIds(opts.prompt, spec.vocab);
    if (shape === 'novels-8m' && opts.prompt + opts.gen + WARMUP_STEPS >= spec.ctx) {
      throw new StreamlmError(`novels-8m holds ${spec.ctx} positions: --prompt + --gen must stay below ${spec.ctx - WARMUP_STEPS}`, { field: '--gen' });
    }
    for (const dtype of opts.dtypes) {
      const raw = RAW_DTYPES.includes(dtype);
      const srcType: SourceDtype = dtype === 'f32' ? 'f32' : 'f16';
      if (shape !== 'novels-8m' && checkpointBytes(spec, srcType) > WASM_WEIGHT_LIMIT) {
        const note = `${shape} ${dtype} skipped: its weights (${(checkpointBytes(spec, srcType) / 1e9).toFixed(1)} GB) do not fit wasm32's 4 GiB memory`;
        log(note);
        skipped.push(note);
        continue;
      }
      await remeasure();
      const dir = shape === 'novels-8m' ? SHIPPED_DIR : sourceDir(shape, srcType, log);
      // The shipped model's GGUF exports go under .bench/, not into models/.
      const ggufDir = shape === 'novels-8m' ? join(BENCH_DIR, 'novels-8m') : dir;
      mkdirSync(ggufDir, { recursive: true });
      if (shape !== 'novels-8m') made.add(dir);
      const estimate = weightBytesPerToken(spec, raw ? dtype : 'q8_0') + spec.vocab * spec.hidden * 4;
      const gguf = opts.llamacpp || !raw ? ggufFile(ggufDir, dir, dtype, estimate, log) : '';
      const wbytes = raw ? weightBytesPerToken(spec, dtype) : ggufBytesPerToken(gguf);
      const job = { dtype, threads: opts.threads, prompt, gen: opts.gen, vocab: spec.vocab, warmupSteps: WARMUP_STEPS };
      const oursRuns: Timed[] = [];
      const llamaRuns: Timed[] = [];
      for (let rep = 0; rep < opts.reps; rep++) {
        // Alternate which side goes first, so drifting load does not favour one.
        const order: ('llamacpp' | 'ours')[] = rep % 2 ? ['ours', 'llamacpp'] : ['llamacpp', 'ours'];
        for (const side of order) {
          if (side === 'llamacpp' && opts.llamacpp) {
            const l = spawnChild('llamacpp', { ...job, model: gguf });
            log(`  ${shape} ${dtype} rep ${rep + 1} llama.cpp: prefill ${l.prefill_tok_s.toFixed(1)} tok/s, decode ${l.decode_tok_s.toFixed(2)} tok/s (load ${loadavg()[0].toFixed(2)})`);
            llamaRuns.push(l);
          }
          if (side === 'ours' && opts.ours) {
            const o = spawnChild('ours', { ...job, model: raw ? dir : gguf });
            log(`  ${shape} ${dtype} rep ${rep + 1} ours:      prefill ${o.prefill_tok_s.toFixed(1)} tok/s, decode ${o.decode_tok_s.toFixed(2)} tok/s (load ${loadavg()[0].toFixed(2)})`);
            oursRuns.push(o);
          }
        }
      }
      results.push({ shape, dtype, wbytes, ours: medianOf(oursRuns), llama: medianOf(llamaRuns) });
    }
  }
  await remeasure();

  const rows: string[] = [];
  const f = (x: number | null | undefined, w: number, d = 1): string => (x === null || x === undefined ? '-' : x.toFixed(d)).padStart(w);
  for (const { shape, dtype, wbytes, ours, llama } of results) {
    const roof = bw.readBytesPerS / wbytes;
    const line = {
      shape,
      dtype,
      ours_source: shape === 'novels-8m' && dtype === 'f16' ? 'bf16 directory' : RAW_DTYPES.includes(dtype) ? 'HF directory' : 'same GGUF file',
      threads: opts.threads,
      ours_simd: ours?.simd ?? null,
      ours: ours ? { prefill_tok_s: r2(ours.prefill_tok_s), decode_tok_s: r2(ours.decode_tok_s) } : null,
      llamacpp: llama ? { prefill_tok_s: r2(llama.prefill_tok_s), decode_tok_s: r2(llama.decode_tok_s) } : null,
      decode_ratio: ours && llama ? r3(ours.decode_tok_s / llama.decode_tok_s) : null,
      prefill_ratio: ours && llama ? r3(ours.prefill_tok_s / llama.prefill_tok_s) : null,
      roofline_decode_tok_s: r2(roof),
      weight_bytes_per_token: wbytes,
      bandwidth_gb_s: r2(bw.readBytesPerS / 1e9),
      bandwidth_method: bw.method,
      prompt_tokens: opts.prompt,
      gen_tokens: opts.gen,
      reps: opts.reps,
      load_avg_1m: r2(load1),
      load_avg_end_1m: r2(loadavg()[0]),
      cpu: cpuModel(),
      node: process.version,
    };
    if (opts.json) process.stdout.write(JSON.stringify(line) + '\n');
    const gbs = (tok: number | undefined): number | undefined => (tok === undefined ? undefined : (tok * wbytes) / 1e9);
    rows.push(
      `${shape.padEnd(15)} ${dtype.padEnd(5)} ${f(ours?.prefill_tok_s, 8)} ${f(llama?.prefill_tok_s, 8)} ${f(line.prefill_ratio, 6, 2)}` +
        ` ${f(ours?.decode_tok_s, 8, 2)} ${f(llama?.decode_tok_s, 8, 2)} ${f(line.decode_ratio, 6, 2)} ${f(roof, 9, 2)}` +
        ` ${f(gbs(ours?.decode_tok_s), 9)} ${f(gbs(llama?.decode_tok_s), 9)}`,
    );
  }
  log('');
  log(`threads ${opts.threads}, prompt ${opts.prompt}, gen ${opts.gen}, median of ${opts.reps}; read bandwidth ${(bw.readBytesPerS / 1e9).toFixed(1)} GB/s (${bw.method})`);
  log('pp = prompt tok/s, tg = decode tok/s, ratio = ours / llama.cpp, GB/s = weight bytes read per second in decode');
  log(`${'shape'.padEnd(15)} ${'dtype'.padEnd(5)} ${'pp ours'.padStart(8)} ${'pp llama'.padStart(8)} ${'ratio'.padStart(6)} ${'tg ours'.padStart(8)} ${'tg llama'.padStart(8)} ${'ratio'.padStart(6)} ${'roofline'.padStart(9)} ${'GB/s ours'.padStart(9)} ${'GB/s llama'.padStart(9)}`);
  for (const r of rows) log(r);
  for (const s of skipped) log(s);
  if (opts.clean) for (const d of made) rmSync(d, { recursive: true, force: true });
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const argv = process.argv.slice(2);
  const done = argv[0] === '--child'
    ? runOurs(JSON.parse(argv[1]) as ChildJob).then((r) => { process.stdout.write(JSON.stringify(r) + '\n'); })
    : main(argv);
  done.catch((e: unknown) => {
    if (e instanceof StreamlmError) console.error(e.message);
    else console.error(e);
    process.exit(1);
  });
}
