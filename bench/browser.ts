/**
 * bench:browser — the engine in headless Chromium against ours in Node and against wllama
 * (@wllama/wllama 3.8.1, llama.cpp compiled to wasm), on the same weights and thread count.
 *
 *   npm run bench:browser -- [--json] [--model DIR|FILE.gguf] [--gguf q4_K|q8_0|...] [--threads 2] [--dtype f32|q8_0] [--prompt 128]
 *                            [--gen 128] [--reps 3] [--stream-tokens 20000] [--no-wllama] [--no-speed]
 *                            [--fresh-logits] [--chromium-args '--js-flags=...'] [--cpu-profile DIR]
 *
 * One Chromium runs one cross-origin-isolated page (the static server of `streamlm web`): our engine
 * in a Web Worker through streamlm/browser, and wllama fed the GGUF our exporter writes
 * (src/export/gguf.ts) at the same dtype. Ours in Node runs in this process. The three sides run
 * `--reps` alternating rounds; each keeps its median. Ours: bench/browser-timing.ts (a warm-up,
 * the prompt in one prefill, `--gen` greedy steps); wllama: one warm-up completion, then a completion
 * of the same prompt text with EOS ignored, timed by llama.cpp itself. Then a memory trace over
 * `--stream-tokens` greedy tokens generated on one session under sink:4+508: the engine's
 * `WebAssembly.Memory` size every 1000 tokens, and the page's `performance.measureUserAgentSpecificMemory()`
 * (whole page, workers included; the page is cross-origin isolated) before, every 10 s, and after;
 * Chromium answers each of those only at a later GC, so they add a minute or two to the run.
 * `--model FILE.gguf` runs every side on that file at its own block types; `--gguf DTYPE` first
 * exports the --model folder to GGUF at DTYPE (src/export/gguf.ts, e.g. q4_K or q8_0) and runs every
 * side on that file, so the page-vs-Node ratio is also measured on block-quantized weights.
 * `--no-speed` skips the speed rounds (the memory run alone: `--no-speed --stream-tokens 100000`).
 *
 * Output: a table on stderr; with --json one JSON object on stdout with the raw figures,
 * `browser_vs_node` and `browser_vs_wllama` (decode tok/s ratios) and their prefill counterparts,
 * and our CPU ms per generated token on each side (`page_cpu_ms_per_token`: the Chromium renderers'
 * /proc CPU time over the timed call; `node_cpu_ms_per_token`: this process's) with
 * `cpu_browser_vs_node`, which a loaded machine moves far less than wall-clock tok/s.
 */
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { build } from 'esbuild';
import { defaultModelDir } from '../src/cli/common.js';
import { startWebServer } from '../src/server/static.js';
import { exportGguf, GGUF_TYPES, type GgufDtype } from '../src/export/gguf.js';
import { loadModel } from '../src/model.js';
import { buildBrowserBundle, launchChromium } from '../test/helpers/browser-page.js';
import { timeWarm, warmUp, type MemoryTrace, type Speeds } from './browser-timing.js';
import { rendererCpuMs, selfCpuMs } from './browser-cpu.js';
import { nodeProfiler, workerProfiler, type Profiler } from './browser-profile.js';

const argv = process.argv.slice(2);
const flag = (name: string): string | undefined => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : undefined; };
const json = argv.includes('--json');
const modelArg = resolve(flag('model') ?? defaultModelDir());
/** --gguf DTYPE: export --model (an HF folder) to GGUF at DTYPE with our exporter, and run every side on that file. */
const ggufDtype = flag('gguf') as GgufDtype | undefined;
const ggufIn = /\.gguf$/i.test(modelArg);
if (ggufDtype !== undefined && !GGUF_TYPES.includes(ggufDtype)) die(`--gguf: unknown dtype '${ggufDtype}' (${GGUF_TYPES.join(', ')})`);
if (ggufDtype !== undefined && ggufIn) die(`--gguf exports an HF folder, but --model is already a .gguf file: ${modelArg}`);
/** Every side runs a GGUF file at its own block types ('auto'); an HF folder at --dtype. */
const onGguf = ggufIn || ggufDtype !== undefined;
const threads = Number(flag('threads') ?? 2);
const dtype = (onGguf ? 'auto' : flag('dtype') ?? 'f32') as 'auto' | 'f32' | 'q8_0';
const promptLen = Number(flag('prompt') ?? 128);
const gen = Number(flag('gen') ?? 128);
const reps = Number(flag('reps') ?? 3);
const streamTokens = Number(flag('stream-tokens') ?? 20000);
const speed = !argv.includes('--no-speed');
/**
 * Our decode steps (both sides) write each step's logits into the previous step's array
 * (ForwardOptions.into), as the product's decode loop (DecodeStepper) does; --fresh-logits takes a
 * new array per step instead, as every step did before (the A/B of docs/benchmarks.md).
 */
