import { StreamlmError } from '../errors.js';
import type { HParams } from '../models/config.js';
import { kvBytes } from './kvcache.js';
import type { CachePolicy } from './policy.js';

/** The wasm32 ceiling: a WebAssembly.Memory holds at most 65536 pages of 64 KiB. */
export const WASM_MAX_BYTES = 2 ** 32;

/**
 * An upper estimate of the scratch one forward of `rows` tokens over `slots` cache slots takes (the
 * buffers Transformer.forward allocates, all logits included), doubled for the low-rank path's extra
 * buffers, plus 1 MiB of slack: `fixed + perSlot · slots`. Only used to refuse caches that could
 * never run, so an over-estimate costs a little headroom, never a wrong answer.
 */
export function activationBytes(hp: HParams, rows: number, threads: number): { fixed: number; perSlot: number } {
  const H = hp.hiddenSize, q = hp.numHeads * hp.headDim, kv = hp.numKvHeads * hp.headDim, F = hp.intermediateSize;
  const perRow = 4 * (5 * H + q + 2 * kv + 3 * q + 3 * F + hp.headDim * 3 + hp.vocabSize) + 2 * Math.max(H, F, q);
  // The attention kernel's per-thread score rows are the part that grows with the cache.
  return { fixed: 2 * rows * perRow + (1 << 20), perSlot: 2 * 4 * threads };
}

/** Names to blame in errors: library option names by default, CLI flags from the CLI. */
export interface BudgetNames { cache?: string; count?: string; maxTokens?: string }

export interface CacheRequest {
  hp: HParams;
  policy: CachePolicy;
  prefillChunk: number;
  /** Slots each cache gets (policy.capacity). */
  capacity: number;
  /** Caches of that size wanted at once (the server's max sessions). */
  count: number;
  /** Bytes of wasm memory already taken (weights, scratch, other caches). */
  allocated: number;
  threads: number;
}

const gib = (b: number): string => b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(1)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`;

/**
 * Refuses, before anything is allocated, caches that cannot fit in wasm memory beside what is
 * already there and one forward's activations. The error names the option or flag and the largest
 * value that fits.
 */
export function checkCacheFits(r: CacheRequest, names: BudgetNames = {}): void {
  const cacheName = names.cache ?? 'cache', countName = names.count ?? 'maxSessions', tokensName = names.maxTokens ?? 'maxTokens';
  const kvDim = r.hp.numKvHeads * r.hp.headDim;
  const perSlot = kvBytes(r.hp.numLayers, kvDim, 1);
  // Recompute runs its whole window in one forward; the others at most one prefill chunk.
  const rows = r.policy.carriesKV ? r.prefillChunk : r.capacity;
  const act = activationBytes(r.hp, rows, r.threads);
  const one = kvBytes(r.hp.numLayers, kvDim, r.capacity);
  const left = WASM_MAX_BYTES - r.allocated;
  if (r.count * one + act.fixed + act.perSlot * r.capacity <= left) return;
  const free = left - act.fixed - act.perSlot * r.capacity;
  const room = `wasm memory stops at 4 GiB and ${gib(left)} of it is left beside the weights`;
  if (r.count > 1 && one <= free) {
    throw new StreamlmError(`${r.count} caches of ${gib(one)} (${r.policy.name}) need ${gib(r.count * one)}; ${room}: at most ${Math.floor(free / one)} fit`, { field: countName });
  }
  // The largest cache: every slot costs its K/V, its attention scores, and for recompute a forward row.
  const base = activationBytes(r.hp, r.policy.carriesKV ? r.prefillChunk : 0, r.threads).fixed;
  const perRow = r.policy.carriesKV ? 0 : activationBytes(r.hp, 1, r.threads).fixed - activationBytes(r.hp, 0, r.threads).fixed;
  const slots = Math.floor(Math.max(left - base, 0) / (r.count * perSlot + act.perSlot + perRow));
  const fits = r.policy.largestWithin(slots, r.prefillChunk);
  const what = r.policy.bounded ? `'${r.policy.name}'` : `a ${r.policy.name} cache of ${r.capacity} tokens`;
  throw new StreamlmError(`${what} needs ${gib(one)} of KV cache${r.count > 1 ? ` per session` : ''}; ${room}: ${fits ? `at most ${fits} fits` : 'no cache of this kind fits'}`,
    { field: r.policy.bounded ? cacheName : tokensName });
}
