import { StreamlmError } from '../errors.js';

/** How the next token is chosen. Temperature 0 is greedy (argmax). */
export interface SamplerOptions {
  /** Default 0 (greedy). */
  temperature?: number;
  /** Keep only the k most likely tokens; 0 = off (default). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p; 1 = off (default). */
  topP?: number;
  /** Seed of the PRNG; the same seed and logits give the same tokens (default 0). */
  seed?: number;
}

/** A seedable sampler over logits. */
export class Sampler {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  private state: number;

  constructor(opts: SamplerOptions = {}) {
    this.temperature = opts.temperature ?? 0;
    this.topK = opts.topK ?? 0;
    this.topP = opts.topP ?? 1;
    const seed = opts.seed ?? 0;
    if (!(this.temperature >= 0) || !Number.isFinite(this.temperature)) throw new StreamlmError(`temperature must be a number >= 0, got ${opts.temperature}`, { field: 'temperature' });
    if (!Number.isInteger(this.topK) || this.topK < 0) throw new StreamlmError(`top-k must be an integer >= 0, got ${opts.topK}`, { field: 'top_k' });
    if (!(this.topP > 0 && this.topP <= 1)) throw new StreamlmError(`top-p must be in (0, 1], got ${opts.topP}`, { field: 'top_p' });
    if (!Number.isInteger(seed)) throw new StreamlmError(`seed must be an integer, got ${opts.seed}`, { field: 'seed' });
    this.state = (seed ^ 0x9e3779b9) >>> 0;
  }

  /** Uniform in [0, 1) from mulberry32: small, fast, and the same on every platform. */
  random(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  sample(logits: Float32Array): number {
    if (this.temperature === 0) return argmax(logits);
    const n = logits.length;
    let max = -Infinity;
    for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
    const probs = new Float32Array(n);
    let sum = 0;
    for (let i = 0; i < n; i++) { const e = Math.exp((logits[i] - max) / this.temperature); probs[i] = e; sum += e; }
    for (let i = 0; i < n; i++) probs[i] /= sum;
    if (this.topK === 0 && this.topP >= 1) return this.draw(probs, null);

    // Tokens below (1 − p)/(n − 1) can never be in the nucleus, so sort only the rest.
    const floor = this.topP < 1 ? (1 - this.topP) / (n - 1) : 0;
    let cand: number[] = [];
    for (let i = 0; i < n; i++) if (probs[i] >= floor) cand.push(i);
    cand.sort((a, b) => probs[b] - probs[a]);
    if (this.topK > 0) cand = cand.slice(0, this.topK);
    if (this.topP < 1) {
      let acc = 0, cut = cand.length;
      for (let i = 0; i < cand.length; i++) { acc += probs[cand[i]]; if (acc >= this.topP) { cut = i + 1; break; } }
      cand = cand.slice(0, cut);
    }
    return this.draw(probs, cand);
  }

  /**
   * The distribution `sample` draws from (temperature, top-k and top-p applied), normalized, as a
   * full-vocabulary vector; one-hot at the argmax when greedy. For speculative sampling.
   */
  distribution(logits: Float32Array): Float32Array {
    const n = logits.length;
    const out = new Float32Array(n);
    if (this.temperature === 0) { out[argmax(logits)] = 1; return out; }
    let max = -Infinity;
    for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
    let sum = 0;
    for (let i = 0; i < n; i++) { const e = Math.exp((logits[i] - max) / this.temperature); out[i] = e; sum += e; }
    for (let i = 0; i < n; i++) out[i] /= sum;
    if (this.topK === 0 && this.topP >= 1) return out;
    let cand = Array.from({ length: n }, (_, i) => i).sort((a, b) => out[b] - out[a]);
    if (this.topK > 0) cand = cand.slice(0, this.topK);
    if (this.topP < 1) {
      let acc = 0, cut = cand.length;
      for (let i = 0; i < cand.length; i++) { acc += out[cand[i]]; if (acc >= this.topP) { cut = i + 1; break; } }
      cand = cand.slice(0, cut);
    }
    const kept = new Float32Array(n);
    let total = 0;
    for (const i of cand) { kept[i] = out[i]; total += out[i]; }
    for (const i of cand) kept[i] /= total;
    return kept;
  }

  /**
   * Speculative sampling's acceptance rule for a deterministic drafter (q one-hot at `drafted`):
   * keep it with probability p(drafted), else draw from p with `drafted` removed, renormalized.
   * The result is distributed exactly as p (Leviathan et al. 2023, Chen et al. 2023).
   */
  verify(logits: Float32Array, drafted: number): number {
    if (this.temperature === 0) return argmax(logits);
    const p = this.distribution(logits);
    const pd = p[drafted];
    if (this.random() < pd) return drafted;
    p[drafted] = 0;
    let total = 0;
    for (let i = 0; i < p.length; i++) total += p[i];
    let r = this.random() * total;
    let last = -1;
    for (let i = 0; i < p.length; i++) { if (p[i] > 0) { last = i; r -= p[i]; if (r <= 0) return i; } }
    return last >= 0 ? last : drafted;
  }

  private draw(probs: Float32Array, cand: number[] | null): number {
    const ids = cand ?? null;
    let total = 0;
    if (ids) for (const i of ids) total += probs[i]; else total = 1;
    let r = this.random() * total;
    if (ids) {
      for (const i of ids) { r -= probs[i]; if (r <= 0) return i; }
      return ids[ids.length - 1];
    }
    for (let i = 0; i < probs.length; i++) { r -= probs[i]; if (r <= 0) return i; }
    return probs.length - 1;
  }
}

export function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}
