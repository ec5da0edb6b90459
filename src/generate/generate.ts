import { StreamlmError } from '../errors.js';
import type { Model } from '../model.js';
import type { Session, SessionOptions } from '../session.js';
import { StreamDecoder } from '../tokenizer.js';
import { Sampler, type SamplerOptions } from './sampler.js';
import { StopMatcher } from './stop.js';

export interface GenerateOptions extends SessionOptions {
  /** Text prompt; or pass `promptIds`. */
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
}

export interface GeneratedToken {
  id: number;
  /** Text that became final with this token (may be empty while a character or stop string is pending). */
  text: string;
}

export interface GenerationStats {
  promptTokens: number;
  newTokens: number;
  prefillMs: number;
  decodeMs: number;
  finishReason: 'stop' | 'length' | 'abort';
}

/**
 * Streams tokens: prefill the prompt, then sample, append and evict one token at a time.
 * The forward pass blocks its thread, so the loop yields to the event loop between tokens.
 */
export async function* generate(model: Model, opts: GenerateOptions, stats?: GenerationStats): AsyncGenerator<GeneratedToken> {
  const ids = opts.promptIds ?? (opts.prompt !== undefined ? model.encode(opts.prompt) : null);
  if (!ids || ids.length === 0) throw new StreamlmError('the prompt is empty: give a prompt with at least one token', { field: 'prompt' });
  const maxNew = opts.maxNewTokens ?? 128;
  if (!Number.isInteger(maxNew) || maxNew < 0) throw new StreamlmError(`max new tokens must be an integer >= 0, got ${opts.maxNewTokens}`, { field: 'max-tokens' });
  for (const id of ids) if (!Number.isInteger(id) || id < 0 || id >= model.hparams.vocabSize) throw new StreamlmError(`token id ${id} is outside the vocabulary [0, ${model.hparams.vocabSize})`, { field: 'prompt' });
  const sampler = new Sampler(opts.sampler);
  const eos = new Set(model.eosTokenIds);
  const own = !opts.session;
  const session = opts.session ?? model.session({ ...opts, maxTokens: opts.maxTokens ?? ids.length + maxNew + 1 });
  // The last prompt tokens give the decoder context, so a leading space of the first new word survives.
  const decoder = model.tokenizer ? new StreamDecoder(model.tokenizer, { context: ids.slice(-4) }) : null;
  const stop = new StopMatcher(opts.stop ?? []);
  const st: GenerationStats = stats ?? { promptTokens: 0, newTokens: 0, prefillMs: 0, decodeMs: 0, finishReason: 'length' };
  st.promptTokens = ids.length;
  st.finishReason = 'length';
  try {
    let t0 = performance.now();
    let logits = session.prefill(ids);
    st.prefillMs = performance.now() - t0;
    t0 = performance.now();
    for (let n = 0; n < maxNew; n++) {
      if (opts.signal?.aborted) { st.finishReason = 'abort'; break; }
      const id = sampler.sample(logits);
      if (eos.has(id)) { st.finishReason = 'stop'; break; }
      st.newTokens++;
      const piece = decoder ? decoder.push(id) : '';
      const { text, stopped } = stop.push(piece);
      yield { id, text };
      if (stopped) { st.finishReason = 'stop'; break; }
      if (n + 1 < maxNew) logits = session.step(id);
      await new Promise<void>((r) => setImmediate(r));
    }
    st.decodeMs = performance.now() - t0;
    if (st.finishReason !== 'stop') {
      const tail = stop.push(decoder ? decoder.flush() : '', true);
      if (tail.text) yield { id: -1, text: tail.text };
    }
  } finally {
    if (own) session.close();
  }
}
