import { StreamlmError } from '../errors.js';
import type { Session } from '../session.js';
import { StreamDecoder, type TextTokenizer } from '../tokenizer.js';
import { Sampler, type SamplerOptions } from './sampler.js';
import { StopMatcher } from './stop.js';
import type { Drafter } from './ngram.js';
import { DraftTuner } from './draft-length.js';
import { draftsWithHeads, makeDrafter, type SpeculateOptions } from './speculate.js';

/**
 * What the stepper needs of a session: its next-token logits, a step, a place for a pending token,
 * and for speculative decoding the draft/accept pair (without it the stepper decodes plainly).
 */
export type StepperSession = Pick<Session, 'logits' | 'step' | 'defer'> & Partial<Pick<Session, 'draft' | 'accept' | 'draftLimit' | 'mctp' | 'headsUnused'>>;

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
  /** Speculative decoding (default off): draft tokens, verify them in one forward. */
  speculate?: SpeculateOptions;
  /** Tokens of the stream so far (the prompt), where the n-gram drafter looks for matches; default `context`. */
  history?: readonly number[];
}

/** How speculation went: forwards of the backbone, and per draft position how often its token was kept. */
export interface SpeculationStats {
  /** Backbone forwards during decoding (plain steps and verifications). */
  forwards: number;
  /** Tokens fed per forward (1 without speculation). */
  tokensPerForward: number;
  /** Per draft position i: drafts that reached it, and how many of those were accepted. */
  proposed: number[];
  accepted: number[];
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
  /** Set when speculative decoding is on. */
  speculation?: SpeculationStats;
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
  private readonly spec: { drafter: Drafter; draft: number } | null;
  /** With `--draft auto`: picks each draft's length from this stream's timings and acceptances. */
  private readonly tuner: DraftTuner | null;
  /** Tokens already fed (accepted drafts) waiting to be emitted, one per next(). */
  private queue: number[] = [];
  /** The next token when a verification already chose it (a correction), not yet fed or emitted. */
  private chosen: number | null = null;
  private forwards = 0;
  private fed = 0;
  /**
   * The logits array of this stepper's previous plain step, which the next writes into
   * (ForwardOptions.into): a decode step then allocates no vocab-sized array, which costs
   * Chromium's workers 10-20% of a step (docs/benchmarks.md, "Browser vs Node per-token gap").
   * Only steps this stepper made: it reads their logits (session.logits) before the next step.
   */
  private own: Float32Array | null = null;
  private proposed: number[] = [];
  private accepted: number[] = [];

