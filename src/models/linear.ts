// One linear layer, y = x · Wᵀ + b with W: [N, K] rows as HF stores them, in one of a few kinds
// chosen at load. The forward pass calls `runLinear` and never looks at the kind; adding a weight
// format is one kind here plus its kernel, not a branch in the blocks.
import type { ParallelOp, Runtime } from '../runtime/runtime.js';
import { QUANT_MATMUL, type GgmlTypeName } from '../runtime/quant/index.js';

interface LinearBase {
  N: number;
  K: number;
  bias: number;   // (N) f32, 0 = none
}

/** Weights kept as floats: f32, or f16/bf16 widened inside the kernel. */
export interface DenseLinear extends LinearBase { kind: 'dense'; dtype: 'f32' | 'f16' | 'bf16'; w: number /* (N, K) */ }

/** Planar Q8_0: int8 rows (N, K) plus one f32 scale per 32 (N, K/32); activations quantized the same way. */
export interface Q8Linear extends LinearBase { kind: 'q8_0'; w: number; ws: number }

/**
 * A block-quantized GGML type (Q4_0, Q4_K, Q6_K, ...): rows of K/blockSize blocks stored as the file
 * stores them, run by one parallel kernel `op(out, x, w, bias, M, K, N)` on f32 activations. The
 * block table (sizes, bytes) lives with the kernels' TS side in src/runtime/quant/.
 */
export interface BlockLinear extends LinearBase { kind: 'block'; type: string; op: ParallelOp; w: number }

/**
 * W ≈ B·A per part of a (possibly fused) linear. `a` stacks every part's A rows: (R, K), R = Σ r_i;
 * part i reads P[:, pOff, pOff + r) of P = x·Aᵀ and writes output columns [nOff, nOff + b.N).
 */
export interface LowRankLinear extends LinearBase {
  kind: 'lowrank';
  a: Linear;                                                       // (R, K)
  parts: { b: Linear; r: number; pOff: number; nOff: number }[];  // b: (n_i, r_i)
  R: number;
}

/**
 * f32 weights repacked at load into groups of 4 rows, each group one contiguous stream
 * (src/kernels/matmul_r4.ts): the decode GEMV reads them about 1.5x faster per CPU-second than
 * row-major rows, with bit-identical results (docs/benchmarks.md).
 */
export interface R4Linear extends LinearBase { kind: 'f32r4'; w: number }

/** f16/bf16 weights repacked at load the same way, 8 columns per 16-byte row piece (src/kernels/matmul_h4.ts). */
export interface H4Linear extends LinearBase { kind: 'h4'; dtype: 'f16' | 'bf16'; w: number }

/**
 * A fused linear whose parts keep different weight kinds (a llama.cpp Q4_K_M file stores attn_v in
 * Q6_K and attn_q/attn_k in Q4_K): each part runs on its own kernel and writes output columns
 * [nOff, nOff + lin.N). Each part's bias points at its slice of the fused bias (N), set at load.
 */
export interface ConcatLinear extends LinearBase { kind: 'concat'; parts: { lin: Linear; nOff: number }[] }

export type Linear = DenseLinear | R4Linear | H4Linear | Q8Linear | BlockLinear | LowRankLinear | ConcatLinear;

/** Scratch a linear may use for quantized activations: int8 (M·K) and f32 scales (M·K/32 + 1). */
export interface LinearScratch { xq: number; xs: number }

const MATMUL = { f32: 'matmul_f32', f16: 'matmul_f16', bf16: 'matmul_bf16' } as const;
const MATMUL_H4 = { f16: 'matmul_f16h4', bf16: 'matmul_bf16h4' } as const;
/** Up to this many rows (a speculative verify's K+1), bf16 h4 weights are widened once for all rows (matmul_small.ts; f16 does not pay). */
const SMALL_M = 8;

type Runner<L extends Linear> = (rt: Runtime, out: number, x: number, lin: L, M: number, s: LinearScratch, self: LinearFn) => void;
/** How a linear is run; the transformer passes its own (observable) method as `self` for the parts of a low-rank linear. */
export type LinearFn = (out: number, x: number, lin: Linear, M: number, xq: number, xs: number) => void;

