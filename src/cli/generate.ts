import { StreamlmError } from '../errors.js';
import { generate, type GenerationStats } from '../generate/generate.js';
import { loadModel } from '../model.js';
import { list, num, parseFlags, str } from './args.js';
import { checkPrompt, MODEL_FLAGS, MODEL_HELP, modelFlags, peakRssMb, plural } from './common.js';

const HELP = `usage: streamlm generate [--model DIR] --prompt TEXT [--max-tokens N] [--temperature T]
                        [--top-k K] [--top-p P] [--seed S] [--threads N] [--dtype auto|f32|q8_0]
                        [--cache POLICY] [--stop STR]...
Streams the completion to stdout; a summary (prompt tok/s, decode tok/s, peak RSS) goes to stderr.
POLICY: dense | window:W | sink:S+W | recompute:W (default sink:4+1020).
${MODEL_HELP}`;

export async function runGenerate(argv: string[]): Promise<void> {
  const { flags } = parseFlags(argv, {
    ...MODEL_FLAGS, prompt: { type: 'string' }, 'max-tokens': { type: 'string' }, temperature: { type: 'string' },
    'top-k': { type: 'string' }, 'top-p': { type: 'string' }, seed: { type: 'string' }, cache: { type: 'string' },
    stop: { type: 'string', multiple: true },
  }, 'generate');
  if (flags.help) { console.log(HELP); return; }
  const prompt = str(flags, 'prompt');
  if (prompt === undefined) throw new StreamlmError('a prompt is required', { field: '--prompt' });
  checkPrompt(prompt, '--prompt');
  const m = modelFlags(flags);
  const maxNewTokens = num(flags, 'max-tokens', { int: true, min: 0 }) ?? 128;
  const sampler = {
    temperature: num(flags, 'temperature', { min: 0 }) ?? 0,
    topK: num(flags, 'top-k', { int: true, min: 0 }),
    topP: num(flags, 'top-p', { min: 0, max: 1 }),
    seed: num(flags, 'seed', { int: true }),
  };
  const cache = str(flags, 'cache') ?? 'sink:4+1020';
  const model = await loadModel(m.dir, { threads: m.threads, dtype: m.dtype });
  try {
    const stats: GenerationStats = { promptTokens: 0, newTokens: 0, prefillMs: 0, decodeMs: 0, finishReason: 'length' };
    for await (const t of generate(model, { prompt, maxNewTokens, sampler, stop: list(flags, 'stop'), cache }, stats)) {
      if (t.text) process.stdout.write(t.text);
    }
    process.stdout.write('\n');
    const pre = stats.promptTokens / (stats.prefillMs / 1000);
    const dec = stats.newTokens > 1 ? (stats.newTokens - 1) / (stats.decodeMs / 1000) : 0;
    console.error(`[streamlm] prompt ${stats.promptTokens} tok, ${pre.toFixed(1)} tok/s | decode ${stats.newTokens} tok, ${dec.toFixed(1)} tok/s | peak RSS ${peakRssMb().toFixed(0)} MB | ${plural(model.threads, 'thread')}, cache ${cache}, stop: ${stats.finishReason}`);
  } finally {
    await model.close();
  }
}
