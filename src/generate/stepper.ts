import { StreamlmError } from '../errors.js';
import type { Session } from '../session.js';
import { StreamDecoder, type TextTokenizer } from '../tokenizer.js';
import { Sampler, type SamplerOptions } from './sampler.js';
import { StopMatcher } from './stop.js';

/** What the stepper needs of a session: its next-token logits, a step, and a place for a pending token. */
export type StepperSession = Pick<Session, 'logits' | 'step' | 'defer'>;

/** `stop`: an end-of-sequence token or a stop string; `length`: the token budget; `abort`: the signal. */
export type FinishReason = 'stop' | 'length' | 'abort';

export interface DecodeOptions {
  /** Tokens to generate at most. */
  maxNewTokens: number;
  sampler?: SamplerOptions;
  /** Generation ends before any of these strings; they are not emitted. */
  stop?: readonly string[];
  /** Tokens that end generation (not emitted, not fed). */
  eos: Iterable<number>;
  /** Keep generating past end-of-sequence tokens (benchmarks, tests). */
  ignoreEos?: boolean;
  /** Turns ids into text; without one every step's text is ''. */
  tokenizer: TextTokenizer | null;
  /** The last tokens fed before generation, so the first word's leading space survives decoding. */
  context?: readonly number[];
  /** Checked before each token: once aborted, generation ends. */
  signal?: AbortSignal;
}

export interface DecodeStep {
  /** The token sampled at this step, or null when the step only ended generation (EOS, abort, budget). */
  id: number | null;
  /** Text that became final at this step; when the step ends generation, the flushed tail too. */
  text: string;
  /** Set on the step that ended generation. */
  finish: FinishReason | null;
}

export interface DecodeStats {
  newTokens: number;
  /** From the first step to the end of generation. */
  decodeMs: number;
  /** Null while generation runs. */
  finishReason: FinishReason | null;
}

/**
 * The one decode loop body, shared by `generate`, the server and the terminal chat: sample from the
 * session's logits, stop at EOS, turn ids into text as it becomes final, hold back text that could
 * start a stop string, and feed the token back. Callers own the loop (and when to yield), so the
 * server can interleave many streams one token at a time.
 *
 * A token that ends generation by budget is not fed now but left pending on the session
 * (`Session.defer`): a continued conversation feeds it first, and a one-off stream saves the forward.
 */
export class DecodeStepper {
  private readonly sampler: Sampler;
  private readonly eos: ReadonlySet<number>;
  private readonly decoder: StreamDecoder | null;
  private readonly stop: StopMatcher;
  private newTokens = 0;
  private t0: number | null = null;
  private ms = 0;
  private reason: FinishReason | null = null;

  constructor(private readonly session: StepperSession, private readonly opts: DecodeOptions) {
    if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) throw new StreamlmError(`max new tokens must be an integer >= 0, got ${opts.maxNewTokens}`, { field: 'max-tokens' });
    this.sampler = new Sampler(opts.sampler);
    this.eos = new Set(opts.ignoreEos ? [] : opts.eos);
    this.decoder = opts.tokenizer ? new StreamDecoder(opts.tokenizer, { context: [...(opts.context ?? [])] }) : null;
    this.stop = new StopMatcher(opts.stop ?? []);
  }

  get done(): boolean { return this.reason !== null; }

  /** One token: see the class comment. Call it until `finish` is set; after that it returns an empty finished step. */
  next(): DecodeStep {
    if (this.reason) return { id: null, text: '', finish: this.reason };
    this.t0 ??= performance.now();
    if (this.opts.signal?.aborted) return this.finish('abort');
    if (this.newTokens >= this.opts.maxNewTokens) return this.finish('length');
    const logits = this.session.logits;
    if (!logits) throw new StreamlmError('the session has no logits to sample from: prefill it first', { field: 'session' });
    const id = this.sampler.sample(logits);
    if (this.eos.has(id)) return this.finish('stop');
    this.newTokens++;
    const { text, stopped } = this.stop.push(this.decoder ? this.decoder.push(id) : '');
    if (stopped) return { ...this.finish('stop'), id, text };
    if (this.newTokens >= this.opts.maxNewTokens) {
      this.session.defer([id]);
      const end = this.finish('length');
      return { id, text: text + end.text, finish: end.finish };
    }
    this.session.step(id);
    return { id, text, finish: null };
  }

  /**
   * Ends generation now (an abort before the first token, a server shutting down). Unless a stop
   * string or EOS ended it, the text held back is flushed into the returned step.
   */
  finish(reason: FinishReason): DecodeStep {
    if (this.reason) return { id: null, text: '', finish: this.reason };
    this.reason = reason;
    this.ms = this.t0 === null ? 0 : performance.now() - this.t0;
    const text = reason === 'stop' ? '' : this.stop.push(this.decoder ? this.decoder.flush() : '', true).text;
    return { id: null, text, finish: reason };
  }

  stats(): DecodeStats {
    const running = this.reason === null && this.t0 !== null;
    return { newTokens: this.newTokens, decodeMs: running ? performance.now() - this.t0! : this.ms, finishReason: this.reason };
  }
}
