import { DEFAULT_MAX_NEW_TOKENS } from '../defaults.js';
import { StreamlmError } from '../errors.js';
import type { Model } from '../model.js';
import type { Session, SessionOptions } from '../session.js';
import type { SamplerOptions } from './sampler.js';
import { DecodeStepper, type FinishReason, type SpeculationStats } from './stepper.js';
import { draftsWithHeads, type SpeculateOptions } from './speculate.js';

export interface GenerateOptions extends SessionOptions {
  /** Text prompt (at least one character); or pass `promptIds`. */
  prompt?: string;
  promptIds?: number[];
  /** Default 128. */
  maxNewTokens?: number;
  sampler?: SamplerOptions;
  /** Generation ends before any of these strings; they are not emitted. */
  stop?: string[];
  /** Aborting ends generation after the current token. */
  signal?: AbortSignal;
  /** Continue an existing session instead of creating one (its cache is kept). */
  session?: Session;
  /** Speculative decoding: `{ mode: 'ngram' | 'auto' | 'off', draft: K }` (default off). Greedy output is unchanged. */
  speculate?: SpeculateOptions;
  /** Keep generating past end-of-sequence tokens (benchmarks). */
  ignoreEos?: boolean;
}

export interface GeneratedToken {
  /** The token, or -1 for a last piece of text that no new token came with. */
  id: number;
  /** Text that became final with this token (may be empty while a character or stop string is pending). */
  text: string;
}

export interface GenerationStats {
  promptTokens: number;
  newTokens: number;
  prefillMs: number;
  decodeMs: number;
  finishReason: FinishReason;
  /** Forwards, tokens per forward and acceptance per draft position, when speculation is on. */
  speculation?: SpeculationStats;
}

/**
 * Streams tokens: prefill the prompt, then sample, append and evict one token at a time (the
 * DecodeStepper). The forward pass blocks its thread, so the loop yields to the event loop between
 * tokens. The generator's return value (`done: true`) is the run's statistics.
 */
export async function* generate(model: Model, opts: GenerateOptions): AsyncGenerator<GeneratedToken, GenerationStats> {
  // One rule for every model: an empty text is refused even where the tokenizer would add a BOS or
  // sink token, since what follows it alone is not a continuation of anything the user wrote.
  if (opts.prompt === '') throw new StreamlmError('the prompt is empty: give a prompt with at least one character (or promptIds)', { field: 'prompt' });
  const ids = opts.promptIds ?? (opts.prompt !== undefined ? model.encode(opts.prompt) : null);
  if (!ids || ids.length === 0) throw new StreamlmError('the prompt is empty: give a prompt with at least one token', { field: 'prompt' });
  const maxNew = opts.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
  if (!Number.isInteger(maxNew) || maxNew < 0) throw new StreamlmError(`max new tokens must be an integer >= 0, got ${opts.maxNewTokens}`, { field: 'max-tokens' });
  for (const id of ids) if (!Number.isInteger(id) || id < 0 || id >= model.hparams.vocabSize) throw new StreamlmError(`token id ${id} is outside the vocabulary [0, ${model.hparams.vocabSize})`, { field: 'prompt' });
  const own = !opts.session;
  const session = opts.session ?? model.session({ ...opts, maxTokens: opts.maxTokens ?? ids.length + maxNew + 1, draftHeads: draftsWithHeads(opts.speculate) });
  try {
    const t0 = performance.now();
    session.prefill(ids);
    const prefillMs = performance.now() - t0;
    const stepper = new DecodeStepper(session, {
      maxNewTokens: maxNew, sampler: opts.sampler, stop: opts.stop, eos: model.eosTokenIds, tokenizer: model.tokenizer,
      context: ids.slice(-4), signal: opts.signal, speculate: opts.speculate, history: ids, ignoreEos: opts.ignoreEos,
    });
    for (;;) {
      const s = stepper.next();
      if (s.id !== null) yield { id: s.id, text: s.text };
      else if (s.text) yield { id: -1, text: s.text };
      if (s.finish) break;
      await new Promise<void>((r) => setImmediate(r));
    }
    const st = stepper.stats();
    return { promptTokens: ids.length, newTokens: st.newTokens, prefillMs, decodeMs: st.decodeMs, finishReason: st.finishReason ?? 'length', ...(st.speculation ? { speculation: st.speculation } : {}) };
  } finally {
    if (own) session.close();
  }
}
