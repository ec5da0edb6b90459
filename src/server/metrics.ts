/** Minimal Prometheus text-format (version 0.0.4) metrics: counters, gauges and histograms. */

type Labels = Record<string, string>;

function labelText(l: Labels): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function fmt(x: number): string {
  if (x === Infinity) return '+Inf';
  return Number.isInteger(x) ? String(x) : x.toPrecision(6).replace(/\.?0+$/, '').replace(/\.?0+e/, 'e');
}

interface Metric { render(): string }

export class Counter implements Metric {
  private values = new Map<string, { labels: Labels; v: number }>();
  constructor(readonly name: string, readonly help: string) {}
  inc(by = 1, labels: Labels = {}): void {
    const key = labelText(labels);
    const e = this.values.get(key);
    if (e) e.v += by; else this.values.set(key, { labels, v: by });
  }
  get(labels: Labels = {}): number { return this.values.get(labelText(labels))?.v ?? 0; }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.values.size === 0) lines.push(`${this.name} 0`);
    for (const { labels, v } of this.values.values()) lines.push(`${this.name}${labelText(labels)} ${fmt(v)}`);
    return lines.join('\n');
  }
}

/** A gauge read when scraped. */
export class Gauge implements Metric {
  constructor(readonly name: string, readonly help: string, private readonly read: () => number | [Labels, number][]) {}
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    const v = this.read();
    if (typeof v === 'number') lines.push(`${this.name} ${fmt(v)}`);
    else for (const [l, x] of v) lines.push(`${this.name}${labelText(l)} ${fmt(x)}`);
    return lines.join('\n');
  }
}

export class Histogram implements Metric {
  private readonly counts: number[];
  private sum = 0;
  private n = 0;
  constructor(readonly name: string, readonly help: string, readonly buckets: readonly number[]) {
    this.counts = new Array(buckets.length).fill(0);
  }
  observe(x: number): void {
    this.sum += x;
    this.n++;
    for (let i = 0; i < this.buckets.length; i++) if (x <= this.buckets[i]) this.counts[i]++;
  }
  get count(): number { return this.n; }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket{le="${fmt(b)}"} ${this.counts[i]}`));
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.n}`, `${this.name}_sum ${fmt(this.sum)}`, `${this.name}_count ${this.n}`);
    return lines.join('\n');
  }
}

/** Seconds, from 1 ms to 2 min. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export class Registry {
  private readonly metrics: Metric[] = [];
  add<M extends Metric>(m: M): M { this.metrics.push(m); return m; }
  render(): string { return this.metrics.map((m) => m.render()).join('\n') + '\n'; }
}
