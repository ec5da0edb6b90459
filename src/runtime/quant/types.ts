// The GGML tensor types streamlm reads and writes: ids and block geometry from ggml.h /
// ggml-common.h (append-only upstream, so the ids are stable). One row of K elements of a block
// type is K / blockElems blocks laid end to end, blockBytes each.
import { StreamlmError } from '../../errors.js';

/** ggml type names as ggml_type_name() prints them (and as `--type` takes them). */
export type GgmlTypeName =
  | 'f32' | 'f16' | 'bf16'
  | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'q8_0'
  | 'q4_K' | 'q5_K' | 'q6_K' | 'q8_K';

export interface QuantType {
  /** ggml_type enum value, as stored in a GGUF tensor info. */
  readonly id: number;
  readonly name: GgmlTypeName;
  /** Elements per block (1 for the float types). */
  readonly blockElems: number;
  /** Bytes per block. */
  readonly blockBytes: number;
}

/** Super-block size of the k-quants (QK_K). */
export const QK_K = 256;

function t(id: number, name: GgmlTypeName, blockElems: number, blockBytes: number): QuantType {
  return Object.freeze({ id, name, blockElems, blockBytes });
}

/**
 * Block layouts (byte offsets inside one block; f16 = IEEE half, little-endian):
 *   q4_0  18 B / 32:  d f16 | qs[16]            x[j] = d·((qs[j]&15) − 8), x[j+16] = d·((qs[j]>>4) − 8)
 *   q4_1  20 B / 32:  d f16 | m f16 | qs[16]    x = d·q + m, q as q4_0 without the −8
 *   q5_0  22 B / 32:  d f16 | qh u32 | qs[16]   bit j of qh is bit 4 of element j; x = d·(q − 16)
 *   q5_1  24 B / 32:  d f16 | m f16 | qh u32 | qs[16]   x = d·q + m
 *   q8_0  34 B / 32:  d f16 | qs i8[32]         x = d·q
 *   q4_K 144 B / 256: d f16 | dmin f16 | scales[12] | qs[128]   eight 32-sub-blocks, 6-bit sc and m
 *   q5_K 176 B / 256: d f16 | dmin f16 | scales[12] | qh[32] | qs[128]
 *   q6_K 210 B / 256: ql[128] | qh[64] | scales i8[16] | d f16   sixteen 16-sub-blocks, x = d·sc·(q − 32)
 *   q8_K 292 B / 256: d f32 | qs i8[256] | bsums i16[16]         (activations of k-quant dot products)
 * The k-quant bit placement is spelled out in kquants.ts.
 */
export const QUANT_TYPES: Readonly<Record<GgmlTypeName, QuantType>> = Object.freeze({
  f32: t(0, 'f32', 1, 4),
  f16: t(1, 'f16', 1, 2),
  q4_0: t(2, 'q4_0', 32, 18),
  q4_1: t(3, 'q4_1', 32, 20),
  q5_0: t(6, 'q5_0', 32, 22),
  q5_1: t(7, 'q5_1', 32, 24),
  q8_0: t(8, 'q8_0', 32, 34),
  q4_K: t(12, 'q4_K', QK_K, 144),
  q5_K: t(13, 'q5_K', QK_K, 176),
  q6_K: t(14, 'q6_K', QK_K, 210),
  q8_K: t(15, 'q8_K', QK_K, 292),
  bf16: t(30, 'bf16', 1, 2),
});

const BY_ID = new Map<number, QuantType>(Object.values(QUANT_TYPES).map((q) => [q.id, q]));

/**
 * The type for a ggml id or a name (names are matched case-insensitively except for the k-quant
 * `_K`, so `Q4_K`, `q4_k` and `q4_K` all work). Unknown ones throw, naming `field`.
 */
export function quantType(type: number | string, field = 'type'): QuantType {
  if (typeof type === 'number') {
    const q = BY_ID.get(type);
    if (!q) throw new StreamlmError(`ggml type ${type} is not supported (supported: ${supportedList()})`, { field });
    return q;
  }
  const s = type.toLowerCase();
  const name = (s.endsWith('_k') ? s.slice(0, -2) + '_K' : s) as GgmlTypeName;
  const q = (QUANT_TYPES as Record<string, QuantType | undefined>)[name];
  if (!q) throw new StreamlmError(`unknown type '${type}' (supported: ${supportedList()})`, { field });
  return q;
}

function supportedList(): string {
  return Object.values(QUANT_TYPES).map((q) => `${q.name} (${q.id})`).join(', ');
}

/** Bytes of one row of `k` elements; throws unless `k` is a whole number of blocks. */
export function rowBytes(type: QuantType, k: number, field = 'row'): number {
  if (!Number.isInteger(k) || k <= 0 || k % type.blockElems !== 0) {
    throw new StreamlmError(`row width ${k} is not a positive multiple of ${type.name}'s block of ${type.blockElems}`, { field });
  }
  return (k / type.blockElems) * type.blockBytes;
}
