import type { Runtime } from '../runtime/runtime.js';
import type { HParams } from './config.js';
import { ropeFrequencies } from './rope.js';
import type { Embedding, Linear, Norm } from './weights.js';
import { linearLowRank, streamingForward } from '../lowrank/forward.js';

export interface LayerWeights {
  norm1: Norm;
  norm2: Norm | null;  // null when attention and MLP share norm1 (parallel_shared_norm)
  qkv: Linear;         // (qDim + 2·kvDim, hidden): rows are [q heads; k heads; v heads]
  o: Linear;           // (hidden, qDim)
  up: Linear;          // gated: (2·F, hidden) rows [gate; up]; plain: (F, hidden)
  down: Linear;        // (hidden, F)
}

export interface ModelWeights {
  embed: Embedding;     // (vocab, hidden)
  layers: LayerWeights[];
  finalNorm: Norm;
  lmHead: Linear;       // (vocab, hidden), may share memory with embed
  alibiSlopes: number;  // (numHeads) f32, 0 unless ALiBi
}

/**
 * Where the new tokens' keys and values go and which positions everyone sees. Filled by the cache
 * layer; the model never knows which eviction policy produced it.
 */
export interface KVBatch {
  k: readonly number[];           // per layer, (slots, kvDim) f32
  v: readonly number[];
  nSlots: number;                 // physical slots the kernel scans
  slotPos: number;                // i32 (slots): cache position of each slot, EMPTY_POS if empty
  slotGroup: number;              // i32 (slots): rotation group of each slot
  writeSlots: readonly number[];  // physical slot of new token m
  keyPos: readonly number[];      // rotation position of new token m's key (its stream index)
  qPos: readonly number[];        // cache position of new token m (as a query)
  groupOffsets: readonly number[];// query rotation for group g is qPos + groupOffsets[g]
}

export interface ForwardOptions {
  /** Logits for every new token, or only the last (default). */
  logits?: 'last' | 'all';
  /** Called per layer with attention probabilities (M, numHeads, nSlots), for attention maps. */
  onAttention?: (layer: number, probs: Float32Array) => void;
}

const MATMUL = { f32: 'matmul_f32', f16: 'matmul_f16', bf16: 'matmul_bf16' } as const;
const EMBED = { f32: 'embed_f32', f16: 'embed_f16', bf16: 'embed_bf16' } as const;

/** The decoder-only forward pass shared by every family: embed, N blocks, norm, LM head. */
export class Transformer {
  private invFreq: Float64Array | null = null;
  private invFreqSeq = -1;
  private attnScaling = 1;

  constructor(readonly rt: Runtime, readonly hp: HParams, readonly w: ModelWeights) {}

