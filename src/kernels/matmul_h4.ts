// y = x · Wᵀ (+ bias) for f16 and bf16 weights in the "h4" layout, the half-precision twin of
// matmul_r4.ts: each group of four rows [4g, 4g+4) is stored as K/8 blocks of 64 bytes, block j
// holding columns 8j..8j+7 of the four rows (row r at byte 16r). Rows after the last full group stay
// row-major. The decode GEMV then reads one forward stream per group instead of four strided rows,
// widening each 16-byte load of 8 halves with shifts and masks (no shuffles: x is deinterleaved
// once per call, see matmul.ts). Prefill widens blocks of rows to row-major f32 in this instance's
// scratch and runs matmul.ts's f32 GEMM on them. Parallel over groups of four rows.
import { reduce4, scratchPtr, scratchBytes, h2f, madd } from './simd';
import { F16, BF16, F16_X_SCALE, F16_SUM_SCALE, f16Even, f16Odd, deinterleave, dot1, store1, store4, gemmF32 } from './matmul';

const BLOCK_BYTES: i32 = 192 * 1024;

/**
 * Rewrites row-major 2-byte W[N, K] at w into the h4 layout, in place (one group at a time through
 * this instance's scratch). Returns 1 when packed, 0 when left row-major: K not a multiple of 8, or
 * a group (8·K bytes) larger than the scratch.
 */
export function pack_h4(w: usize, N: i32, K: i32): i32 {
  const bytes = <usize>K << 3;
  if ((K & 7) != 0 || bytes > scratchBytes) return 0;
  const ldw = <usize>K << 1;
  for (let g = 0; g + 4 <= N; g += 4) {
    const src = w + <usize>g * ldw;
    memory.copy(scratchPtr, src, bytes);
    for (let j = 0; j < K; j += 8) {
      const d = src + (<usize>j << 3), s = scratchPtr + (<usize>j << 1);
      v128.store(d, v128.load(s));
      v128.store(d, v128.load(s + ldw), 16);
      v128.store(d, v128.load(s + 2 * ldw), 32);
      v128.store(d, v128.load(s + 3 * ldw), 48);
    }
  }
  return 1;
}

/** out[0..4] = x · (group at p)ᵀ with xd = x deinterleaved per 8 (times F16_X_SCALE for f16). */
// @ts-ignore: decorator
@inline function gemvGroup(kind: i32, out: usize, xd: usize, p: usize, K: i32, bias: usize): void {
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  const hi = i32x4.splat(0xffff0000);
  for (let k = 0; k < K; k += 8) {
    const xo = <usize>k << 2;
    const x0 = v128.load(xd + xo), x1 = v128.load(xd + xo, 16);
    const v0 = v128.load(p), v1 = v128.load(p, 16), v2 = v128.load(p, 32), v3 = v128.load(p, 48);
    if (kind == F16) {
      a0 = madd(x0, f16Even(v0), a0);
      b0 = madd(x1, f16Odd(v0), b0);
      a1 = madd(x0, f16Even(v1), a1);
      b1 = madd(x1, f16Odd(v1), b1);
      a2 = madd(x0, f16Even(v2), a2);
      b2 = madd(x1, f16Odd(v2), b2);
      a3 = madd(x0, f16Even(v3), a3);
      b3 = madd(x1, f16Odd(v3), b3);
    } else {
      a0 = madd(x0, i32x4.shl(v0, 16), a0);
      b0 = madd(x1, v128.and(v0, hi), b0);
      a1 = madd(x0, i32x4.shl(v1, 16), a1);
      b1 = madd(x1, v128.and(v1, hi), b1);
      a2 = madd(x0, i32x4.shl(v2, 16), a2);
      b2 = madd(x1, v128.and(v2, hi), b2);
      a3 = madd(x0, i32x4.shl(v3, 16), a3);
      b3 = madd(x1, v128.and(v3, hi), b3);
    }
    p += 64;
  }
  let r = reduce4(f32x4.add(a0, b0), f32x4.add(a1, b1), f32x4.add(a2, b2), f32x4.add(a3, b3));
  if (kind == F16) r = f32x4.mul(r, f32x4.splat(F16_SUM_SCALE));
  store4(out, r, bias);
}

