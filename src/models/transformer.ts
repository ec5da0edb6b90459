import { StreamlmError } from '../errors.js';
import type { Runtime } from '../runtime/runtime.js';
import type { HParams } from './config.js';
import { canStreamBlock, STREAM_MIN_TOKENS, streamingAttention, streamingFfn } from './flashsvd.js';
import { runLinear, type Linear, type LinearScratch } from './linear.js';
import { ropeFrequencies } from './rope.js';
import type { KVBatch, Pass, RopeTables } from './pass.js';
import type { LayerWeights, LowRankMode, ModelWeights, Norm } from './weights.js';

export type { KVBatch } from './pass.js';
export type { LayerWeights, ModelWeights } from './weights.js';

export interface ForwardOptions {
  /** Logits for every new token, or only the last (default). */
  logits?: 'last' | 'all';
  /** Called per layer with attention probabilities (M, numHeads, nSlots), for attention maps. */
  onAttention?: (layer: number, probs: Float32Array) => void;
  /**
   * Called with the final hidden state of every new token, after the final norm (M, hidden): a view
   * of wasm memory valid during the call. MCTP heads draft from it (src/models/mctp.ts), so the
   * verified positions' states come out of the forward that verified them.
   */
  onHidden?: (rows: Float32Array) => void;
  /**
   * Where to copy the logits instead of a new array, when its length is exactly theirs (otherwise a
   * new array, as without it): returned, and overwritten by the next forward given it. A decode
   * loop that reads each step's logits before the next saves one vocab-sized allocation per token,
   * which Chromium's workers pay dearly for (docs/benchmarks.md, "Browser vs Node per-token gap").
   */
  into?: Float32Array;
}

/** How each block runs its projections, fixed at load. */
export type BlockPath = 'dense' | 'streaming' | 'auto';

const EMBED = { f32: 'embed_f32', f16: 'embed_f16', bf16: 'embed_bf16' } as const;
const EMBED_KIND = { f32: 0, f16: 1, bf16: 2 } as const;

/** The decoder-only forward pass shared by every family: embed, N blocks, norm, LM head. */
export class Transformer {
  private invFreq: Float64Array | null = null;
  private invFreqSeq = -1;
  private attnScaling = 1;
  /** Per layer: how its projections run (low-rank blocks may stream, see flashsvd.ts). */
  readonly paths: BlockPath[];
  /** Whether any linear quantizes its activations (then each forward holds scratch for them). */
  private readonly q8: boolean;

  constructor(readonly rt: Runtime, readonly hp: HParams, readonly w: ModelWeights, lowrank: LowRankMode = 'auto') {
    if (!['auto', 'materialized', 'streaming'].includes(lowrank)) throw new StreamlmError(`must be auto, materialized or streaming, got '${lowrank}'`, { field: 'lowrank' });
    this.paths = w.layers.map((L, l) => {
      if (L.qkv.kind !== 'lowrank' || lowrank === 'materialized') return 'dense';
      if (canStreamBlock(hp, L)) return lowrank === 'streaming' ? 'streaming' : 'auto';
      if (lowrank === 'streaming') throw new StreamlmError(`layer ${l} cannot run the streaming low-rank kernels (they need Llama-style blocks with f32 low-rank factors)`, { field: 'lowrank' });
      return 'dense';
    });
    const quantized = (l: Linear): boolean => l.kind === 'q8_0' || l.kind === 'block'
      || (l.kind === 'lowrank' && [l.a, ...l.parts.map((q) => q.b)].some(quantized))
      || (l.kind === 'concat' && l.parts.some((q) => quantized(q.lin)));
    this.q8 = [w.lmHead, ...w.layers.flatMap((L) => [L.qkv, L.o, L.up, L.down])].some(quantized);
  }

  /** Runs the new `tokens` through the model, writing their K/V into the cache slots of `kv`. */
  /**
   * Whether a draft's per-row mask (KVBatch.draftView) reproduces plain decoding: not with ALiBi,
   * whose bias reads slot positions, nor with layers that have a trained window of their own.
   */
  get draftMaskable(): boolean { return !this.w.alibiSlopes && this.w.layers.every((L) => !L.window); }

