// y = x · Wᵀ (+ bias) for f32, f16 and bf16 weights W[N, K]. Parallel over n: thread `tid` takes a
// contiguous range of rows, cut at multiples of 4 so every thread but the last runs the 4-row tile.
// M = 1 (decode) streams W once with four rows sharing each x load. M > 1 (prefill) is a blocked
// GEMM: f32 weights are used in place; f16/bf16 weight blocks are converted once into this
// instance's scratch and reused for every row of x.
import { reduce4, hsum, h2f, h2f1, loadF16x4, loadBf16x4, madd, scratchPtr, scratchBytes } from './simd';

export const F32: i32 = 0;
export const F16: i32 = 1;
export const BF16: i32 = 2;

/** Bytes per tile of weights kept hot in L2 while x rows stream past. */
const BLOCK_BYTES: i32 = 192 * 1024;

// @ts-ignore: decorator
@inline function loadW(kind: i32, p: usize): f32 {
  if (kind == F16) return h2f1(<u32>load<u16>(p));
  if (kind == BF16) return reinterpret<f32>(<u32>load<u16>(p) << 16);
  return load<f32>(p);
}

// @ts-ignore: decorator
@inline export function loadW4(kind: i32, p: usize): v128 {
  if (kind == F16) return loadF16x4(p);
  if (kind == BF16) return loadBf16x4(p);
  return v128.load(p);
}

/**
 * Eight halves loaded as four i32 lanes hold (odd << 16 | even). Even halves: shift up, then
 * arithmetic-shift down by 3 to sign-extend into the f32 layout (see h2f); odd halves: shift
 * down by 3 and mask off the even half's bits. Both give the f32 of the half times 2^-112; h2f
 * multiplies by 2^112 per value, the decode GEMV instead folds that power of two into x and the
 * sum (F16_X_SCALE, F16_SUM_SCALE), one multiply fewer per 4 weights.
 */
// @ts-ignore: decorator
@inline export function f16Even(v: v128): v128 {
  return v128.and(i32x4.shr_s(i32x4.shl(v, 16), 3), i32x4.splat(0x8fffffff));
}

// @ts-ignore: decorator
@inline export function f16Odd(v: v128): v128 {
  return v128.and(i32x4.shr_s(v, 3), i32x4.splat(0x8fffe000));
}

/**
 * 2^112 split between x (2^56: no overflow below |x| = 2^71) and the finished sums (2^56), so the
 * products x·2^56 · w·2^-112 stay normal floats for |x·w| >= 2^-70. Scaling by powers of two is
 * exact, so the sums equal those of the unscaled products.
 */
export const F16_X_SCALE: f32 = reinterpret<f32>(0x5b800000);   // 2^56
export const F16_SUM_SCALE: f32 = reinterpret<f32>(0x5b800000); // 2^56

/**
 * Writes x[0..K) to dst with each group of 8 reordered as its 4 even then its 4 odd elements,
 * each times `scale`.
 */
// @ts-ignore: decorator
@inline export function deinterleave(dst: usize, x: usize, K: i32, scale: f32): void {
  const sv = f32x4.splat(scale);
  for (let k = 0; k + 8 <= K; k += 8) {
    const o = <usize>k << 2;
    const a = v128.load(x + o), b = v128.load(x + o, 16);
    v128.store(dst + o, f32x4.mul(f32x4.shuffle(a, b, 0, 2, 4, 6), sv));
    v128.store(dst + o, f32x4.mul(f32x4.shuffle(a, b, 1, 3, 5, 7), sv), 16);
  }
}

/** Scalar tail k..K of four dot products, as one vector. */
// @ts-ignore: decorator
@inline function tail4(kind: i32, x: usize, w: usize, ldw: usize, k: i32, K: i32): v128 {
  let t = f32x4.splat(0);
  const sh: usize = kind == F32 ? 2 : 1;
  for (; k < K; k++) {
    const wo = <usize>k << sh;
    let wv = f32x4.splat(loadW(kind, w + wo));
    wv = f32x4.replace_lane(wv, 1, loadW(kind, w + ldw + wo));
    wv = f32x4.replace_lane(wv, 2, loadW(kind, w + 2 * ldw + wo));
    wv = f32x4.replace_lane(wv, 3, loadW(kind, w + 3 * ldw + wo));
    t = madd(f32x4.splat(load<f32>(x + (<usize>k << 2))), wv, t);
  }
  return t;
}

