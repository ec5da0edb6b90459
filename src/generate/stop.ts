/**
 * Holds back text that could be the start of a stop string, so a stop string split across tokens
 * is never emitted.
 */
export class StopMatcher {
  private pending = '';
  private done = false;

  constructor(private readonly stops: readonly string[]) {}

  /** False when there is no stop string to look for. */
  get active(): boolean { return this.stops.some((s) => s.length > 0); }

  /** An independent copy, for looking ahead without changing this matcher. */
  clone(): StopMatcher {
    const c = new StopMatcher(this.stops);
    c.pending = this.pending;
    c.done = this.done;
    return c;
  }

  /** Adds text; returns what is safe to emit and whether a stop string was reached. */
  push(piece: string, final = false): { text: string; stopped: boolean } {
    if (this.done) return { text: '', stopped: true };
    this.pending += piece;
    let cut = -1;
    for (const s of this.stops) {
      if (!s) continue;
      const i = this.pending.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.done = true;
      const text = this.pending.slice(0, cut);
      this.pending = '';
      return { text, stopped: true };
    }
    if (final) { const text = this.pending; this.pending = ''; return { text, stopped: false }; }
    let hold = 0;
    for (const s of this.stops)
      for (let k = Math.min(s.length - 1, this.pending.length); k > hold; k--)
        if (this.pending.endsWith(s.slice(0, k))) { hold = k; break; }
    const text = this.pending.slice(0, this.pending.length - hold);
    this.pending = this.pending.slice(this.pending.length - hold);
    return { text, stopped: false };
  }
}