  forward(tokens: readonly number[], kv: KVBatch, opts: ForwardOptions = {}): Float32Array {
    const { rt, hp, w } = this;
    const M = tokens.length;
    const H = hp.hiddenSize, qDim = hp.numHeads * hp.headDim;
    const outRows = opts.logits === 'all' ? M : 1;
    const V = w.lmHead.N;

    // Prologue: ids, residual stream, RoPE tables, quantization scratch, embedding.
    const mark = rt.mark();
    const ids = rt.alloc(M * 4);
    rt.i32(ids, M).set(tokens);
    const maxK = Math.max(H, qDim, ...w.layers.map((L) => L.down.K));
    const pass: Pass = {
      M, kv,
      x: rt.alloc(M * H * 4),
      h: rt.alloc(M * Math.max(H, qDim) * 4),
      y: rt.alloc(M * H * 4),
      qPos: rt.alloc(M * 4),
      rope: this.ropeTables(kv, M),
      lin: this.q8 ? { xq: rt.alloc(M * maxK), xs: rt.alloc(Math.ceil((M * maxK) / 32) * 5 + 16) } /* ≥ q8_0 (4 B per 32) and q8_K (36 B per 256) scales */ : { xq: 0, xs: 0 },
    };
    rt.i32(pass.qPos, M).set(kv.qPos);
    const logits = rt.alloc(outRows * V * 4);
    this.embed(pass.x, ids, M);

    let dense: DenseBuffers | null = null;
    for (let l = 0; l < w.layers.length; l++) {
      const path = this.paths[l];
      const stream = !opts.onAttention && (path === 'streaming' || (path === 'auto' && M >= STREAM_MIN_TOKENS));
      if (stream) {
        this.streamingBlock(pass, l);
      } else {
        dense ??= this.denseBuffers(pass, opts);
        this.denseBlock(pass, l, dense, opts);
      }
    }

    // Epilogue: final norm and head on the rows whose logits are asked for.
    const first = M - outRows;
    if (opts.onHidden) {
      this.norm(pass.h, pass.x, w.finalNorm, M, H);
      opts.onHidden(rt.f32(pass.h, M * H));
      this.linear(logits, pass.h + first * H * 4, w.lmHead, outRows, pass.lin.xq, pass.lin.xs);
    } else {
      this.norm(pass.h, pass.x + first * H * 4, w.finalNorm, outRows, H);
      this.linear(logits, pass.h, w.lmHead, outRows, pass.lin.xq, pass.lin.xs);
    }
    const view = rt.f32(logits, outRows * V);
    const out = opts.into?.length === view.length ? opts.into : new Float32Array(view.length);
    out.set(view);
    rt.release(mark);
    return out;
  }

  /** out (M, N) = x (M, K) · Wᵀ + b, on all threads, whatever the linear's kind. */
  /** Gathers the embeddings of the M token ids at `ids` (i32) into `out` (M x hidden f32), whatever the table's layout. */
  embed(out: number, ids: number, M: number): void {
    const e = this.w.embed, H = this.hp.hiddenSize;
    if (e.dtype === 'block') this.rt.k.embed_q(out, e.table, ids, M, H, e.ggmlType);
    else if (e.packed) this.rt.k.embed_packed(out, e.table, ids, M, H, e.rows, EMBED_KIND[e.dtype]);
    else this.rt.k[EMBED[e.dtype]](out, e.table, ids, M, H);
  }

  linear(out: number, x: number, lin: Linear, M: number, xq: number, xs: number): void {
    runLinear(this.rt, out, x, lin, M, { xq, xs }, (o, i, l, m, a, b) => this.linear(o, i, l, m, a, b));
  }

  private denseBuffers(p: Pass, opts: ForwardOptions): DenseBuffers {
    const { rt, hp, w } = this;
    const M = p.M, qDim = hp.numHeads * hp.headDim, kvDim = hp.numKvHeads * hp.headDim;
    const G = p.kv.groupOffsets.length;
    const ffN = Math.max(...w.layers.map((L) => L.up.N));
    const ff = rt.alloc(M * ffN * 4);
    return {
      qkv: rt.alloc(M * (qDim + 2 * kvDim) * 4),
      qg: rt.alloc(G * M * qDim * 4),
      att: rt.alloc(M * qDim * 4),
      ff,
      act: hp.gatedMlp ? rt.alloc(M * (ffN / 2) * 4) : ff,
      mo: rt.alloc(M * hp.hiddenSize * 4),
      scratch: rt.alloc(rt.threads * p.kv.nSlots * 4),
      probs: opts.onAttention ? rt.alloc(M * hp.numHeads * p.kv.nSlots * 4) : 0,
    };
  }