/** One dot product of length K. */
// @ts-ignore: decorator
@inline export function dot1(kind: i32, x: usize, w: usize, K: i32): f32 {
  const sh: usize = kind == F32 ? 2 : 1;
  let a = f32x4.splat(0);
  let k = 0;
  for (; k + 4 <= K; k += 4) a = madd(v128.load(x + (<usize>k << 2)), loadW4(kind, w + (<usize>k << sh)), a);
  let s = hsum(a);
  for (; k < K; k++) s += load<f32>(x + (<usize>k << 2)) * loadW(kind, w + (<usize>k << sh));
  return s;
}

// @ts-ignore: decorator
@inline export function store4(out: usize, r: v128, bias: usize): void {
  v128.store(out, bias ? f32x4.add(r, v128.load(bias)) : r);
}

// @ts-ignore: decorator
@inline export function store1(out: usize, r: f32, bias: usize): void {
  store<f32>(out, bias ? r + load<f32>(bias) : r);
}

/**
 * out[0..4] = x · w[0..4]ᵀ: four weight rows share each x load; 8 independent accumulators.
 * For f16/bf16, `xd` holds x deinterleaved per 8 (evens, then odds; see deinterleave), which lets
 * each 16-byte load of 8 halves widen with shifts and masks alone, no lane shuffles.
 */
// @ts-ignore: decorator
@inline function gemv4(kind: i32, out: usize, x: usize, xd: usize, w: usize, ldw: usize, K: i32, bias: usize): void {
  const sh: usize = kind == F32 ? 2 : 1;
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  const w1 = w + ldw, w2 = w1 + ldw, w3 = w2 + ldw;
  let k = 0;
  for (; k + 8 <= K; k += 8) {
    const xo = <usize>k << 2;
    const x0 = v128.load(xd + xo);
    const x1 = v128.load(xd + xo, 16);
    const wo = <usize>k << sh;
    if (kind == F32) {
      a0 = madd(x0, v128.load(w + wo), a0);
      b0 = madd(x1, v128.load(w + wo, 16), b0);
      a1 = madd(x0, v128.load(w1 + wo), a1);
      b1 = madd(x1, v128.load(w1 + wo, 16), b1);
      a2 = madd(x0, v128.load(w2 + wo), a2);
      b2 = madd(x1, v128.load(w2 + wo, 16), b2);
      a3 = madd(x0, v128.load(w3 + wo), a3);
      b3 = madd(x1, v128.load(w3 + wo, 16), b3);
    } else if (kind == F16) {
      let v = v128.load(w + wo);
      a0 = madd(x0, f16Even(v), a0);
      b0 = madd(x1, f16Odd(v), b0);
      v = v128.load(w1 + wo);
      a1 = madd(x0, f16Even(v), a1);
      b1 = madd(x1, f16Odd(v), b1);
      v = v128.load(w2 + wo);
      a2 = madd(x0, f16Even(v), a2);
      b2 = madd(x1, f16Odd(v), b2);
      v = v128.load(w3 + wo);
      a3 = madd(x0, f16Even(v), a3);
      b3 = madd(x1, f16Odd(v), b3);
    } else {
      let v = v128.load(w + wo);
      a0 = madd(x0, i32x4.shl(v, 16), a0);
      b0 = madd(x1, v128.and(v, i32x4.splat(0xffff0000)), b0);
      v = v128.load(w1 + wo);
      a1 = madd(x0, i32x4.shl(v, 16), a1);
      b1 = madd(x1, v128.and(v, i32x4.splat(0xffff0000)), b1);
      v = v128.load(w2 + wo);
      a2 = madd(x0, i32x4.shl(v, 16), a2);
      b2 = madd(x1, v128.and(v, i32x4.splat(0xffff0000)), b2);
      v = v128.load(w3 + wo);
      a3 = madd(x0, i32x4.shl(v, 16), a3);
      b3 = madd(x1, v128.and(v, i32x4.splat(0xffff0000)), b3);
    }
  }
  if (kind == F16) {
    // The main loop's sums are 2^-112 · 2^56 of the true ones (see F16_X_SCALE).
    const up = f32x4.splat(F16_SUM_SCALE);
    a0 = f32x4.mul(f32x4.add(a0, b0), up); a1 = f32x4.mul(f32x4.add(a1, b1), up);
    a2 = f32x4.mul(f32x4.add(a2, b2), up); a3 = f32x4.mul(f32x4.add(a3, b3), up);
    b0 = f32x4.splat(0); b1 = b0; b2 = b0; b3 = b0;
  }
  for (; k + 4 <= K; k += 4) {
    const x0 = v128.load(x + (<usize>k << 2));
    const wo = <usize>k << sh;
    a0 = madd(x0, loadW4(kind, w + wo), a0);
    a1 = madd(x0, loadW4(kind, w1 + wo), a1);
    a2 = madd(x0, loadW4(kind, w2 + wo), a2);
    a3 = madd(x0, loadW4(kind, w3 + wo), a3);
  }
  const r = reduce4(f32x4.add(a0, b0), f32x4.add(a1, b1), f32x4.add(a2, b2), f32x4.add(a3, b3));
  store4(out, k < K ? f32x4.add(r, tail4(kind, x, w, ldw, k, K)) : r, bias);
}

