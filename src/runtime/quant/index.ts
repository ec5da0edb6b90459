// Block formats of GGUF tensors: the type table, a dequantize reference and a quantizer per type,
// and the per-tensor fallback for rows k-quants cannot hold. See docs/quant.md.
//
//   quantType('q4_K')                      -> { id: 12, name: 'q4_K', blockElems: 256, blockBytes: 144 }
//   rowBytes(type, K)                      -> bytes of one row
//   dequantizeRow(type, bytes, K)          -> Float32Array(K)       (exactly ggml's dequantize_row_*)
//   quantizeRow(type, floats)              -> Uint8Array(rowBytes)  (our own search, docs/quant.md)
//   chooseType('q4_K', 576)                -> { type: q5_0, fallback: true, reason: '...' }
// Load/export-time tools: a whole model passes through them once, never per token.
import { StreamlmError } from '../../errors.js';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from './f16.js';
import { dequantNibble, dequantQ8_0, quantNibble, quantQ8_0 } from './blocks32.js';
import { dequantQ45K, dequantQ6K, dequantQ8K, quantQ45K, quantQ6K, quantQ8K } from './kquants.js';
import { quantType, rowBytes, QK_K, type GgmlTypeName, type QuantType } from './types.js';

export { QUANT_TYPES, QK_K, quantType, rowBytes, type GgmlTypeName, type QuantType } from './types.js';
export { f32ToF16Bits, f16BitsToF32, f32ToBf16Bits, bf16BitsToF32, roundF16 } from './f16.js';
export { QUANT_MATMUL, type QuantMatmul } from './kernels.js';
export { widenQ5_0 } from './blocks32.js';

type TypeArg = QuantType | GgmlTypeName | number;
const resolve = (t: TypeArg): QuantType => (typeof t === 'object' ? t : quantType(t));

/**
 * Dequantizes one row of `k` elements stored as `type` in `src` (at least rowBytes(type, k) bytes)
 * into `out` (default: a new Float32Array(k)).
 */
export function dequantizeRow(type: TypeArg, src: Uint8Array, k: number, out: Float32Array = new Float32Array(k)): Float32Array {
  const t = resolve(type);
  const need = rowBytes(t, k);
  if (src.length < need) throw new StreamlmError(`${t.name} row of ${k} needs ${need} bytes, got ${src.length}`, { field: 'row' });
  if (out.length < k) throw new StreamlmError(`output holds ${out.length} < ${k} elements`, { field: 'out' });
  switch (t.name) {
    case 'f32': out.set(new Float32Array(src.slice(0, need).buffer)); break;
    case 'f16': for (let i = 0; i < k; i++) out[i] = f16BitsToF32(src[2 * i] | (src[2 * i + 1] << 8)); break;
    case 'bf16': for (let i = 0; i < k; i++) out[i] = bf16BitsToF32(src[2 * i] | (src[2 * i + 1] << 8)); break;
    case 'q4_0': case 'q4_1': case 'q5_0': case 'q5_1': dequantNibble(t.name, src, k, out); break;
    case 'q8_0': dequantQ8_0(src, k, out); break;
    case 'q4_K': dequantQ45K(4, src, k, out); break;
    case 'q5_K': dequantQ45K(5, src, k, out); break;
    case 'q6_K': dequantQ6K(src, k, out); break;
    case 'q8_K': dequantQ8K(src, k, out); break;
  }
  return out;
}

/**
 * Quantizes one row (`src.length` elements, a whole number of blocks) to `type` into `out`
 * (default: a new Uint8Array(rowBytes)). Returns the bytes written.
 */
export function quantizeRow(type: TypeArg, src: Float32Array, out?: Uint8Array): Uint8Array {
  const t = resolve(type);
  const need = rowBytes(t, src.length);
  const dst = out ? out.subarray(0, need) : new Uint8Array(need);
  if (dst.length < need) throw new StreamlmError(`output holds ${dst.length} < ${need} bytes`, { field: 'out' });
  for (let i = 0; i < src.length; i++) {
    if (!Number.isFinite(src[i])) throw new StreamlmError(`element ${i} is ${src[i]}; only finite values quantize`, { field: 'row' });
  }
  switch (t.name) {
    case 'f32': dst.set(new Uint8Array(src.buffer, src.byteOffset, need)); break;
    case 'f16': case 'bf16': {
      const conv = t.name === 'f16' ? f32ToF16Bits : f32ToBf16Bits;
      for (let i = 0; i < src.length; i++) { const h = conv(src[i]); dst[2 * i] = h & 0xff; dst[2 * i + 1] = h >>> 8; }
      break;
    }
    case 'q4_0': case 'q4_1': case 'q5_0': case 'q5_1': quantNibble(t.name, src, dst); break;
    case 'q8_0': quantQ8_0(src, dst); break;
    case 'q4_K': quantQ45K(4, src, dst); break;
    case 'q5_K': quantQ45K(5, src, dst); break;
    case 'q6_K': quantQ6K(src, dst); break;
    case 'q8_K': quantQ8K(src, dst); break;
  }
  return dst;
}

