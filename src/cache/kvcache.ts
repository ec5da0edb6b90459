import type { Runtime } from '../runtime/runtime.js';
import type { KVBatch } from '../models/transformer.js';
import { SlotBook } from './book.js';
import type { CachePolicy } from './policy.js';

/**
 * Keys and values of every layer in fixed physical slots of wasm memory, plus the book that says
 * which slot holds what. Eviction never moves K/V: it only frees slots and renumbers positions.
 */
export class KVCache {
  readonly book: SlotBook;
  readonly k: number[] = [];         // per layer, (capacity, kvDim) f32
  readonly v: number[] = [];
  readonly slotPos: number;          // i32 (capacity)
  readonly slotGroup: number;        // i32 (capacity)
  readonly bytes: number;
  /** Stream index the next appended token gets. */
  private next = 0;

  constructor(private readonly rt: Runtime, numLayers: number, readonly kvDim: number, readonly capacity: number) {
    this.book = new SlotBook(capacity);
    const layerBytes = capacity * kvDim * 4;
    for (let l = 0; l < numLayers; l++) { this.k.push(rt.alloc(layerBytes)); this.v.push(rt.alloc(layerBytes)); }
    this.slotPos = rt.alloc(capacity * 4);
    this.slotGroup = rt.alloc(capacity * 4);
    this.bytes = 2 * numLayers * layerBytes + 8 * capacity;
  }

  /** Tokens appended since the start (or the last reset), evicted ones included. */
  get seen(): number { return this.next; }
  get length(): number { return this.book.length; }
  get evicted(): number { return this.next - this.book.length; }

  reset(): void { this.book.clear(); this.next = 0; }

  /** Appends `tokens` to the book under `policy` and describes the forward that fills their K/V. */
  append(tokens: readonly number[], policy: CachePolicy): KVBatch {
    const writeSlots: number[] = [], keyPos: number[] = [], qPos: number[] = [];
    for (const t of tokens) {
      const pos = this.book.length;
      const stream = this.next++;
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
}
