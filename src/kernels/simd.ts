// Shared SIMD helpers and the per-instance scratch region. Every worker has its own instance, so
// these wasm globals are thread-local; nothing mutable lives in linear memory.

/** Base and size in bytes of this instance's scratch region (set once by the Runtime). */
export let scratchPtr: usize = 0;
export let scratchBytes: usize = 0;

/** Called by the Runtime on each instance, main and workers, right after instantiation. */
export function set_scratch(ptr: usize, bytes: usize): void {
  scratchPtr = ptr;
  scratchBytes = bytes;
}

/**
 * a·b + c in four f32 lanes. In the relaxed-SIMD build (build/kernels-relaxed.wasm) this is
 * f32x4.relaxed_madd: one fused instruction where the CPU has FMA (one rounding instead of two);
 * in the baseline build it is the mul then add every kernel used before. Kernels call this rather
 * than either instruction so one source serves both builds.
 */
// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(c, f32x4.mul(a, b));
}

/**
 * Σ of 32 int8·code products as four i32 lanes, relaxed build only: xa, xb are the int8 activations
 * of elements 0-15 and 16-31, lo and hi their weight codes, which must lie in [0, 63] (4-, 5- and
 * 6-bit codes as stored). `i16x8.relaxed_dot_i8x16_i7x16_s` multiplies int8 by 7-bit unsigned and adds
 * pairs into int16 (one pmaddubsw on x86); two of those added stay within int16 (4·127·63 < 2^15),
 * and one pairwise widening gives the i32 lanes. Not `i32x4.relaxed_dot_i8x16_i7x16_add_s`: Node 20's
 * V8 returns twice the sum and drops the addend (src/platform/relaxed.ts checks the form used here).
 */
// @ts-ignore: decorator
@inline export function dotCodes32(xa: v128, lo: v128, xb: v128, hi: v128): v128 {
  return i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(xa, lo), i16x8.relaxed_dot_i8x16_i7x16_s(xb, hi)));
}

/** Sum of the four lanes. */
// @ts-ignore: decorator
@inline export function hsum(a: v128): f32 {
  const s = f32x4.add(a, f32x4.shuffle(a, a, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

/** Max of the four lanes. */
// @ts-ignore: decorator
@inline export function hmax(a: v128): f32 {
  const s = f32x4.max(a, f32x4.shuffle(a, a, 2, 3, 0, 1));
  return max<f32>(f32x4.extract_lane(s, 0), f32x4.extract_lane(s, 1));
}

/** [Σa, Σb, Σc, Σd]: four horizontal sums with one transpose, so four dot products end as one store. */
// @ts-ignore: decorator
@inline export function reduce4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(f32x4.shuffle(a, b, 0, 4, 1, 5), f32x4.shuffle(a, b, 2, 6, 3, 7));
  const cd = f32x4.add(f32x4.shuffle(c, d, 0, 4, 1, 5), f32x4.shuffle(c, d, 2, 6, 3, 7));
  return f32x4.add(f32x4.shuffle(ab, cd, 0, 1, 4, 5), f32x4.shuffle(ab, cd, 2, 3, 6, 7));
}

/** Same transpose-sum for i32 lanes (exact). */
// @ts-ignore: decorator
@inline export function reduce4i(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(i32x4.shuffle(a, b, 0, 4, 1, 5), i32x4.shuffle(a, b, 2, 6, 3, 7));
  const cd = i32x4.add(i32x4.shuffle(c, d, 0, 4, 1, 5), i32x4.shuffle(c, d, 2, 6, 3, 7));
  return i32x4.add(i32x4.shuffle(ab, cd, 0, 1, 4, 5), i32x4.shuffle(ab, cd, 2, 3, 6, 7));
}

/**
 * f16 → f32 for four sign-extended halves in i32 lanes. Node 20 has no f16 SIMD, so: shifting the
 * sign-extended half left by 13 puts sign, exponent and mantissa where f32 keeps them (the sign
 * copies land in bits 28-30, which the mask clears); the f32 exponent bias differs by 112, and one
 * multiply by 2^112 fixes it for normals and subnormals alike. Inf/NaN halves become large finite
 * numbers, which weights never hold.
 */
// @ts-ignore: decorator
@inline export function h2f(hs: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shl(hs, 13), i32x4.splat(0x8fffffff)), f32x4.splat(reinterpret<f32>(0x77800000)));
}

/** Scalar f16 → f32, same method. */
// @ts-ignore: decorator
@inline export function h2f1(h: u32): f32 {
  const hs = <i32>(<i16>h);
  return reinterpret<f32>((hs << 13) & 0x8fffffff) * reinterpret<f32>(0x77800000);
}

/** Four f16 at p → f32x4. */
// @ts-ignore: decorator
@inline export function loadF16x4(p: usize): v128 {
  return h2f(v128.load16x4_s(p));
}

/** Four bf16 at p → f32x4 (bf16 is the top half of an f32). */
// @ts-ignore: decorator
@inline export function loadBf16x4(p: usize): v128 {
  return i32x4.shl(v128.load16x4_u(p), 16);
}

/**
 * e^x for four lanes, relative error < 2e-7: x = n·ln2 + f with |f| <= ln2/2 (Cody-Waite split of
 * ln2), a degree-6 Taylor polynomial for e^f, and 2^n built in the exponent bits. Below -87 the
 * result is exactly 0 (so -inf scores vanish from a softmax); above 88 it saturates at e^88.
 */
// @ts-ignore: decorator
@inline export function exp4(x0: v128): v128 {
  const x = f32x4.min(f32x4.max(x0, f32x4.splat(-87)), f32x4.splat(88));
  const n = f32x4.nearest(f32x4.mul(x, f32x4.splat(1.4426950408889634)));
  const f = f32x4.sub(f32x4.sub(x, f32x4.mul(n, f32x4.splat(0.693145751953125))), f32x4.mul(n, f32x4.splat(1.428606765330187e-6)));
  let p = f32x4.add(f32x4.splat(1.0 / 120), f32x4.mul(f, f32x4.splat(1.0 / 720)));
  p = f32x4.add(f32x4.splat(1.0 / 24), f32x4.mul(f, p));
  p = f32x4.add(f32x4.splat(1.0 / 6), f32x4.mul(f, p));
  p = f32x4.add(f32x4.splat(0.5), f32x4.mul(f, p));
  p = f32x4.add(f32x4.splat(1), f32x4.mul(f, p));
  p = f32x4.add(f32x4.splat(1), f32x4.mul(f, p));
  const scale = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return v128.and(f32x4.mul(p, scale), f32x4.gt(x0, f32x4.splat(-87)));
}

/** x[i] = exp(x[i] − shift) for i < n, in place; returns the sum (softmax numerators). */
// @ts-ignore: decorator
@inline export function expShiftSum(x: usize, n: i32, shift: f32): f32 {
  const mv = f32x4.splat(shift);
  let sv = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const p = x + (<usize>i << 2);
    const e = exp4(f32x4.sub(v128.load(p), mv));
    v128.store(p, e);
    sv = f32x4.add(sv, e);
  }
  let sum = hsum(sv);
  for (; i < n; i++) {
    const p = x + (<usize>i << 2);
    const e = Mathf.exp(load<f32>(p) - shift);
    store<f32>(p, e);
    sum += e;
  }
  return sum;
}
