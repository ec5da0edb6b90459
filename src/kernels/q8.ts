// Q8_0: blocks of 32 int8 values with one f32 scale. Planar layout (int8 q[R, K], f32 s[R, K/32])
// rather than GGUF's interleaved blocks, so every 32-value block starts 16-byte aligned.
// K must be a multiple of 32 (the Runtime/model checks it).
import { hmax, reduce4i } from './simd';

/** Bytes of weight rows kept in L2 while every x row passes over them (prefill). */
const BLOCK_BYTES: i32 = 192 * 1024;

/**
 * Per block: s = max|x|/127, q = nearest(x · (127/max|x|)) (ties to even; the reciprocal is one f32
 * division, then a multiply, exactly as the tests' reference does it). An all-zero block gets s = 0, q = 0.
 */
export function quantize_q8(xq: usize, xs: usize, x: usize, M: i32, K: i32): void {
  const nb = K >> 5;
  for (let m = 0; m < M; m++) {
    for (let b = 0; b < nb; b++) {
      const i = <usize>m * K + (<usize>b << 5);
      const p = x + (i << 2);
      const v0 = v128.load(p), v1 = v128.load(p, 16), v2 = v128.load(p, 32), v3 = v128.load(p, 48);
      const v4 = v128.load(p, 64), v5 = v128.load(p, 80), v6 = v128.load(p, 96), v7 = v128.load(p, 112);
      const m01 = f32x4.max(f32x4.abs(v0), f32x4.abs(v1));
      const m23 = f32x4.max(f32x4.abs(v2), f32x4.abs(v3));
      const m45 = f32x4.max(f32x4.abs(v4), f32x4.abs(v5));
      const m67 = f32x4.max(f32x4.abs(v6), f32x4.abs(v7));
      const a = hmax(f32x4.max(f32x4.max(m01, m23), f32x4.max(m45, m67)));
      const s: f32 = a / 127;
      const id: f32 = a > 0 ? <f32>127 / a : 0;
      store<f32>(xs + ((<usize>m * nb + b) << 2), s);
      const d = f32x4.splat(id);
      const q0 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v0, d)));
      const q1 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v1, d)));
      const q2 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v2, d)));
      const q3 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v3, d)));
      const q4 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v4, d)));
      const q5 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v5, d)));
      const q6 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v6, d)));
      const q7 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v7, d)));
      const lo = i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(q0, q1), i16x8.narrow_i32x4_s(q2, q3));
      const hi = i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(q4, q5), i16x8.narrow_i32x4_s(q6, q7));
      v128.store(xq + i, lo);
      v128.store(xq + i, hi, 16);
    }
  }
}

/** Σ over one 32-block of int8 x·w, as four i32 partial sums; load8x8_s sign-extends as it loads. */
// @ts-ignore: decorator
@inline function dot32(x0: v128, x1: v128, x2: v128, x3: v128, w: usize): v128 {
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(x0, v128.load8x8_s(w)), i32x4.dot_i16x8_s(x1, v128.load8x8_s(w, 8))),
    i32x4.add(i32x4.dot_i16x8_s(x2, v128.load8x8_s(w, 16)), i32x4.dot_i16x8_s(x3, v128.load8x8_s(w, 24))),
  );
}

/**
 * out[0..4] for one x row and four weight rows. Each block's integer sums are reduced exactly, then
 * acc[r] += f32(isum[r]) · (xs[b]·ws[r, b]) in f32, in block order: the tests' scalar reference
 * reproduces this bit for bit.
 */
// @ts-ignore: decorator
@inline function q8x4(out: usize, xq: usize, xs: usize, wq: usize, ws: usize, K: i32, bias: usize): void {
  const nb = K >> 5;
  const ldw = <usize>K;
  const lds = <usize>nb << 2;
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const o = <usize>b << 5;
    const xp = xq + o;
    const x0 = v128.load8x8_s(xp), x1 = v128.load8x8_s(xp, 8), x2 = v128.load8x8_s(xp, 16), x3 = v128.load8x8_s(xp, 24);
    const w = wq + o;
    const d = reduce4i(dot32(x0, x1, x2, x3, w), dot32(x0, x1, x2, x3, w + ldw),
      dot32(x0, x1, x2, x3, w + 2 * ldw), dot32(x0, x1, x2, x3, w + 3 * ldw));
    const so = <usize>b << 2;
    let sv = f32x4.splat(load<f32>(ws + so));
    sv = f32x4.replace_lane(sv, 1, load<f32>(ws + lds + so));
    sv = f32x4.replace_lane(sv, 2, load<f32>(ws + 2 * lds + so));
    sv = f32x4.replace_lane(sv, 3, load<f32>(ws + 3 * lds + so));
    sv = f32x4.mul(f32x4.splat(load<f32>(xs + so)), sv);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(d), sv));
  }
  v128.store(out, bias ? f32x4.add(acc, v128.load(bias)) : acc);
}

/** One x row, one weight row; same arithmetic order as one lane of q8x4. */
// @ts-ignore: decorator
@inline function q8x1(out: usize, xq: usize, xs: usize, wq: usize, ws: usize, K: i32, bias: usize): void {
  const nb = K >> 5;
  let acc: f32 = 0;
  for (let b = 0; b < nb; b++) {
    const o = <usize>b << 5;
    const xp = xq + o;
    const d = dot32(v128.load8x8_s(xp), v128.load8x8_s(xp, 8), v128.load8x8_s(xp, 16), v128.load8x8_s(xp, 24), wq + o);
    const isum = i32x4.extract_lane(d, 0) + i32x4.extract_lane(d, 1) + i32x4.extract_lane(d, 2) + i32x4.extract_lane(d, 3);
    const so = <usize>b << 2;
    const sc: f32 = load<f32>(xs + so) * load<f32>(ws + so);
    acc += <f32>isum * sc;
  }
  store<f32>(out, bias ? acc + load<f32>(bias) : acc);
}

/** out[m, n] = Σ_blocks Σ xq·wq · xs·ws + bias[n]. Parallel over n in groups of 4 rows. */
export function matmul_q8(out: usize, xq: usize, xs: usize, wq: usize, ws: usize, bias: usize,
  M: i32, K: i32, N: i32, tid: i32, nth: i32): void {
  const groups = (N + 3) >> 2;
  const n0 = min<i32>(N, (groups * tid / nth) << 2);
  const n1 = min<i32>(N, (groups * (tid + 1) / nth) << 2);
  if (n0 >= n1) return;
  const nb = K >> 5;
  const lds = <usize>nb << 2;
  const ldw = <usize>K;
  const ldo = <usize>N << 2;
  const rows = max<i32>(4, (BLOCK_BYTES / K) & ~3);
  for (let b0 = n0; b0 < n1; b0 += rows) {
    const b1 = min<i32>(n1, b0 + rows);
    for (let m = 0; m < M; m++) {
      const xqr = xq + <usize>m * ldw, xsr = xs + <usize>m * lds, orow = out + <usize>m * ldo;
      let n = b0;
      for (; n + 4 <= b1; n += 4) {
        q8x4(orow + (<usize>n << 2), xqr, xsr, wq + <usize>n * ldw, ws + <usize>n * lds, K, bias ? bias + (<usize>n << 2) : 0);
      }
      for (; n < b1; n++) {
        q8x1(orow + (<usize>n << 2), xqr, xsr, wq + <usize>n * ldw, ws + <usize>n * lds, K, bias ? bias + (<usize>n << 2) : 0);
      }
    }
  }
}