// @ts-ignore: decorator
@inline function widen8(kind: i32, dst: usize, src: usize): void {
  const v = v128.load(src);
  if (kind == F16) {
    v128.store(dst, h2f(i32x4.extend_low_i16x8_s(v)));
    v128.store(dst, h2f(i32x4.extend_high_i16x8_s(v)), 16);
  } else {
    v128.store(dst, i32x4.shl(i32x4.extend_low_i16x8_u(v), 16));
    v128.store(dst, i32x4.shl(i32x4.extend_high_i16x8_u(v), 16), 16);
  }
}

/** Rows [b0, b1) of the h4-packed W at w as row-major f32 at dst (rows from `full` on are row-major halves). */
// @ts-ignore: decorator
@inline function unpack(kind: i32, dst: usize, w: usize, K: i32, b0: i32, b1: i32, full: i32): void {
  const ldw = <usize>K << 1, ldd = <usize>K << 2;
  let n = b0;
  for (; n + 4 <= min<i32>(b1, full); n += 4) {
    const g = w + <usize>n * ldw, d = dst + <usize>(n - b0) * ldd;
    for (let j = 0; j < K; j += 8) {
      const p = g + (<usize>j << 3), o = d + (<usize>j << 2);
      widen8(kind, o, p);
      widen8(kind, o + ldd, p + 16);
      widen8(kind, o + 2 * ldd, p + 32);
      widen8(kind, o + 3 * ldd, p + 48);
    }
  }
  for (; n < b1; n++) {
    const r = w + <usize>n * ldw, d = dst + <usize>(n - b0) * ldd;
    for (let j = 0; j < K; j += 8) widen8(kind, d + (<usize>j << 2), r + (<usize>j << 1));
  }
}

// @ts-ignore: decorator
@inline function matmulH4(kind: i32, out: usize, x: usize, w: usize, bias: usize, M: i32, K: i32, N: i32, tid: i32, nth: i32): void {
  const groups = (N + 3) >> 2;
  const n0 = min<i32>(N, (groups * tid / nth) << 2);
  const n1 = min<i32>(N, (groups * (tid + 1) / nth) << 2);
  if (n0 >= n1) return;
  const ldw = <usize>K << 1, ldx = <usize>K << 2, ldo = <usize>N << 2;
  const full = N & ~3;
  // Decode, or prefill without room to widen 4 rows: one x row at a time, deinterleaved in scratch
  // (4·K bytes, which pack_h4's own check, 8·K <= scratch, guarantees).
  const fit = <i32>min<usize>(scratchBytes / ldx, <usize>max<i32>(4, BLOCK_BYTES / (K * 4))) & ~3;
  if (M == 1 || fit < 4) {
    for (let m = 0; m < M; m++) {
      const xr = x + <usize>m * ldx, orow = out + <usize>m * ldo;
      deinterleave(scratchPtr, xr, K, kind == F16 ? F16_X_SCALE : 1);
      const g1 = min<i32>(n1, full);
      for (let n = n0; n < g1; n += 4) gemvGroup(kind, orow + (<usize>n << 2), scratchPtr, w + <usize>n * ldw, K, bias ? bias + (<usize>n << 2) : 0);
      for (let n = max<i32>(n0, full); n < n1; n++) {
        store1(orow + (<usize>n << 2), dot1(kind, xr, w + <usize>n * ldw, K), bias ? bias + (<usize>n << 2) : 0);
      }
    }
    return;
  }
  for (let b0 = n0; b0 < n1; b0 += fit) {
    const b1 = min<i32>(n1, b0 + fit);
    unpack(kind, scratchPtr, w, K, b0, b1, full);
    gemmF32(out, x, scratchPtr, bias, M, K, N, b0, b1);
  }
}

/** f16 weights in the h4 layout (pack_h4 returned 1). */
export function matmul_f16h4(out: usize, x: usize, w: usize, bias: usize, M: i32, K: i32, N: i32, tid: i32, nth: i32): void {
  matmulH4(F16, out, x, w, bias, M, K, N, tid, nth);
}

/** bf16 weights in the h4 layout (pack_h4 returned 1). */
export function matmul_bf16h4(out: usize, x: usize, w: usize, bias: usize, M: i32, K: i32, N: i32, tid: i32, nth: i32): void {
  matmulH4(BF16, out, x, w, bias, M, K, N, tid, nth);
}
