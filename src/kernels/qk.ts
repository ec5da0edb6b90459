// k-quant matmuls (q4_K, q5_K, q6_K) over GGUF's super-block byte layout as-is (no repack; layouts
// in src/runtime/quant/kquants.ts), against an activation quantized once per call by quantize_q8_K:
//   xq: int8 [M, K];  xs: per (row m, super-block b) a 20-byte record at xs + (m·K/256 + b)·20:
//   f32 d (= max|x|/127 of the 256 values), then 8 × i16 Σ xq of each 32-element sub-block.
// Per super-block the integer sums of every sub-block are scaled by its integer scale in i32 lanes
// (exact: |Σ| < 2^31 for every format), converted once, and scaled by d_x·d; q4_K/q5_K subtract
// d_x·dmin·Σ m[j]·Σxq[j] with the precomputed sub-block sums. K must be a multiple of 256.
import { dotCodes32, hmax, hsum, h2f1, scratchBytes, scratchPtr } from './simd';
import { prepNibbleX } from './q32';

const BLOCK_BYTES: i32 = 192 * 1024;
const QK: i32 = 256;
/** Vector constants, loaded where used (V8 rebuilds a v128.const at every use; see q32.ts). */
const C = memory.data<u8>([
  0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 255, 255, 255, 255,           // 0: scales6 gather
  63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0,         // 16: scales6 masks
  255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 8, 9, 10, 11, // 32: mins nibbles
  255, 255, 255, 255, 0, 1, 2, 3, 255, 255, 255, 255, 4, 5, 6, 7,     // 48: top bits
  15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,     // 64
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,                     // 80
  3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,                     // 96
  32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32,     // 112
  48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48,     // 128: 0x30
  16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,     // 144: 0x10
], 16);
const C_15: usize = 64, C_32: usize = 112, C_48: usize = 128, C_16: usize = 144;
/** int16 lanes of 15. */
const C16 = memory.data<u8>([15, 0, 15, 0, 15, 0, 15, 0, 15, 0, 15, 0, 15, 0, 15, 0], 16);

/** Bytes of one xs record (see above). */
const XS_REC: i32 = 20;

/**
 * q8_K-style activation: per 256 values s = max|x|/127, q = nearest(x · (127/max|x|)) (ties to even,
 * reciprocal rounded to f32 first, as src/runtime/quant's quantizeRow('q8_K')); all-zero: s = 0, q = 0.
 */
export function quantize_q8_K(xq: usize, xs: usize, x: usize, M: i32, K: i32): void {
  const nb = K >> 8;
  for (let m = 0; m < M; m++) {
    for (let b = 0; b < nb; b++) {
      const i = <usize>m * K + (<usize>b << 8);
      const p = x + (i << 2);
      let mx = f32x4.splat(0);
      for (let j = 0; j < 64; j++) mx = f32x4.max(mx, f32x4.abs(v128.load(p + (<usize>j << 4))));
      const a = hmax(mx);
      const rec = xs + <usize>(m * nb + b) * XS_REC;
      store<f32>(rec, a / 127);
      const d = f32x4.splat(a > 0 ? <f32>127 / a : 0);
      for (let g = 0; g < 8; g++) {
        const pg = p + (<usize>g << 7);
        const q0 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(pg), d)));
        const q1 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(pg, 16), d)));
        const q2 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(pg, 32), d)));
        const q3 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(pg, 48), d)));
        const q4 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(pg, 64), d)));
        const q5 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(pg, 80), d)));
        const q6 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(pg, 96), d)));
        const q7 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(pg, 112), d)));
        const s = i32x4.add(i32x4.add(i32x4.add(q0, q1), i32x4.add(q2, q3)), i32x4.add(i32x4.add(q4, q5), i32x4.add(q6, q7)));
        store<i16>(rec + 4 + (<usize>g << 1),
          <i16>(i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3)));
        const o = xq + i + (<usize>g << 5);
        v128.store(o, i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(q0, q1), i16x8.narrow_i32x4_s(q2, q3)));
        v128.store(o, i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(q4, q5), i16x8.narrow_i32x4_s(q6, q7)), 16);
      }
    }
  }
}

