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
  /** Length of the suffix the last proposal matched (0: none), for `auto` to weigh it. */
  lastMatch = 0;

  constructor(readonly capacity = 4096, readonly maxN = 3) { this.ring = new Int32Array(capacity); }

  push(ids: readonly number[]): void {
    for (const id of ids) { this.ring[this.count % this.capacity] = id; this.count++; }
  }

  propose(next: number, k: number): number[] {
    const n0 = Math.min(this.count, this.capacity);
    this.lastMatch = 0;
    if (k <= 0 || n0 === 0) return [];
    // Stream positions 0..n0-1 are the ring's tokens, oldest first; position n0 is `next`.
    const start = this.count - n0, cap = this.capacity, ring = this.ring;
    const at = (i: number): number => (i === n0 ? next : ring[(start + i) % cap]);
    // One pass, newest first: each occurrence of `next` ends a match of some length n <= maxN.
    // Longest n wins; among equal n, the newest followed by k tokens, else the one followed by most.
    let bestEnd = -1, bestN = 0, bestFollow = 0;
    for (let end = n0 - 1, phys = (start + n0 - 1) % cap; end >= 0; end--, phys = phys === 0 ? cap - 1 : phys - 1) {
      if (ring[phys] !== next) continue;
      let n = 1;
      while (n < this.maxN && end - n >= 0 && at(end - n) === at(n0 - n)) n++;
      const follow = Math.min(k, n0 - end);
      if (n > bestN || (n === bestN && bestFollow < k && follow > bestFollow)) { bestEnd = end; bestN = n; bestFollow = follow; }
      if (bestN === this.maxN && bestFollow === k) break;
    }
    const out: number[] = [];
    for (let i = bestEnd + 1; bestEnd >= 0 && out.length < bestFollow; i++) out.push(at(i));
    this.lastMatch = out.length ? bestN : 0;
    return out;
  }
}
