// Elementwise ops: SwiGLU, the two GELUs, add. SwiGLU and tanh-GELU use a SIMD e^x (they sit
// between decode dispatches, where a slow scalar exp would let the pool's workers fall asleep);
// erf-GELU stays scalar f64.
import { exp4 } from './simd';

/** x / (1 + e^-t) for four lanes. */
// @ts-ignore: decorator
@inline function xsigmoid(x: v128, t: v128): v128 {
  return f32x4.div(x, f32x4.add(f32x4.splat(1), exp4(f32x4.neg(t))));
}

export function swiglu(out: usize, gu: usize, M: i32, F: i32): void {
  for (let m = 0; m < M; m++) {
    const g = gu + (<usize>m * F << 3);
    const o = out + (<usize>m * F << 2);
    const u = g + (<usize>F << 2);
    let i = 0;
    for (; i + 4 <= F; i += 4) {
      const io = <usize>i << 2;
      const a = v128.load(g + io);
      v128.store(o + io, f32x4.mul(xsigmoid(a, a), v128.load(u + io)));
    }
    for (; i < F; i++) {
      const a = <f64>load<f32>(g + (<usize>i << 2));
      store<f32>(o + (<usize>i << 2), <f32>(a / (1 + Math.exp(-a)) * <f64>load<f32>(u + (<usize>i << 2))));
    }
  }
}

/** erfc with fractional error < 1.2e-7 everywhere (Numerical Recipes' erfcc, Chebyshev fit). */
// @ts-ignore: decorator
@inline function erfc(x: f64): f64 {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? r : 2 - r;
}

/** gelu(x) = x·Φ(x) = ½·x·erfc(-x/√2), accurate in relative terms on the negative tail too. */
export function gelu(x: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const p = x + (<usize>i << 2);
    const a = <f64>load<f32>(p);
    store<f32>(p, <f32>(0.5 * a * erfc(-a * 0.7071067811865476)));
  }
}

/** ½x(1 + tanh(y)) = x / (1 + e^(-2y)), y = √(2/π)(x + 0.044715x³): no cancellation on the negative tail. */
export function gelu_tanh(x: usize, n: i32): void {
  const c = f32x4.splat(2 * 0.7978845608028654), c3 = f32x4.splat(2 * 0.7978845608028654 * 0.044715);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const p = x + (<usize>i << 2);
    const a = v128.load(p);
    const t = f32x4.mul(a, f32x4.add(c, f32x4.mul(c3, f32x4.mul(a, a))));
    v128.store(p, xsigmoid(a, t));
  }
  for (; i < n; i++) {
    const p = x + (<usize>i << 2);
    const a = <f64>load<f32>(p);
    store<f32>(p, <f32>(a / (1 + Math.exp(-2 * 0.7978845608028654 * (a + 0.044715 * a * a * a)))));
  }
}

export function add(out: usize, a: usize, b: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, f32x4.add(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, load<f32>(a + o) + load<f32>(b + o));
  }
}
