// The streaming (FlashSVD) way to run a block whose linears are low-rank (W ≈ B·A): the whole block
// runs from the rank-r coefficients. K and V go from P_k, P_v straight into their cache slots; the
// query is rebuilt per (row, head) inside `lowrank_attention` with online softmax; the FFN streams
// over tiles of d_ff in `lowrank_ffn`. Live activations per token: x, h, one (M, H) projection,
// and the P/Q coefficients. The materialized way (x·Aᵀ then ·Bᵀ through the GEMMs) is the
// `lowrank` kind of linear.ts; which one a block uses is chosen at load (Transformer.paths).
import type { Runtime } from '../runtime/runtime.js';
import type { HParams } from './config.js';
import { isF32, type Linear, type LowRankLinear } from './linear.js';
import type { Pass } from './pass.js';
import type { LayerWeights } from './weights.js';

/** Below this many tokens (decode) the activations are tiny and the dense GEMMs parallelize better. */
export const STREAM_MIN_TOKENS = 16;

/** True when the streaming kernels cover block `L`: Llama-style wiring, f32 factors, q/k/v and gate/up fused. */
export function canStreamBlock(hp: HParams, L: LayerWeights): boolean {
  if (!hp.gatedMlp || hp.act !== 'silu' || hp.residual !== 'sequential' || hp.clipQkv !== null) return false;
  const f32 = (l: Linear, parts: number): l is LowRankLinear => l.kind === 'lowrank' && l.parts.length === parts && isF32(l.a) && l.parts.every((p) => isF32(p.b));
  return L.up.bias === 0 && f32(L.qkv, 3) && f32(L.o, 1) && f32(L.up, 2) && f32(L.down, 1);
}

/** The f32 matrix of a factor that canStreamBlock accepted. */
function wOf(l: Linear): number {
  if (!isF32(l)) throw new Error('streaming low-rank block with a non-f32 factor');
  return l.w;
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

// cfg block of lowrank_attention, 4-byte slots in this order (src/kernels/lowrank.ts ATT_*).
const ATT_CFG = ['ldp', 'rq', 'qBias', 'kvStride', 'slotPos', 'slotGroup', 'nSlots', 'qPos', 'nHeads', 'nKv', 'headDim',
  'scale', 'alibi', 'cos', 'sin', 'rotDim', 'groups', 'ldo', 'window', 'sinks'] as const;
type AttCfg = Record<(typeof ATT_CFG)[number], number>;

/**
 * Attention of layer `l` from the normed input `p.h`: K and V into the cache, the output
 * (M, qDim) back into `p.h`.
 */
export function streamingAttention(rt: Runtime, hp: HParams, p: Pass, L: LayerWeights, l: number, alibi: number): void {
  const k = rt.k, kv = p.kv, M = p.M, H = hp.hiddenSize;
  const nH = hp.numHeads, nKv = hp.numKvHeads, hd = hp.headDim;
  const qDim = nH * hd, kvDim = nKv * hd;
  const qkv = L.qkv as LowRankLinear;
  const [pq, pk, pv] = qkv.parts;
  const A = wOf(qkv.a);
  const mark = rt.mark();
  const Pq = rt.alloc(M * pq.r * 4), Pk = rt.alloc(M * pk.r * 4), Pv = rt.alloc(M * pv.r * 4);
  rt.run('matmul_f32', [Pq, p.h, A + pq.pOff * H * 4, 0, M, H, pq.r]);
  rt.run('matmul_f32', [Pk, p.h, A + pk.pOff * H * 4, 0, M, H, pk.r]);
  rt.run('matmul_f32', [Pv, p.h, A + pv.pOff * H * 4, 0, M, H, pv.r]);
  // K and V: from their coefficients straight into the cache slots (rotated there), or through
  // one (M, kvDim) staging buffer when the slots are not consecutive.
  const ws = kv.writeSlots;
  const contiguous = ws.every((s, i) => s === ws[0] + i);
  const bias = (part: typeof pk): number => (qkv.bias ? qkv.bias + part.nOff * 4 : 0);
  const stage = contiguous ? 0 : rt.alloc(M * kvDim * 4);
  const rope = p.rope;
  for (const [part, P, cache, rotate] of [[pk, Pk, kv.k[l], true], [pv, Pv, kv.v[l], false]] as const) {
    const dst = contiguous ? cache + ws[0] * kvDim * 4 : stage;
    rt.run('matmul_f32', [dst, P, wOf(part.b), bias(part), M, part.r, kvDim]);
    if (rotate && rope) k.rope(dst, kvDim, rope.cosK, rope.sinK, M, nKv, hd, rope.rotDim);
    if (!contiguous) {
      const mem = new Float32Array(rt.memory.buffer);
      for (let m = 0; m < M; m++) mem.copyWithin((cache + ws[m] * kvDim * 4) / 4, (stage + m * kvDim * 4) / 4, (stage + (m + 1) * kvDim * 4) / 4);
    }
  }
  const c: AttCfg = {
    ldp: pq.r, rq: pq.r, qBias: qkv.bias, kvStride: kvDim, slotPos: kv.slotPos, slotGroup: kv.slotGroup, nSlots: kv.nSlots,
    qPos: p.qPos, nHeads: nH, nKv, headDim: hd, scale: 1 / Math.sqrt(hd), alibi, cos: rope?.cosQ ?? 0, sin: rope?.sinQ ?? 0,
    rotDim: rope?.rotDim ?? 0, groups: kv.groupOffsets.length, ldo: qDim, window: L.window ?? 0, sinks: L.sinks ?? 0,
  };
  const cfg = rt.alloc(ATT_CFG.length * 4);
  const ci = rt.i32(cfg, ATT_CFG.length), cf = rt.f32(cfg, ATT_CFG.length);
  ATT_CFG.forEach((key, i) => { if (key === 'scale') cf[i] = c[key]; else ci[i] = c[key]; });
  rt.run('lowrank_attention', [p.h, Pq, wOf(pq.b), kv.k[l], kv.v[l], cfg, M]);
  rt.release(mark);
}

/** The gated MLP of block `L` from the normed input `p.h` into `p.y` (M, H), streamed over d_ff. */
export function streamingFfn(rt: Runtime, p: Pass, L: LayerWeights): void {
  const M = p.M;
  const up = L.up as LowRankLinear, down = L.down as LowRankLinear;
  const [pg, pu] = up.parts;
  const rd = down.R, F = down.K, H = up.K;
  const mark = rt.mark();
  const P = rt.alloc(M * up.R * 4);               // (M, r_g + r_u)
  rt.run('matmul_f32', [P, p.h, wOf(up.a), 0, M, H, up.R]);
  const Q = rt.alloc(M * rd * 4);                 // (M, r_d) = act · A_dᵀ, streamed over d_ff
  const cfg = rt.alloc(6 * 4);
  rt.i32(cfg, 6).set([up.R, pg.r, pu.r, F, rd, rd]);   // ldp, rg, ru, F, rd, ldq
  rt.run('lowrank_ffn', [Q, P, wOf(pg.b), wOf(pu.b), wOf(down.a), cfg, M]);
  rt.run('matmul_f32', [p.y, Q, wOf(down.parts[0].b), down.bias, M, rd, down.N]);
  rt.release(mark);
}
