import type { HiddenLog } from '../models/hidden-log.js';
import type { MctpHeads } from '../models/mctp.js';
import type { Drafter, NgramDrafter } from './ngram.js';

/**
 * Drafts with the model's MCTP heads (src/models/mctp.ts) from the final hidden states the session
 * logged for its fed tokens: each proposal first enters the positions fed since the last one (at
 * most the heads' window; older ones are never seen again), then chains k steps.
 */
export class MctpDrafter implements Drafter {
  readonly name = 'mctp';
  /** The next stream position (in the log's count) not yet entered into the heads' K/V. */
  private pos = 0;
  private ticket = -1;

  constructor(private readonly heads: MctpHeads, private readonly log: HiddenLog) {}

  /** Tokens come with the hidden log; nothing to note. */
  push(): void {}

  propose(next: number, k: number): number[] {
    if (k <= 0) return [];
    if (!this.heads.owns(this.ticket)) { this.ticket = this.heads.acquire(); this.pos = 0; }
    const e = this.log.since(Math.max(this.pos, this.log.count - this.heads.cfg.window));
    if (e.ids.length === 0) return [];
    this.pos = this.log.count;
    return this.heads.draft(e.rows, [...e.ids.slice(1), next], e.start, k);
  }
}

/**
 * `auto`: the heads' draft, unless the stream repeats itself: the n-gram drafter matched its longest
 * suffix (maxN tokens), has `k` tokens to propose, and its first agrees with the heads' first. Then
 * the repeat's continuation wins. Shorter or disagreeing matches lose to the heads, which are right
 * about 90% of the time per step on the shipped models (docs/speculative.md). The heads always
 * run, so they keep up with the stream; a draft costs about a fifth of a forward.
 */
export class AutoDrafter implements Drafter {
  readonly name = 'auto';
  constructor(private readonly ngram: NgramDrafter, private readonly mctp: MctpDrafter) {}

  push(ids: readonly number[]): void { this.ngram.push(ids); }

  propose(next: number, k: number): number[] {
    const m = this.mctp.propose(next, k), d = this.ngram.propose(next, k);
    return d.length === k && this.ngram.lastMatch >= this.ngram.maxN && d[0] === m[0] ? d : m;
  }
}
