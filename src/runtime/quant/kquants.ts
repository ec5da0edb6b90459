// The k-quants: 256-element super-blocks (QK_K) with 6- or 8-bit sub-block scales. Layouts as in
// ggml-common.h, element order as ggml's dequantize_row_*; the quantizers are our own (search.ts).
//
// q4_K / q5_K: eight sub-blocks of 32, x = d·sc[j]·q − dmin·m[j], sc and m 6-bit, packed in 12 bytes:
//   bytes 0-3:  sc[0..3] in bits 0-5, bits 4-5 of sc[4..7] in bits 6-7
//   bytes 4-7:  m[0..3]  in bits 0-5, bits 4-5 of m[4..7]  in bits 6-7
//   bytes 8-11: bits 0-3 of sc[4..7] in the low nibble, bits 0-3 of m[4..7] in the high nibble
// Codes: the 128 qs bytes are four runs of 32; run i holds sub-block 2i in its low nibbles and 2i+1
// in its high nibbles. q5_K adds qh[32]: bit 2i of qh[l] is bit 4 of sub-block 2i's element l, bit
// 2i+1 that of sub-block 2i+1.
// q6_K: sixteen sub-blocks of 16, x = d·sc[j]·(q − 32), sc int8. Each 128-element half h uses
// ql[64h ..], qh[32h ..] and sc[8h ..]: element l (< 32) of quarter r takes the low (r even) or high
// (r odd) nibble of ql[l + 32·(r & 1)] and bits 2r..2r+1 of qh[l]; its scale is sc[l/16 + 2r].
import { f16BitsToF32, f32ToF16Bits, roundF16 } from './f16.js';
import { importance, rint, searchAffine, searchMode, searchSymmetric } from './search.js';
import { QK_K } from './types.js';

const f32 = Math.fround;
const f16At = (b: Uint8Array, o: number): number => f16BitsToF32(b[o] | (b[o + 1] << 8));
function putF16(b: Uint8Array, o: number, x: number): void {
  const h = f32ToF16Bits(x);
  b[o] = h & 0xff; b[o + 1] = h >>> 8;
}

/** Unpacks the 12 scale bytes at `o` into sc[0..8) and m[0..8). */
export function unpackScales6(b: Uint8Array, o: number, sc: Int32Array, m: Int32Array): void {
  for (let j = 0; j < 4; j++) {
    sc[j] = b[o + j] & 63;
    m[j] = b[o + j + 4] & 63;
    sc[j + 4] = (b[o + j + 8] & 15) | ((b[o + j] >> 6) << 4);
    m[j + 4] = (b[o + j + 8] >> 4) | ((b[o + j + 4] >> 6) << 4);
  }
}

function packScales6(b: Uint8Array, o: number, sc: Int32Array, m: Int32Array): void {
  for (let j = 0; j < 4; j++) {
    b[o + j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6);
    b[o + j + 4] = (m[j] & 63) | ((m[j + 4] >> 4) << 6);
    b[o + j + 8] = (sc[j + 4] & 15) | ((m[j + 4] & 15) << 4);
  }
}

/** Dequantizes q4_K (bits 4) or q5_K (bits 5) rows of `k` elements (k % 256 == 0). */
export function dequantQ45K(bits: 4 | 5, src: Uint8Array, k: number, out: Float32Array): void {
  const bytes = bits === 4 ? 144 : 176, qs0 = bits === 4 ? 16 : 48;
  const sc = new Int32Array(8), mn = new Int32Array(8);
  for (let b = 0; b < k / QK_K; b++) {
    const o = b * bytes, y = b * QK_K;
    const d = f16At(src, o), dmin = f16At(src, o + 2);
    unpackScales6(src, o + 4, sc, mn);
    for (let i = 0; i < 4; i++) {
      for (let half = 0; half < 2; half++) {
        const j = 2 * i + half;
        const dj = f32(d * sc[j]), mj = f32(dmin * mn[j]);
        for (let l = 0; l < 32; l++) {
          const byte = src[o + qs0 + 32 * i + l];
          let q = half ? byte >> 4 : byte & 15;
          if (bits === 5) q |= ((src[o + 16 + l] >> j) & 1) << 4;
          out[y + 32 * j + l] = f32(f32(dj * q) - mj);
        }
      }
    }
  }
}

/** Squared error of sub-block x[o .. o+n) coded as dj·q − mj, q = RTN in [0, qmax]; codes to `q` when given. */
function affineErr(x: Float32Array, o: number, n: number, dj: number, mj: number, qmax: number, w: Float64Array, wo: number,
  q?: Int32Array): number {
  let err = 0;
  for (let l = 0; l < n; l++) {
    const c = dj ? Math.max(0, Math.min(qmax, rint((x[o + l] + mj) / dj))) : 0;
    const e = x[o + l] - f32(f32(dj * c) - mj);
    err += w[wo + l] * e * e;
    if (q) q[l] = c;
  }
  return err;
}

