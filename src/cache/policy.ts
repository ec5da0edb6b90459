import { StreamlmError } from '../errors.js';
import type { SlotBook } from './book.js';

/**
 * A KV eviction policy. It decides which rotation group a new token joins and which tokens leave;
 * it never sees the model. The model never sees the policy: it gets slots and positions.
 */
export interface CachePolicy {
  /** Canonical spelling, e.g. `sink:4+252`. */
  readonly name: string;
  /** Tokens kept between steps (Infinity for dense). */
  readonly keep: number;
  /** Leading tokens never evicted (the attention sinks). */
  readonly sinks: number;
  /** Rotation groups this policy uses. */
  readonly numGroups: number;
  /** True for the sliding window with re-computation: no cache is carried between steps. */
  readonly recompute: boolean;
  /** Group of a token appended at cache position `pos`. */
  groupOf(pos: number): number;
  /** Evicts until the book holds at most `keep` tokens. */
  evict(book: SlotBook): void;
}

export const POLICY_FORMS = '`dense`, `window:W`, `sink:S+W` (S >= 0 sinks, W >= 1 recent tokens) or `recompute:W`';

function int(text: string, what: string, spec: string, min: number): number {
  if (!/^\d+$/.test(text)) throw new StreamlmError(`${what} must be an integer >= ${min}, got '${text}' in '${spec}'. Accepted forms: ${POLICY_FORMS}`, { field: 'cache' });
  const n = Number(text);
  if (n < min) throw new StreamlmError(`${what} must be >= ${min}, got ${n} in '${spec}'. Accepted forms: ${POLICY_FORMS}`, { field: 'cache' });
  return n;
}

/** Options that apply to every policy. */
export interface PolicyOptions {
  /**
   * Evict this many tokens at once when the cache overflows (default 1: per token, as in the paper).
   * With C > 1 the cache holds between keep−C+1 and keep tokens, so a token sometimes sees fewer
   * recent tokens than with per-token eviction.
   */
  evictChunk?: number;
}

/** Parses `dense`, `window:W`, `sink:S+W` or `recompute:W`. */
export function parsePolicy(spec: string, opts: PolicyOptions = {}): CachePolicy {
  const chunk = opts.evictChunk ?? 1;
  if (!Number.isInteger(chunk) || chunk < 1) throw new StreamlmError(`evict chunk must be a positive integer, got ${chunk}`, { field: 'evictChunk' });
  const s = spec.trim();
  if (s === 'dense') return new SinkWindow('dense', 0, Infinity, 1);
  const m = /^(window|sink|recompute):(.*)$/.exec(s);
  if (!m) throw new StreamlmError(`unknown cache policy '${spec}'. Accepted forms: ${POLICY_FORMS}`, { field: 'cache' });
  const [, kind, rest] = m;
  if (kind === 'window') {
    const w = int(rest, 'window size W', spec, 1);
    return new SinkWindow(`window:${w}`, 0, w, chunk);
  }
  if (kind === 'recompute') {
    const w = int(rest, 'window size W', spec, 1);
    return new Recompute(w);
  }
  const parts = rest.split('+');
  if (parts.length !== 2) throw new StreamlmError(`'${spec}' must give sinks and window as S+W. Accepted forms: ${POLICY_FORMS}`, { field: 'cache' });
  const sinks = int(parts[0], 'sink count S', spec, 0);
  const w = int(parts[1], 'window size W', spec, 1);
  return new SinkWindow(`sink:${sinks}+${w}`, sinks, w, chunk);
}

/**
 * Keep the first `sinks` tokens ever seen plus the last `window` ones. `dense` is window = ∞ and
 * `window:W` is sinks = 0: one bookkeeping rule for all three keeps their numbers comparable.
 */
class SinkWindow implements CachePolicy {
  readonly recompute = false;
  readonly numGroups: number;
  readonly keep: number;
  constructor(readonly name: string, readonly sinks: number, readonly window: number, readonly chunk: number) {
    this.keep = sinks + window;
    this.numGroups = sinks > 0 ? 2 : 1;
  }
  groupOf(pos: number): number { return this.sinks > 0 && pos >= this.sinks ? 1 : 0; }
  evict(book: SlotBook): void {
    const over = book.length - this.keep;
    if (over <= 0) return;
    const n = Math.min(Math.max(over, this.chunk), book.length - this.sinks);
    book.remove(this.sinks, this.sinks + n);
  }
}

/** Sliding window with re-computation: each token re-runs the `window` tokens before it from scratch. */
class Recompute implements CachePolicy {
  readonly recompute = true;
  readonly numGroups = 1;
  readonly sinks = 0;
  readonly name: string;
  constructor(readonly keep: number) { this.name = `recompute:${keep}`; }
  groupOf(): number { return 0; }
  evict(book: SlotBook): void {
    if (book.length > this.keep) book.remove(0, book.length - this.keep);
  }
}
