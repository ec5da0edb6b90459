import { StreamlmError } from '../errors.js';

/** Semantic position of an empty slot: larger than any query position, so the kernel masks it. */
export const EMPTY_POS = 0x7fffffff;

/** A book's complete state (see `SlotBook.state`). */
export interface BookState { order: number[]; free: number[]; high: number; stream: Float64Array; token: Int32Array; group: Int32Array }

/**
 * Which physical KV slot holds which token, in logical (stream) order.
 *
 * StreamingLLM assigns positions by place in the cache: the i-th cached token has position i,
 * whatever its index in the stream. Keys are rotated once, at their stream index, and stay put in
 * their physical slot; eviction only edits this book. Tokens that were appended together and never
 * separated by an eviction share a rotation group whose offset (stream index − cache position) is
 * constant, so one query rotation per group reproduces the paper's scores exactly.
 */
export class SlotBook {
  /** Physical slots in logical order, oldest first. */
  private order: number[] = [];
  private readonly free: number[];
  /** Per physical slot: stream index of the token, its id and its rotation group. */
  private readonly stream: Float64Array;
  private readonly token: Int32Array;
  private readonly group: Int32Array;
  /** Highest physical slot ever used + 1: the attention kernel scans only this many. */
  private high = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new StreamlmError(`cache capacity must be a positive integer, got ${capacity}`);
    this.free = [];
    for (let s = capacity - 1; s >= 0; s--) this.free.push(s);
    this.stream = new Float64Array(capacity);
    this.token = new Int32Array(capacity);
    this.group = new Int32Array(capacity);
  }

  get length(): number { return this.order.length; }
  get highWater(): number { return this.high; }

  /** Appends a token at the end of the logical order; returns its physical slot. */
  append(token: number, streamIndex: number, group: number): number {
    const slot = this.free.pop();
    if (slot === undefined) throw new StreamlmError(`KV cache is full (${this.capacity} slots); the policy must evict before appending`);
    this.order.push(slot);
    this.stream[slot] = streamIndex;
    this.token[slot] = token;
    this.group[slot] = group;
    if (slot + 1 > this.high) this.high = slot + 1;
    return slot;
  }

  /** Evicts the tokens at logical positions [from, to). */
  remove(from: number, to: number): void {
    if (from < 0 || to > this.order.length || from > to) throw new RangeError(`remove(${from}, ${to}) outside [0, ${this.order.length}]`);
    const gone = this.order.splice(from, to - from);
    for (const s of gone) this.free.push(s);
  }

  /** Empties the book into the state of a new one, so a reused cache computes exactly as a fresh one. */
  clear(): void {
    this.order = [];
    this.free.length = 0;
    for (let s = this.capacity - 1; s >= 0; s--) this.free.push(s);
    this.high = 0;
  }

  /**
   * Removes the last `n` tokens as if they had never been appended: their slots go back on the free
   * stack in the order they were taken, so later appends reuse the same slots (a rolled-back draft
   * leaves no trace in the physical layout). `high` is the high-water mark to return to.
   */
  truncate(n: number, high: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.order.length) throw new RangeError(`truncate(${n}) outside [0, ${this.order.length}]`);
    const gone = this.order.splice(this.order.length - n, n);
    for (let i = gone.length - 1; i >= 0; i--) this.free.push(gone[i]);
    this.high = Math.min(Math.max(high, ...this.order.map((s) => s + 1), 0), this.high);
  }

  /** Everything that decides future behaviour, for snapshots: slots in order, the free stack, the per-slot records. */
  state(): BookState {
    // Records of free slots are left-overs that nothing reads: written as zeros, so equal states give equal bytes.
    const stream = new Float64Array(this.capacity), token = new Int32Array(this.capacity), group = new Int32Array(this.capacity);
    for (const x of this.order) { stream[x] = this.stream[x]; token[x] = this.token[x]; group[x] = this.group[x]; }
    return { order: [...this.order], free: [...this.free], high: this.high, stream, token, group };
  }

  /** The book from `state()`, checked so a corrupt snapshot cannot build an inconsistent one. */
  static fromState(s: BookState, capacity: number): SlotBook {
    const b = new SlotBook(capacity);
    const cap = s.stream.length;
    if (cap > capacity || s.token.length !== cap || s.group.length !== cap) throw new StreamlmError(`the snapshot's slot book has ${cap} slots; this cache has ${capacity}`, { field: 'snapshot' });
    const seen = new Set<number>();
    for (const x of [...s.order, ...s.free]) {
      if (!Number.isInteger(x) || x < 0 || x >= cap || seen.has(x)) throw new StreamlmError('the snapshot\'s slot book is inconsistent (a slot is missing, repeated or out of range)', { field: 'snapshot' });
      seen.add(x);
    }
    if (seen.size !== cap || !Number.isInteger(s.high) || s.high < 0 || s.high > cap || s.order.some((x) => x >= s.high)) throw new StreamlmError('the snapshot\'s slot book is inconsistent (free and used slots do not cover it)', { field: 'snapshot' });
    b.order = [...s.order];
    // Slots this larger cache adds are used only after the snapshot's own free ones.
    b.free.length = 0;
    for (let x = capacity - 1; x >= cap; x--) b.free.push(x);
    b.free.push(...s.free);
    b.high = s.high;
    b.stream.set(s.stream); b.token.set(s.token); b.group.set(s.group);
    return b;
  }

  /** Token ids in logical order. */
  tokens(): number[] { return this.order.map((s) => this.token[s]); }
  /** Physical slots in logical order. */
  slots(): readonly number[] { return this.order; }
  groupOfSlot(slot: number): number { return this.group[slot]; }
  streamOfSlot(slot: number): number { return this.stream[slot]; }

  /**
   * Rotation offset (stream index − cache position) of each group present, indexed by group.
   * Throws if a group's members disagree, which would mean a policy broke the invariant.
   */
  groupOffsets(numGroups: number): number[] {
    const off: (number | null)[] = new Array(numGroups).fill(null);
    this.order.forEach((slot, pos) => {
      const g = this.group[slot];
      const o = this.stream[slot] - pos;
      if (off[g] === null) off[g] = o;
      else if (off[g] !== o) throw new Error(`rotation group ${g} is not contiguous in the cache (offsets ${off[g]} and ${o})`);
    });
    return off.map((o) => o ?? 0);
  }

  /** Writes semantic positions and groups per physical slot (empty slots get EMPTY_POS and group 0). */
  writePositions(slotPos: Int32Array, slotGroup: Int32Array): void {
    // Empty slots get group 0 too: the kernel may read an empty slot's group before masking it, and
    // a restored cache's tables start from whatever the memory held.
    slotPos.fill(EMPTY_POS, 0, this.high);
    slotGroup.fill(0, 0, this.high);
    this.order.forEach((slot, pos) => { slotPos[slot] = pos; slotGroup[slot] = this.group[slot]; });
  }
}
