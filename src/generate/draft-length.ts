/**
 * `--draft auto`: how many tokens to draft before each verification, chosen from what this stream
 * measured. A draft of k tokens yields E(k) = 1 + c1 + c1·c2 + ... + c1···ck tokens (c_i: how often
 * position i was kept when reached) for the time of drafting k plus one forward of k+1 rows; k = 0
 * is a plain one-row step. Where a verify row costs almost nothing (a model whose decode streams its
 * weights from memory: a 0.5B model verifies 5 rows for little more than 1) the longest draft wins;
 * where each row costs nearly a step (an 8M model, bound by arithmetic) a plain step wins, so
 * speculation never runs much slower than plain decoding (docs/speculative.md).
 *
 * Costs are moving averages per row count; a row count not yet timed is interpolated linearly
 * between those that were. The first decisions draft the most (to learn the acceptances and the
 * widest forward), one early plain step times the narrowest, and every EXPLORE_EVERY-th decision
 * tries a neighbour of the best so a changing machine or stream is noticed.
 */
export class DraftTuner {
  /** ms per forward of r rows (index r), as a moving average; NaN until timed. */
  private readonly rowMs: number[];
  /** ms to draft k tokens (index k). */
  private readonly draftMs: number[];
  /** Per draft position: drafts that reached it, and how many of those were kept. */
  private readonly proposed: number[];
  private readonly accepted: number[];
  private decisions = 0;
  private last = 0;

  /** `maxDraft`: the most tokens drafted at once. */
  constructor(readonly maxDraft: number) {
    this.rowMs = new Array<number>(maxDraft + 2).fill(NaN);
    this.draftMs = new Array<number>(maxDraft + 1).fill(NaN);
    this.draftMs[0] = 0;
    this.proposed = new Array<number>(maxDraft).fill(0);
    this.accepted = new Array<number>(maxDraft).fill(0);
  }

  /**
   * The tuner a session's streams share for one drafter: what one turn of a conversation learned
   * (costs, acceptances) serves the next, instead of each turn learning again.
   */
  static of(session: object, drafter: string, maxDraft: number): DraftTuner {
    let bySession = TUNERS.get(session);
    if (!bySession) TUNERS.set(session, (bySession = new Map<string, DraftTuner>()));
    const key = `${drafter}/${maxDraft}`;
    let t = bySession.get(key);
    if (!t) bySession.set(key, (t = new DraftTuner(maxDraft)));
    return t;
  }

  /** A plain step (k = 0) took `ms`. */
  plain(ms: number): void { this.note(this.rowMs, 1, ms); }

  /**
   * `k` drafted tokens took `draftMs` to draft and `verifyMs` to verify and accept; the first
   * `kept` of them were kept (a rejected one ends the walk: later positions were not reached).
   */
  speculated(k: number, kept: number, draftMs: number, verifyMs: number): void {
    this.note(this.draftMs, k, draftMs);
    this.note(this.rowMs, k + 1, verifyMs);
    for (let i = 0; i < Math.min(k, kept + 1, this.maxDraft); i++) {
      this.proposed[i]++;
      if (i < kept) this.accepted[i]++;
    }
  }

  /** Tokens to draft next, at most `limit` (the budget's); 0 means a plain step. */
  choose(limit: number): number {
    const top = Math.min(limit, this.maxDraft);
    if (top < 1) return 0;
    const n = this.decisions++;
    // Learn first: the widest draft once, then one plain step.
    if (n < 1 || Number.isNaN(this.rowMs[top + 1])) return (this.last = top);
    if (Number.isNaN(this.rowMs[1])) return (this.last = 0);
    // A draft must beat a plain step by MARGIN: per-forward timings of a small model jitter by more
    // than the few percent a short draft could gain, and a wrong guess costs a whole extra row.
    let best = 0, bestRate = MARGIN / this.cost(0);
    let tokens = 1, reach = 1;
    for (let k = 1; k <= top; k++) {
      reach *= this.acceptance(k - 1);
      tokens += reach;
      const rate = tokens / this.cost(k);
      if (rate > bestRate) { best = k; bestRate = rate; }
    }
    if (n % EXPLORE_EVERY === 0) best = best === 0 ? 1 : best === top ? top - 1 : best + (n % (2 * EXPLORE_EVERY) === 0 ? 1 : -1);
    return (this.last = best);
  }

  /** The draft length the last `choose` returned. */
  get current(): number { return this.last; }

  /** Position i's acceptance when reached, with one kept and one rejected as the prior. */
  private acceptance(i: number): number {
    return (this.accepted[i] + 1) / (this.proposed[i] + 2);
  }

  /** Estimated ms of drafting k tokens and one forward of k+1 rows (k = 0: a plain step). */
  private cost(k: number): number {
    return interpolate(this.draftMs, k) + interpolate(this.rowMs, k + 1);
  }

  private note(avg: number[], i: number, ms: number): void {
    avg[i] = Number.isNaN(avg[i]) ? ms : avg[i] + SMOOTHING * (ms - avg[i]);
  }
}

/** Tuners by session (a WeakMap: they go with their session). */
const TUNERS = new WeakMap<object, Map<string, DraftTuner>>();

/** Every this many decisions, a neighbour of the best draft length is tried. */
const EXPLORE_EVERY = 32;
/** How much faster than a plain step a draft must look before it is chosen. */
const MARGIN = 1.1;
/** Weight of a new sample in the moving averages. */
const SMOOTHING = 0.2;

/** v[i], or linear between the nearest timed neighbours (the nearest one alone at an end). */
function interpolate(v: readonly number[], i: number): number {
  if (!Number.isNaN(v[i])) return v[i];
  let lo = i - 1, hi = i + 1;
  while (lo >= 0 && Number.isNaN(v[lo])) lo--;
  while (hi < v.length && Number.isNaN(v[hi])) hi++;
  if (lo < 0 && hi >= v.length) return 0;
  if (lo < 0) return v[hi];
  if (hi >= v.length) return v[lo];
  return v[lo] + ((v[hi] - v[lo]) * (i - lo)) / (hi - lo);
}
