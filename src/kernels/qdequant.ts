// Row gather with dequantization for the GGML block types: embedding lookups from a token table
// kept in its file format (token_embd is often q4_K/q6_K/q8_0). Scalar per element, same f32
// arithmetic and element order as src/runtime/quant's dequantizeRow (ggml's dequantize_row_*), so
// the results are equal bit for bit. Not a parallel op: a lookup is M rows, not a matrix product.
import { h2f1 } from './simd';

// @ts-ignore: decorator
@inline function f16(p: usize): f32 {
  return h2f1(load<u16>(p));
}

/** Bytes per block for a ggml type id (0 if unsupported). */
// @ts-ignore: decorator
@inline function blockBytes(t: i32): i32 {
  switch (t) {
    case 2: return 18; case 3: return 20; case 6: return 22; case 7: return 24; case 8: return 34;
    case 12: return 144; case 13: return 176; case 14: return 210;
    default: return 0;
  }
}

function row32(t: i32, y: usize, w: usize, nb: i32): void {
  const bb = <usize>blockBytes(t);
  for (let b = 0; b < nb; b++) {
    const p = w + <usize>b * bb, o = y + (<usize>b << 7);
    const d = f16(p);
    if (t == 8) {
      for (let j = 0; j < 32; j++) store<f32>(o + (<usize>j << 2), <f32>load<i8>(p + 2 + j) * d);
      continue;
    }
    const m: f32 = t == 3 || t == 7 ? f16(p + 2) : 0;
    const qs = p + (t == 2 ? 2 : t == 3 ? 4 : t == 6 ? 6 : 8);
    const qh: u32 = t == 6 ? load<u32>(p + 2) : t == 7 ? load<u32>(p + 4) : 0;
    const off: i32 = t == 2 ? 8 : t == 6 ? 16 : 0;
    for (let j = 0; j < 16; j++) {
      const byte = <i32>load<u8>(qs + j);
      const q0 = (byte & 15) | <i32>(((qh >> j) & 1) << 4);
      const q1 = (byte >> 4) | <i32>(((qh >> (j + 16)) & 1) << 4);
      if (t == 3 || t == 7) {
        store<f32>(o + (<usize>j << 2), <f32>q0 * d + m);
        store<f32>(o + (<usize>(j + 16) << 2), <f32>q1 * d + m);
      } else {
        store<f32>(o + (<usize>j << 2), <f32>(q0 - off) * d);
        store<f32>(o + (<usize>(j + 16) << 2), <f32>(q1 - off) * d);
      }
    }
  }
}

/** 6-bit scale (mins = false) or min (mins = true) j of the 12 packed bytes at p (kquants.ts layout). */
// @ts-ignore: decorator
@inline function scale6(p: usize, j: i32, mins: bool): i32 {
  const o: usize = mins ? 4 : 0;
  if (j < 4) return <i32>load<u8>(p + o + j) & 63;
  const lo = <i32>load<u8>(p + 4 + j);
  return (mins ? lo >> 4 : lo & 15) | ((<i32>load<u8>(p + o + j - 4) >> 6) << 4);
}

function rowK(t: i32, y: usize, w: usize, nb: i32): void {
  for (let b = 0; b < nb; b++) {
    const o = y + (<usize>b << 10);
    if (t == 14) {
      const p = w + <usize>b * 210, d = f16(p + 208);
      for (let h = 0; h < 2; h++) {
        const ql = p + (<usize>h << 6), qh = p + 128 + (<usize>h << 5), sc = p + 192 + (<usize>h << 3);
        for (let r = 0; r < 4; r++) {
          for (let l = 0; l < 32; l++) {
            const byte = <i32>load<u8>(ql + l + ((r & 1) << 5));
            const q = ((r < 2 ? byte & 15 : byte >> 4) | (((<i32>load<u8>(qh + l) >> (r << 1)) & 3) << 4)) - 32;
            const s = <f32>load<i8>(sc + (l >> 4) + (r << 1));
            store<f32>(o + (<usize>((h << 7) + (r << 5) + l) << 2), (d * s) * <f32>q);
          }
        }
      }
      continue;
    }
    const bb: usize = t == 12 ? 144 : 176, qs0: usize = t == 12 ? 16 : 48;
    const p = w + <usize>b * bb, d = f16(p), dmin = f16(p + 2);
    for (let j = 0; j < 8; j++) {
      const dj = d * <f32>scale6(p + 4, j, false), mj = dmin * <f32>scale6(p + 4, j, true);
      for (let l = 0; l < 32; l++) {
        const byte = <i32>load<u8>(p + qs0 + ((j >> 1) << 5) + l);
        let q = (j & 1) ? byte >> 4 : byte & 15;
        if (t == 13) q |= ((<i32>load<u8>(p + 16 + l) >> j) & 1) << 4;
        store<f32>(o + (<usize>((j << 5) + l) << 2), dj * <f32>q - mj);
      }
    }
  }
}

/**
 * out[m, 0..K) = dequantized row ids[m] of the table at w (rows of K elements in ggml type `type`:
 * 2 q4_0, 3 q4_1, 6 q5_0, 7 q5_1, 8 q8_0, 12 q4_K, 13 q5_K, 14 q6_K). K must be a whole number of
 * blocks; the caller checks ids against the row count. Returns 0 for an unsupported type.
 */
export function embed_q(out: usize, w: usize, ids: usize, M: i32, K: i32, type: i32): i32 {
  const bb = blockBytes(type);
  if (bb == 0) return 0;
  const kq = type >= 12;
  const nb = kq ? K >> 8 : K >> 5;
  const ldw = <usize>nb * bb;
  for (let m = 0; m < M; m++) {
    const src = w + <usize>load<i32>(ids + (<usize>m << 2)) * ldw, y = out + ((<usize>m * K) << 2);
    if (kq) rowK(type, y, src, nb); else row32(type, y, src, nb);
  }
  return 1;
}
