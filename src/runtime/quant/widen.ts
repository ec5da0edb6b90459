// q5_0 blocks widened at load into the planar int8 layout of matmul_q8 (int8 codes [R, K], one f32
// scale per 32). Why: a 5-bit code costs about 20 more SIMD instructions per 32 weights to rebuild
// from qs + qh than an int8 code costs to load (docs/benchmarks.md, "4-bit decode kernels"), so
// q5_0 ran at a third of q8_0's speed per weight; widened, it runs on the q8 kernel. The numbers
// are the same: x = d·(q − 16) with q − 16 in [−16, 15] as int8 and d (f16) exact in f32, and both
// kernels scale each block's integer sum by xs·d once. Memory: 36 bytes per 32 weights instead of 22.
// The GGUF bytes on disk are untouched; only the in-memory copy of a linear's rows changes.
import { f16BitsToF32 } from './f16.js';

const QK = 32, Q5_0_BYTES = 22;

/** Widens `s.length` q5_0 blocks of `src` into int8 codes `q` (32 per block) and f32 scales `s`. */
export function widenQ5_0(src: Uint8Array, q: Int8Array, s: Float32Array): void {
  for (let b = 0; b < s.length; b++) {
    const o = b * Q5_0_BYTES;
    s[b] = f16BitsToF32(src[o] | (src[o + 1] << 8));
    const h = (src[o + 2] | (src[o + 3] << 8) | (src[o + 4] << 16) | (src[o + 5] << 24)) >>> 0;
    for (let j = 0; j < 16; j++) {
      const c = src[o + 6 + j];
      q[b * QK + j] = ((c & 15) | (((h >>> j) & 1) << 4)) - 16;
      q[b * QK + j + 16] = ((c >> 4) | (((h >>> (j + 16)) & 1) << 4)) - 16;
    }
  }
}