/** Two x rows × four f32 weight rows: 8 accumulators, each x and w load used twice. */
// @ts-ignore: decorator
@inline function tile2x4(out: usize, ldo: usize, x: usize, ldx: usize, w: usize, ldw: usize, K: i32, bias: usize): void {
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  const x1p = x + ldx;
  const w1 = w + ldw, w2 = w1 + ldw, w3 = w2 + ldw;
  let k = 0;
  for (; k + 4 <= K; k += 4) {
    const o = <usize>k << 2;
    const x0 = v128.load(x + o);
    const x1 = v128.load(x1p + o);
    let v = v128.load(w + o);
    a0 = madd(x0, v, a0);
    b0 = madd(x1, v, b0);
    v = v128.load(w1 + o);
    a1 = madd(x0, v, a1);
    b1 = madd(x1, v, b1);
    v = v128.load(w2 + o);
    a2 = madd(x0, v, a2);
    b2 = madd(x1, v, b2);
    v = v128.load(w3 + o);
    a3 = madd(x0, v, a3);
    b3 = madd(x1, v, b3);
  }
  let ra = reduce4(a0, a1, a2, a3);
  let rb = reduce4(b0, b1, b2, b3);
  if (k < K) {
    ra = f32x4.add(ra, tail4(F32, x, w, ldw, k, K));
    rb = f32x4.add(rb, tail4(F32, x1p, w, ldw, k, K));
  }
  store4(out, ra, bias);
  store4(out + ldo, rb, bias);
}

/**
 * out[m, n] for m in [0, M), n in [n0, n1), with f32 weight row n at wrows + (n - n0)·K·4.
 * Weight rows go in blocks that stay in L2 while every pair of x rows (in L1) passes over them.
 */
export function gemmF32(out: usize, x: usize, wrows: usize, bias: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  const ldw = <usize>K << 2;
  const ldo = <usize>N << 2;
  const nb = max<i32>(4, (BLOCK_BYTES / (K * 4)) & ~3);
  for (let b0 = n0; b0 < n1; b0 += nb) {
    const b1 = min<i32>(n1, b0 + nb);
    const wb = wrows + <usize>(b0 - n0) * ldw;
    let m = 0;
    for (; m + 2 <= M; m += 2) {
      const xr = x + <usize>m * ldw;
      const orow = out + <usize>m * ldo;
      let n = b0;
      for (; n + 4 <= b1; n += 4) {
        tile2x4(orow + (<usize>n << 2), ldo, xr, ldw, wb + <usize>(n - b0) * ldw, ldw, K, bias ? bias + (<usize>n << 2) : 0);
      }
      for (; n < b1; n++) {
        const wr = wb + <usize>(n - b0) * ldw;
        const b = bias ? bias + (<usize>n << 2) : 0;
        store1(orow + (<usize>n << 2), dot1(F32, xr, wr, K), b);
        store1(orow + ldo + (<usize>n << 2), dot1(F32, xr + ldw, wr, K), b);
      }
    }
    if (m < M) rowsGemv(F32, out + <usize>m * ldo, x + <usize>m * ldw, wb, ldw, bias, K, b0, b1);
  }
}

