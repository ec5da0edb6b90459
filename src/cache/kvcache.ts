import type { Runtime } from '../runtime/runtime.js';
import type { KVBatch } from '../models/transformer.js';
import { SlotBook } from './book.js';
import type { CachePolicy } from './policy.js';
import { plainEvictions } from './draft.js';
import { StreamlmError } from '../errors.js';

/** Bytes of K and V for `capacity` slots of `numLayers` layers of width `kvDim` (f32), plus the slot tables. */
export function kvBytes(numLayers: number, kvDim: number, capacity: number): number {
  return 2 * numLayers * capacity * kvDim * 4 + 8 * capacity;
}

/**
 * Keys and values of every layer in fixed physical slots of wasm memory, plus the book that says
 * which slot holds what. Eviction never moves K/V: it only frees slots and renumbers positions.
 */
export class KVCache {
  /** Replaced wholesale when a snapshot is restored. */
  book: SlotBook;
  readonly k: number[] = [];         // per layer, (capacity, kvDim) f32
  readonly v: number[] = [];
  readonly slotPos: number;          // i32 (capacity)
  readonly slotGroup: number;        // i32 (capacity)
  readonly bytes: number;
  /** Stream index the next appended token gets. */
  private next = 0;
  /** Tokens appended since the start; differs from `next` only while recompute replays a window. */
  private total = 0;

  constructor(private readonly rt: Runtime, readonly numLayers: number, readonly kvDim: number, readonly capacity: number) {
    this.book = new SlotBook(capacity);
    const layerBytes = capacity * kvDim * 4;
    for (let l = 0; l < numLayers; l++) { this.k.push(rt.alloc(layerBytes)); this.v.push(rt.alloc(layerBytes)); }
    this.slotPos = rt.alloc(capacity * 4);
    this.slotGroup = rt.alloc(capacity * 4);
    this.bytes = kvBytes(numLayers, kvDim, capacity);
  }

  /** Tokens appended since the start (or the last reset), evicted ones included. */
  get seen(): number { return this.total; }
  get length(): number { return this.book.length; }
  get evicted(): number { return this.total - this.book.length; }
  /** Stream counters, for snapshots: [next stream index, tokens seen]. */
  get counters(): [number, number] { return [this.next, this.total]; }

  reset(): void { this.book.clear(); this.next = 0; this.total = 0; }

  /** Restores the book and counters of a snapshot (the K/V bytes are written by the caller). */
  restore(book: SlotBook, next: number, total: number): void { this.book = book; this.next = next; this.total = total; }

  /** Appends `tokens` to the book under `policy` and describes the forward that fills their K/V. */
  append(tokens: readonly number[], policy: CachePolicy): KVBatch {
    const writeSlots: number[] = [], keyPos: number[] = [], qPos: number[] = [];
    for (const t of tokens) {
      const pos = this.book.length;
      const stream = this.next++;
      this.total++;
      writeSlots.push(this.book.append(t, stream, policy.groupOf(pos)));
      keyPos.push(stream);
      qPos.push(pos);
    }
    const n = this.book.highWater;
    this.book.writePositions(this.rt.i32(this.slotPos, n), this.rt.i32(this.slotGroup, n));
    return {
      k: this.k, v: this.v, nSlots: n, slotPos: this.slotPos, slotGroup: this.slotGroup,
      writeSlots, keyPos, qPos, groupOffsets: this.book.groupOffsets(policy.numGroups),
    };
  }

  /**
   * Appends a draft (speculative decoding) as `append` does, without evicting, and makes each row
   * see exactly what plain one-token-at-a-time decoding would have shown it. Where the window
   * would evict during the draft, the batch carries a draftView: mask positions are rewritten so
   * that with a mask window of M rows, an old token plain decoding evicts before row j is visible
   * to rows < j only (position L0 + j − M), every other old token to all rows (position L0), the
   * draft's own tokens causally (L0 + j); and the sink group's query rotation is that of plain
   * decoding (its cache position after the evictions). The window group's rotation needs no change:
   * the evictions shift its offset by exactly what they shift the row's position. The next append
   * rewrites every slot position from the book.
   */
  appendDraft(tokens: readonly number[], policy: CachePolicy): KVBatch {
    const L0 = this.book.length, M = tokens.length;
    const { before } = plainEvictions(policy, L0, M);
    const gone = before[M - 1] ?? 0;
    // Checked before anything is appended, so a refused draft leaves the cache as it was.
    if (gone > 0 && gone > L0 - policy.sinks) throw new StreamlmError(`a draft of ${M} tokens would evict its own tokens under ${policy.name}; draft fewer`, { field: 'draft' });
    const batch = this.append(tokens, policy);
    if (gone === 0) return batch;
    const pos = this.rt.i32(this.slotPos, batch.nSlots);
    const order = this.book.slots();
    for (let i = 0; i < L0; i++) pos[order[i]] = L0;
    for (let j = 0, k = 0; j < M; j++)
      for (; k < before[j]; k++) pos[order[policy.sinks + k]] = L0 + j - M;
    const sinkGroup = policy.sinks > 0 ? policy.groupOf(0) : -1;
    const G = batch.groupOffsets.length, qRot: number[] = [];
    for (let g = 0; g < G; g++)
      for (let j = 0; j < M; j++) qRot.push(batch.qPos[j] + batch.groupOffsets[g] - (g === sinkGroup ? before[j] : 0));
    return { ...batch, draftView: { qRot, maskWindow: M } };
  }

  /** Notes a token in the book without computing its K/V (recompute keeps ids, not K/V). */
  record(token: number, policy: CachePolicy): void {
    this.book.append(token, this.next++, policy.groupOf(this.book.length));
    this.total++;
  }

  /**
   * Empties the book and appends `tokens` afresh at stream indices 0..n-1, as re-running a window
   * from scratch does; only the last `fresh` of them are new to the stream.
   */
  replay(tokens: readonly number[], policy: CachePolicy, fresh: number): KVBatch {
    const total = this.total + fresh;
    this.book.clear();
    this.next = 0;
    const batch = this.append(tokens, policy);
    this.total = total;
    return batch;
  }

  /** Removes the last `n` tokens as if never appended (a rejected draft); see SlotBook.truncate. */
  truncate(n: number, high: number): void {
    this.book.truncate(n, high);
    this.next -= n;
    this.total -= n;
  }
}
