/**
 * Perplexity of a long-eval text streamed under a cache policy, from a Hugging Face directory and
 * from GGUF files our exporter makes of it at each weight type (issue 13's acceptance: f32 within
 * 0.1% of the directory; q8_0 +0.1%, q6_K +0.5%, q5_K +1%, q4_K +5% at most).
 *
 *   node --import tsx bench/gguf-ppl.ts [--model models/novels-8m-sink] [--tokens 3000]
 *        [--cache sink:4+252] [--types f32,q8_0,q6_K,q5_K,q4_K,q4_0] [--threads 1] [--weighted 0]
 *
 * A type may carry per-tensor overrides, to find which tensors the error comes from:
 * `q5_K+ffn_down:f32+token_embd:q8_0` (each `PATTERN:TYPE` a regex on the GGUF tensor name).
 *
 * Prints one JSON line, then a table. Same tokens for every run (encoded once, by the directory's
 * tokenizer), so the comparison is paired and needs no repeats; timings are not the point here.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { exportGguf, type GgufDtype } from '../src/export/gguf.js';
import { evalStream } from '../src/eval/ppl.js';
import { loadModel } from '../src/model.js';
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

// The shared corpus sits beside the checkout (main) or two levels up (worktrees under /work/wt).
const corpus = [join(root, '..', 'shared', 'corpus', 'longeval'), join(root, '..', '..', 'shared', 'corpus', 'longeval')].find(existsSync);
if (!corpus) throw new Error('long-eval corpus not found (../shared/corpus/longeval)');
const book = readdirSync(corpus).filter((f) => f.endsWith('.txt')).sort()[0];
const text = readFileSync(join(corpus, book), 'utf8');

const tmp = mkdtempSync(join(tmpdir(), 'streamlm-gguf-ppl-'));
try {
  const rows: { source: string; type: string; ppl: number; rel_pct: number; weight_mb: number; seconds: number }[] = [];
  const run = async (path: string, source: string, type: string, ids?: number[]): Promise<number[]> => {
    const t0 = performance.now();
    const m = await loadModel(path, { threads });
    try {
      const use = ids ?? m.encode(text).slice(0, tokens);
      const r = evalStream(m, use, { cache, afterWindow: 256 });
      const base = rows[0]?.ppl ?? r.ppl;
      rows.push({ source, type, ppl: r.ppl, rel_pct: 100 * (r.ppl / base - 1), weight_mb: m.weightBytes / 1e6, seconds: (performance.now() - t0) / 1000 });
      return use;
    } finally {
      await m.close();
    }
  };
  const ids = await run(modelDir, 'directory', 'auto');
  for (const t of types) {
    const file = join(tmp, 'model.gguf');
    exportGguf(modelDir, file, spec(t));
    await run(file, 'gguf', t, ids);
  }
  console.log(JSON.stringify({ model: modelDir, text: book, tokens: ids.length, cache, threads, rows }));
  console.log(`\n${ids.length} tokens of ${book}, ${cache}\n| source | type | ppl | vs directory | weights MB |\n|---|---|---|---|---|`);
  for (const r of rows) console.log(`| ${r.source} | ${r.type} | ${r.ppl.toFixed(4)} | ${r.rel_pct >= 0 ? '+' : ''}${r.rel_pct.toFixed(3)}% | ${r.weight_mb.toFixed(2)} |`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