const reuseLogits = !argv.includes('--fresh-logits');
const withWllama = speed && !argv.includes('--no-wllama');
const CACHE = 'sink:4+508';
/** --cpu-profile DIR: V8 CPU profiles of the page's engine worker and of Node over the speed rounds. */
const profileDir = flag('cpu-profile');
/** Extra Chromium command-line arguments, space-separated (diagnostics such as `--js-flags=--no-liftoff`). */
const chromiumArgs = (flag('chromium-args') ?? '').split(' ').filter(Boolean);
const log = (s: string): void => { process.stderr.write(s + '\n'); };
function die(message: string): never {
  process.stderr.write(`bench:browser: ${message}\n`);
  process.exit(2);
}
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

const dist = buildBrowserBundle();
const root = resolve(import.meta.dirname, '..');
await build({ entryPoints: [join(root, 'bench/browser-worker.ts')], outfile: join(dist, 'bench-worker.js'), bundle: true, format: 'esm', platform: 'browser', logLevel: 'warning',
  plugins: [{ name: 'web', setup(b) { b.onResolve({ filter: /platform\/current\.js$/ }, () => ({ path: join(root, 'src/platform/current-web.ts') })); } }] });
await build({ entryPoints: [join(root, 'bench/browser-page.ts')], outfile: join(dist, 'bench-page.js'), bundle: true, format: 'esm', platform: 'browser', logLevel: 'warning' });
const html = '<!doctype html><meta charset="utf-8"><title>loading</title><script type="module" src="/bench-page.js"></script>';
writeFileSync(join(dist, 'bench.html'), html);
copyFileSync(join(root, 'node_modules/@wllama/wllama/esm/wasm/wllama.wasm'), join(dist, 'wllama.wasm'));
// The model every side runs: the --model folder or .gguf file, or the GGUF exported from the folder.
const modelPath = ggufDtype ? join(dist, `model-${ggufDtype}.gguf`) : modelArg;
if (ggufDtype) exportGguf(modelArg, modelPath, { dtype: ggufDtype });
// wllama takes GGUF only: the same file, or (HF folder) the folder exported at --dtype.
const wllamaUrl = onGguf ? `/model/${encodeURIComponent(basename(modelPath))}` : '/model.gguf';
if (withWllama && !onGguf) exportGguf(modelArg, join(dist, 'model.gguf'), { dtype: dtype as GgufDtype });

const srv = await startWebServer({ modelDir: modelPath, port: 0, distDir: dist });
const browser = await launchChromium(chromiumArgs);
const page = await browser.newPage();
const consoleErrors: string[] = [];
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
await page.goto(srv.url + '/bench.html');
await page.waitForFunction(() => document.title === 'ready');
/** Calls `window.bench[fn](...args)` in the page (bench/browser-page.ts). */
async function call<T>(fn: string, ...args: unknown[]): Promise<T> {
  const r: unknown = await page.evaluate(([f, a]) => (window as unknown as { bench: Record<string, (...x: unknown[]) => Promise<unknown>> }).bench[f](...a), [fn, args] as [string, unknown[]]);
  return r as T;
}

const node = await loadModel(modelPath, { threads, dtype });
const text = readFileSync(join(root, 'README.md'), 'utf8');
// Our exporter's GGUF carries a placeholder vocabulary, so its prompt ids come from the folder's tokenizer.
const prompt = (ggufDtype ? await promptIds(modelArg) : node.encode(text)).slice(0, promptLen);
async function promptIds(dir: string): Promise<number[]> {
  const m = await loadModel(dir, { threads: 1 });
  try { return m.encode(text); } finally { await m.close(); }
}
const tLoad = performance.now();
const loaded = await call<{ threads: number; isolated: boolean; simd: string | null }>('ours', { t: 'load', url: onGguf ? wllamaUrl : '/model/', threads, dtype });
log(`page: model loaded on ${loaded.threads} threads in ${((performance.now() - tLoad) / 1000).toFixed(1)} s (cross-origin isolated: ${loaded.isolated}, kernels: ${loaded.simd ?? 'given'})`);
let wllamaError: string | null = null;
let llamaVersion = '';
let wllamaLetters = prompt.length;
if (withWllama) {
  try {
    llamaVersion = await call<string>('wllamaLoad', wllamaUrl, threads, 1024);
    // llama.cpp adds a few tokens of its own (BOS, a leading space); size the prompt so it counts ours.
    const w = await call<{ prompt_n: number }>('wllamaTime', prompt.length, 8);
    wllamaLetters = prompt.length - (w.prompt_n - prompt.length);
  } catch (e) {
    wllamaError = (e as Error).message;
  }
}