/** One x row against weight rows [n0, n1) at wrows (stride ldw bytes). */
// @ts-ignore: decorator
@inline function rowsGemv(kind: i32, orow: usize, xr: usize, wrows: usize, ldw: usize, bias: usize, K: i32, n0: i32, n1: i32): void {
  let n = n0;
  let xd = xr;
  let n4 = n1;
  if (kind != F32) {
    // Without room to reorder x (never with the Runtime's 1 MiB), every row takes the dot1 path.
    if (scratchBytes < (<usize>K << 2)) n4 = n0;
    else {
      xd = scratchPtr;
      deinterleave(xd, xr, K, kind == F16 ? F16_X_SCALE : 1);
    }
  }
  for (; n + 4 <= n4; n += 4) {
    gemv4(kind, orow + (<usize>n << 2), xr, xd, wrows + <usize>(n - n0) * ldw, ldw, K, bias ? bias + (<usize>n << 2) : 0);
  }
  for (; n < n1; n++) {
    store1(orow + (<usize>n << 2), dot1(kind, xr, wrows + <usize>(n - n0) * ldw, K), bias ? bias + (<usize>n << 2) : 0);
  }
}

/** Converts `rows` half-precision rows of length K at src into f32 at dst. */
// @ts-ignore: decorator
@inline function widen(kind: i32, dst: usize, src: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(dst + (<usize>i << 2), loadW4(kind, src + (<usize>i << 1)));
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), loadW(kind, src + (<usize>i << 1)));
}

// @ts-ignore: decorator
@inline function matmul(kind: i32, out: usize, x: usize, w: usize, bias: usize, M: i32, K: i32, N: i32, tid: i32, nth: i32): void {
  const groups = (N + 3) >> 2;
  const n0 = min<i32>(N, (groups * tid / nth) << 2);
  const n1 = min<i32>(N, (groups * (tid + 1) / nth) << 2);
  if (n0 >= n1) return;
  const ldw: usize = kind == F32 ? <usize>K << 2 : <usize>K << 1;
  if (kind == F32) {
    if (M == 1) rowsGemv(F32, out, x, w + <usize>n0 * ldw, ldw, bias, K, n0, n1);
    else gemmF32(out, x, w + <usize>n0 * ldw, bias, M, K, N, n0, n1);
    return;
  }
  // Rows of widened weights that fit the scratch region and the L2 budget, a multiple of 4.
  const fit = min<i32>(<i32>(scratchBytes / (<usize>K << 2)), max<i32>(4, BLOCK_BYTES / (K * 4))) & ~3;
  if (M == 1 || fit < 4) {
    const ldo = <usize>N << 2;
    const ldx = <usize>K << 2;
    for (let m = 0; m < M; m++) rowsGemv(kind, out + <usize>m * ldo, x + <usize>m * ldx, w + <usize>n0 * ldw, ldw, bias, K, n0, n1);
    return;
  }
  for (let b0 = n0; b0 < n1; b0 += fit) {
    const b1 = min<i32>(n1, b0 + fit);
    widen(kind, scratchPtr, w + <usize>b0 * ldw, (b1 - b0) * K);
    gemmF32(out, x, scratchPtr, bias, M, K, N, b0, b1);
  }
}

export function matmul_f32(out: usize, x: usize, w: usize, bias: usize, M: i32, K: i32, N: i32, tid: i32, nth: i32): void {
  matmul(F32, out, x, w, bias, M, K, N, tid, nth);
}

export function matmul_f16(out: usize, x: usize, w: usize, bias: usize, M: i32, K: i32, N: i32, tid: i32, nth: i32): void {
  matmul(F16, out, x, w, bias, M, K, N, tid, nth);
}

export function matmul_bf16(out: usize, x: usize, w: usize, bias: usize, M: i32, K: i32, N: i32, tid: i32, nth: i32): void {
  matmul(BF16, out, x, w, bias, M, K, N, tid, nth);
}
