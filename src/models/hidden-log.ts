/**
 * The backbone's final hidden states (after the final norm) of the last `cap` fed positions, with
 * their token ids, in a ring: what MCTP heads draft from (src/models/mctp.ts). Positions count from
 * the log's creation; memory stays flat on endless streams.
 */
export class HiddenLog {
  private readonly ids: Int32Array;
  private readonly rows: Float32Array;
  /** Positions pushed so far (the next position's index). */
  count = 0;

  constructor(readonly cap: number, readonly dim: number) {
    this.ids = new Int32Array(cap);
    this.rows = new Float32Array(cap * dim);
  }

  /** Appends fed tokens and their hidden rows (ids.length × dim), oldest first. */
  push(ids: readonly number[], rows: Float32Array): void {
    const d = this.dim, skip = Math.max(0, ids.length - this.cap);
    this.count += skip;
    for (let i = skip; i < ids.length; i++, this.count++) {
      const slot = this.count % this.cap;
      this.ids[slot] = ids[i];
      this.rows.set(rows.subarray(i * d, (i + 1) * d), slot * d);
    }
  }

  /** The kept entries at positions >= `from`, oldest first; `start` is the first one's position. */
  since(from: number): { start: number; ids: number[]; rows: Float32Array } {
    const start = Math.max(from, this.count - this.cap, 0), n = Math.max(0, this.count - start), d = this.dim;
    const ids: number[] = [], rows = new Float32Array(n * d);
    for (let i = 0; i < n; i++) {
      const slot = (start + i) % this.cap;
      ids.push(this.ids[slot]);
      rows.set(this.rows.subarray(slot * d, (slot + 1) * d), i * d);
    }
    return { start, ids, rows };
  }
}
