// y = x · Wᵀ (+ bias) for a few x rows (M = 2..8: the K+1 positions a speculative verify runs) on
// the packed h4 (f16/bf16) layout. The prefill path widens the whole weight matrix to f32 and runs
// the GEMM; here each 4-row group's 64-byte blocks are loaded and widened once and applied to up to
// 4 x rows held in 16 accumulators, the group staying in L1 for the second pass of rows 5..8.
// On novels-8m-sink's shapes (1 thread) 5 rows cost about 3.5x one decode GEMV against about 4x
// by the prefill path: the GEMV is bound by arithmetic, not by reading the weights, so sharing the
// loads saves only the widening (docs/benchmarks.md). The r4 (f32) twin of this kernel lost to
// matmul_f32r4's two-row tiles, and the f16 entry lost to the prefill path (f16 widening costs more
// per row; 3.5x against 2.2x a GEMV): both were dropped, so this is bf16 only. Parallel over groups
// of four rows, like the GEMV.
import { madd, reduce4, scratchPtr, scratchBytes } from './simd';
import { BF16, deinterleave, dot1, store1, store4 } from './matmul';
import { matmul_bf16h4 } from './matmul_h4';

/** Even (lanes 0,2,4,6) or odd bf16 halves of the 8 in v, widened to f32. */
// @ts-ignore: decorator
@inline function lo(v: v128): v128 {
  return i32x4.shl(v, 16);
}
// @ts-ignore: decorator
@inline function hi(v: v128): v128 {
  return v128.and(v, i32x4.splat(0xffff0000));
}

/** c + xa·wa + xb·wb: two fused multiply-adds in the relaxed build, the baseline's order otherwise. */
// @ts-ignore: decorator
@inline function fma2(c: v128, xa: v128, wa: v128, xb: v128, wb: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return madd(xb, wb, madd(xa, wa, c));
  return f32x4.add(c, f32x4.add(f32x4.mul(xa, wa), f32x4.mul(xb, wb)));
}

/**
 * R (1..4, a constant after inlining) x rows × one 4-row group at p; x holds the rows
 * deinterleaved per 8 at stride ldx (see matmul.ts); rows of out at stride ldo.
 */
// @ts-ignore: decorator
@inline function groupR(R: i32, out: usize, ldo: usize, x: usize, ldx: usize, p: usize, K: i32, bias: usize): void {
  let c00 = f32x4.splat(0), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
  let c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;
  const x1 = x + ldx, x2 = x1 + ldx, x3 = x2 + ldx;
  // One step covers 8 columns, one 64-byte block: 4 rows × (4 even | 4 odd halves).
  for (let k = 0; k < K; k += 8) {
    const xo = <usize>k << 2;
    const a0 = v128.load(x + xo), b0 = v128.load(x + xo, 16);
    const a1 = R > 1 ? v128.load(x1 + xo) : a0, b1 = R > 1 ? v128.load(x1 + xo, 16) : b0;
    const a2 = R > 2 ? v128.load(x2 + xo) : a0, b2 = R > 2 ? v128.load(x2 + xo, 16) : b0;
    const a3 = R > 3 ? v128.load(x3 + xo) : a0, b3 = R > 3 ? v128.load(x3 + xo, 16) : b0;
    const w0 = v128.load(p, 0);
    const wa0 = lo(w0), wb0 = hi(w0);
    c00 = fma2(c00, a0, wa0, b0, wb0);
    if (R > 1) c10 = fma2(c10, a1, wa0, b1, wb0);
    if (R > 2) c20 = fma2(c20, a2, wa0, b2, wb0);
    if (R > 3) c30 = fma2(c30, a3, wa0, b3, wb0);
    const w1 = v128.load(p, 16);
    const wa1 = lo(w1), wb1 = hi(w1);
    c01 = fma2(c01, a0, wa1, b0, wb1);
    if (R > 1) c11 = fma2(c11, a1, wa1, b1, wb1);
    if (R > 2) c21 = fma2(c21, a2, wa1, b2, wb1);
    if (R > 3) c31 = fma2(c31, a3, wa1, b3, wb1);
    const w2 = v128.load(p, 32);
    const wa2 = lo(w2), wb2 = hi(w2);
    c02 = fma2(c02, a0, wa2, b0, wb2);
    if (R > 1) c12 = fma2(c12, a1, wa2, b1, wb2);
    if (R > 2) c22 = fma2(c22, a2, wa2, b2, wb2);
    if (R > 3) c32 = fma2(c32, a3, wa2, b3, wb2);
    const w3 = v128.load(p, 48);
    const wa3 = lo(w3), wb3 = hi(w3);
    c03 = fma2(c03, a0, wa3, b0, wb3);
    if (R > 1) c13 = fma2(c13, a1, wa3, b1, wb3);
    if (R > 2) c23 = fma2(c23, a2, wa3, b2, wb3);
    if (R > 3) c33 = fma2(c33, a3, wa3, b3, wb3);
    p += 64;
  }
  store4(out, reduce4(c00, c01, c02, c03), bias);
  if (R > 1) store4(out + ldo, reduce4(c10, c11, c12, c13), bias);
  if (R > 2) store4(out + 2 * ldo, reduce4(c20, c21, c22, c23), bias);
  if (R > 3) store4(out + 3 * ldo, reduce4(c30, c31, c32, c33), bias);
}