/**
 * Σ over 32 elements of xq·w as i32 lanes: w given as two i8x16 (elements 0-15, 16-31). Its callers
 * (q4_K/q5_K) pass codes in [0, 31], so the relaxed build takes them as they are (simd.ts
 * dotCodes32): the same integer sums without widening.
 */
// @ts-ignore: decorator
@inline function dot32(xp: usize, lo: v128, hi: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    return dotCodes32(v128.load(xp), lo, v128.load(xp, 16), hi);
  }
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(v128.load8x8_s(xp), i16x8.extend_low_i8x16_s(lo)), i32x4.dot_i16x8_s(v128.load8x8_s(xp, 8), i16x8.extend_high_i8x16_s(lo))),
    i32x4.add(i32x4.dot_i16x8_s(v128.load8x8_s(xp, 16), i16x8.extend_low_i8x16_s(hi)), i32x4.dot_i16x8_s(v128.load8x8_s(xp, 24), i16x8.extend_high_i8x16_s(hi))));
}

/** Σ over 16 elements of xq·w: w as one i8x16. */
// @ts-ignore: decorator
@inline function dot16(xp: usize, w: v128): v128 {
  return i32x4.add(i32x4.dot_i16x8_s(v128.load8x8_s(xp), i16x8.extend_low_i8x16_s(w)), i32x4.dot_i16x8_s(v128.load8x8_s(xp, 8), i16x8.extend_high_i8x16_s(w)));
}

/**
 * The eight 6-bit scales (lanes 0-7) and mins (lanes 8-15) of a q4_K/q5_K super-block from its 12
 * packed bytes, loaded as one v128 from the block's byte 4 (the 4 bytes past them are qh/qs of the
 * same block). Layout in src/runtime/quant/kquants.ts:
 *   sc[j<4] = b[j] & 63            sc[j>=4] = (b[j+4] & 15) | (b[j-4] >> 6) << 4
 *   m[j<4]  = b[j+4] & 63          m[j>=4]  = (b[j+4] >> 4) | (b[j] >> 6) << 4
 */
// @ts-ignore: decorator
@inline function scales6(v: v128): v128 {
  // Swizzle indexes of 255 are out of range: those lanes become 0.
  const lo = v128.and(i8x16.swizzle(v, v128.load(C)), v128.load(C, 16));
  const nib = i8x16.swizzle(i8x16.shr_u(v, 4), v128.load(C, 32));
  const top = i8x16.shl(i8x16.shr_u(i8x16.swizzle(v, v128.load(C, 48)), 6), 4);
  return v128.or(v128.or(lo, nib), top);
}

/** Bit j of every qh byte moved to bit 4 (0x10), by a shift on int16 lanes and a mask. */
// @ts-ignore: decorator
@inline function bit5(h: v128, j: i32): v128 {
  const s = j < 4 ? i16x8.shl(h, 4 - j) : j == 4 ? h : i16x8.shr_u(h, j - 4);
  return v128.and(s, v128.load(C + C_16));
}

/**
 * Run i (0..3) of a q4_K/q5_K super-block: sub-blocks 2i (low nibbles) and 2i+1 (high nibbles),
 * each integer dot product times its 6-bit scale (s0, s1). `bits` and `i` are constants at every call site.
 */