/** One timed call: its speeds and the CPU ms it took per generated token (prefill included; --gen >> --prompt). */
type Timed = Speeds & { cpu_ms_per_token?: number };
const profilers: Profiler[] = profileDir ? [await workerProfiler(browser, '/bench-worker.js'), nodeProfiler()] : [];
for (const p of profilers) await p.start();
const rounds: { page: Timed[]; node: Timed[]; wllama: Speeds[] } = { page: [], node: [], wllama: [] };
/** Times `run` (a warm-up done), adding the CPU ms per token that `cpu` counts over it. */
async function timed(cpu: () => number, run: () => Promise<Speeds> | Speeds): Promise<Timed> {
  const c0 = cpu();
  const r = await run();
  return { prefill_tok_s: r.prefill_tok_s, decode_tok_s: r.decode_tok_s, cpu_ms_per_token: (cpu() - c0) / gen };
}
let wllamaPromptN = 0;
for (let r = 0; speed && r < reps; r++) {
  const order = r % 2 === 0 ? ['page', 'node', 'wllama'] : ['wllama', 'node', 'page'];
  for (const side of order) {
    if (side === 'page') {
      await call('ours', { t: 'warm', prompt, cache: CACHE });
      rounds.page.push(await timed(rendererCpuMs, () => call<Speeds>('ours', { t: 'time', prompt, gen, cache: CACHE, reuseLogits })));
    }
    if (side === 'node') {
      warmUp(node, prompt, CACHE);
      rounds.node.push(await timed(selfCpuMs, () => timeWarm(node, prompt, gen, CACHE, reuseLogits)));
    }
    if (side === 'wllama' && withWllama && !wllamaError) {
      const w = await call<Speeds & { prompt_n: number }>('wllamaTime', wllamaLetters, gen);
      wllamaPromptN = w.prompt_n;
      rounds.wllama.push(w);
    }
  }
  const cpuOf = (x: Timed | undefined): string => x?.cpu_ms_per_token?.toFixed(3) ?? '-';
  log(`round ${r + 1}/${reps}: page ${rounds.page.at(-1)!.decode_tok_s.toFixed(1)} (${cpuOf(rounds.page.at(-1))} CPU ms/token), node ${rounds.node.at(-1)!.decode_tok_s.toFixed(1)} (${cpuOf(rounds.node.at(-1))}), wllama ${rounds.wllama.at(-1)?.decode_tok_s.toFixed(1) ?? '-'} decode tok/s`);
}
if (profileDir) {
  mkdirSync(profileDir, { recursive: true });
  const names = ['page-worker.cpuprofile', 'node.cpuprofile'];
  for (const [i, p] of profilers.entries()) writeFileSync(join(profileDir, names[i]), JSON.stringify(await p.stop()));
  log(`CPU profiles: ${names.map((n) => join(profileDir, n)).join(', ')}`);
}
const med = (xs: Speeds[]): Speeds | null => (xs.length ? { prefill_tok_s: median(xs.map((x) => x.prefill_tok_s)), decode_tok_s: median(xs.map((x) => x.decode_tok_s)) } : null);
const medCpu = (xs: Timed[]): number | null => (xs.length ? median(xs.map((x) => x.cpu_ms_per_token ?? NaN)) : null);
const pageCpu = medCpu(rounds.page), nodeCpu = medCpu(rounds.node);
const pageS = med(rounds.page), nodeS = med(rounds.node), wllamaS = med(rounds.wllama);

let memory: MemoryTrace | null = null;
if (streamTokens > 0) {
  log(`memory run: ${streamTokens} tokens under ${CACHE}...`);
  memory = await call<MemoryTrace>('memoryRun', { t: 'memory', prompt: prompt.slice(0, 16), tokens: streamTokens, every: 1000, cache: CACHE }, 10_000);
}
const chromium = browser.version();
await browser.close();
await srv.close();
await node.close();
rmSync(dist, { recursive: true, force: true });

