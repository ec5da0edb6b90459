// The 32-element block types: q4_0, q4_1, q5_0, q5_1, q8_0 (layouts in types.ts). Dequantizers
// follow ggml's dequantize_row_* element order exactly; the quantizers are our own (search.ts).
// Scalar TypeScript: used at load/export time and as the kernels' test reference, never per token.
import { f16BitsToF32, f32ToF16Bits, roundF16 } from './f16.js';
import { rint, searchAffine, searchSymmetric } from './search.js';

const QK = 32;

const f16At = (b: Uint8Array, o: number): number => f16BitsToF32(b[o] | (b[o + 1] << 8));
function putF16(b: Uint8Array, o: number, x: number): void {
  const h = f32ToF16Bits(x);
  b[o] = h & 0xff; b[o + 1] = h >>> 8;
}
const u32At = (b: Uint8Array, o: number): number => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
const f32 = Math.fround;

/** Nibble codes of 32 elements from qs[16] (+ a 5th bit from qh): element j<16 is the low nibble of qs[j]. */
function codes(src: Uint8Array, qs: number, qh: number, hasHigh: boolean, q: Int32Array): void {
  const h = hasHigh ? u32At(src, qh) : 0;
  for (let j = 0; j < 16; j++) {
    q[j] = (src[qs + j] & 15) | (((h >>> j) & 1) << 4);
    q[j + 16] = (src[qs + j] >> 4) | (((h >>> (j + 16)) & 1) << 4);
  }
}

function putCodes(dst: Uint8Array, qs: number, qh: number, hasHigh: boolean, q: Int32Array): void {
  let h = 0;
  for (let j = 0; j < 16; j++) {
    dst[qs + j] = (q[j] & 15) | ((q[j + 16] & 15) << 4);
    if (hasHigh) h |= ((q[j] >> 4) & 1) << j | ((q[j + 16] >> 4) & 1) << (j + 16);
  }
  if (hasHigh) { dst[qh] = h & 0xff; dst[qh + 1] = (h >>> 8) & 0xff; dst[qh + 2] = (h >>> 16) & 0xff; dst[qh + 3] = h >>> 24; }
}

/** Geometry of one 32-block type: where d, m (affine types), qh (5-bit types) and qs sit. */
interface Layout { bytes: number; affine: boolean; bits: 4 | 5; m: number; qh: number; qs: number }
const LAYOUTS = {
  q4_0: { bytes: 18, affine: false, bits: 4, m: -1, qh: -1, qs: 2 },
  q4_1: { bytes: 20, affine: true, bits: 4, m: 2, qh: -1, qs: 4 },
  q5_0: { bytes: 22, affine: false, bits: 5, m: -1, qh: 2, qs: 6 },
  q5_1: { bytes: 24, affine: true, bits: 5, m: 2, qh: 4, qs: 8 },
} as const satisfies Record<string, Layout>;
export type Block32Nibble = keyof typeof LAYOUTS;

/** Dequantizes `k` elements (k % 32 == 0) of a q4_0/q4_1/q5_0/q5_1 row. */
export function dequantNibble(type: Block32Nibble, src: Uint8Array, k: number, out: Float32Array): void {
  const L: Layout = LAYOUTS[type];
  const q = new Int32Array(QK);
  const bias = L.affine ? 0 : L.bits === 4 ? 8 : 16;
  for (let b = 0; b < k / QK; b++) {
    const o = b * L.bytes;
    const d = f16At(src, o);
    codes(src, o + L.qs, o + L.qh, L.bits === 5, q);
    if (L.affine) {
      const m = f16At(src, o + L.m);
      for (let j = 0; j < QK; j++) out[b * QK + j] = f32(f32(q[j] * d) + m);
    } else {
      for (let j = 0; j < QK; j++) out[b * QK + j] = f32((q[j] - bias) * d);
    }
  }
}

/**
 * q5_0 blocks widened into matmul_q8's planar layout: int8 codes q − 16 in [−16, 15] (32 per block)
 * and one f32 scale d per block, the same numbers as dequantNibble gives. Why: a 5-bit code costs
 * about 20 more SIMD instructions per 32 weights to rebuild from qs + qh than an int8 code costs to
 * load (docs/benchmarks.md, "4-bit decode kernels"), so the loader runs q5_0 linears widened on the
 * q8 kernel, for 36 bytes per 32 weights instead of 22. The GGUF bytes on disk are untouched.
 */
export function widenQ5_0(src: Uint8Array, q: Int8Array, s: Float32Array): void {
  const L = LAYOUTS.q5_0, c = new Int32Array(QK);
  for (let b = 0; b < s.length; b++) {
    const o = b * L.bytes;
    s[b] = f16At(src, o);
    codes(src, o + L.qs, o + L.qh, true, c);
    for (let j = 0; j < QK; j++) q[b * QK + j] = c[j] - 16;
  }
}

/** Quantizes `src` (length % 32 == 0) into `dst` as q4_0/q4_1/q5_0/q5_1 blocks. */
export function quantNibble(type: Block32Nibble, src: Float32Array, dst: Uint8Array): void {
  const L: Layout = LAYOUTS[type];
  const q = new Int32Array(QK);
  const qmax = L.bits === 4 ? 15 : 31, half = (qmax + 1) / 2;
  for (let b = 0; b < src.length / QK; b++) {
    const o = b * L.bytes, x0 = b * QK;
    if (L.affine) {
      const [d0, m0] = searchAffine(src, x0, QK, qmax, false, q);
      const d = roundF16(d0), m = roundF16(m0);
      putF16(dst, o, d); putF16(dst, o + L.m, m);
      // Codes again from the stored (f16) scale and offset.
      for (let j = 0; j < QK; j++) q[j] = d ? Math.max(0, Math.min(qmax, rint((src[x0 + j] - m) / d))) : 0;
    } else {
      const d = roundF16(searchSymmetric(src, x0, QK, -half, half - 1, q));
      putF16(dst, o, d);
      for (let j = 0; j < QK; j++) q[j] = (d ? Math.max(-half, Math.min(half - 1, rint(src[x0 + j] / d))) : 0) + half;
    }
    putCodes(dst, o + L.qs, o + L.qh, L.bits === 5, q);
  }
}

/** Dequantizes a q8_0 row: 34-byte blocks of f16 d then 32 int8. */
export function dequantQ8_0(src: Uint8Array, k: number, out: Float32Array): void {
  for (let b = 0; b < k / QK; b++) {
    const o = b * 34, d = f16At(src, o);
    for (let j = 0; j < QK; j++) out[b * QK + j] = f32(((src[o + 2 + j] << 24) >> 24) * d);
  }
}

/**
 * q8_0: d = max|x| / 127 rounded to f16, q = round(x / d). With 255 codes a search gains nothing
 * measurable over mapping the extreme to ±127.
 */
export function quantQ8_0(src: Float32Array, dst: Uint8Array): void {
  for (let b = 0; b < src.length / QK; b++) {
    const o = b * 34, x0 = b * QK;
    let a = 0;
    for (let j = 0; j < QK; j++) a = Math.max(a, Math.abs(src[x0 + j]));
    const d = roundF16(a / 127);
    putF16(dst, o, d);
    for (let j = 0; j < QK; j++) dst[o + 2 + j] = (d ? Math.max(-127, Math.min(127, rint(src[x0 + j] / d))) : 0) & 0xff;
  }
}
