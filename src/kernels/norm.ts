// RMSNorm and LayerNorm over rows of length K. Sums are taken in f32 SIMD lanes (8 accumulators
// deep), which is well inside the tests' 1e-5 relative tolerance for K up to 16k.
import { hsum, madd } from './simd';

// @ts-ignore: decorator
@inline function sumsq(x: usize, K: i32, c: f32): f32 {
  const cv = f32x4.splat(c);
  let a = f32x4.splat(0), b = a;
  let k = 0;
  for (; k + 8 <= K; k += 8) {
    const p = x + (<usize>k << 2);
    const d0 = f32x4.sub(v128.load(p), cv), d1 = f32x4.sub(v128.load(p, 16), cv);
    a = madd(d0, d0, a);
    b = madd(d1, d1, b);
  }
  let s = hsum(f32x4.add(a, b));
  for (; k < K; k++) {
    const d = load<f32>(x + (<usize>k << 2)) - c;
    s += d * d;
  }
  return s;
}

// @ts-ignore: decorator
@inline function sum(x: usize, K: i32): f32 {
  let a = f32x4.splat(0), b = a;
  let k = 0;
  for (; k + 8 <= K; k += 8) {
    const p = x + (<usize>k << 2);
    a = f32x4.add(a, v128.load(p));
    b = f32x4.add(b, v128.load(p, 16));
  }
  let s = hsum(f32x4.add(a, b));
  for (; k < K; k++) s += load<f32>(x + (<usize>k << 2));
  return s;
}

/** out = (x - c) · r · w + b over one row; w, b may be 0 (absent). */
// @ts-ignore: decorator
@inline function scaleRow(out: usize, x: usize, w: usize, b: usize, K: i32, c: f32, r: f32): void {
  const cv = f32x4.splat(c), rv = f32x4.splat(r);
  let k = 0;
  for (; k + 4 <= K; k += 4) {
    const o = <usize>k << 2;
    let y = f32x4.mul(f32x4.sub(v128.load(x + o), cv), rv);
    if (w) y = f32x4.mul(y, v128.load(w + o));
    if (b) y = f32x4.add(y, v128.load(b + o));
    v128.store(out + o, y);
  }
  for (; k < K; k++) {
    const o = <usize>k << 2;
    let y = (load<f32>(x + o) - c) * r;
    if (w) y *= load<f32>(w + o);
    if (b) y += load<f32>(b + o);
    store<f32>(out + o, y);
  }
}

export function rmsnorm(out: usize, x: usize, w: usize, M: i32, K: i32, eps: f32): void {
  for (let m = 0; m < M; m++) {
    const o = <usize>m * K << 2;
    const r = <f32>1 / Mathf.sqrt(sumsq(x + o, K, 0) / <f32>K + eps);
    scaleRow(out + o, x + o, w, 0, K, 0, r);
  }
}

export function layernorm(out: usize, x: usize, w: usize, b: usize, M: i32, K: i32, eps: f32): void {
  for (let m = 0; m < M; m++) {
    const o = <usize>m * K << 2;
    const mean = sum(x + o, K) / <f32>K;
    const r = <f32>1 / Mathf.sqrt(sumsq(x + o, K, mean) / <f32>K + eps);
    scaleRow(out + o, x + o, w, b, K, mean, r);
  }
}
