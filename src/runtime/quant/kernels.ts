// Which kernels run a Linear whose weight is a GGML block type, and the activation buffers they
// need. A caller (the Linear kinds, the GGUF loader) keeps the weight bytes exactly as the file
// stores them (one row after another, rowBytes each) and, per call:
//   k = QUANT_MATMUL[type]
//   rt.k[k.quantize](xq, xs, x, M, K)                     activation once, on the calling thread
//   rt.run(k.matmul, [out, xq, xs, w, bias, M, K, N])     out[M, N] = x[M, K] · W[N, K]ᵀ (+ bias)
// with xq of k.xqBytes(M, K) bytes and xs of k.xsBytes(M, K) bytes (16-byte aligned).
import type { ParallelOp } from '../kernels.js';
import type { GgmlTypeName } from './types.js';

export interface QuantMatmul {
  /** The parallel op: args (out, xq, xs, w, bias, M, K, N) then (tid, nth). */
  matmul: ParallelOp;
  /** Kernel that quantizes the f32 activation rows: args (xq, xs, x, M, K). */
  quantize: 'quantize_q8' | 'quantize_q8_K';
  /** K must be a multiple of this. */
  blockElems: number;
  /** Bytes of the int8 activation codes. */
  xqBytes(M: number, K: number): number;
  /** Bytes of the activation scales (q8_0: f32 per 32; q8_K: a 20-byte record per 256, f32 d then 8 × i16 sub-block sums). */
  xsBytes(M: number, K: number): number;
}

const q8_0Act = { quantize: 'quantize_q8', blockElems: 32, xqBytes: (M: number, K: number) => M * K,
  xsBytes: (M: number, K: number) => M * (K / 32) * 4 } as const;
const q8_KAct = { quantize: 'quantize_q8_K', blockElems: 256, xqBytes: (M: number, K: number) => M * K,
  xsBytes: (M: number, K: number) => M * (K / 256) * 20 } as const;

/** Block types with a SIMD matmul. (f32/f16/bf16 have matmul_f32/f16/bf16; q8_K is activation-only.) */
export const QUANT_MATMUL: Readonly<Partial<Record<GgmlTypeName, QuantMatmul>>> = Object.freeze({
  q4_0: { matmul: 'matmul_q4_0', ...q8_0Act },
  q4_1: { matmul: 'matmul_q4_1', ...q8_0Act },
  q5_0: { matmul: 'matmul_q5_0', ...q8_0Act },
  q5_1: { matmul: 'matmul_q5_1', ...q8_0Act },
  q8_0: { matmul: 'matmul_q8_0', ...q8_0Act },
  q4_K: { matmul: 'matmul_q4_K', ...q8_KAct },
  q5_K: { matmul: 'matmul_q5_K', ...q8_KAct },
  q6_K: { matmul: 'matmul_q6_K', ...q8_KAct },
});
