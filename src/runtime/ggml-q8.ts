/**
 * GGML's Q8_0 block (ggml-common.h block_q8_0): an f16 scale d, then 32 int8 quants; x = d·q.
 * We keep the same numbers planar, as matmul_q8 wants them: int8 rows plus one f32 scale per 32.
 * d·q is exact in f32 (an 11-bit mantissa times an 8-bit integer), so nothing is lost either way.
 */
export const Q8_0_BLOCK = 32;
export const Q8_0_BYTES = 34;

let f16Table: Float32Array | undefined;

/** f16 bits to f32, through a 65536-entry table built once. */
export function f16ToF32Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const sign = h & 0x8000 ? -1 : 1, exp = (h >>> 10) & 0x1f, mant = h & 0x3ff;
      f16Table[h] = exp === 0 ? sign * mant * 2 ** -24 : exp === 0x1f ? (mant ? NaN : sign * Infinity) : sign * (1 + mant / 1024) * 2 ** (exp - 15);
    }
  }
  return f16Table;
}

/** Splits `src` (n/32 blocks) into int8 quants `q` (n) and f32 scales `s` (n/32). */
export function repackQ8_0(src: Uint8Array, q: Int8Array, s: Float32Array): void {
  const table = f16ToF32Table();
  const nb = s.length;
  const src8 = new Int8Array(src.buffer, src.byteOffset, src.byteLength);
  for (let b = 0; b < nb; b++) {
    const o = b * Q8_0_BYTES;
    s[b] = table[src[o] | (src[o + 1] << 8)];
    q.set(src8.subarray(o + 2, o + Q8_0_BYTES), b * Q8_0_BLOCK);
  }
}

/** Expands `src` blocks to f32 values in `out` (length a multiple of 32). */
export function dequantizeQ8_0(src: Uint8Array, out: Float32Array): void {
  const table = f16ToF32Table();
  const src8 = new Int8Array(src.buffer, src.byteOffset, src.byteLength);
  for (let b = 0; b < out.length / Q8_0_BLOCK; b++) {
    const o = b * Q8_0_BYTES, d = table[src[o] | (src[o + 1] << 8)];
    for (let j = 0; j < Q8_0_BLOCK; j++) out[b * Q8_0_BLOCK + j] = d * src8[o + 2 + j];
  }
}
