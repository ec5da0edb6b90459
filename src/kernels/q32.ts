// Matmuls over GGUF's 32-element block types, read in the file's byte layout as-is (no repack):
//   q4_0 18 B: d f16 | qs[16]          q4_1 20 B: d f16 | m f16 | qs[16]
//   q5_0 22 B: d f16 | qh u32 | qs[16] q5_1 24 B: d f16 | m f16 | qh u32 | qs[16]
//   q8_0 34 B: d f16 | qs i8[32]
// The activation comes from quantize_q8 (int8 xq[M, K], f32 xs[M, K/32]), once per call. Per block:
// the weight codes widen to int16 and meet the activation in i32x4.dot_i16x8_s; the integer sum is
// converted once and scaled by xs·d (plus xs·m·Σxq for the offset types q4_1/q5_1).
// out[m, n] = Σ_blocks (xs·d·Σ q·xq + xs·m·Σ xq) + bias[n]. K must be a multiple of 32.
import { dotCodes32, h2f, h2f1, hsum, reduce4i, scratchBytes, scratchPtr } from './simd';

/** Bytes of weight rows kept in L2 while every x row passes over them (prefill). */
const BLOCK_BYTES: i32 = 192 * 1024;

/**
 * Vector constants, read from memory where used: V8 rebuilds a v128.const from immediates at every
 * use inside a loop (several instructions), while a load from L1 is one.
 */
const C = memory.data<u8>([
  1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128, // 0: one bit per byte
  0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,           // 16: qh bytes 0, 1 -> elements 0-15
  2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,           // 32: qh bytes 2, 3 -> elements 16-31
  15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, // 48
  16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, // 64
  8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8,           // 80
  15, 0, 15, 0, 15, 0, 15, 0, 15, 0, 15, 0, 15, 0, 15, 0,   // 96: int16 lanes of 15
], 16);
const C_BIT: usize = 0, C_SEL_LO: usize = 16, C_SEL_HI: usize = 32, C_15: usize = 48, C_16: usize = 64, C_8: usize = 80;
const C_15W: usize = 96;

const F_Q4_0: i32 = 0, F_Q4_1: i32 = 1, F_Q5_0: i32 = 2, F_Q5_1: i32 = 3, F_Q8_0: i32 = 4;

// @ts-ignore: decorator
@inline function blockBytes(fmt: i32): i32 {
  return fmt == F_Q4_0 ? 18 : fmt == F_Q4_1 ? 20 : fmt == F_Q5_0 ? 22 : fmt == F_Q5_1 ? 24 : 34;
}

/** The 5th bits of 32 codes, from the u32 at `p`: byte j of the result is 0x10 where bit j is set. */
// @ts-ignore: decorator
@inline function highBits(h: v128, sel: v128): v128 {
  const bit = v128.load(C + C_BIT);
  return v128.and(i8x16.eq(v128.and(i8x16.swizzle(h, sel), bit), bit), v128.load(C + C_16));
}

/** The 32 codes of the block at wb as two i8x16 (elements 0-15, 16-31), offsets removed for q4_0/q5_0. */
// @ts-ignore: decorator
@inline function codes(fmt: i32, wb: usize, lo_hi: i32): v128 {
  if (fmt == F_Q8_0) return lo_hi == 0 ? v128.load(wb, 2) : v128.load(wb, 18);
  const qs = fmt == F_Q4_0 ? 2 : fmt == F_Q4_1 ? 4 : fmt == F_Q5_0 ? 6 : 8;
  const v = v128.load(wb + qs);
  let c = lo_hi == 0 ? v128.and(v, v128.load(C + C_15)) : i8x16.shr_u(v, 4);
  if (fmt == F_Q5_0 || fmt == F_Q5_1) {
    const h = i32x4.splat(load<u32>(wb + (fmt == F_Q5_0 ? 2 : 4)));
    c = v128.or(c, highBits(h, v128.load(C + (lo_hi == 0 ? C_SEL_LO : C_SEL_HI))));
  }
  if (fmt == F_Q4_0) c = i8x16.sub(c, v128.load(C + C_8));
  if (fmt == F_Q5_0) c = i8x16.sub(c, v128.load(C + C_16));
  return c;
}

