/**
 * bench:speculative — self-speculative decoding against plain decoding, greedy, on long-eval text.
 *
 *   npm run bench:speculative -- [--json] [--models models/novels-8m,models/novels-8m-sink]
 *                                [--text FILE] [--prompts 20] [--prompt-tokens 256] [--gen 256]
 *                                [--cache sink:4+508] [--speculate ngram,mctp,auto] [--draft 4|auto] [--rounds 3]
 *                                [--threads N] [--dtype auto|f32|q8_0] [--random-shape qwen2.5-0.5b]
 *
 * Prompts: `--prompts` passages at evenly spaced offsets of the long-eval books
 * (/work/shared/corpus/longeval, or ../shared/corpus/longeval from CI; else the shipped
 * models/samples text), or of `--text FILE`, each cut to its last `--prompt-tokens` tokens. Each
 * prompt is continued for `--gen` tokens (EOS ignored) plainly and speculatively, in `--rounds`
 * rounds whose order alternates; per mode the median round's decode time counts. Reports tokens
 * per backbone forward, decode tok/s of both, their ratio (speedup), the median time to the first
 * 8 tokens (prefill included), and whether every prompt's tokens were identical. `--speculate` takes
 * a comma list of modes: one result per model and mode (`mctp` is skipped for models without heads).
 * A tokenizer that adds a BOS token (the sink model's `<s>`) keeps it at the head of each prompt.
 * `--random-shape` adds a random model of that shape (bench/make-random-model.ts, under .bench/)
 * on one self-quoting prompt (a passage given twice, then its start again).
 * JSON (with --json, on stdout): {"results": [{"model", "speculate", "tokens_per_forward", "speedup",
 * "identical", "plain_tok_s", "spec_tok_s", "ttf8_ms_plain", "ttf8_ms_spec", "acceptance", ...}]}.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generate } from '../src/generate/generate.js';
import { parseSpeculateMode, type SpeculateMode } from '../src/generate/speculate.js';
import { loadModel, type Model } from '../src/model.js';
import type { LoadDType } from '../src/models/weights.js';
import { StreamlmError } from '../src/errors.js';
import { isShape, makeRandomModel } from './make-random-model.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

interface Opts {
  json: boolean; models: string[]; text: string | null; prompts: number; promptTokens: number; gen: number;
  cache: string; speculate: SpeculateMode[]; draft: number | 'auto'; rounds: number; threads: number | undefined; dtype: LoadDType; randomShape: string | null;
}

function parseArgs(argv: string[]): Opts {
  const o: Opts = {
    json: false, models: ['models/novels-8m', 'models/novels-8m-sink'], text: null, prompts: 20, promptTokens: 256, gen: 256,
    cache: 'sink:4+508', speculate: ['ngram'], draft: 4, rounds: 3, threads: undefined, dtype: 'auto', randomShape: null,
  };
  const int = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new StreamlmError(`${flag} needs a positive integer, got '${v}'`, { field: flag });
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = (): string => { const x = argv[++i]; if (x === undefined) throw new StreamlmError(`${a} needs a value`, { field: a }); return x; };
    if (a === '--json') o.json = true;
    else if (a === '--models') o.models = v().split(',').filter(Boolean);
    else if (a === '--text') o.text = v();
    else if (a === '--prompts') o.prompts = int(a, v());
    else if (a === '--prompt-tokens') o.promptTokens = int(a, v());
    else if (a === '--gen') o.gen = int(a, v());
    else if (a === '--cache') o.cache = v();
    else if (a === '--speculate') o.speculate = v().split(',').filter(Boolean).map(parseSpeculateMode);
    else if (a === '--draft') { const d = v(); o.draft = d === 'auto' ? 'auto' : int(a, d); }
    else if (a === '--rounds') o.rounds = int(a, v());
    else if (a === '--threads') o.threads = int(a, v());
    else if (a === '--dtype') o.dtype = v() as LoadDType;
    else if (a === '--random-shape') { const s = v(); if (!isShape(s)) throw new StreamlmError(`unknown shape '${s}'`, { field: '--random-shape' }); o.randomShape = s; }
    else throw new StreamlmError(`unknown flag '${a}'`, { field: a });
  }
  if (o.text !== null && !existsSync(o.text)) throw new StreamlmError(`no such file: ${o.text}`, { file: o.text, field: '--text' });
  return o;
}

/** The texts prompts are cut from: --text, else the long-eval books, else the shipped sample. */
function sourceTexts(o: Opts): { name: string; texts: string[] } {
  if (o.text) return { name: o.text, texts: [readFileSync(o.text, 'utf8')] };
  for (const dir of ['/work/shared/corpus/longeval', join(ROOT, '../shared/corpus/longeval')]) {
    if (!existsSync(dir)) continue;
    const files = readdirSync(dir).filter((f) => f.endsWith('.txt')).sort();
    if (files.length) return { name: dir, texts: files.map((f) => readFileSync(join(dir, f), 'utf8')) };
  }
  const sample = join(ROOT, 'models/samples/pride-and-prejudice.txt');
  return { name: sample, texts: [readFileSync(sample, 'utf8')] };
}