// @ts-ignore: decorator
@inline function run45(bits: i32, i: i32, wb: usize, xb: usize, s0: i32, s1: i32, h0: v128, h1: v128): v128 {
  const q = wb + <usize>(bits == 4 ? 16 : 48) + (<usize>i << 5);
  const v0 = v128.load(q), v1 = v128.load(q, 16), m15 = v128.load(C + C_15);
  let a0 = v128.and(v0, m15), a1 = v128.and(v1, m15);
  let c0 = v128.and(i16x8.shr_u(v0, 4), m15), c1 = v128.and(i16x8.shr_u(v1, 4), m15);
  if (bits == 5) {
    a0 = v128.or(a0, bit5(h0, 2 * i)); a1 = v128.or(a1, bit5(h1, 2 * i));
    c0 = v128.or(c0, bit5(h0, 2 * i + 1)); c1 = v128.or(c1, bit5(h1, 2 * i + 1));
  }
  const xp = xb + (<usize>i << 6);
  return i32x4.add(i32x4.mul(dot32(xp, a0, a1), i32x4.splat(s0)), i32x4.mul(dot32(xp + 32, c0, c1), i32x4.splat(s1)));
}

/** One q4_K (bits 4) or q5_K (bits 5) row against one activation row. */
// @ts-ignore: decorator
@inline function rowQ45K(bits: i32, xq: usize, xs: usize, w: usize, nb: i32): f32 {
  const bb = <usize>(bits == 4 ? 144 : 176);
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const wb = w + <usize>b * bb, xb = xq + (<usize>b << 8), rec = xs + <usize>b * XS_REC;
    const scm = scales6(v128.load(wb, 4));
    const h0 = bits == 5 ? v128.load(wb, 16) : i32x4.splat(0), h1 = bits == 5 ? v128.load(wb, 32) : i32x4.splat(0);
    const isum = i32x4.add(
      i32x4.add(run45(bits, 0, wb, xb, i8x16.extract_lane_u(scm, 0), i8x16.extract_lane_u(scm, 1), h0, h1),
        run45(bits, 1, wb, xb, i8x16.extract_lane_u(scm, 2), i8x16.extract_lane_u(scm, 3), h0, h1)),
      i32x4.add(run45(bits, 2, wb, xb, i8x16.extract_lane_u(scm, 4), i8x16.extract_lane_u(scm, 5), h0, h1),
        run45(bits, 3, wb, xb, i8x16.extract_lane_u(scm, 6), i8x16.extract_lane_u(scm, 7), h0, h1)));
    // Σ m[j]·Σxq[j]: the mins as int16 against the record's int16 sub-block sums.
    const mins = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(scm), v128.load(rec, 4));
    const dx = load<f32>(rec);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(dx * h2f1(load<u16>(wb)))));
    acc = f32x4.sub(acc, f32x4.mul(f32x4.convert_i32x4_s(mins), f32x4.splat(dx * h2f1(load<u16>(wb, 2)))));
  }
  return hsum(acc);
}

/**
 * q4_K row against an activation row rearranged by prepNibbleX (int16, per 16 values the even ones
 * then the odd ones): the qs bytes are read as int16 lanes, so each code comes out with one mask or
 * shift and nothing is widened (same arithmetic as rowQ45K(4, ...), fewer instructions).
 */
