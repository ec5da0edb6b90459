/**
 * Perplexity of a long-eval text streamed under a cache policy, from a Hugging Face directory and
 * from GGUF files our exporter makes of it at each weight type (issue 13's acceptance: f32 within
 * 0.1% of the directory; q8_0 +0.1%, q6_K +0.5%, q5_K +1%, q4_K +5% at most).
 *
 *   node --import tsx bench/gguf-ppl.ts [--model models/novels-8m-sink] [--tokens 3000]
 *        [--cache sink:4+252] [--types f32,q8_0,q6_K,q5_K,q4_K,q4_0] [--threads 1] [--weighted 0]
 *        [--llama-quantize PATH [--llama-mix]]
 *
 * A type may carry per-tensor overrides, to find which tensors the error comes from:
 * `q5_K+ffn_down:f32+token_embd:q8_0` (each `PATTERN:TYPE` a regex on the GGUF tensor name).
 *
 * `--llama-quantize PATH` (llama.cpp's tool, CLI `PATH [--pure] IN OUT TYPE`) also quantizes our f32
 * export with llama.cpp, `--pure` (every tensor at the type, with its per-tensor fallbacks, as ours
 * does; the token embedding at the type ours gave it), and with `--llama-mix` also its _M mix for k-quant types; our engine runs every file. Each
 * row gives the weights' relative RMSE against the f32 export (all 2-D tensors pooled), and a
 * second table the types each tool picked per tensor and their errors.
 *
 * Prints one JSON line, then tables. Same tokens for every run (encoded once, by the directory's
 * tokenizer), so the comparison is paired and needs no repeats; timings are not the point here.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { exportGguf, type GgufDtype } from '../src/export/gguf.js';
import { evalStream } from '../src/eval/ppl.js';
import { loadModel } from '../src/model.js';
import { readGgufHeader, type GgufTensorInfo } from '../src/runtime/gguf.js';
import { dequantizeRow, quantType } from '../src/runtime/quant/index.js';
import { searchMode } from '../src/runtime/quant/search.js';
import { benchArgs } from './common.js';

const args = benchArgs(process.argv.slice(2));
const root = resolve(import.meta.dirname, '..');
const modelDir = resolve(args.get('model') ?? join(root, 'models', 'novels-8m-sink'));
const tokens = Number(args.get('tokens') ?? 3000);
const cache = args.get('cache') ?? 'sink:4+252';
const types = (args.get('types') ?? 'f32,q8_0,q6_K,q5_K,q4_K,q4_0').split(',');
const spec = (t: string): { dtype: GgufDtype; overrides: { pattern: RegExp; dtype: GgufDtype }[] } => {
  const [dtype, ...rest] = t.split('+');
  return { dtype: dtype as GgufDtype, overrides: rest.map((o) => { const [p, d] = o.split(':'); return { pattern: new RegExp(p), dtype: d as GgufDtype }; }) };
};
const threads = Number(args.get('threads') ?? 1);
// --weighted 0: the quantizers' searches minimise plain squared error (docs/quant.md compares).
searchMode.weighted = args.get('weighted') !== '0';
const llamaQuantize = args.get('llama-quantize');
const llamaMix = args.has('llama-mix');
/** llama-quantize's type names: a k-quant's _M ftype with --pure is that type on every tensor. */
const LLAMA_NAME: Record<string, string> = { q8_0: 'Q8_0', q6_K: 'Q6_K', q5_K: 'Q5_K_M', q4_K: 'Q4_K_M', q4_0: 'Q4_0', q4_1: 'Q4_1', q5_0: 'Q5_0', q5_1: 'Q5_1' };

// The shared corpus sits beside the checkout (main) or two levels up (worktrees under /work/wt).
const corpus = [join(root, '..', 'shared', 'corpus', 'longeval'), join(root, '..', '..', 'shared', 'corpus', 'longeval')].find(existsSync);
if (!corpus) throw new Error('long-eval corpus not found (../shared/corpus/longeval)');
const book = readdirSync(corpus).filter((f) => f.endsWith('.txt')).sort()[0];
const text = readFileSync(join(corpus, book), 'utf8');

/** A 2-D tensor of a GGUF file as f32 (dequantized row by row). */
function tensorF32(file: string, t: GgufTensorInfo): Float32Array {
  const raw = new Uint8Array(t.byteLength), fd = openSync(file, 'r');
  try { readSync(fd, raw, 0, raw.length, t.offset); } finally { closeSync(fd); }
  const K = t.dims[0], rows = t.dims[1], rb = raw.length / rows, type = quantType(t.type.name), out = new Float32Array(K * rows);
  for (let r = 0; r < rows; r++) dequantizeRow(type, raw.subarray(r * rb, (r + 1) * rb), K, out.subarray(r * K, (r + 1) * K));
  return out;
}

