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

/** `auto`: the n-gram drafter where the stream repeats itself (it found a match), MCTP heads elsewhere. */
export class AutoDrafter implements Drafter {
  readonly name = 'auto';
  constructor(private readonly ngram: NgramDrafter, private readonly mctp: MctpDrafter) {}

  push(ids: readonly number[]): void { this.ngram.push(ids); }

  propose(next: number, k: number): number[] {
    const d = this.ngram.propose(next, k);
    return d.length > 0 ? d : this.mctp.propose(next, k);
  }
}
