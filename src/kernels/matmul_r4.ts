// y = x · Wᵀ (+ bias) for f32 weights in the "r4" layout: each group of four rows [4g, 4g+4) is
// stored as K/4 blocks of 64 bytes, block j holding columns 4j..4j+3 of the four rows (row r at
// byte 16r). Rows after the last full group stay row-major where they were. A decode GEMV then
// reads one contiguous stream instead of four strided ones, which the hardware prefetcher follows
// much better on short rows: 1.7-1.8x per CPU-second on the 896-wide shapes of Qwen2.5-0.5B
// (docs/benchmarks.md). The sums are formed in the same order as matmul_f32's, so results match it
// bit for bit. Parallel over groups of four rows, like matmul_f32.
import { reduce4, hsum, madd, scratchPtr, scratchBytes } from './simd';

/** Bytes of weight rows kept hot in L2 while pairs of x rows stream past (prefill). */
const BLOCK_BYTES: i32 = 192 * 1024;

/**
 * Rewrites row-major W[N, K] at w into the r4 layout, in place (one group at a time through this
 * instance's scratch). Returns 1 when packed, 0 when W was left row-major: K not a multiple of 4,
 * or a group (16·K bytes) larger than the scratch region.
 */
export function pack_f32r4(w: usize, N: i32, K: i32): i32 {
  const bytes = <usize>K << 4;
  if ((K & 3) != 0 || bytes > scratchBytes) return 0;
  const ldw = <usize>K << 2;
  for (let g = 0; g + 4 <= N; g += 4) {
    const src = w + <usize>g * ldw;
    for (let o: usize = 0; o < bytes; o += 16) v128.store(scratchPtr + o, v128.load(src + o));
    for (let j = 0; j < K; j += 4) {
      const d = src + (<usize>j << 4), s = scratchPtr + (<usize>j << 2);
      v128.store(d, v128.load(s));
      v128.store(d, v128.load(s + ldw), 16);
      v128.store(d, v128.load(s + 2 * ldw), 32);
      v128.store(d, v128.load(s + 3 * ldw), 48);
    }
  }
  return 1;
}

// @ts-ignore: decorator
@inline function store4(out: usize, r: v128, bias: usize): void {
  v128.store(out, bias ? f32x4.add(r, v128.load(bias)) : r);
}

/** One row-major dot product of length K (the rows after the last full group). */
// @ts-ignore: decorator
@inline function dotRow(x: usize, w: usize, K: i32, bias: usize): f32 {
  let a = f32x4.splat(0);
  let k = 0;
  for (; k + 4 <= K; k += 4) a = madd(v128.load(x + (<usize>k << 2)), v128.load(w + (<usize>k << 2)), a);
  let s = hsum(a);
  for (; k < K; k++) s += load<f32>(x + (<usize>k << 2)) * load<f32>(w + (<usize>k << 2));
  return bias ? s + load<f32>(bias) : s;
}

/** out[0..4] = x · (group at p)ᵀ; 8 accumulators as in matmul_f32's gemv4, one forward stream. */
// @ts-ignore: decorator
@inline function gemvGroup(out: usize, x: usize, p: usize, K: i32, bias: usize): void {
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  let k = 0;
  for (; k + 8 <= K; k += 8) {
    const x0 = v128.load(x + (<usize>k << 2)), x1 = v128.load(x + (<usize>k << 2), 16);
    a0 = madd(x0, v128.load(p), a0);
    a1 = madd(x0, v128.load(p, 16), a1);
    a2 = madd(x0, v128.load(p, 32), a2);
    a3 = madd(x0, v128.load(p, 48), a3);
    b0 = madd(x1, v128.load(p, 64), b0);
    b1 = madd(x1, v128.load(p, 80), b1);
    b2 = madd(x1, v128.load(p, 96), b2);
    b3 = madd(x1, v128.load(p, 112), b3);
    p += 128;
  }
  if (k < K) {
    const x0 = v128.load(x + (<usize>k << 2));
    a0 = madd(x0, v128.load(p), a0);
    a1 = madd(x0, v128.load(p, 16), a1);
    a2 = madd(x0, v128.load(p, 32), a2);
    a3 = madd(x0, v128.load(p, 48), a3);
  }
  store4(out, reduce4(f32x4.add(a0, b0), f32x4.add(a1, b1), f32x4.add(a2, b2), f32x4.add(a3, b3)), bias);
}

/** Two x rows × one group: each weight load feeds both rows (prefill). */
// @ts-ignore: decorator
@inline function tileGroup2(out: usize, ldo: usize, x: usize, ldx: usize, p: usize, K: i32, bias: usize): void {
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  const xb = x + ldx;
  for (let k = 0; k < K; k += 4) {
    const o = <usize>k << 2;
    const x0 = v128.load(x + o), x1 = v128.load(xb + o);
    let v = v128.load(p);
    a0 = madd(x0, v, a0);
    b0 = madd(x1, v, b0);
    v = v128.load(p, 16);
    a1 = madd(x0, v, a1);
    b1 = madd(x1, v, b1);
    v = v128.load(p, 32);
    a2 = madd(x0, v, a2);
    b2 = madd(x1, v, b2);
    v = v128.load(p, 48);
    a3 = madd(x0, v, a3);
    b3 = madd(x1, v, b3);
    p += 64;
  }
  store4(out, reduce4(a0, a1, a2, a3), bias);
  store4(out + ldo, reduce4(b0, b1, b2, b3), bias);
}

/** Weights in the r4 layout (pack_f32r4 returned 1); otherwise as matmul_f32. */
export function matmul_f32r4(out: usize, x: usize, w: usize, bias: usize, M: i32, K: i32, N: i32, tid: i32, nth: i32): void {
  const groups = (N + 3) >> 2;
  const n0 = min<i32>(N, (groups * tid / nth) << 2);
  const n1 = min<i32>(N, (groups * (tid + 1) / nth) << 2);
  if (n0 >= n1) return;
  const ldw = <usize>K << 2;
  const ldo = <usize>N << 2;
  const full = N & ~3;  // rows below this are packed
  const nb = max<i32>(4, (BLOCK_BYTES / (K * 4)) & ~3);
  for (let b0 = n0; b0 < n1; b0 += nb) {
    const b1 = min<i32>(n1, b0 + nb);
    const g1 = min<i32>(b1, full);
    let m = 0;
    for (; m + 2 <= M; m += 2) {
      const xr = x + <usize>m * ldw, orow = out + <usize>m * ldo;
      for (let n = b0; n < g1; n += 4) {
        tileGroup2(orow + (<usize>n << 2), ldo, xr, ldw, w + <usize>n * ldw, K, bias ? bias + (<usize>n << 2) : 0);
      }
      for (let n = max<i32>(b0, full); n < b1; n++) {
        const b = bias ? bias + (<usize>n << 2) : 0;
        store<f32>(orow + (<usize>n << 2), dotRow(xr, w + <usize>n * ldw, K, b));
        store<f32>(orow + ldo + (<usize>n << 2), dotRow(xr + ldw, w + <usize>n * ldw, K, b));
      }
    }
    if (m < M) {
      const xr = x + <usize>m * ldw, orow = out + <usize>m * ldo;
      for (let n = b0; n < g1; n += 4) gemvGroup(orow + (<usize>n << 2), xr, w + <usize>n * ldw, K, bias ? bias + (<usize>n << 2) : 0);
      for (let n = max<i32>(b0, full); n < b1; n++) {
        store<f32>(orow + (<usize>n << 2), dotRow(xr, w + <usize>n * ldw, K, bias ? bias + (<usize>n << 2) : 0));
      }
    }
  }
}
