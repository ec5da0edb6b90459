// Running low-rank linears (W ≈ B·A) in the shared forward pass, two ways:
//  - materialized: P = x·Aᵀ, then y = P·Bᵀ with the dense GEMM. Every full-size activation of the
//    dense model still exists (qkv, the [M, 2·d_ff] gate/up output, ...). Works for every family.
//  - streaming (FlashSVD): the whole block runs from the rank-r coefficients. K and V go from
//    P_k, P_v straight into their cache slots; the query is rebuilt per (row, head) inside
//    `lowrank_attention` with online softmax; the FFN streams over tiles of d_ff in `lowrank_ffn`.
//    Live activations per token: x, h, one (M, H) projection, and the P/Q coefficients.
import type { Runtime } from '../runtime/runtime.js';
import type { ForwardOptions, KVBatch, LayerWeights, Transformer } from '../models/transformer.js';
import type { Linear } from '../models/weights.js';
import { StreamlmError } from '../errors.js';

/** `auto`: streaming for chunks of at least STREAM_MIN_TOKENS tokens when the model allows it. */
export type LowRankMode = 'auto' | 'materialized' | 'streaming';

/** Below this many tokens (decode) the activations are tiny and the dense GEMMs parallelize better. */
export const STREAM_MIN_TOKENS = 16;

const modes = new WeakMap<Transformer, LowRankMode>();

/** Chooses how `net` runs its low-rank linears (default `auto`). No effect on dense models. */
export function setLowRankMode(net: Transformer, mode: LowRankMode): void {
  if (!['auto', 'materialized', 'streaming'].includes(mode)) throw new StreamlmError(`must be auto, materialized or streaming, got '${mode}'`, { field: 'lowrank mode' });
  modes.set(net, mode);
}

export function lowRankMode(net: Transformer): LowRankMode { return modes.get(net) ?? 'auto'; }

/** True when every block of `net` can run the streaming kernels (Llama-style, f32 factors). */
export function canStream(net: Transformer): boolean {
  const { hp, w } = net;
  if (!hp.gatedMlp || hp.act !== 'silu' || hp.residual !== 'sequential' || hp.clipQkv !== null) return false;
  const f32 = (l: Linear): boolean => !!l.lr && l.lr.a.dtype === 'f32' && l.lr.parts.every((p) => p.b.dtype === 'f32');
  return w.layers.every((L) => L.up.bias === 0 && f32(L.qkv) && L.qkv.lr!.parts.length === 3 && f32(L.o) && f32(L.up) && L.up.lr!.parts.length === 2
    && f32(L.down) && L.down.lr!.parts.length === 1);
}

/** Bytes allocated by `fn` above what was live when it started: its peak activation memory. */
export function peakActivationBytes<T>(rt: Runtime, fn: () => T): { result: T; bytes: number } {
  rt.resetPeakScratch();
  const base = rt.peakScratchBytes;
  const mark = rt.mark();
  try {
    const result = fn();
    return { result, bytes: rt.peakScratchBytes - base };
  } finally {
    rt.release(mark);
  }
}

/** Materialized low-rank linear: out (M, N) = (x·Aᵀ)·Bᵀ + b. */
export function linearLowRank(net: Transformer, out: number, x: number, lin: Linear, M: number, xq: number, xs: number): void {
  const rt = net.rt;
  const lr = lin.lr!;
  const mark = rt.mark();
  const P = rt.alloc(M * lr.R * 4);                       // (M, R)
  net.linear(P, x, lr.a, M, xq, xs);
  if (lr.parts.length === 1) {
    net.linear(out, P, { ...lr.parts[0].b, bias: lin.bias }, M, xq, xs);
  } else {
    const N = lin.N;
    for (const part of lr.parts) {
      const n = part.b.N, r = part.r;
      const pin = rt.alloc(M * r * 4);                    // (M, r): this part's columns of P
      const tmp = rt.alloc(M * n * 4);                    // (M, n)
      const pv = rt.f32(P, M * lr.R), iv = rt.f32(pin, M * r);
      for (let m = 0; m < M; m++) iv.set(pv.subarray(m * lr.R + part.pOff, m * lr.R + part.pOff + r), m * r);
      net.linear(tmp, pin, { ...part.b, bias: lin.bias ? lin.bias + part.nOff * 4 : 0 }, M, xq, xs);
      const ov = rt.f32(out, M * N), tv = rt.f32(tmp, M * n);
      for (let m = 0; m < M; m++) ov.set(tv.subarray(m * n, (m + 1) * n), m * N + part.nOff);
    }
  }
  rt.release(mark);
}

/**
 * The streaming forward, or null when it does not apply (dense model, materialized mode, short
 * chunk in auto mode, attention maps requested, or a block the kernels do not cover).
 */