const r3 = (x: number): number => Math.round(x * 1000) / 1000;
const out = {
  date: new Date().toISOString(), cpu: cpus()[0]?.model, loadavg: loadavg().map((x) => r3(x)), chromium, libllama: llamaVersion,
  model: modelArg, model_file: modelPath === modelArg ? null : basename(modelPath), dtype: onGguf ? `gguf:${ggufDtype ?? 'file'}` : dtype, threads, page_threads: loaded.threads, cross_origin_isolated: loaded.isolated, page_simd: loaded.simd, node_simd: node.simd, prompt_tokens: prompt.length,
  wllama_prompt_tokens: wllamaPromptN, gen, reps, cache: CACHE, reuse_logits: reuseLogits,
  page: pageS, node: nodeS, wllama: wllamaS, wllama_error: wllamaError, rounds,
  browser_vs_node: pageS && nodeS ? r3(pageS.decode_tok_s / nodeS.decode_tok_s) : null,
  browser_vs_wllama: pageS && wllamaS ? r3(pageS.decode_tok_s / wllamaS.decode_tok_s) : null,
  page_cpu_ms_per_token: pageCpu, node_cpu_ms_per_token: nodeCpu,
  cpu_browser_vs_node: pageCpu && nodeCpu ? r3(nodeCpu / pageCpu) : null,
  prefill_browser_vs_node: pageS && nodeS ? r3(pageS.prefill_tok_s / nodeS.prefill_tok_s) : null,
  prefill_browser_vs_wllama: pageS && wllamaS ? r3(pageS.prefill_tok_s / wllamaS.prefill_tok_s) : null,
  memory: memory && memorySummary(memory),
  console_errors: consoleErrors.slice(0, 5),
};
const f = (s: Speeds | null): string => (s ? `${s.prefill_tok_s.toFixed(0).padStart(8)} ${s.decode_tok_s.toFixed(1).padStart(8)}` : '       -        -');
log(`\n${chromium}, ${out.cpu}, load ${out.loadavg.join(' ')}; ${out.dtype}, ${threads} threads, prompt ${prompt.length}, gen ${gen}, median of ${reps}`);
log('side            prefill   decode (tok/s)');
if (speed) {
log(`page (ours)    ${f(pageS)}`);
log(`node (ours)    ${f(nodeS)}`);
log(`page (wllama)  ${f(wllamaS)}${wllamaError ? '  ' + wllamaError : ''}`);
log(`browser_vs_node ${out.browser_vs_node}, browser_vs_wllama ${out.browser_vs_wllama}`);
log(`CPU ms per token (prefill included): page ${pageCpu?.toFixed(3)}, node ${nodeCpu?.toFixed(3)}; cpu_browser_vs_node ${out.cpu_browser_vs_node}`);
}
const m = out.memory;
if (m) {
  log(`memory over ${m.tokens} tokens (${CACHE}, ${m.tok_s.toFixed(0)} tok/s): wasm ${m.wasm_bytes_start} -> ${m.wasm_bytes_end} bytes (max ${m.wasm_bytes_max}), flat: ${m.flat}`);
  log(`  page memory (measureUserAgentSpecificMemory): ${m.ua_memory_start ?? '-'} -> ${m.ua_memory_end ?? '-'} bytes (max ${m.ua_memory_max ?? '-'}, ${m.ua_samples.length} samples)`);
}
if (json) console.log(JSON.stringify(out));

/** The memory trace's JSON: wasm memory at start, end and its max, and the page's memory around the run. */
interface MemorySummary {
  tokens: number; every: number; tok_s: number; wasm_bytes_start: number; wasm_bytes_end: number; wasm_bytes_max: number; flat: boolean;
  ua_memory_start: number | null; ua_memory_end: number | null; ua_memory_max: number | null; ua_samples: (number | null)[];
}
function memorySummary(t: MemoryTrace): MemorySummary {
  const ua = t.ua_bytes.filter((x): x is number => x !== null);
  return {
    tokens: t.tokens, every: t.every, tok_s: r3(t.tok_s),
    wasm_bytes_start: t.wasm_bytes[0], wasm_bytes_end: t.wasm_bytes.at(-1)!, wasm_bytes_max: Math.max(...t.wasm_bytes),
    flat: Math.max(...t.wasm_bytes) === t.wasm_bytes[0],
    ua_memory_start: t.ua_bytes[0] ?? null, ua_memory_end: t.ua_bytes.at(-1) ?? null, ua_memory_max: ua.length ? Math.max(...ua) : null,
    ua_samples: t.ua_bytes,
  };
}