/** Σ over one block of xq·codes as i32 lanes; x0..x3 are the block's activations widened to int16. */
// @ts-ignore: decorator
@inline function blockDot(fmt: i32, wb: usize, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  const lo = codes(fmt, wb, 0), hi = codes(fmt, wb, 1);
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(x0, i16x8.extend_low_i8x16_s(lo)), i32x4.dot_i16x8_s(x1, i16x8.extend_high_i8x16_s(lo))),
    i32x4.add(i32x4.dot_i16x8_s(x2, i16x8.extend_low_i8x16_s(hi)), i32x4.dot_i16x8_s(x3, i16x8.extend_high_i8x16_s(hi))));
}

/** Four f16 fields at offset `o` of the blocks at w, w+ldw, w+2ldw, w+3ldw, as f32 lanes. */
// @ts-ignore: decorator
@inline function halves4(w: usize, ldw: usize, o: usize): v128 {
  let h = i32x4.splat(<i32>load<i16>(w + o));
  h = i32x4.replace_lane(h, 1, <i32>load<i16>(w + ldw + o));
  h = i32x4.replace_lane(h, 2, <i32>load<i16>(w + 2 * ldw + o));
  h = i32x4.replace_lane(h, 3, <i32>load<i16>(w + 3 * ldw + o));
  return h2f(h);
}

/**
 * out[0..4] for one activation row and four weight rows (ldw bytes apart): each activation block is
 * loaded once for the four rows; their integer sums are transposed into one i32x4 and scaled by the
 * four rows' d (and m) in one vector multiply. `fmt` is a constant at every call site, so inlining
 * folds the format switches away.
 */
// @ts-ignore: decorator
@inline function rows4(fmt: i32, out: usize, xq: usize, xs: usize, w: usize, ldw: usize, nb: i32, bias: usize): void {
  const bb = <usize>blockBytes(fmt);
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const xp = xq + (<usize>b << 5);
    const x0 = v128.load8x8_s(xp), x1 = v128.load8x8_s(xp, 8), x2 = v128.load8x8_s(xp, 16), x3 = v128.load8x8_s(xp, 24);
    const wb = w + <usize>b * bb;
    const d = reduce4i(blockDot(fmt, wb, x0, x1, x2, x3), blockDot(fmt, wb + ldw, x0, x1, x2, x3),
      blockDot(fmt, wb + 2 * ldw, x0, x1, x2, x3), blockDot(fmt, wb + 3 * ldw, x0, x1, x2, x3));
    const s = f32x4.splat(load<f32>(xs + (<usize>b << 2)));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(d), f32x4.mul(s, halves4(wb, ldw, 0))));
    if (fmt == F_Q4_1 || fmt == F_Q5_1) {
      // Σ xq over the block (|sum| <= 4·127 per int16 lane), times each row's m.
      const sx = i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.add(x0, x1), i16x8.add(x2, x3)));
      const t = i32x4.add(sx, i32x4.shuffle(sx, sx, 2, 3, 0, 1));
      const all = i32x4.add(t, i32x4.shuffle(t, t, 1, 0, 3, 2));
      acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(all), f32x4.mul(s, halves4(wb, ldw, 2))));
    }
  }
  v128.store(out, bias ? f32x4.add(acc, v128.load(bias)) : acc);
}

/** One row of weights against one activation row (the N % 4 tail). */
// @ts-ignore: decorator
@inline function rowDot(fmt: i32, xq: usize, xs: usize, w: usize, nb: i32): f32 {
  const bb = <usize>blockBytes(fmt);
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const xp = xq + (<usize>b << 5);
    const x0 = v128.load8x8_s(xp), x1 = v128.load8x8_s(xp, 8), x2 = v128.load8x8_s(xp, 16), x3 = v128.load8x8_s(xp, 24);
    const wb = w + <usize>b * bb;
    const p = blockDot(fmt, wb, x0, x1, x2, x3);
    const s = load<f32>(xs + (<usize>b << 2));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(p), f32x4.splat(s * h2f1(load<u16>(wb)))));
    if (fmt == F_Q4_1 || fmt == F_Q5_1) {
      const sx = i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.add(x0, x1), i16x8.add(x2, x3)));
      acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(sx), f32x4.splat(s * h2f1(load<u16>(wb, 2)))));
    }
  }
  return hsum(acc);
}