/**
 * q4_K / q5_K: per 32-sub-block an affine search (offset <= 0), then the sub-block scales and
 * offsets to 6 bits against super-block scales (stored f16). Rounding the sub-block scales to 6 bits
 * costs as much as the codes' own rounding on sub-blocks far below the super-block's largest, so
 * three refinement rounds follow: each integer scale and offset tries its neighbours ±1 (codes
 * re-rounded for each, lowest squared error kept), then the two super-block scales are refit by
 * least squares over the whole super-block for those codes (x ≈ D·sc·q − Dm·m is linear in D, Dm).
 * What is written is what round-to-nearest gives for the stored scales.
 */
export function quantQ45K(bits: 4 | 5, src: Float32Array, dst: Uint8Array): void {
  const bytes = bits === 4 ? 144 : 176, qs0 = bits === 4 ? 16 : 48, qmax = (1 << bits) - 1;
  const q = new Int32Array(32), s = new Float64Array(8), mneg = new Float64Array(8);
  const sc = new Int32Array(8), mn = new Int32Array(8), codes = new Int32Array(QK_K), w = new Float64Array(QK_K);
  for (let b = 0; b < src.length / QK_K; b++) {
    const o = b * bytes, x0 = b * QK_K;
    dst.fill(0, o, o + bytes);
    importance(src, x0, QK_K, w);
    let smax = 0, mmax = 0;
    for (let j = 0; j < 8; j++) {
      const [d, m] = searchAffine(src, x0 + 32 * j, 32, qmax, true, q, w.subarray(32 * j));
      s[j] = d; mneg[j] = -m;
      smax = Math.max(smax, d); mmax = Math.max(mmax, -m);
    }
    let D = roundF16(smax / 63), Dm = roundF16(mmax / 63);
    for (let j = 0; j < 8; j++) {
      sc[j] = D ? Math.min(63, rint(s[j] / D)) : 0;
      mn[j] = Dm ? Math.min(63, rint(mneg[j] / Dm)) : 0;
    }
    for (let round = 0; round < (searchMode.plain ? 0 : 3); round++) {
      for (let j = 0; j < 8; j++) {
        let best = affineErr(src, x0 + 32 * j, 32, f32(D * sc[j]), f32(Dm * mn[j]), qmax, w, 32 * j), bs = sc[j], bm = mn[j];
        for (let ds = -1; ds <= 1; ds++) {
          for (let dm = -1; dm <= 1; dm++) {
            const cs = sc[j] + ds, cm = mn[j] + dm;
            if ((ds === 0 && dm === 0) || cs < 0 || cs > 63 || cm < 0 || cm > 63) continue;
            const e = affineErr(src, x0 + 32 * j, 32, f32(D * cs), f32(Dm * cm), qmax, w, 32 * j);
            if (e < best) { best = e; bs = cs; bm = cm; }
          }
        }
        sc[j] = bs; mn[j] = bm;
      }
      // Least-squares D, Dm for these codes: x ≈ D·a − Dm·c with a = sc·q, c = m.
      let aa = 0, ac = 0, cc = 0, xa = 0, xc = 0, before = 0;
      for (let j = 0; j < 8; j++) {
        before += affineErr(src, x0 + 32 * j, 32, f32(D * sc[j]), f32(Dm * mn[j]), qmax, w, 32 * j, q);
        for (let l = 0; l < 32; l++) {
          const a = sc[j] * q[l], c = mn[j], x = src[x0 + 32 * j + l], wl = w[32 * j + l];
          aa += wl * a * a; ac += wl * a * c; cc += wl * c * c; xa += wl * x * a; xc += wl * x * c;
        }
      }
      const det = aa * cc - ac * ac;
      if (det <= 0) break;
      const nD = roundF16((xa * cc - xc * ac) / det), nDm = roundF16(-(xc * aa - xa * ac) / det);
      if (!(nD > 0) || nDm < 0) break;
      let after = 0;
      for (let j = 0; j < 8; j++) after += affineErr(src, x0 + 32 * j, 32, f32(nD * sc[j]), f32(nDm * mn[j]), qmax, w, 32 * j);
      if (after < before) { D = nD; Dm = nDm; }
    }
    putF16(dst, o, D); putF16(dst, o + 2, Dm);
    packScales6(dst, o + 4, sc, mn);
    for (let j = 0; j < 8; j++) {
      affineErr(src, x0 + 32 * j, 32, f32(D * sc[j]), f32(Dm * mn[j]), qmax, w, 32 * j, q);
      codes.set(q, 32 * j);
    }
    for (let i = 0; i < 4; i++) {
      for (let l = 0; l < 32; l++) {
        const lo = codes[64 * i + l], hi = codes[64 * i + 32 + l];
        dst[o + qs0 + 32 * i + l] = (lo & 15) | ((hi & 15) << 4);
        if (bits === 5) dst[o + 16 + l] |= ((lo >> 4) << (2 * i)) | ((hi >> 4) << (2 * i + 1));
      }
    }
  }
}