export function streamingForward(net: Transformer, tokens: readonly number[], kv: KVBatch, opts: ForwardOptions): Float32Array | null {
  const mode = lowRankMode(net);
  const M = tokens.length;
  if (!net.w.layers[0]?.qkv.lr || mode === 'materialized' || opts.onAttention) return null;
  if (mode === 'auto' && M < STREAM_MIN_TOKENS) return null;
  if (!canStream(net)) {
    if (mode === 'streaming') throw new StreamlmError('this model cannot run the streaming low-rank kernels (they need Llama-style blocks with f32 factors)', { field: 'lowrank mode' });
    return null;
  }
  const { rt, hp, w } = net;
  const k = rt.k;
  const H = hp.hiddenSize, nH = hp.numHeads, nKv = hp.numKvHeads, hd = hp.headDim;
  const qDim = nH * hd, kvDim = nKv * hd;
  const G = kv.groupOffsets.length;
  const V = hp.vocabSize;
  const outRows = opts.logits === 'all' ? M : 1;

  const mark = rt.mark();
  const ids = rt.alloc(M * 4);
  rt.i32(ids, M).set(tokens);
  const x = rt.alloc(M * H * 4);                    // residual stream (M, H)
  const h = rt.alloc(M * Math.max(H, qDim) * 4);    // normed input, then attention output (M, qDim)
  const y = rt.alloc(M * H * 4);                    // attention or MLP output projected (M, H)
  const qPos = rt.alloc(M * 4);
  rt.i32(qPos, M).set(kv.qPos);
  const cfg = rt.alloc(128);
  const logits = rt.alloc(outRows * V * 4);
  const head = w.lmHead;
  const xq = head.dtype === 'q8_0' ? rt.alloc(outRows * H) : 0;
  const xs = head.dtype === 'q8_0' ? rt.alloc(outRows * H / 32 * 4 + 4) : 0;

  let rotDim = 0, cosK = 0, sinK = 0, cosQ = 0, sinQ = 0;
  if (hp.position.kind === 'rope') {
    rotDim = hp.position.rotaryDim;
    const seqLen = Math.max(...kv.qPos) + 1;
    [cosK, sinK] = net.ropeTable(M, (m) => kv.keyPos[m], seqLen);
    [cosQ, sinQ] = net.ropeTable(G * M, (i) => kv.qPos[i % M] + kv.groupOffsets[Math.floor(i / M)], seqLen);
  }

  const ws = kv.writeSlots;
  const contiguous = ws.every((s, i) => s === ws[0] + i);
  const norm = (out: number, inp: number, n: LayerWeights['norm1'], rows: number): void => {
    if (hp.norm === 'rms') k.rmsnorm(out, inp, n.w, rows, H, hp.normEps);
    else k.layernorm(out, inp, n.w, n.b, rows, H, hp.normEps);
  };

  ({ f32: k.embed_f32, f16: k.embed_f16, bf16: k.embed_bf16 })[w.embed.dtype](x, w.embed.table, ids, M, H);
  for (let l = 0; l < w.layers.length; l++) {
    const L = w.layers[l];
    norm(h, x, L.norm1, M);
    const lm = rt.mark();
    const qkv = L.qkv.lr!;
    const [pq, pk, pv] = qkv.parts;
    const A = qkv.a.w;
    const Pq = rt.alloc(M * pq.r * 4), Pk = rt.alloc(M * pk.r * 4), Pv = rt.alloc(M * pv.r * 4);
    rt.run('matmul_f32', [Pq, h, A + pq.pOff * H * 4, 0, M, H, pq.r]);
    rt.run('matmul_f32', [Pk, h, A + pk.pOff * H * 4, 0, M, H, pk.r]);
    rt.run('matmul_f32', [Pv, h, A + pv.pOff * H * 4, 0, M, H, pv.r]);
    // K and V: from their coefficients straight into the cache slots (rotated there), or through
    // one (M, kvDim) staging buffer when the slots are not consecutive.
    const bias = (part: typeof pk): number => (L.qkv.bias ? L.qkv.bias + part.nOff * 4 : 0);
    const stage = contiguous ? 0 : rt.alloc(M * kvDim * 4);
    for (const [part, P, cache, rotate] of [[pk, Pk, kv.k[l], true], [pv, Pv, kv.v[l], false]] as const) {
      const dst = contiguous ? cache + ws[0] * kvDim * 4 : stage;
      rt.run('matmul_f32', [dst, P, part.b.w, bias(part), M, part.r, kvDim]);
      if (rotate && rotDim) k.rope(dst, kvDim, cosK, sinK, M, nKv, hd, rotDim);
      if (!contiguous) {
        const mem = new Float32Array(rt.memory.buffer);
        for (let m = 0; m < M; m++) mem.copyWithin((cache + ws[m] * kvDim * 4) / 4, (stage + m * kvDim * 4) / 4, (stage + (m + 1) * kvDim * 4) / 4);
      }
    }
    const c = rt.i32(cfg, 18), cf = rt.f32(cfg, 18);
    c.set([pq.r, pq.r, L.qkv.bias, kvDim, kv.slotPos, kv.slotGroup, kv.nSlots, qPos, nH, nKv, hd, 0, w.alibiSlopes, cosQ, sinQ, rotDim, G, qDim]);
    cf[11] = 1 / Math.sqrt(hd);
    rt.run('lowrank_attention', [h, Pq, pq.b.w, kv.k[l], kv.v[l], cfg, M]);
    rt.release(lm);
    net.linear(y, h, L.o, M, 0, 0);
    k.add(x, x, y, M * H);

    norm(h, x, L.norm2!, M);
    const fm = rt.mark();
    const up = L.up.lr!, down = L.down.lr!;
    const [pg, pu] = up.parts;
    const rd = down.R, F = hp.intermediateSize;
    const P = rt.alloc(M * up.R * 4);               // (M, r_g + r_u)
    rt.run('matmul_f32', [P, h, up.a.w, 0, M, H, up.R]);
    const Q = rt.alloc(M * rd * 4);                 // (M, r_d) = act · A_dᵀ, streamed over d_ff
    rt.i32(cfg, 6).set([up.R, pg.r, pu.r, F, rd, rd]);
    rt.run('lowrank_ffn', [Q, P, pg.b.w, pu.b.w, down.a.w, cfg, M]);
    rt.run('matmul_f32', [y, Q, down.parts[0].b.w, L.down.bias, M, rd, H]);
    rt.release(fm);
    k.add(x, x, y, M * H);
  }

  const first = M - outRows;
  norm(h, x + first * H * 4, w.finalNorm, outRows);
  net.linear(logits, h, head, outRows, xq, xs);
  const out = rt.f32(logits, outRows * V).slice();
  rt.release(mark);
  return out;
}
