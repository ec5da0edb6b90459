import { StreamlmError } from '../errors.js';
import type { KVBatch } from '../models/transformer.js';
import type { SlotBook } from './book.js';
import type { KVCache } from './kvcache.js';
import { Dense } from './dense.js';
import { Recompute } from './recompute.js';
import { SinkWindow } from './sink.js';

/** The model's forward pass as a policy sees it: tokens and where their K/V go, in; logits out. */
export type Forward = (ids: readonly number[], batch: KVBatch, logits: 'last' | 'all') => Float32Array;

export interface RunOptions {
  /** Most tokens per forward (the session's prefill chunk). */
  chunk: number;
  /** Logits of the last token (default) or of every token, (ids.length, vocab). */
  logits?: 'last' | 'all';
  /**
   * Evict after the forward (default true). False appends a draft whose tokens may be taken back
   * (`KVCache.truncate`): evicting then would push real tokens out for tokens that never happen.
   */
  evictAfter?: boolean;
}

/**
 * A KV eviction policy. It decides which rotation group a new token joins, which tokens leave and
 * how tokens are fed through the model; it never sees the model, and the model never sees it: the
 * model gets slots and positions. One file per policy: dense.ts, sink.ts (sink:S+W and window:W),
 * recompute.ts.
 */
export interface CachePolicy {
  /** Canonical spelling, e.g. `sink:4+252`. */
  readonly name: string;
  /** Leading tokens never evicted (the attention sinks). */
  readonly sinks: number;
  /** Tokens kept between steps, or null for a policy that never evicts (dense). */
  readonly keep: number | null;
  /** Memory stays fixed however long the stream runs (all but dense). */
  readonly bounded: boolean;
  /**
   * Later steps read the K/V a step computes. False for recompute, which re-runs its window from
   * scratch every step and keeps only token ids (so its snapshots carry no K/V).
   */
  readonly carriesKV: boolean;
  /** Tokens evicted at once when the cache overflows. */
  readonly evictChunk: number;
  /** Rotation groups this policy uses. */
  readonly numGroups: number;
  /** KV slots a session needs with this prefill chunk; `maxTokens` bounds a dense cache. */
  capacity(prefillChunk: number, maxTokens: number): number;
  /** Group of a token appended at cache position `pos`. */
  groupOf(pos: number): number;
  /** Evicts until the book holds what the policy keeps. */
  evict(book: SlotBook): void;
  /** Tokens `evict` would remove from a book holding `length` tokens (always the oldest after the sinks). */
  evictCount(length: number): number;
  /** Feeds `ids` through the model in chunks, appending and evicting as this policy does. */
  run(cache: KVCache, ids: readonly number[], forward: Forward, opts: RunOptions): Float32Array;
  /** The largest policy of this kind whose cache fits in `slots` slots, spelled for a user, or null if none. */
  largestWithin(slots: number, prefillChunk: number): string | null;
}

export const POLICY_FORMS = '`dense`, `window:W`, `sink:S+W` (S >= 0 sinks, W >= 1 recent tokens) or `recompute:W`';

function int(text: string, what: string, spec: string, min: number): number {
  if (!/^\d+$/.test(text)) throw new StreamlmError(`${what} must be an integer >= ${min}, got '${text}' in '${spec}'. Accepted forms: ${POLICY_FORMS}`, { field: 'cache' });
  const n = Number(text);
  if (n < min) throw new StreamlmError(`${what} must be >= ${min}, got ${n} in '${spec}'. Accepted forms: ${POLICY_FORMS}`, { field: 'cache' });
  if (!Number.isSafeInteger(n)) throw new StreamlmError(`${what} ${text} is too large in '${spec}'`, { field: 'cache' });
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
  if (s === 'dense') return new Dense();
  const m = /^(window|sink|recompute):(.*)$/.exec(s);
  if (!m) throw new StreamlmError(`unknown cache policy '${spec}'. Accepted forms: ${POLICY_FORMS}`, { field: 'cache' });
  const [, kind, rest] = m;
  if (kind === 'window') return new SinkWindow(0, int(rest, 'window size W', spec, 1), chunk);
  if (kind === 'recompute') return new Recompute(int(rest, 'window size W', spec, 1));
  const parts = rest.split('+');
  if (parts.length !== 2) throw new StreamlmError(`'${spec}' must give sinks and window as S+W. Accepted forms: ${POLICY_FORMS}`, { field: 'cache' });
  return new SinkWindow(int(parts[0], 'sink count S', spec, 0), int(parts[1], 'window size W', spec, 1), chunk);
}