/** What a tensor is stored as, given the requested type and its row width. */
export interface TypeChoice {
  type: QuantType;
  /** True when `type` is not the one requested. */
  fallback: boolean;
  /** Why, for the quantize summary (empty when no fallback). */
  reason: string;
}

/**
 * llama.cpp's rule (llama_tensor_get_type): rows whose width is not a multiple of 256 cannot hold
 * k-quant super-blocks, so the tensor falls back to a 32-block type of at least as many bits —
 * q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0 — and to f16 if the width is not a multiple of 32
 * either. (The fallback costs size on those tensors only; on the shipped models' FFN width of 576
 * it is the down projection's input side.)
 */
export function chooseType(requested: TypeArg, rowWidth: number): TypeChoice {
  const t = resolve(requested);
  if (!Number.isInteger(rowWidth) || rowWidth <= 0) throw new StreamlmError(`row width ${rowWidth} is not a positive integer`, { field: 'row' });
  if (rowWidth % t.blockElems === 0) return { type: t, fallback: false, reason: '' };
  const FALLBACK: Partial<Record<GgmlTypeName, GgmlTypeName>> = { q4_K: 'q5_0', q5_K: 'q5_1', q6_K: 'q8_0', q8_K: 'q8_0' };
  let to = quantType(FALLBACK[t.name] ?? 'f16');
  if (rowWidth % to.blockElems !== 0) to = quantType('f16');
  const why = t.blockElems === QK_K ? `super-blocks of ${QK_K}` : `blocks of ${t.blockElems}`;
  return { type: to, fallback: true, reason: `row width ${rowWidth} is not a multiple of ${t.name}'s ${why}: stored as ${to.name}` };
}

/**
 * llama.cpp's rule for the output projection (and for token_embd when the head is tied to it, as
 * the same tensor then serves both): below 8 bits it is stored as q6_K, or q8_0 when its rows
 * cannot hold super-blocks, because the logits are the most sensitive product of the model. f32,
 * f16, bf16 and q8_0 requests keep their type. On the shipped tied 8M models this tensor alone cost
 * +0.6% of perplexity at q5_K (docs/benchmarks.md).
 */
export function chooseOutputType(requested: TypeArg, rowWidth: number): TypeChoice {
  const t = resolve(requested);
  if (['f32', 'f16', 'bf16', 'q8_0', 'q6_K'].includes(t.name)) return chooseType(t, rowWidth);
  const to = quantType(rowWidth % QK_K === 0 ? 'q6_K' : 'q8_0');
  if (rowWidth % to.blockElems !== 0) return chooseType('f16', rowWidth);
  return { type: to, fallback: true, reason: `the output projection keeps more bits (llama.cpp's rule): stored as ${to.name}` };
}

/**
 * One line for a quantize summary: how many tensors got the requested type and which fell back to
 * what, e.g. "q4_K: 50 tensors; 8 fell back (row width 576 is not a multiple of q4_K's super-blocks
 * of 256): q5_0 for blk.0.ffn_down.weight, ...".
 */
export function fallbackSummary(requested: TypeArg, tensors: { name: string; choice: TypeChoice }[]): string {
  const t = resolve(requested);
  const kept = tensors.filter((e) => !e.choice.fallback).length;
  const fell = tensors.filter((e) => e.choice.fallback);
  if (!fell.length) return `${t.name}: ${kept} tensors`;
  const reasons = [...new Set(fell.map((e) => e.choice.reason.replace(/: stored as .*$/, '')))];
  const list = fell.map((e) => `${e.choice.type.name} for ${e.name}`);
  return `${t.name}: ${kept} tensors; ${fell.length} fell back (${reasons.join('; ')}): ${list.join(', ')}`;
}
