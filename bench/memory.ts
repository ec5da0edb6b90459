/**
 * bench:memory: whether a model of a real shape loads and generates within a memory budget (issue
 * 13 item 6: TinyLlama-1.1B at q4_K under 1 GB RSS in Node; Qwen2.5-3B's shape at q4_K within
 * wasm32's 4 GiB with a 4k sink cache).
 *
 *   npm run bench:memory -- [--shapes tinyllama-1.1b,qwen2.5-3b] [--type q4_K] [--threads 2]
 *                           [--cache tinyllama-1.1b=sink:4+2044,qwen2.5-3b=sink:4+4092] [--prompt 64] [--gen 64]
 *
 * Per shape it writes a random-weight GGUF under .bench/ when missing (bench/make-random-model.ts,
 * makeRandomGguf), then runs one child process per shape, so each peak RSS is its own: load the
 * file, open a session with the cache, prefill `--prompt` token ids, decode `--gen` tokens greedily.
 * Peak RSS is the child's `process.resourceUsage().maxRSS` (the kernel's high-water mark: weights,
 * scratch and the cache pages touched so far, plus Node itself); wasm memory is the memory's byte
 * length at the end, which counts the whole cache (allocated when the session opens). Decode tok/s
 * is wall clock over the decode steps, and CPU ms per token the process's CPU time (all worker
 * threads) over them, which a loaded machine changes less (the load average is printed too).
 *
 * Prints one JSON line per shape on stdout, then a table.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GGUF_TYPES, type GgufDtype } from '../src/export/gguf.js';
import { loadModel } from '../src/model.js';
import { benchArgs } from './common.js';
import { isShape, makeRandomGguf } from './make-random-model.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BENCH_DIR = join(ROOT, '.bench');
/** Default caches: TinyLlama's trained context is 2048; the 3B run is the 4k sink cache. */
const DEFAULT_CACHE: Record<string, string> = { 'tinyllama-1.1b': 'sink:4+2044', 'qwen2.5-3b': 'sink:4+4092', 'qwen2.5-0.5b': 'sink:4+4092' };

interface Job { file: string; cache: string; threads: number; prompt: number; gen: number }
interface Result { load_s: number; prefill_tok_s: number; decode_tok_s: number; decode_cpu_ms_per_tok: number; peak_rss_bytes: number; wasm_memory_bytes: number; weight_bytes: number; vocab: number }

/** The child: one load, one session, greedy decoding; reports its own peak RSS. */
async function child(job: Job): Promise<Result> {
  const t0 = performance.now();
  const m = await loadModel(job.file, { threads: job.threads });
  const load = (performance.now() - t0) / 1000;
  try {
    const V = m.hparams.vocabSize;
    const s = m.session({ cache: job.cache });
    const prompt = Array.from({ length: job.prompt }, (_, i) => (i * 7919 + 13) % V);
    const t1 = performance.now();
    let logits = s.prefill(prompt);
    const t2 = performance.now(), c2 = process.cpuUsage();
    for (let i = 0; i < job.gen; i++) {
      let best = 0;
      for (let j = 1; j < logits.length; j++) if (logits[j] > logits[best]) best = j;
      logits = s.step(best);
    }
    const t3 = performance.now(), c3 = process.cpuUsage(c2);
    s.close();
    return {
      load_s: load, prefill_tok_s: job.prompt / ((t2 - t1) / 1000), decode_tok_s: job.gen / ((t3 - t2) / 1000), decode_cpu_ms_per_tok: (c3.user + c3.system) / 1000 / job.gen,
      peak_rss_bytes: process.resourceUsage().maxRSS * 1024, wasm_memory_bytes: m.net.rt.memory.buffer.byteLength, weight_bytes: m.weightBytes, vocab: V,
    };
  } finally {
    await m.close();
  }
}

async function main(): Promise<void> {
  const ci = process.argv.indexOf('--child');
  if (ci > 0) { console.log(JSON.stringify(await child(JSON.parse(process.argv[ci + 1]) as Job))); return; }
  const args = benchArgs(process.argv.slice(2));
  const shapes = (args.get('shapes') ?? 'tinyllama-1.1b,qwen2.5-3b').split(',');
  const type = (args.get('type') ?? 'q4_K') as GgufDtype;
  if (!GGUF_TYPES.includes(type)) throw new Error(`--type: unknown type '${type}' (${GGUF_TYPES.join(', ')})`);
  const threads = Number(args.get('threads') ?? 2), prompt = Number(args.get('prompt') ?? 64), gen = Number(args.get('gen') ?? 64);
  const caches = new Map((args.get('cache') ?? '').split(',').filter(Boolean).map((kv) => kv.split('=') as [string, string]));
  const rows: (Result & { shape: string; type: string; cache: string; file_bytes: number; threads: number; loadavg: number[] })[] = [];
  mkdirSync(BENCH_DIR, { recursive: true });
  for (const shape of shapes) {
    if (!isShape(shape)) throw new Error(`--shapes: unknown shape '${shape}'`);
    const file = join(BENCH_DIR, `${shape}-${type}.gguf`);
    if (!existsSync(file)) { console.error(`writing ${file}`); makeRandomGguf(shape, type, file); }
    const job: Job = { file, cache: caches.get(shape) ?? DEFAULT_CACHE[shape] ?? 'sink:4+4092', threads, prompt, gen };
    const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', JSON.stringify(job)], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 24 });
    if (r.status !== 0) throw new Error(`${shape}: child failed: ${r.stderr.slice(-1000)}`);
    const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as Result;
    const row = { shape, type, cache: job.cache, file_bytes: statSync(file).size, threads, loadavg: loadavg().map((x) => +x.toFixed(2)), ...res };
    rows.push(row);
    console.log(JSON.stringify({ bench: 'memory', date: new Date().toISOString(), cpu: cpus()[0]?.model, ...row }));
  }
  const gb = (b: number): string => (b / 2 ** 30).toFixed(2);
  console.log(`\n| shape | type | cache | file GiB | load s | peak RSS GiB | wasm memory GiB | decode tok/s | CPU ms/tok | threads | load avg |\n|---|---|---|---|---|---|---|---|---|---|---|`);
  for (const r of rows) console.log(`| ${r.shape} | ${r.type} | ${r.cache} | ${gb(r.file_bytes)} | ${r.load_s.toFixed(1)} | ${gb(r.peak_rss_bytes)} | ${gb(r.wasm_memory_bytes)} | ${r.decode_tok_s.toFixed(2)} | ${r.decode_cpu_ms_per_tok.toFixed(0)} | ${r.threads} | ${r.loadavg.join(' ')} |`);
}

await main();