/**
 * 4-bit types, faster path. Read as eight int16 lanes, a qs vector gives its 32 codes without any
 * widening: lane k holds bytes 2k and 2k+1, so `v & 15`, `(v >> 8) & 15`, `(v >> 4) & 15` and
 * `v >> 12` are the codes of elements 2k, 2k+1, 16+2k and 17+2k. The activation row is rearranged
 * to match once per pass into this thread's scratch: per block 64 bytes of int16 (elements 0,2..14 |
 * 1,3..15 | 16,18..30 | 17,19..31), and after all blocks one i32 Σxq per block (q4_0 subtracts
 * 8·Σxq once per block instead of 8 from every code; q4_1 needs it for m).
 */
// @ts-ignore: decorator
@inline export function prepNibbleX(dst: usize, xq: usize, nb: i32): void {
  const sums = dst + (<usize>nb << 6);
  for (let b = 0; b < nb; b++) {
    const xa = v128.load(xq + (<usize>b << 5)), xb = v128.load(xq + (<usize>b << 5), 16);
    const ea = i16x8.shr_s(i16x8.shl(xa, 8), 8), oa = i16x8.shr_s(xa, 8);
    const eb = i16x8.shr_s(i16x8.shl(xb, 8), 8), ob = i16x8.shr_s(xb, 8);
    const o = dst + (<usize>b << 6);
    v128.store(o, ea); v128.store(o, oa, 16); v128.store(o, eb, 32); v128.store(o, ob, 48);
    const t = i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.add(ea, oa), i16x8.add(eb, ob)));
    store<i32>(sums + (<usize>b << 2), i32x4.extract_lane(t, 0) + i32x4.extract_lane(t, 1) + i32x4.extract_lane(t, 2) + i32x4.extract_lane(t, 3));
  }
}

/** Σ codes·x over one 4-bit block from its 16 qs bytes at q, against the rearranged x at xp. */
// @ts-ignore: decorator
@inline function nibbleDot(q: usize, xp: usize): v128 {
  const v = v128.load(q), m = v128.load(C + C_15W);
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(v128.load(xp), v128.and(v, m)), i32x4.dot_i16x8_s(v128.load(xp, 16), v128.and(i16x8.shr_u(v, 8), m))),
    i32x4.add(i32x4.dot_i16x8_s(v128.load(xp, 32), v128.and(i16x8.shr_u(v, 4), m)), i32x4.dot_i16x8_s(v128.load(xp, 48), i16x8.shr_u(v, 12))));
}

/** out[0..4] for four q4_0/q4_1 rows against a rearranged activation row (see prepNibbleX). */
// @ts-ignore: decorator
@inline function rows4Nibble(fmt: i32, out: usize, xr: usize, xs: usize, w: usize, ldw: usize, nb: i32, bias: usize): void {
  const bb = <usize>blockBytes(fmt), qs = <usize>(fmt == F_Q4_0 ? 2 : 4);
  const sums = xr + (<usize>nb << 6);
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const xp = xr + (<usize>b << 6), wb = w + <usize>b * bb;
    let d = reduce4i(nibbleDot(wb + qs, xp), nibbleDot(wb + ldw + qs, xp), nibbleDot(wb + 2 * ldw + qs, xp), nibbleDot(wb + 3 * ldw + qs, xp));
    const sx = load<i32>(sums + (<usize>b << 2));
    if (fmt == F_Q4_0) d = i32x4.sub(d, i32x4.splat(sx << 3));
    const s = f32x4.splat(load<f32>(xs + (<usize>b << 2)));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(d), f32x4.mul(s, halves4(wb, ldw, 0))));
    if (fmt == F_Q4_1) acc = f32x4.add(acc, f32x4.mul(f32x4.splat(<f32>sx), f32x4.mul(s, halves4(wb, ldw, 2))));
  }
  v128.store(out, bias ? f32x4.add(acc, v128.load(bias)) : acc);
}