const RUNNERS: { [K in Linear['kind']]: Runner<Extract<Linear, { kind: K }>> } = {
  dense: (rt, out, x, lin, M) => rt.run(MATMUL[lin.dtype], [out, x, lin.w, lin.bias, M, lin.K, lin.N]),
  f32r4: (rt, out, x, lin, M) => rt.run('matmul_f32r4', [out, x, lin.w, lin.bias, M, lin.K, lin.N]),
  h4: (rt, out, x, lin, M) => rt.run(lin.dtype === 'bf16' && M > 1 && M <= SMALL_M ? 'matmul_bf16h4_small' : MATMUL_H4[lin.dtype], [out, x, lin.w, lin.bias, M, lin.K, lin.N]),
  q8_0: (rt, out, x, lin, M, s) => {
    rt.k.quantize_q8(s.xq, s.xs, x, M, lin.K);
    rt.run('matmul_q8', [out, s.xq, s.xs, lin.w, lin.ws, lin.bias, M, lin.K, lin.N]);
  },
  block: (rt, out, x, lin, M, s) => {
    // Activations are quantized once (8-bit blocks of 32, or q8_K super-blocks) for the block dot products.
    rt.k[QUANT_MATMUL[lin.type as GgmlTypeName]!.quantize](s.xq, s.xs, x, M, lin.K);
    rt.run(lin.op, [out, s.xq, s.xs, lin.w, lin.bias, M, lin.K, lin.N]);
  },
  lowrank: runLowRank,
  concat: runConcat,
};

/** out (M, N) = x (M, K) · Wᵀ + b, on all threads. */
export function runLinear(rt: Runtime, out: number, x: number, lin: Linear, M: number, s: LinearScratch, self: LinearFn): void {
  (RUNNERS[lin.kind] as Runner<Linear>)(rt, out, x, lin, M, s, self);
}

/** Materialized low-rank linear: P = x·Aᵀ, then out = P·Bᵀ + b part by part with the dense GEMMs. */
function runLowRank(rt: Runtime, out: number, x: number, lin: LowRankLinear, M: number, s: LinearScratch, self: LinearFn): void {
  const mark = rt.mark();
  const P = rt.alloc(M * lin.R * 4);                      // (M, R)
  self(P, x, lin.a, M, s.xq, s.xs);
  if (lin.parts.length === 1) {
    self(out, P, { ...lin.parts[0].b, bias: lin.bias }, M, s.xq, s.xs);
  } else {
    for (const part of lin.parts) {
      const n = part.b.N, r = part.r;
      const pin = rt.alloc(M * r * 4);                    // (M, r): this part's columns of P
      const tmp = rt.alloc(M * n * 4);                    // (M, n)
      const pv = rt.f32(P, M * lin.R), iv = rt.f32(pin, M * r);
      for (let m = 0; m < M; m++) iv.set(pv.subarray(m * lin.R + part.pOff, m * lin.R + part.pOff + r), m * r);
      self(tmp, pin, { ...part.b, bias: lin.bias ? lin.bias + part.nOff * 4 : 0 }, M, s.xq, s.xs);
      const ov = rt.f32(out, M * lin.N), tv = rt.f32(tmp, M * n);
      for (let m = 0; m < M; m++) ov.set(tv.subarray(m * n, (m + 1) * n), m * lin.N + part.nOff);
    }
  }
  rt.release(mark);
}

/**
 * Each part on its own kernel. One row (decode) writes straight into its columns of `out`; more
 * rows go through a (M, n_i) scratch that is scattered into the columns.
 */
function runConcat(rt: Runtime, out: number, x: number, lin: ConcatLinear, M: number, s: LinearScratch, self: LinearFn): void {
  for (const { lin: part, nOff } of lin.parts) {
    if (M === 1) { self(out + nOff * 4, x, part, 1, s.xq, s.xs); continue; }
    const mark = rt.mark(), n = part.N;
    const tmp = rt.alloc(M * n * 4);                      // (M, n)
    self(tmp, x, part, M, s.xq, s.xs);
    const ov = rt.f32(out, M * lin.N), tv = rt.f32(tmp, M * n);
    for (let m = 0; m < M; m++) ov.set(tv.subarray(m * n, (m + 1) * n), m * lin.N + nOff);
    rt.release(mark);
  }
}

/** True for a dense f32 linear (what the FlashSVD kernels read). */
export function isF32(l: Linear): l is DenseLinear { return l.kind === 'dense' && l.dtype === 'f32'; }