/** `n` passages at evenly spaced offsets across the texts, long enough for `chars` characters. */
function passages(texts: string[], n: number, chars: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const t = texts[i % texts.length];
    const slot = Math.floor(i / texts.length), per = Math.ceil(n / texts.length);
    const at = Math.floor(((slot + 0.5) / per) * Math.max(t.length - chars, 0));
    out.push(t.slice(at, at + chars));
  }
  return out;
}

interface Run { ids: number[]; decodeMs: number; cpuMs: number; ttf8Ms: number; forwards: number; fed: number; proposed: number[]; accepted: number[] }

type ModeOpts = Omit<Opts, 'speculate'> & { speculate: SpeculateMode };

async function once(model: Model, prompt: number[], o: ModeOpts, spec: boolean): Promise<Run> {
  const t0 = performance.now(), c0 = process.cpuUsage();
  const it = generate(model, {
    promptIds: prompt, maxNewTokens: o.gen, cache: o.cache, ignoreEos: true,
    ...(spec ? { speculate: { mode: o.speculate, draft: o.draft } } : {}),
  });
  const ids: number[] = [];
  let ttf8 = NaN;
  for (;;) {
    const r = await it.next();
    if (r.done) {
      const sp = r.value.speculation;
      const c = process.cpuUsage(c0);
      return { ids, decodeMs: r.value.decodeMs, cpuMs: (c.user + c.system) / 1000, ttf8Ms: ttf8, forwards: sp?.forwards ?? ids.length - 1, fed: sp ? Math.round(sp.tokensPerForward * sp.forwards) : ids.length - 1, proposed: sp?.proposed ?? [], accepted: sp?.accepted ?? [] };
    }
    if (r.value.id >= 0) { ids.push(r.value.id); if (ids.length === 8) ttf8 = performance.now() - t0; }
  }
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

async function benchModel(dir: string, label: string, prompts: number[][], o: ModeOpts): Promise<Record<string, unknown>> {
  const model = await loadModel(dir, { threads: o.threads, dtype: o.dtype });
  try {
    await once(model, prompts[0].slice(-16), { ...o, gen: 8 }, false);   // warm-up
    const ms = { plain: [] as number[], spec: [] as number[] };
    const cpu = { plain: [] as number[], spec: [] as number[] };
    const ttf = { plain: [] as number[], spec: [] as number[] };
    let identical = true, forwards = 0, fed = 0;
    const proposed: number[] = [], accepted: number[] = [];
    for (let r = 0; r < o.rounds; r++) {
      let plainMs = 0, specMs = 0, plainCpu = 0, specCpu = 0;
      for (const [i, p] of prompts.entries()) {
        const order = (r + i) % 2 === 0 ? [false, true] : [true, false];
        const runs: Partial<Record<'plain' | 'spec', Run>> = {};
        for (const spec of order) runs[spec ? 'spec' : 'plain'] = await once(model, p, o, spec);
        const a = runs.plain!, b = runs.spec!;
        plainMs += a.decodeMs; specMs += b.decodeMs; plainCpu += a.cpuMs; specCpu += b.cpuMs;
        ttf.plain.push(a.ttf8Ms); ttf.spec.push(b.ttf8Ms);
        if (a.ids.join() !== b.ids.join()) identical = false;
        if (r === 0) {
          forwards += b.forwards; fed += b.fed;
          b.proposed.forEach((n, j) => { proposed[j] = (proposed[j] ?? 0) + n; accepted[j] = (accepted[j] ?? 0) + b.accepted[j]; });
        }
      }
      ms.plain.push(plainMs); ms.spec.push(specMs); cpu.plain.push(plainCpu); cpu.spec.push(specCpu);
    }
    const tokens = prompts.length * (o.gen - 1);   // decode time runs from the first token to the last
    const plainTokS = tokens / (median(ms.plain) / 1000), specTokS = tokens / (median(ms.spec) / 1000);
    return {
      model: label, speculate: o.speculate, draft: o.draft, cache: o.cache, dtype: o.dtype, prompts: prompts.length, gen: o.gen,
      tokens_per_forward: fed / forwards, speedup: specTokS / plainTokS, identical,
      plain_tok_s: plainTokS, spec_tok_s: specTokS, ttf8_ms_plain: median(ttf.plain), ttf8_ms_spec: median(ttf.spec),
      acceptance: proposed.map((n, j) => (n ? accepted[j] / n : 0)), rounds: o.rounds, threads: model.threads,
      // Process CPU time of whole runs (prefill included, all threads): steadier than wall time on a busy machine.
      cpu_ms_plain: median(cpu.plain), cpu_ms_spec: median(cpu.spec), cpu_speedup: median(cpu.plain) / median(cpu.spec),
    };
  } finally {
    await model.close();
  }
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const src = sourceTexts(o);
  const results: Record<string, unknown>[] = [];
  for (const m of o.models) {
    const dir = resolve(ROOT, m);
    const model = await loadModel(dir, { threads: 1 });
    const [a, b] = [model.encode('a'), model.encode('b')];
    const bos = a.length > 1 && a[0] === b[0] ? [a[0]] : [];
    const prompts = passages(src.texts, o.prompts, o.promptTokens * 8).map((t) => [...bos, ...model.encode(t).slice(-(o.promptTokens - bos.length))]);
    const heads = model.mctp !== null;
    await model.close();
    for (const mode of o.speculate) {
      if (mode === 'mctp' && !heads) { console.error(`[bench] ${m}: no MCTP heads, mctp skipped`); continue; }
      results.push(await benchModel(dir, m, prompts, { ...o, speculate: mode }));
      if (!o.json) console.error(`[bench] ${m} ${mode} done`);
    }
  }
  if (o.randomShape) {
    const dir = join(ROOT, '.bench', `${o.randomShape}-f32`);
    if (!existsSync(join(dir, 'config.json'))) makeRandomModel(o.randomShape as Parameters<typeof makeRandomModel>[0], 'f32', dir);
    // A random model has no tokenizer worth reading: a self-quoting prompt of token ids.
    const base = Array.from({ length: 96 }, (_, i) => 100 + ((i * 7919) % 5000));
    const prompt = [...base, ...base, ...base.slice(0, 8)];
    results.push(await benchModel(dir, `random ${o.randomShape} (self-quoting prompt)`, [prompt], { ...o, speculate: 'ngram', cache: 'sink:4+508' }));
  }
  const out = { results, source: src.name, cpu: cpus()[0]?.model ?? 'unknown', loadavg: loadavg().map((x) => +x.toFixed(2)), date: new Date().toISOString() };
  if (o.json) console.log(JSON.stringify(out));
  const f = (x: unknown, d = 2): string => (typeof x === 'number' ? x.toFixed(d) : String(x));
  console.error('model                                   mode   tok/fwd  plain tok/s  spec tok/s  speedup  cpu speedup  ttf8 plain/spec ms  identical');
  for (const r of results)
    console.error(`${String(r.model).padEnd(40)}${String(r.speculate).padEnd(6)}${f(r.tokens_per_forward).padStart(7)}  ${f(r.plain_tok_s, 1).padStart(11)}  ${f(r.spec_tok_s, 1).padStart(10)}  ${f(r.speedup).padStart(7)}  ${f(r.cpu_speedup).padStart(11)}  ${(f(r.ttf8_ms_plain, 0) + '/' + f(r.ttf8_ms_spec, 0)).padStart(18)}  ${String(r.identical)}`);
}

main().catch((e: unknown) => {
  console.error(e instanceof StreamlmError ? `streamlm: ${e.message}` : e);
  process.exitCode = 1;
});
