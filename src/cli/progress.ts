/** A progress bar with tok/s and ETA on stderr; plain periodic lines when stderr is not a terminal. */
export class Progress {
  private readonly t0 = performance.now();
  private last = 0;
  private lastPct = -1;

  constructor(private readonly label: string, private readonly total: number) {}

  update(done: number): void {
    const now = performance.now();
    const tty = process.stderr.isTTY;
    const pct = Math.floor((done / this.total) * 10);
    // A terminal redraws every 200 ms. A log gets a line per tenth, or every 30 s for slow runs
    // (recompute), but none in the first second: a rate from a few tokens makes a wild ETA.
    const due = tty ? now - this.last >= 200 : pct !== this.lastPct || now - this.last >= 30_000;
    if (done < this.total && (!due || now - this.t0 < 1000)) return;
    this.last = now;
    this.lastPct = pct;
    const rate = done / ((now - this.t0) / 1000);
    const eta = (this.total - done) / rate;
    const width = 24, fill = Math.round((done / this.total) * width);
    const line = `${this.label.padEnd(16)} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${done}/${this.total} ${rate.toFixed(1)} tok/s ETA ${fmt(eta)}`;
    process.stderr.write(tty ? `\r${line}` : `${line}\n`);
  }

  done(): void { if (process.stderr.isTTY) process.stderr.write('\n'); }
}

function fmt(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60), r = Math.round(s % 60);
  return m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}