/** Dequantizes q6_K rows of `k` elements (k % 256 == 0). */
export function dequantQ6K(src: Uint8Array, k: number, out: Float32Array): void {
  for (let b = 0; b < k / QK_K; b++) {
    const o = b * 210, y = b * QK_K;
    const d = f16At(src, o + 208);
    for (let h = 0; h < 2; h++) {
      const ql = o + 64 * h, qh = o + 128 + 32 * h, sc = o + 192 + 8 * h;
      for (let r = 0; r < 4; r++) {
        for (let l = 0; l < 32; l++) {
          const byte = src[ql + l + 32 * (r & 1)];
          const q = ((r < 2 ? byte & 15 : byte >> 4) | (((src[qh + l] >> (2 * r)) & 3) << 4)) - 32;
          const s = (src[sc + (l >> 4) + 2 * r] << 24) >> 24;
          out[y + 128 * h + 32 * r + l] = f32(f32(d * s) * q);
        }
      }
    }
  }
}

/**
 * q6_K: per 16-sub-block a symmetric search over codes −32..31, then the sub-block scales to int8
 * against d = max|scale|/127 (stored f16), then the codes again from the stored scales.
 */
export function quantQ6K(src: Float32Array, dst: Uint8Array): void {
  const q = new Int32Array(16), s = new Float64Array(16), L = new Int32Array(16);
  for (let b = 0; b < src.length / QK_K; b++) {
    const o = b * 210, x0 = b * QK_K;
    dst.fill(0, o, o + 210);
    let amax = 0;
    for (let j = 0; j < 16; j++) { s[j] = searchSymmetric(src, x0 + 16 * j, 16, -32, 31, q); amax = Math.max(amax, Math.abs(s[j])); }
    const D = roundF16(amax / 127);
    putF16(dst, o + 208, D);
    for (let j = 0; j < 16; j++) { L[j] = D ? Math.max(-127, Math.min(127, rint(s[j] / D))) : 0; dst[o + 192 + j] = L[j] & 0xff; }
    for (let h = 0; h < 2; h++) {
      const ql = o + 64 * h, qh = o + 128 + 32 * h;
      for (let r = 0; r < 4; r++) {
        for (let l = 0; l < 32; l++) {
          const e = 128 * h + 32 * r + l;
          const dj = f32(D * L[e >> 4]);
          const c = (dj ? Math.max(-32, Math.min(31, rint(src[x0 + e] / dj))) : 0) + 32;
          dst[ql + l + 32 * (r & 1)] |= r < 2 ? c & 15 : (c & 15) << 4;
          dst[qh + l] |= (c >> 4) << (2 * r);
        }
      }
    }
  }
}

/** Dequantizes q8_K rows: f32 d, 256 int8, then 16 i16 block sums (not needed to dequantize). */
export function dequantQ8K(src: Uint8Array, k: number, out: Float32Array): void {
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  for (let b = 0; b < k / QK_K; b++) {
    const o = b * 292, d = dv.getFloat32(o, true);
    for (let j = 0; j < QK_K; j++) out[b * QK_K + j] = f32(d * ((src[o + 4 + j] << 24) >> 24));
  }
}

/**
 * q8_K, the k-quant activation format: d = max|x|/127 in f32, q = nearest(x·(127/max|x|)) with the
 * reciprocal rounded to f32 first (the same arithmetic as the kernel quantize_q8_K), ties to even;
 * bsums[i] = Σ of the 16 codes of group i.
 */
export function quantQ8K(src: Float32Array, dst: Uint8Array): void {
  const dv = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  for (let b = 0; b < src.length / QK_K; b++) {
    const o = b * 292, x0 = b * QK_K;
    let a = 0;
    for (let j = 0; j < QK_K; j++) a = Math.max(a, Math.abs(src[x0 + j]));
    const id = a ? f32(127 / a) : 0;
    dv.setFloat32(o, f32(a / 127), true);
    for (let g = 0; g < 16; g++) {
      let sum = 0;
      for (let j = 16 * g; j < 16 * g + 16; j++) {
        const c = rint(f32(src[x0 + j] * id));
        dst[o + 4 + j] = c & 0xff; sum += c;
      }
      dv.setInt16(o + 260 + 2 * g, sum, true);
    }
  }
}
