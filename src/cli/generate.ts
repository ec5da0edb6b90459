import { parsePolicy } from '../cache/policy.js';
import { DEFAULT_CACHE, DEFAULT_MAX_NEW_TOKENS } from '../defaults.js';
import { StreamlmError } from '../errors.js';
import { generate } from '../generate/generate.js';
import { list, num, parseFlags, str } from './args.js';
import { SPECULATE_FLAGS, SPECULATE_HELP, speculateFlags, speculationSummary } from './speculate.js';
import { checkPrompt, MODEL_FLAGS, MODEL_HELP, modelFlags, peakRssMb, plural, loadCliModel } from './common.js';

const HELP = `usage: streamlm generate [--model DIR] --prompt TEXT [--max-tokens N] [--temperature T]
                        [--top-k K] [--top-p P] [--seed S] [--threads N] [--dtype auto|f32|q8_0|q6_K|q5_K|q4_K|q4_0]
                        [--cache POLICY] [--evict-chunk C] [--stop STR]... [--speculate MODE] [--draft K]
Streams the completion to stdout; a summary (prompt tok/s, decode tok/s, peak RSS) goes to stderr.
POLICY: dense | window:W | sink:S+W | recompute:W (default ${DEFAULT_CACHE}). --evict-chunk C evicts
C tokens at once when the cache overflows (default 1). The prompt must not be empty.
${SPECULATE_HELP}
${MODEL_HELP}`;

export async function runGenerate(argv: string[]): Promise<void> {
  const { flags } = parseFlags(argv, {
    ...MODEL_FLAGS, prompt: { type: 'string' }, 'max-tokens': { type: 'string' }, temperature: { type: 'string' },
    'top-k': { type: 'string' }, 'top-p': { type: 'string' }, seed: { type: 'string' }, cache: { type: 'string' },
    stop: { type: 'string', multiple: true }, 'evict-chunk': { type: 'string' }, ...SPECULATE_FLAGS,
  }, 'generate');
  if (flags.help) { console.log(HELP); return; }
  const prompt = str(flags, 'prompt');
  if (prompt === undefined) throw new StreamlmError('a prompt is required', { field: '--prompt' });
  if (prompt === '') throw new StreamlmError('the prompt is empty: give at least one character', { field: '--prompt' });
  checkPrompt(prompt, '--prompt');
  const m = modelFlags(flags);
  const maxNewTokens = num(flags, 'max-tokens', { int: true, min: 0 }) ?? DEFAULT_MAX_NEW_TOKENS;
  const sampler = {
    temperature: num(flags, 'temperature', { min: 0 }) ?? 0,
    topK: num(flags, 'top-k', { int: true, min: 0 }),
    topP: num(flags, 'top-p', { min: 0, max: 1 }),
    seed: num(flags, 'seed', { int: true }),
  };
  const cache = str(flags, 'cache') ?? DEFAULT_CACHE;
  const evictChunk = num(flags, 'evict-chunk', { int: true, min: 1 });
  parsePolicy(cache, { evictChunk });
  const speculate = speculateFlags(flags);
  const model = await loadCliModel(m);
  try {
    const promptIds = model.encode(prompt);
    const maxTokens = promptIds.length + maxNewTokens + 1;
    model.checkCacheFits({ cache, evictChunk, maxTokens }, 1, { cache: '--cache', maxTokens: '--max-tokens' });
    const run = generate(model, { promptIds, maxNewTokens, sampler, stop: list(flags, 'stop'), cache, evictChunk, maxTokens, speculate });
    let r = await run.next();
    for (; !r.done; r = await run.next()) if (r.value.text) process.stdout.write(r.value.text);
    const stats = r.value;
    process.stdout.write('\n');
    const pre = stats.promptTokens / (stats.prefillMs / 1000);
    const dec = stats.newTokens > 1 ? (stats.newTokens - 1) / (stats.decodeMs / 1000) : 0;
    console.error(`[streamlm] prompt ${stats.promptTokens} tok, ${pre.toFixed(1)} tok/s | decode ${stats.newTokens} tok, ${dec.toFixed(1)} tok/s | peak RSS ${peakRssMb().toFixed(0)} MB | ${plural(model.threads, 'thread')}, cache ${cache}, stop: ${stats.finishReason}${speculationSummary(stats.speculation)}`);
  } finally {
    await model.close();
  }
}