// @ts-ignore: decorator
@inline function rowQ4KNibble(xr: usize, xs: usize, w: usize, nb: i32): f32 {
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const wb = w + <usize>b * 144, xb = xr + (<usize>b << 9), rec = xs + <usize>b * XS_REC;
    const scm = scales6(v128.load(wb, 4));
    let isum = i32x4.splat(0);
    for (let i = 0; i < 4; i++) {
      const q = wb + 16 + (<usize>i << 5);
      const v0 = v128.load(q), v1 = v128.load(q, 16), m = v128.load(C16);
      const xp = xb + (<usize>i << 7);
      const lo = i32x4.add(
        i32x4.add(i32x4.dot_i16x8_s(v128.load(xp), v128.and(v0, m)), i32x4.dot_i16x8_s(v128.load(xp, 16), v128.and(i16x8.shr_u(v0, 8), m))),
        i32x4.add(i32x4.dot_i16x8_s(v128.load(xp, 32), v128.and(v1, m)), i32x4.dot_i16x8_s(v128.load(xp, 48), v128.and(i16x8.shr_u(v1, 8), m))));
      const hi = i32x4.add(
        i32x4.add(i32x4.dot_i16x8_s(v128.load(xp, 64), v128.and(i16x8.shr_u(v0, 4), m)), i32x4.dot_i16x8_s(v128.load(xp, 80), i16x8.shr_u(v0, 12))),
        i32x4.add(i32x4.dot_i16x8_s(v128.load(xp, 96), v128.and(i16x8.shr_u(v1, 4), m)), i32x4.dot_i16x8_s(v128.load(xp, 112), i16x8.shr_u(v1, 12))));
      let s0: i32, s1: i32;
      if (i == 0) { s0 = i8x16.extract_lane_u(scm, 0); s1 = i8x16.extract_lane_u(scm, 1); }
      else if (i == 1) { s0 = i8x16.extract_lane_u(scm, 2); s1 = i8x16.extract_lane_u(scm, 3); }
      else if (i == 2) { s0 = i8x16.extract_lane_u(scm, 4); s1 = i8x16.extract_lane_u(scm, 5); }
      else { s0 = i8x16.extract_lane_u(scm, 6); s1 = i8x16.extract_lane_u(scm, 7); }
      isum = i32x4.add(isum, i32x4.add(i32x4.mul(lo, i32x4.splat(s0)), i32x4.mul(hi, i32x4.splat(s1))));
    }
    const mins = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(scm), v128.load(rec, 4));
    const dx = load<f32>(rec);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(dx * h2f1(load<u16>(wb)))));
    acc = f32x4.sub(acc, f32x4.mul(f32x4.convert_i32x4_s(mins), f32x4.splat(dx * h2f1(load<u16>(wb, 2)))));
  }
  return hsum(acc);
}

/**
 * 16 q6_K codes minus 32 as int8: the nibble (low: nib = 0, high: 1) of ql vector `a`, bits 2r..2r+1
 * of qh vector `g` on top. Shifts are done on int16 lanes (one instruction, where an i8x16 shift
 * costs two) and the mask then drops whatever crossed from the neighbouring byte.
 */
// @ts-ignore: decorator
@inline function codes6(a: v128, g: v128, nib: i32, r: i32): v128 {
  const m4 = v128.load(C + C_15), m30 = v128.load(C + C_48);
  const n = nib == 0 ? v128.and(a, m4) : v128.and(i16x8.shr_u(a, 4), m4);
  const h = r == 0 ? i16x8.shl(g, 4) : r == 1 ? i16x8.shl(g, 2) : r == 2 ? g : i16x8.shr_u(g, 2);
  return i8x16.sub(v128.or(n, v128.and(h, m30)), v128.load(C + C_32));
}

/**
 * Relaxed build: 16 q6_K codes as stored (0..63, no −32), for `i16x8.relaxed_dot_i8x16_i7x16_s`; the
 * offset comes back once per super-block from the activation's 16-value sums (sums16).
 */
// @ts-ignore: decorator
@inline function codes6u(a: v128, g: v128, nib: i32, r: i32): v128 {
  const m4 = v128.load(C + C_15), m30 = v128.load(C + C_48);
  const n = nib == 0 ? v128.and(a, m4) : v128.and(i16x8.shr_u(a, 4), m4);
  const h = r == 0 ? i16x8.shl(g, 4) : r == 1 ? i16x8.shl(g, 2) : r == 2 ? g : i16x8.shr_u(g, 2);
  return v128.or(n, v128.and(h, m30));
}

/** Per 16 values of an activation row, Σxq as int16 (|Σ| <= 16·127), at dst: q6_K's offset term. */
// @ts-ignore: decorator
@inline function sums16(dst: usize, xq: usize, groups: i32): void {
  for (let g = 0; g < groups; g++) {
    const t = i32x4.extadd_pairwise_i16x8_s(i16x8.extadd_pairwise_i8x16_s(v128.load(xq + (<usize>g << 4))));
    store<i16>(dst + (<usize>g << 1), <i16>(i32x4.extract_lane(t, 0) + i32x4.extract_lane(t, 1) + i32x4.extract_lane(t, 2) + i32x4.extract_lane(t, 3)));
  }
}