  constructor(private readonly session: StepperSession, private readonly opts: DecodeOptions) {
    if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) throw new StreamlmError(`max new tokens must be an integer >= 0, got ${opts.maxNewTokens}`, { field: 'max-tokens' });
    this.sampler = new Sampler(opts.sampler);
    this.eos = new Set(opts.ignoreEos ? [] : opts.eos);
    this.decoder = opts.tokenizer ? new StreamDecoder(opts.tokenizer, { context: [...(opts.context ?? [])] }) : null;
    this.stop = new StopMatcher(opts.stop ?? []);
    if (session.headsUnused && draftsWithHeads(opts.speculate)) throw new StreamlmError(`--speculate ${opts.speculate!.mode} drafts with the model's MCTP heads: open the session with draftHeads: true`, { field: 'speculate' });
    const spec = makeDrafter(opts.speculate, session.mctp ?? null);
    this.spec = spec;
    this.tuner = spec?.tune ? DraftTuner.of(session, spec.drafter.name, spec.draft) : null;
    this.spec?.drafter.push(opts.history ?? opts.context ?? []);
  }

  get done(): boolean { return this.reason !== null; }

  /** One token: see the class comment. Call it until `finish` is set; after that it returns an empty finished step. */
  next(): DecodeStep {
    if (this.reason) return { id: null, text: '', finish: this.reason };
    this.t0 ??= performance.now();
    if (this.opts.signal?.aborted) return this.finish('abort');
    if (this.newTokens >= this.opts.maxNewTokens) return this.finish('length');
    const queued = this.queue.shift();
    if (queued !== undefined) return this.emit(queued, true);
    let id = this.chosen;
    this.chosen = null;
    if (id === null) {
      const logits = this.session.logits;
      if (!logits) throw new StreamlmError('the session has no logits to sample from: prefill it first', { field: 'session' });
      id = this.sampler.sample(logits);
    }
    if (this.eos.has(id)) return this.finish('stop');
    return this.speculate(id) ? this.emit(id, true) : this.emit(id, false);
  }

  /**
   * Drafts tokens to follow `id`, feeds `id` and the draft in one forward, keeps the longest prefix
   * the backbone agrees with (greedy: its argmax; sampling: the speculative sampling rule, so the
   * output is distributed as plain sampling) and remembers the backbone's own next token. Returns
   * false (nothing fed) when there is nothing to draft. Drafts stop two tokens short of the budget,
   * so the last token is left pending exactly as in plain decoding, and before an EOS token, which
   * is never fed.
   */
  private speculate(id: number): boolean {
    const s = this.session, spec = this.spec;
    if (!spec || !s.draft || !s.accept) return false;
    const limit = Math.min(spec.draft, this.opts.maxNewTokens - this.newTokens - 2, (s.draftLimit ?? 0) - 1);
    const k = this.tuner ? this.tuner.choose(limit) : limit;
    if (k < 1) return false;
    const t0 = this.tuner ? performance.now() : 0;
    const drafts = spec.drafter.propose(id, k);
    if (drafts.length === 0) return false;
    const t1 = this.tuner ? performance.now() : 0;
    const logits = s.draft([id, ...drafts]);
    const V = logits.length / (drafts.length + 1);
    let a = 0;
    for (; a < drafts.length; a++) {
      this.proposed[a] = (this.proposed[a] ?? 0) + 1;
      const t = this.sampler.verify(logits.subarray(a * V, (a + 1) * V), drafts[a]);
      if (t !== drafts[a] || this.eos.has(t)) { this.chosen = t; break; }
      this.accepted[a] = (this.accepted[a] ?? 0) + 1;
    }
    const kept = drafts.slice(0, a);
    const fed = this.fedBeforeStop([id, ...kept]);
    s.accept(fed);
    if (this.tuner) this.tuner.speculated(drafts.length, a, t1 - t0, performance.now() - t1);
    this.forwards++;
    this.fed += fed;
    spec.drafter.push([id, ...kept]);
    this.queue = kept;
    return true;
  }

  /**
   * How many of `ids` (about to be emitted in order) plain decoding would feed: all of them, unless
   * one completes a stop string; that token and those after it are never fed, so the cache ends
   * where plain decoding's does (a chat's next turn continues from the same state).
   */
  private fedBeforeStop(ids: readonly number[]): number {
    if (!this.decoder || !this.stop.active) return ids.length;
    const dec = this.decoder.clone(), stop = this.stop.clone();
    for (let i = 0; i < ids.length; i++) if (stop.push(dec.push(ids[i])).stopped) return i;
    return ids.length;
  }

  /** Emits a token: text, stop strings, budget; feeds it unless it was fed already. */
  private emit(id: number, fed: boolean): DecodeStep {
    this.newTokens++;
    const { text, stopped } = this.stop.push(this.decoder ? this.decoder.push(id) : '');
    if (stopped) return { ...this.finish('stop'), id, text };
    if (!fed && this.newTokens >= this.opts.maxNewTokens) {
      this.session.defer([id]);
      const end = this.finish('length');
      return { id, text: text + end.text, finish: end.finish };
    }
    if (!fed) {
      const t0 = this.tuner ? performance.now() : 0;
      this.own = this.session.step(id, this.own ? { into: this.own } : {});
      if (this.tuner) this.tuner.plain(performance.now() - t0);
      this.forwards++;
      this.fed++;
      this.spec?.drafter.push([id]);
    }
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
    const st: DecodeStats = { newTokens: this.newTokens, decodeMs: running ? performance.now() - this.t0! : this.ms, finishReason: this.reason };
    if (this.spec) {
      const n = this.proposed.length;
      st.speculation = {
        forwards: this.forwards, tokensPerForward: this.forwards ? this.fed / this.forwards : 0,
        proposed: [...this.proposed], accepted: Array.from({ length: n }, (_, i) => this.accepted[i] ?? 0),
      };
    }
    return st;
  }
}