  /** One block on full-size activations: every linear through its kind's GEMM. */
  private denseBlock(p: Pass, l: number, b: DenseBuffers, opts: ForwardOptions): void {
    const { rt, hp, w } = this;
    const k = rt.k;
    const L = w.layers[l];
    const M = p.M, kv = p.kv, H = hp.hiddenSize, nH = hp.numHeads, nKv = hp.numKvHeads, hd = hp.headDim;
    const qDim = nH * hd, kvDim = nKv * hd, qkvDim = qDim + 2 * kvDim;
    // One query copy per rotation group; without RoPE (ALiBi) the copies are identical.
    const G = kv.groupOffsets.length;
    const { xq, xs } = p.lin;
    this.norm(p.h, p.x, L.norm1, M, H);
    this.linear(b.qkv, p.h, L.qkv, M, xq, xs);
    if (hp.clipQkv !== null) k.clamp(b.qkv, M * qkvDim, -hp.clipQkv, hp.clipQkv);
    const mem = new Float32Array(rt.memory.buffer);
    for (let g = 0; g < G; g++)
      for (let m = 0; m < M; m++) mem.copyWithin((b.qg + ((g * M + m) * qDim) * 4) / 4, (b.qkv + m * qkvDim * 4) / 4, (b.qkv + (m * qkvDim + qDim) * 4) / 4);
    const rope = p.rope;
    if (rope) {
      k.rope(b.qkv + qDim * 4, qkvDim, rope.cosK, rope.sinK, M, nKv, hd, rope.rotDim);
      const rowBytes = rope.rotDim / 2 * 4;
      for (let g = 0; g < G; g++) k.rope(b.qg + g * M * qDim * 4, qDim, rope.cosQ + g * M * rowBytes, rope.sinQ + g * M * rowBytes, M, nH, hd, rope.rotDim);
    }
    for (let m = 0; m < M; m++) {
      const src = (b.qkv + (m * qkvDim + qDim) * 4) / 4;
      const slot = kv.writeSlots[m];
      mem.copyWithin((kv.k[l] + slot * kvDim * 4) / 4, src, src + kvDim);
      mem.copyWithin((kv.v[l] + slot * kvDim * 4) / 4, src + kvDim, src + 2 * kvDim);
    }
    rt.run('attention', [b.att, b.qg, qDim, M * qDim, kv.k[l], kv.v[l], kvDim, kv.slotPos, kv.slotGroup, kv.nSlots, p.qPos,
      M, nH, nKv, hd, 1 / Math.sqrt(hd), w.alibiSlopes, kv.draftView?.maskWindow ?? L.window ?? 0, L.sinks ?? 0, b.probs, b.scratch]);
    if (b.probs) opts.onAttention!(l, rt.f32(b.probs, M * nH * kv.nSlots).slice());
    this.linear(p.y, b.att, L.o, M, xq, xs);

    const x = p.x, h = p.h;
    if (hp.residual === 'sequential') {
      k.add(x, x, p.y, M * H);
      this.norm(h, x, L.norm2!, M, H);
      this.mlp(b.mo, h, L, M, b, p.lin);
      k.add(x, x, b.mo, M * H);
    } else {
      // Parallel blocks read the same x: attention and MLP outputs are both added to it.
      if (hp.residual === 'parallel') this.norm(h, x, L.norm2!, M, H);
      this.mlp(b.mo, h, L, M, b, p.lin);
      k.add(x, x, p.y, M * H);
      k.add(x, x, b.mo, M * H);
    }
  }

