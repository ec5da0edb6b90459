// Matmuls over GGUF's 32-element block types, read in the file's byte layout as-is (no repack):
//   q4_0 18 B: d f16 | qs[16]          q4_1 20 B: d f16 | m f16 | qs[16]
//   q5_0 22 B: d f16 | qh u32 | qs[16] q5_1 24 B: d f16 | m f16 | qh u32 | qs[16]
//   q8_0 34 B: d f16 | qs i8[32]
// The activation comes from quantize_q8 (int8 xq[M, K], f32 xs[M, K/32]), once per call. Per block:
// the weight codes widen to int16 and meet the activation in i32x4.dot_i16x8_s; the integer sum is
// converted once and scaled by xs·d (plus xs·m·Σxq for the offset types q4_1/q5_1).
// out[m, n] = Σ_blocks (xs·d·Σ q·xq + xs·m·Σ xq) + bias[n]. K must be a multiple of 32.
import { h2f1, hsum } from './simd';

/** Bytes of weight rows kept in L2 while every x row passes over them (prefill). */
const BLOCK_BYTES: i32 = 192 * 1024;

const F_Q4_0: i32 = 0, F_Q4_1: i32 = 1, F_Q5_0: i32 = 2, F_Q5_1: i32 = 3, F_Q8_0: i32 = 4;

// @ts-ignore: decorator
@inline function blockBytes(fmt: i32): i32 {
  return fmt == F_Q4_0 ? 18 : fmt == F_Q4_1 ? 20 : fmt == F_Q5_0 ? 22 : fmt == F_Q5_1 ? 24 : 34;
}

/** The 5th bits of 32 codes, from the u32 at `p`: byte j of the result is 0x10 where bit j is set. */
// @ts-ignore: decorator
@inline function highBits(h: v128, sel: v128): v128 {
  const bitsel = i8x16(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  const b = v128.and(i8x16.swizzle(h, sel), bitsel);
  return v128.and(i8x16.ne(b, i8x16.splat(0)), i8x16.splat(0x10));
}

/**
 * One row of weights (fmt) against one quantized x row: Σ over blocks, accumulated in f32 lanes.
 * `fmt` is a constant at every call site, so inlining folds the format switches away.
 */
// @ts-ignore: decorator
@inline function rowDot(fmt: i32, xq: usize, xs: usize, w: usize, nb: i32): f32 {
  const bb = <usize>blockBytes(fmt);
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const xp = xq + (<usize>b << 5);
    const x0 = v128.load8x8_s(xp), x1 = v128.load8x8_s(xp, 8), x2 = v128.load8x8_s(xp, 16), x3 = v128.load8x8_s(xp, 24);
    const wb = w + <usize>b * bb;
    let lo: v128, hi: v128;
    if (fmt == F_Q8_0) {
      lo = v128.load(wb, 2); hi = v128.load(wb, 18);
    } else {
      const qs = fmt == F_Q4_0 ? 2 : fmt == F_Q4_1 ? 4 : fmt == F_Q5_0 ? 6 : 8;
      const v = v128.load(wb + qs);
      lo = v128.and(v, i8x16.splat(15));
      hi = i8x16.shr_u(v, 4);
      if (fmt == F_Q5_0 || fmt == F_Q5_1) {
        const h = i32x4.splat(load<u32>(wb + (fmt == F_Q5_0 ? 2 : 4)));
        lo = v128.or(lo, highBits(h, i8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)));
        hi = v128.or(hi, highBits(h, i8x16(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3)));
      }
      if (fmt == F_Q4_0) { lo = i8x16.sub(lo, i8x16.splat(8)); hi = i8x16.sub(hi, i8x16.splat(8)); }
      if (fmt == F_Q5_0) { lo = i8x16.sub(lo, i8x16.splat(16)); hi = i8x16.sub(hi, i8x16.splat(16)); }
    }
    const p = i32x4.add(
      i32x4.add(i32x4.dot_i16x8_s(x0, i16x8.extend_low_i8x16_s(lo)), i32x4.dot_i16x8_s(x1, i16x8.extend_high_i8x16_s(lo))),
      i32x4.add(i32x4.dot_i16x8_s(x2, i16x8.extend_low_i8x16_s(hi)), i32x4.dot_i16x8_s(x3, i16x8.extend_high_i8x16_s(hi))));
    const s = load<f32>(xs + (<usize>b << 2));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(p), f32x4.splat(s * h2f1(load<u16>(wb)))));
    if (fmt == F_Q4_1 || fmt == F_Q5_1) {
      // Σ xq over the block: four int16 vectors (|sum| <= 4·127 per lane), then pairwise to i32.
      const sx = i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.add(x0, x1), i16x8.add(x2, x3)));
      acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(sx), f32x4.splat(s * h2f1(load<u16>(wb, 2)))));
    }
  }
  return hsum(acc);
}

// @ts-ignore: decorator
@inline function matmul32(fmt: i32, out: usize, xq: usize, xs: usize, w: usize, bias: usize,
  M: i32, K: i32, N: i32, tid: i32, nth: i32): void {
  const groups = (N + 3) >> 2;
  const n0 = min<i32>(N, (groups * tid / nth) << 2);
  const n1 = min<i32>(N, (groups * (tid + 1) / nth) << 2);
  if (n0 >= n1) return;
  const nb = K >> 5;
  const ldw = <usize>nb * blockBytes(fmt);
  const rows = max<i32>(4, (BLOCK_BYTES / <i32>ldw) & ~3);
  for (let b0 = n0; b0 < n1; b0 += rows) {
    const b1 = min<i32>(n1, b0 + rows);
    for (let m = 0; m < M; m++) {
      const xqr = xq + <usize>m * K, xsr = xs + ((<usize>m * nb) << 2), orow = out + ((<usize>m * N) << 2);
      for (let n = b0; n < b1; n++) {
        const r = rowDot(fmt, xqr, xsr, w + <usize>n * ldw, nb);
        store<f32>(orow + (<usize>n << 2), bias ? r + load<f32>(bias + (<usize>n << 2)) : r);
      }
    }
  }
}

/** Parallel over n in groups of 4 rows; each thread writes only its rows of every out row. */
export function matmul_q4_0(out: usize, xq: usize, xs: usize, w: usize, bias: usize, M: i32, K: i32, N: i32, tid: i32, nth: i32): void {
  matmul32(F_Q4_0, out, xq, xs, w, bias, M, K, N, tid, nth);
}
export function matmul_q4_1(out: usize, xq: usize, xs: usize, w: usize, bias: usize, M: i32, K: i32, N: i32, tid: i32, nth: i32): void {
  matmul32(F_Q4_1, out, xq, xs, w, bias, M, K, N, tid, nth);
}
export function matmul_q5_0(out: usize, xq: usize, xs: usize, w: usize, bias: usize, M: i32, K: i32, N: i32, tid: i32, nth: i32): void {
  matmul32(F_Q5_0, out, xq, xs, w, bias, M, K, N, tid, nth);
}
export function matmul_q5_1(out: usize, xq: usize, xs: usize, w: usize, bias: usize, M: i32, K: i32, N: i32, tid: i32, nth: i32): void {
  matmul32(F_Q5_1, out, xq, xs, w, bias, M, K, N, tid, nth);
}
export function matmul_q8_0(out: usize, xq: usize, xs: usize, w: usize, bias: usize, M: i32, K: i32, N: i32, tid: i32, nth: i32): void {
  matmul32(F_Q8_0, out, xq, xs, w, bias, M, K, N, tid, nth);
}