interface TensorErr { type: string; se: number; ss: number }
/** Per 2-D tensor: its type and squared error against the same tensor of `ref` (an f32 export). */
function weightErrors(file: string, ref: Map<string, Float32Array>): Map<string, TensorErr> {
  const out = new Map<string, TensorErr>();
  for (const t of readGgufHeader(file).tensors) {
    const x = ref.get(t.name);
    if (!x || t.dims.length !== 2) continue;
    const y = tensorF32(file, t);
    let se = 0, ss = 0;
    for (let i = 0; i < x.length; i++) { se += (y[i] - x[i]) ** 2; ss += x[i] ** 2; }
    out.set(t.name, { type: t.type.name.toLowerCase(), se, ss });
  }
  return out;
}
const pooled = (e: Map<string, TensorErr>): number => {
  let se = 0, ss = 0;
  for (const v of e.values()) { se += v.se; ss += v.ss; }
  return Math.sqrt(se / ss);
};

const tmp = mkdtempSync(join(tmpdir(), 'streamlm-gguf-ppl-'));
try {
  type Row = { source: string; type: string; ppl: number; rel_pct: number; weight_mb: number; weight_rmse_pct: number | null; seconds: number };
  const rows: Row[] = [];
  const tensorRows: { file: string; errors: Map<string, TensorErr> }[] = [];
  const f32File = join(tmp, 'f32.gguf');
  exportGguf(modelDir, f32File, { dtype: 'f32' });
  const ref = new Map(readGgufHeader(f32File).tensors.filter((t) => t.dims.length === 2).map((t) => [t.name, tensorF32(f32File, t)]));
  const run = async (path: string, source: string, type: string, ids?: number[]): Promise<number[]> => {
    const t0 = performance.now();
    const errors = path.endsWith('.gguf') ? weightErrors(path, ref) : null;
    if (errors) tensorRows.push({ file: `${source} ${type}`, errors });
    const m = await loadModel(path, { threads });
    try {
      const use = ids ?? m.encode(text).slice(0, tokens);
      const r = evalStream(m, use, { cache, afterWindow: 256 });
      const base = rows[0]?.ppl ?? r.ppl;
      rows.push({ source, type, ppl: r.ppl, rel_pct: 100 * (r.ppl / base - 1), weight_mb: m.weightBytes / 1e6, weight_rmse_pct: errors ? 100 * pooled(errors) : null, seconds: (performance.now() - t0) / 1000 });
      console.error(JSON.stringify(rows[rows.length - 1])); // progress: long runs take minutes per row
      return use;
    } finally {
      await m.close();
    }
  };
  /** llama.cpp's file for `type`; `--pure` with the token embedding at the type ours stored it in (`embed`). */
  const llama = (type: string, embed: string | null): string => {
    const out = join(tmp, `llama-${type}-${embed ? 'pure' : 'mix'}.gguf`);
    const flags = embed ? ['--pure', '--token-embedding-type', embed] : [];
    const r = spawnSync(llamaQuantize!, [...flags, f32File, out, LLAMA_NAME[type]], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${llamaQuantize} failed on ${type}: ${r.stderr.slice(-500)}`);
    return out;
  };
  const ids = await run(modelDir, 'directory', 'auto');
  for (const t of types) {
    const file = join(tmp, 'model.gguf');
    exportGguf(modelDir, file, spec(t));
    await run(file, 'gguf', t, ids);
    if (llamaQuantize && LLAMA_NAME[t]) {
      const embed = readGgufHeader(file).tensors.find((x) => x.name === 'token_embd.weight')!.type.name;
      await run(llama(t, embed), 'llama.cpp --pure', t, ids);
      if (llamaMix && t.endsWith('_K')) await run(llama(t, null), 'llama.cpp', LLAMA_NAME[t], ids);
    }
  }
  const perTensor = Object.fromEntries(tensorRows.map((r) => [r.file, Object.fromEntries([...r.errors].map(([n, e]) => [n, { type: e.type, rmse: Math.sqrt(e.se / e.ss) }]))]));
  console.log(JSON.stringify({ model: modelDir, text: book, tokens: ids.length, cache, threads, rows, perTensor }));
  console.log(`\n${ids.length} tokens of ${book}, ${cache}\n| source | type | ppl | vs directory | weights MB | weight rel. RMSE |\n|---|---|---|---|---|---|`);
  for (const r of rows) console.log(`| ${r.source} | ${r.type} | ${r.ppl.toFixed(4)} | ${r.rel_pct >= 0 ? '+' : ''}${r.rel_pct.toFixed(3)}% | ${r.weight_mb.toFixed(2)} | ${r.weight_rmse_pct === null ? '' : r.weight_rmse_pct.toFixed(3) + '%'} |`);
  // Per tensor role (blk.N. stripped, pooled over layers): the type each file stored and its error.
  const roles = [...new Set(tensorRows.flatMap((r) => [...r.errors.keys()].map((n) => n.replace(/^blk\.\d+\./, ''))))];
  console.log(`\n| file | ${roles.join(' | ')} |\n|---|${roles.map(() => '---|').join('')}`);
  for (const r of tensorRows) {
    const cells = roles.map((role) => {
      const es = [...r.errors].filter(([n]) => n.replace(/^blk\.\d+\./, '') === role).map(([, e]) => e);
      const kinds = [...new Set(es.map((e) => e.type))].join('/');
      return `${kinds} ${(100 * Math.sqrt(es.reduce((a, e) => a + e.se, 0) / es.reduce((a, e) => a + e.ss, 0))).toFixed(2)}%`;
    });
    console.log(`| ${r.file} | ${cells.join(' | ')} |`);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
