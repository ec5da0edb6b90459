import { basename } from 'node:path';
import { parsePolicy } from '../cache/policy.js';
import { StreamlmError } from '../errors.js';
import { evalStream, type StreamEvalResult } from '../eval/ppl.js';
import { pplPlotSvg } from '../eval/plot.js';
import { list, num, parseFlags, str } from './args.js';
import { MODEL_FLAGS, MODEL_HELP, modelFlags, loadCliModel } from './common.js';
import { checkOutputFile, readTextFile, writeFileAtomic } from './files.js';
import { Progress } from './progress.js';

const HELP = `usage: streamlm eval-ppl [--model DIR] --text FILE... [--cache POLICY[,POLICY...]] [--tokens N]
                        [--evict-chunk C] [--json] [--plot out.svg] [--threads N] [--dtype auto|f32|q8_0|q6_K|q5_K|q4_K|q4_0]
Streams the concatenated files token by token through each cache policy: every token is predicted
from the cache, then appended, then the policy evicts. POLICY: dense | window:W | sink:S+W | recompute:W
(default sink:4+1020). The results table goes to stdout (with --json, one JSON line instead and the
table to stderr); progress with an ETA goes to stderr. recompute:W re-runs W tokens for every token,
so it is about W times slower than the others: keep --tokens small with it.
${MODEL_HELP}`;

export async function runEvalPpl(argv: string[]): Promise<void> {
  const { flags, rest } = parseFlags(argv, {
    ...MODEL_FLAGS, text: { type: 'string', multiple: true }, cache: { type: 'string' }, tokens: { type: 'string' },
    'evict-chunk': { type: 'string' }, json: { type: 'boolean' }, plot: { type: 'string' },
  }, 'eval-ppl');
  if (flags.help) { console.log(HELP); return; }
  // `--text a.txt b.txt` lists several files after one flag.
  const files = [...list(flags, 'text'), ...rest];
  if (files.length === 0) throw new StreamlmError('at least one text file is required', { field: '--text' });
  const specs = (str(flags, 'cache') ?? 'sink:4+1020').split(',').map((s) => s.trim()).filter(Boolean);
  const evictChunk = num(flags, 'evict-chunk', { int: true, min: 1 });
  const policies = specs.map((s) => parsePolicy(s, { evictChunk }));
  const maxTokens = num(flags, 'tokens', { int: true, min: 2 });
  const plotArg = str(flags, 'plot');
  // Checked now, so that an unwritable plot path does not throw away a finished evaluation.
  const plot = plotArg === undefined ? undefined : checkOutputFile(plotArg, '--plot');
  const m = modelFlags(flags);

  let text = '';
  for (const f of files) {
    const t = readTextFile(f, '--text');
    if (t.trim().length === 0) throw new StreamlmError('the text file is empty', { file: f, field: '--text' });
    text += (text ? '\n\n' : '') + t;
  }

  const model = await loadCliModel(m);
  try {
    let ids = model.encode(text);
    if (maxTokens !== undefined && ids.length < maxTokens)
      console.error(`[streamlm] the text gives only ${ids.length} tokens; evaluating those ${ids.length} (--tokens ${maxTokens})`);
    if (maxTokens !== undefined) ids = ids.slice(0, maxTokens);
    if (ids.length < 2) throw new StreamlmError(`the text gives ${ids.length} token(s); at least 2 are needed`, { field: '--text' });
    const trained = model.hparams.maxPositionEmbeddings;
    for (const p of policies) {
      if (p.keep !== null && p.keep + 1 > trained)
        console.error(`[streamlm] warning: ${p.name} holds ${p.keep + 1} tokens per step, more than the model's trained context (${trained})`);
      if (!p.carriesKV && p.keep !== null && ids.length > 4 * p.keep)
        console.error(`[streamlm] note: ${p.name} runs up to ${p.keep} tokens through the model for each of the ${ids.length} tokens; expect it to take about ${p.keep}x longer than the other policies`);
    }
    const finite = policies.flatMap((p) => (p.keep === null ? [] : [p.keep]));
    const afterWindow = finite.length ? Math.max(...finite) : trained;

    const results: StreamEvalResult[] = [];
    for (const p of policies) {
      const bar = new Progress(`${p.name}`, ids.length - 1);
      const r = evalStream(model, ids, { cache: p.name, evictChunk, afterWindow, onProgress: (d) => bar.update(d) });
      bar.done();
      results.push(r);
    }
    const table = formatTable(results, afterWindow);
    if (flags.json) console.error(table);
    else console.log(table);
    if (plot !== undefined) {
      const svg = pplPlotSvg(results, `${basename(m.dir)}: ${ids.length} tokens of ${files.map((f) => basename(f)).join(', ').slice(0, 60)}`);
      writeFileAtomic(plot, svg, '--plot');
      console.error(`[streamlm] wrote ${plotArg}`);
    }
    if (flags.json) console.log(JSON.stringify({ model: m.dir, tokens: ids.length, results }));
  } finally {
    await model.close();
  }
}

function formatTable(results: StreamEvalResult[], afterWindow: number): string {
  const rows = results.map((r) => `${r.cache.padEnd(18)} ${r.ppl.toFixed(3).padStart(10)} ${(r.ppl_after_window?.toFixed(3) ?? '-').padStart(12)} ${r.tok_s.toFixed(1).padStart(9)} ${r.peak_rss_mb.toFixed(0).padStart(8)}`);
  return [`${'cache'.padEnd(18)} ${'ppl'.padStart(10)} ${`ppl@>=${afterWindow}`.padStart(12)} ${'tok/s'.padStart(9)} ${'rss MB'.padStart(8)}`, ...rows].join('\n');
}