  /** One Llama-style block run from the low-rank coefficients (FlashSVD, flashsvd.ts). */
  private streamingBlock(p: Pass, l: number): void {
    const { rt, hp } = this;
    const L = this.w.layers[l];
    const H = hp.hiddenSize, M = p.M;
    this.norm(p.h, p.x, L.norm1, M, H);
    streamingAttention(rt, hp, p, L, l, this.w.alibiSlopes);  // p.h ← attention output (M, qDim)
    this.linear(p.y, p.h, L.o, M, p.lin.xq, p.lin.xs);
    rt.k.add(p.x, p.x, p.y, M * H);
    this.norm(p.h, p.x, L.norm2!, M, H);
    streamingFfn(rt, p, L);                                   // p.y ← MLP output (M, H)
    rt.k.add(p.x, p.x, p.y, M * H);
  }

  private ropeTables(kv: KVBatch, M: number): RopeTables | null {
    if (this.hp.position.kind !== 'rope') return null;
    const G = kv.groupOffsets.length;
    const seqLen = Math.max(...kv.qPos) + 1;
    const [cosK, sinK] = this.ropeTable(M, (m) => kv.keyPos[m], seqLen);
    const rot = kv.draftView?.qRot;
    const [cosQ, sinQ] = this.ropeTable(G * M, (i) => rot ? rot[i] : kv.qPos[i % M] + kv.groupOffsets[Math.floor(i / M)], seqLen);
    return { rotDim: this.hp.position.rotaryDim, cosK, sinK, cosQ, sinQ };
  }

  /**
   * cos and sin (rows, rotaryDim/2) in wasm memory, scaled by the RoPE attention factor, for the
   * positions `pos(i)`. Allocated in the caller's scratch; frequencies are cached across calls.
   */
  ropeTable(rows: number, pos: (i: number) => number, seqLen: number): [number, number] {
    if (this.hp.position.kind !== 'rope') throw new Error('ropeTable on a model without RoPE');
    this.frequencies(seqLen);
    const half = this.hp.position.rotaryDim / 2;
    const c = this.rt.alloc(rows * half * 4), s = this.rt.alloc(rows * half * 4);
    const cv = this.rt.f32(c, rows * half), sv = this.rt.f32(s, rows * half);
    const inv = this.invFreq!, sc = this.attnScaling;
    for (let i = 0; i < rows; i++) {
      const p = pos(i);
      for (let j = 0; j < half; j++) { const a = p * inv[j]; cv[i * half + j] = Math.cos(a) * sc; sv[i * half + j] = Math.sin(a) * sc; }
    }
    return [c, s];
  }

  private frequencies(seqLen: number): void {
    if (this.hp.position.kind !== 'rope') return;
    const rope = this.hp.position.rope;
    // Only dynamic NTK scaling depends on the sequence length; the others are computed once.
    if (this.invFreq && (rope.type !== 'dynamic' || seqLen === this.invFreqSeq)) return;
    const f = ropeFrequencies(rope, this.hp.position.rotaryDim, seqLen);
    this.invFreq = f.invFreq;
    this.attnScaling = f.attentionScaling;
    this.invFreqSeq = seqLen;
  }

  private norm(out: number, x: number, n: Norm, M: number, K: number): void {
    if (this.hp.norm === 'rms') this.rt.k.rmsnorm(out, x, n.w, M, K, this.hp.normEps);
    else this.rt.k.layernorm(out, x, n.w, n.b, M, K, this.hp.normEps);
  }

  private mlp(out: number, h: number, L: LayerWeights, M: number, b: DenseBuffers, s: LinearScratch): void {
    const F = L.down.K;
    this.linear(b.ff, h, L.up, M, s.xq, s.xs);
    if (this.hp.gatedMlp) this.rt.k.swiglu(b.act, b.ff, M, F);
    else if (this.hp.act === 'gelu_tanh') this.rt.k.gelu_tanh(b.ff, M * F);
    else this.rt.k.gelu(b.ff, M * F);
    this.linear(out, b.act, L.down, M, s.xq, s.xs);
  }
}

/** Full-size activations of the dense block, allocated once per forward on first use. */
interface DenseBuffers {
  qkv: number;     // (M, qDim + 2 kvDim)
  qg: number;      // rotated queries per group (G, M, qDim)
  att: number;     // attention output (M, qDim)
  ff: number;      // (M, up.N)
  act: number;     // gated: (M, F); plain: = ff
  mo: number;      // MLP output (M, H)
  scratch: number; // attention scratch, threads × nSlots f32
  probs: number;   // (M, nHeads, nSlots) f32 or 0
}