/** Σ over one quarter (32 codes, two 16-groups with their own int8 scales) times those scales. */
// @ts-ignore: decorator
@inline function quarter6(xr: usize, sc: usize, w0: v128, w1: v128): v128 {
  return i32x4.add(i32x4.mul(dot16(xr, w0), i32x4.splat(<i32>load<i8>(sc))),
    i32x4.mul(dot16(xr + 16, w1), i32x4.splat(<i32>load<i8>(sc, 1))));
}

/** quarter6 on unsigned codes (codes6u), relaxed build only. */
// @ts-ignore: decorator
@inline function quarter6u(xr: usize, sc: usize, w0: v128, w1: v128): v128 {
  return i32x4.add(i32x4.mul(i32x4.extadd_pairwise_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xr), w0)), i32x4.splat(<i32>load<i8>(sc))),
    i32x4.mul(i32x4.extadd_pairwise_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xr, 16), w1)), i32x4.splat(<i32>load<i8>(sc, 1))));
}

/**
 * One q6_K row against one activation row. The relaxed build sums codes·x on the stored codes and
 * subtracts 32·Σ_g scale_g·Σx_g per super-block (s16: the row's sums16), the same integer sums.
 */
// @ts-ignore: decorator
@inline function rowQ6K(xq: usize, xs: usize, w: usize, nb: i32, s16: usize): f32 {
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const wb = w + <usize>b * 210, xb = xq + (<usize>b << 8);
    let isum = i32x4.splat(0);
    if (ASC_FEATURE_RELAXED_SIMD) {
      for (let h = 0; h < 2; h++) {
        const ql = wb + (<usize>h << 6), qh = wb + 128 + (<usize>h << 5), sc = wb + 192 + (<usize>h << 3);
        const xh = xb + (<usize>h << 7);
        const l0 = v128.load(ql), l1 = v128.load(ql, 16), l2 = v128.load(ql, 32), l3 = v128.load(ql, 48);
        const g0 = v128.load(qh), g1 = v128.load(qh, 16);
        isum = i32x4.add(isum, quarter6u(xh, sc, codes6u(l0, g0, 0, 0), codes6u(l1, g1, 0, 0)));
        isum = i32x4.add(isum, quarter6u(xh + 32, sc + 2, codes6u(l2, g0, 0, 1), codes6u(l3, g1, 0, 1)));
        isum = i32x4.add(isum, quarter6u(xh + 64, sc + 4, codes6u(l0, g0, 1, 2), codes6u(l1, g1, 1, 2)));
        isum = i32x4.add(isum, quarter6u(xh + 96, sc + 6, codes6u(l2, g0, 1, 3), codes6u(l3, g1, 1, 3)));
      }
      // The 16 int8 scales against the 16 group sums of x, times 32.
      const scv = v128.load(wb + 192), sp = s16 + (<usize>b << 5);
      const off = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(scv), v128.load(sp)), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(scv), v128.load(sp, 16)));
      isum = i32x4.sub(isum, i32x4.shl(off, 5));
      acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(load<f32>(xs + <usize>b * XS_REC) * h2f1(load<u16>(wb, 208)))));
      continue;
    }
    for (let h = 0; h < 2; h++) {
      const ql = wb + (<usize>h << 6), qh = wb + 128 + (<usize>h << 5), sc = wb + 192 + (<usize>h << 3);
      const xh = xb + (<usize>h << 7);
      const l0 = v128.load(ql), l1 = v128.load(ql, 16), l2 = v128.load(ql, 32), l3 = v128.load(ql, 48);
      const g0 = v128.load(qh), g1 = v128.load(qh, 16);
      // Quarter r: nibbles of ql[l] (r = 0, 2) or ql[l + 32] (r = 1, 3), low for r < 2; bits 2r.. of qh[l].
      isum = i32x4.add(isum, quarter6(xh, sc, codes6(l0, g0, 0, 0), codes6(l1, g1, 0, 0)));
      isum = i32x4.add(isum, quarter6(xh + 32, sc + 2, codes6(l2, g0, 0, 1), codes6(l3, g1, 0, 1)));
      isum = i32x4.add(isum, quarter6(xh + 64, sc + 4, codes6(l0, g0, 1, 2), codes6(l1, g1, 1, 2)));
      isum = i32x4.add(isum, quarter6(xh + 96, sc + 6, codes6(l2, g0, 1, 3), codes6(l3, g1, 1, 3)));
    }
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(load<f32>(xs + <usize>b * XS_REC) * h2f1(load<u16>(wb, 208)))));
  }
  return hsum(acc);
}