/** x rows [m, m + R) × the group at p: dispatch on the (runtime) count to the unrolled bodies. */
// @ts-ignore: decorator
@inline function groupRows(R: i32, out: usize, ldo: usize, x: usize, ldx: usize, p: usize, K: i32, bias: usize): void {
  if (R >= 4) groupR(4, out, ldo, x, ldx, p, K, bias);
  else if (R == 3) groupR(3, out, ldo, x, ldx, p, K, bias);
  else if (R == 2) groupR(2, out, ldo, x, ldx, p, K, bias);
  else groupR(1, out, ldo, x, ldx, p, K, bias);
}

// @ts-ignore: decorator
@inline function matmulSmall(out: usize, x: usize, w: usize, bias: usize, M: i32, K: i32, N: i32, tid: i32, nth: i32): void {
  const groups = (N + 3) >> 2;
  const n0 = min<i32>(N, (groups * tid / nth) << 2);
  const n1 = min<i32>(N, (groups * (tid + 1) / nth) << 2);
  if (n0 >= n1) return;
  const ldw = <usize>K << 1, ldx = <usize>K << 2, ldo = <usize>N << 2;
  const full = N & ~3;
  // x deinterleaved per 8 in this instance's scratch (M·K·4 bytes, checked by the callers).
  const xs = scratchPtr;
  for (let m = 0; m < M; m++) deinterleave(xs + <usize>m * ldx, x + <usize>m * ldx, K, 1);
  const g1 = min<i32>(n1, full);
  for (let n = n0; n < g1; n += 4) {
    const p = w + <usize>n * ldw, b = bias ? bias + (<usize>n << 2) : 0;
    for (let m = 0; m < M; m += 4) {
      groupRows(M - m, out + <usize>m * ldo + (<usize>n << 2), ldo, xs + <usize>m * ldx, ldx, p, K, b);
    }
  }
  for (let n = max<i32>(n0, full); n < n1; n++) {
    for (let m = 0; m < M; m++) {
      store1(out + <usize>m * ldo + (<usize>n << 2), dot1(BF16, x + <usize>m * ldx, w + <usize>n * ldw, K), bias ? bias + (<usize>n << 2) : 0);
    }
  }
}

/** bf16 weights in the h4 layout; more rows than fit the scratch go to matmul_bf16h4. */
export function matmul_bf16h4_small(out: usize, x: usize, w: usize, bias: usize, M: i32, K: i32, N: i32, tid: i32, nth: i32): void {
  if (<usize>M * (<usize>K << 2) > scratchBytes) matmul_bf16h4(out, x, w, bias, M, K, N, tid, nth);
  else matmulSmall(out, x, w, bias, M, K, N, tid, nth);
}
