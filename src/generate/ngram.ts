/** Proposes up to `k` tokens to follow the tokens seen so far (they are checked by the backbone). */
export interface Drafter {
  readonly name: string;
  /** Notes tokens of the stream (prompt and generated), oldest first. */
  push(ids: readonly number[]): void;
  /** Up to `k` likely next tokens after everything pushed (and `next`, already chosen but not pushed), or none. */
  propose(next: number, k: number): number[];
}

/**
 * Prompt lookup decoding: find the most recent earlier occurrence of the longest suffix of the
 * stream (n = maxN..1 tokens, the chosen next token included) with k tokens after it, and propose
 * those. Only the last `capacity` tokens are kept, in a ring, so memory stays flat on endless streams.
 */
export class NgramDrafter implements Drafter {
  readonly name = 'ngram';
  private readonly ring: Int32Array;
  private count = 0;

  constructor(readonly capacity = 4096, readonly maxN = 3) { this.ring = new Int32Array(capacity); }

  push(ids: readonly number[]): void {
    for (const id of ids) { this.ring[this.count % this.capacity] = id; this.count++; }
  }

  propose(next: number, k: number): number[] {
    const n0 = Math.min(this.count, this.capacity);
    if (k <= 0 || n0 === 0) return [];
    // The window as a plain array, oldest first, with `next` appended.
    const seq = new Int32Array(n0 + 1);
    const start = this.count - n0;
    for (let i = 0; i < n0; i++) seq[i] = this.ring[(start + i) % this.capacity];
    seq[n0] = next;
    const len = n0 + 1;
    for (let n = Math.min(this.maxN, len - 1); n >= 1; n--) {
      // The most recent match of the last n tokens (ending before the suffix itself) that is
      // followed by k tokens, or else the one followed by the most.
      let best: number[] = [];
      for (let end = len - 2; end >= n - 1; end--) {
        let ok = true;
        for (let t = 0; t < n && ok; t++) ok = seq[end - t] === seq[len - 1 - t];
        if (!ok || len - 1 - end <= best.length) continue;
        best = Array.from(seq.subarray(end + 1, Math.min(len, end + 1 + k)));
        if (best.length === k) break;
      }
      if (best.length) return best;
    }
    return [];
  }
}