// @ts-ignore: decorator
@inline function matmulK(fmt: i32, out: usize, xq: usize, xs: usize, w: usize, bias: usize,
  M: i32, K: i32, N: i32, tid: i32, nth: i32): void {
  const groups = (N + 3) >> 2;
  const n0 = min<i32>(N, (groups * tid / nth) << 2);
  const n1 = min<i32>(N, (groups * (tid + 1) / nth) << 2);
  if (n0 >= n1) return;
  const nb = K >> 8;
  const ldw = <usize>nb * (fmt == 4 ? 144 : fmt == 5 ? 176 : 210);
  const rows = max<i32>(4, (BLOCK_BYTES / <i32>ldw) & ~3);
  for (let b0 = n0; b0 < n1; b0 += rows) {
    const b1 = min<i32>(n1, b0 + rows);
    for (let m = 0; m < M; m++) {
      const xqr = xq + <usize>m * K, xsr = xs + <usize>(m * nb) * XS_REC, orow = out + ((<usize>m * N) << 2);
      // q4_K: rearrange the activation row once per pass (prepNibbleX: 68 bytes per 32 values);
      // the relaxed build reads the row as it is (dot32), and for q6_K needs its 16-value sums.
      const nibble = !ASC_FEATURE_RELAXED_SIMD && fmt == 4 && <usize>(nb << 3) * 68 <= scratchBytes;
      if (nibble) prepNibbleX(scratchPtr, xqr, nb << 3);
      if (ASC_FEATURE_RELAXED_SIMD && fmt == 6) sums16(scratchPtr, xqr, nb << 4);
      for (let n = b0; n < b1; n++) {
        const wr = w + <usize>n * ldw;
        const r = fmt == 6 ? rowQ6K(xqr, xsr, wr, nb, scratchPtr) : nibble ? rowQ4KNibble(scratchPtr, xsr, wr, nb) : rowQ45K(fmt, xqr, xsr, wr, nb);
        store<f32>(orow + (<usize>n << 2), bias ? r + load<f32>(bias + (<usize>n << 2)) : r);
      }
    }
  }
}

/** Parallel over n in groups of 4 rows. xq, xs from quantize_q8_K. */
export function matmul_q4_K(out: usize, xq: usize, xs: usize, w: usize, bias: usize, M: i32, K: i32, N: i32, tid: i32, nth: i32): void {
  matmulK(4, out, xq, xs, w, bias, M, K, N, tid, nth);
}
export function matmul_q5_K(out: usize, xq: usize, xs: usize, w: usize, bias: usize, M: i32, K: i32, N: i32, tid: i32, nth: i32): void {
  matmulK(5, out, xq, xs, w, bias, M, K, N, tid, nth);
}
export function matmul_q6_K(out: usize, xq: usize, xs: usize, w: usize, bias: usize, M: i32, K: i32, N: i32, tid: i32, nth: i32): void {
  matmulK(6, out, xq, xs, w, bias, M, K, N, tid, nth);
}