/**
 * Relaxed build, q4_0/q4_1: relaxed dot products take raw 4-bit codes (0..15) against the int8
 * activation as they lie (low nibbles: elements 0-15, high: 16-31; simd.ts dotCodes32), with no
 * widening and no rearranged activation: only Σxq per block, for q4_0's offset 8 and q4_1's m. The
 * integer sums, and from them every float operation, equal the baseline's bit for bit.
 */
// @ts-ignore: decorator
@inline function blockSums(dst: usize, xq: usize, nb: i32): void {
  for (let b = 0; b < nb; b++) {
    const p = xq + (<usize>b << 5);
    const t = i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.extadd_pairwise_i8x16_s(v128.load(p)), i16x8.extadd_pairwise_i8x16_s(v128.load(p, 16))));
    store<i32>(dst + (<usize>b << 2), i32x4.extract_lane(t, 0) + i32x4.extract_lane(t, 1) + i32x4.extract_lane(t, 2) + i32x4.extract_lane(t, 3));
  }
}

/** Σ codes·x over one 4-bit block from its qs bytes at q; xa, xb: the block's activations 0-15, 16-31. */
// @ts-ignore: decorator
@inline function nibbleDotRelaxed(q: usize, xa: v128, xb: v128): v128 {
  const v = v128.load(q), m = v128.load(C + C_15);
  const lo = v128.and(v, m), hi = v128.and(i16x8.shr_u(v, 4), m);
  return dotCodes32(xa, lo, xb, hi);
}

/** rows4Nibble for the relaxed build: the activation row as quantized, its block sums at `sums`. */
// @ts-ignore: decorator
@inline function rows4NibbleRelaxed(fmt: i32, out: usize, xq: usize, sums: usize, xs: usize, w: usize, ldw: usize, nb: i32, bias: usize): void {
  const bb = <usize>blockBytes(fmt), qs = <usize>(fmt == F_Q4_0 ? 2 : 4);
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const xp = xq + (<usize>b << 5), wb = w + <usize>b * bb;
    const xa = v128.load(xp), xb = v128.load(xp, 16);
    let d = reduce4i(nibbleDotRelaxed(wb + qs, xa, xb), nibbleDotRelaxed(wb + ldw + qs, xa, xb),
      nibbleDotRelaxed(wb + 2 * ldw + qs, xa, xb), nibbleDotRelaxed(wb + 3 * ldw + qs, xa, xb));
    const sx = load<i32>(sums + (<usize>b << 2));
    if (fmt == F_Q4_0) d = i32x4.sub(d, i32x4.splat(sx << 3));
    const s = f32x4.splat(load<f32>(xs + (<usize>b << 2)));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(d), f32x4.mul(s, halves4(wb, ldw, 0))));
    if (fmt == F_Q4_1) acc = f32x4.add(acc, f32x4.mul(f32x4.splat(<f32>sx), f32x4.mul(s, halves4(wb, ldw, 2))));
  }
  v128.store(out, bias ? f32x4.add(acc, v128.load(bias)) : acc);
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
      let n = b0;
      if (ASC_FEATURE_RELAXED_SIMD && (fmt == F_Q4_0 || fmt == F_Q4_1) && <usize>nb * 4 <= scratchBytes && b1 - b0 >= 4) {
        blockSums(scratchPtr, xqr, nb);
        for (; n + 4 <= b1; n += 4) {
          rows4NibbleRelaxed(fmt, orow + (<usize>n << 2), xqr, scratchPtr, xsr, w + <usize>n * ldw, ldw, nb, bias ? bias + (<usize>n << 2) : 0);
        }
      }
      if ((fmt == F_Q4_0 || fmt == F_Q4_1) && <usize>nb * 68 <= scratchBytes && b1 - b0 >= 4) {
        prepNibbleX(scratchPtr, xqr, nb);
        for (; n + 4 <= b1; n += 4) {
          rows4Nibble(fmt, orow + (<usize>n << 2), scratchPtr, xsr, w + <usize>n * ldw, ldw, nb, bias ? bias + (<usize>n << 2) : 0);
        }
      }
      for (; n + 4 <= b1; n += 4) {
        rows4(fmt, orow + (<usize>n << 2), xqr, xsr, w + <usize>n * ldw, ldw, nb, bias ? bias + (<usize>n << 2) : 0);
      }
      for (; n < b1; n++) {
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