  /** Runs the new `tokens` through the model, writing their K/V into the cache slots of `kv`. */
  forward(tokens: readonly number[], kv: KVBatch, opts: ForwardOptions = {}): Float32Array {
    const streamed = streamingForward(this, tokens, kv, opts);
    if (streamed) return streamed;
    const { rt, hp, w } = this;
    const k = rt.k;
    const M = tokens.length;
    const H = hp.hiddenSize, nH = hp.numHeads, nKv = hp.numKvHeads, hd = hp.headDim;
    const qDim = nH * hd, kvDim = nKv * hd, qkvDim = qDim + 2 * kvDim;
    const F = hp.intermediateSize;
    // One query copy per rotation group; without RoPE (ALiBi) the copies are identical.
    const G = kv.groupOffsets.length;
    const V = hp.vocabSize;
    const outRows = opts.logits === 'all' ? M : 1;

    const mark = rt.mark();
    const ids = rt.alloc(M * 4);
    rt.i32(ids, M).set(tokens);
    const x = rt.alloc(M * H * 4);       // residual stream (M, H)
    const h = rt.alloc(M * H * 4);       // normed input (M, H)
    const qkv = rt.alloc(M * qkvDim * 4);// (M, qDim + 2 kvDim)
    const qg = rt.alloc(G * M * qDim * 4); // rotated queries per group (G, M, qDim)
    const att = rt.alloc(M * qDim * 4);  // attention output (M, qDim)
    const ao = rt.alloc(M * H * 4);      // attention projected (M, H)
    const ff = rt.alloc(M * w.layers[0].up.N * 4);
    const act = hp.gatedMlp ? rt.alloc(M * F * 4) : ff;
    const mo = rt.alloc(M * H * 4);
    const qPos = rt.alloc(M * 4);
    rt.i32(qPos, M).set(kv.qPos);
    const scratch = rt.alloc(rt.threads * kv.nSlots * 4);
    const probs = opts.onAttention ? rt.alloc(M * nH * kv.nSlots * 4) : 0;
    const maxK = Math.max(H, F, qDim);
    const xq = rt.alloc(M * maxK);
    const xs = rt.alloc((M * maxK) / 32 * 4 + 4);
    const logits = rt.alloc(outRows * V * 4);

    let rope: { rotDim: number; cosK: number; sinK: number; cosQ: number[]; sinQ: number[] } | null = null;
    if (hp.position.kind === 'rope') {
      const seqLen = Math.max(...kv.qPos) + 1;
      const [cosK, sinK] = this.ropeTable(M, (m) => kv.keyPos[m], seqLen);
      const cosQ: number[] = [], sinQ: number[] = [];
      for (let g = 0; g < G; g++) {
        const [c, s] = this.ropeTable(M, (m) => kv.qPos[m] + kv.groupOffsets[g], seqLen);
        cosQ.push(c); sinQ.push(s);
      }
      rope = { rotDim: hp.position.rotaryDim, cosK, sinK, cosQ, sinQ };
    }

    k[EMBED[w.embed.dtype]](x, w.embed.table, ids, M, H);
    const scale = 1 / Math.sqrt(hd);

    for (let l = 0; l < w.layers.length; l++) {
      const L = w.layers[l];
      this.norm(h, x, L.norm1, M, H);
      this.linear(qkv, h, L.qkv, M, xq, xs);
      if (hp.clipQkv !== null) k.clamp(qkv, M * qkvDim, -hp.clipQkv, hp.clipQkv);
      const mem = new Float32Array(rt.memory.buffer);
      for (let g = 0; g < G; g++)
        for (let m = 0; m < M; m++) mem.copyWithin((qg + ((g * M + m) * qDim) * 4) / 4, (qkv + m * qkvDim * 4) / 4, (qkv + (m * qkvDim + qDim) * 4) / 4);
      if (rope) {
        k.rope(qkv + qDim * 4, qkvDim, rope.cosK, rope.sinK, M, nKv, hd, rope.rotDim);
        for (let g = 0; g < G; g++) k.rope(qg + g * M * qDim * 4, qDim, rope.cosQ[g], rope.sinQ[g], M, nH, hd, rope.rotDim);
      }
      for (let m = 0; m < M; m++) {
        const src = (qkv + (m * qkvDim + qDim) * 4) / 4;
        const slot = kv.writeSlots[m];
        mem.copyWithin((kv.k[l] + slot * kvDim * 4) / 4, src, src + kvDim);
        mem.copyWithin((kv.v[l] + slot * kvDim * 4) / 4, src + kvDim, src + 2 * kvDim);
      }
      rt.run('attention', [att, qg, qDim, M * qDim, kv.k[l], kv.v[l], kvDim, kv.slotPos, kv.slotGroup, kv.nSlots, qPos,
        M, nH, nKv, hd, scale, w.alibiSlopes, probs, scratch]);
      if (probs) opts.onAttention!(l, rt.f32(probs, M * nH * kv.nSlots).slice());
      this.linear(ao, att, L.o, M, xq, xs);

      if (hp.residual === 'sequential') {
        k.add(x, x, ao, M * H);
        this.norm(h, x, L.norm2!, M, H);
        this.mlp(mo, h, L, M, ff, act, xq, xs);
        k.add(x, x, mo, M * H);
      } else {
        // Parallel blocks read the same x: attention and MLP outputs are both added to it.
        if (hp.residual === 'parallel') this.norm(h, x, L.norm2!, M, H);
        this.mlp(mo, h, L, M, ff, act, xq, xs);
        k.add(x, x, ao, M * H);
        k.add(x, x, mo, M * H);
      }
    }

    const first = M - outRows;
    this.norm(h, x + first * H * 4, w.finalNorm, outRows, H);
    this.linear(logits, h, w.lmHead, outRows, xq, xs);
    const out = rt.f32(logits, outRows * V).slice();
    rt.release(mark);
    return out;
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

  private mlp(out: number, h: number, L: LayerWeights, M: number, ff: number, act: number, xq: number, xs: number): void {
    const F = this.hp.intermediateSize;
    this.linear(ff, h, L.up, M, xq, xs);
    if (this.hp.gatedMlp) this.rt.k.swiglu(act, ff, M, F);
    else if (this.hp.act === 'gelu_tanh') this.rt.k.gelu_tanh(ff, M * F);
    else this.rt.k.gelu(ff, M * F);
    this.linear(out, act, L.down, M, xq, xs);
  }

  /** out (M, N) = x (M, K) · Wᵀ + b, on all threads. */
  linear(out: number, x: number, lin: Linear, M: number, xq: number, xs: number): void {
    if (lin.lr) { linearLowRank(this, out, x, lin, M, xq, xs); return; }
    if (lin.dtype === 'q8_0') {
      this.rt.k.quantize_q8(xq, xs, x, M, lin.K);
      this.rt.run('matmul_q8', [out, xq, xs, lin.w, lin.ws, lin.bias, M, lin.K, lin.N]);
    } else {
      this.rt.run(MATMUL[lin.dtype], [out, x, lin.w, lin.bias, M, lin.K, lin.N]);
    }
  }
}
