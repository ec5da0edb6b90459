// The exports of build/kernels.wasm, typed. All pointers are byte offsets into the shared memory
// (see docs/design.md, "Kernels"); every argument is a number, f32 ones included.

type P = number;

export interface Kernels {
  heap_base(): number;
  set_scratch(ptr: P, bytes: number): void;
  matmul_f32(out: P, x: P, w: P, bias: P, M: number, K: number, N: number, tid: number, nth: number): void;
  matmul_f16(out: P, x: P, w: P, bias: P, M: number, K: number, N: number, tid: number, nth: number): void;
  matmul_bf16(out: P, x: P, w: P, bias: P, M: number, K: number, N: number, tid: number, nth: number): void;
  quantize_q8(xq: P, xs: P, x: P, M: number, K: number): void;
  matmul_q8(out: P, xq: P, xs: P, wq: P, ws: P, bias: P, M: number, K: number, N: number, tid: number, nth: number): void;
  rmsnorm(out: P, x: P, w: P, M: number, K: number, eps: number): void;
  layernorm(out: P, x: P, w: P, b: P, M: number, K: number, eps: number): void;
  rope(x: P, rowStride: number, cos: P, sin: P, M: number, nHeads: number, headDim: number, rotDim: number): void;
  attention(out: P, q: P, qRowStride: number, qGroupStride: number, k: P, v: P, kvRowStride: number,
    slotPos: P, slotGroup: P, nSlots: number, qPos: P, M: number, nHeads: number, nKvHeads: number,
    headDim: number, scale: number, alibi: P, window: number, sinks: P, probs: P, scratch: P, tid: number, nth: number): void;
  swiglu(out: P, gu: P, M: number, F: number): void;
  gelu(x: P, n: number): void;
  gelu_tanh(x: P, n: number): void;
  add(out: P, a: P, b: P, n: number): void;
  clamp(x: P, n: number, lo: number, hi: number): void;
  embed_f32(out: P, table: P, ids: P, M: number, K: number): void;
  embed_f16(out: P, table: P, ids: P, M: number, K: number): void;
  embed_bf16(out: P, table: P, ids: P, M: number, K: number): void;
  /** Gather from a table packed for the GEMV (tied head): kind 0 f32 r4, 1 f16 h4, 2 bf16 h4; N = rows. */
  embed_packed(out: P, table: P, ids: P, M: number, K: number, N: number, kind: number): void;
  cross_entropy(nll: P, logits: P, targets: P, M: number, N: number): void;
  lowrank_ffn(qd: P, p: P, bg: P, bu: P, ad: P, cfg: P, M: number, tid: number, nth: number): void;
  lowrank_attention(out: P, p: P, bq: P, k: P, v: P, cfg: P, M: number, tid: number, nth: number): void;
  pool_probe(counts: P, n: number, work: number, tid: number, nth: number): void;
  /** In place, row-major → r4 layout (src/kernels/matmul_r4.ts); 1 if packed, 0 if left row-major. */
  pack_f32r4(w: P, N: number, K: number): number;
  matmul_f32r4(out: P, x: P, w: P, bias: P, M: number, K: number, N: number, tid: number, nth: number): void;
  /** In place, row-major f16/bf16 → h4 layout (src/kernels/matmul_h4.ts); 1 if packed, 0 if left row-major. */
  pack_h4(w: P, N: number, K: number): number;
  matmul_f16h4(out: P, x: P, w: P, bias: P, M: number, K: number, N: number, tid: number, nth: number): void;
  matmul_bf16h4(out: P, x: P, w: P, bias: P, M: number, K: number, N: number, tid: number, nth: number): void;
  matmul_bf16h4_small(out: P, x: P, w: P, bias: P, M: number, K: number, N: number, tid: number, nth: number): void;
  // GGML block formats (src/kernels/q32.ts, qk.ts; table in src/runtime/quant/kernels.ts).
  quantize_q8_K(xq: P, xs: P, x: P, M: number, K: number): void;
  /** Embedding gather from a block-type table (src/kernels/qdequant.ts); 0 if `type` is not a block type. */
  embed_q(out: P, w: P, ids: P, M: number, K: number, type: number): number;
  matmul_q4_0(out: P, xq: P, xs: P, w: P, bias: P, M: number, K: number, N: number, tid: number, nth: number): void;
  matmul_q4_1(out: P, xq: P, xs: P, w: P, bias: P, M: number, K: number, N: number, tid: number, nth: number): void;
  matmul_q5_0(out: P, xq: P, xs: P, w: P, bias: P, M: number, K: number, N: number, tid: number, nth: number): void;
  matmul_q5_1(out: P, xq: P, xs: P, w: P, bias: P, M: number, K: number, N: number, tid: number, nth: number): void;
  matmul_q8_0(out: P, xq: P, xs: P, w: P, bias: P, M: number, K: number, N: number, tid: number, nth: number): void;
  matmul_q4_K(out: P, xq: P, xs: P, w: P, bias: P, M: number, K: number, N: number, tid: number, nth: number): void;
  matmul_q5_K(out: P, xq: P, xs: P, w: P, bias: P, M: number, K: number, N: number, tid: number, nth: number): void;
  matmul_q6_K(out: P, xq: P, xs: P, w: P, bias: P, M: number, K: number, N: number, tid: number, nth: number): void;
}

/**
 * Kernels that take `(tid, nth)` last and run on every thread through `Runtime.run`, with the number
 * of arguments that come before `(tid, nth)`. Append only: the index is the op id workers receive.
 */
export const PARALLEL_OPS = {
  matmul_f32: 7,
  matmul_f16: 7,
  matmul_bf16: 7,
  matmul_q8: 9,
  attention: 21,
  lowrank_ffn: 7,
  lowrank_attention: 7,
  pool_probe: 3,
  matmul_f32r4: 7,
  matmul_q4_0: 8,
  matmul_q4_1: 8,
  matmul_q5_0: 8,
  matmul_q5_1: 8,
  matmul_q8_0: 8,
  matmul_q4_K: 8,
  matmul_q5_K: 8,
  matmul_q6_K: 8,
  matmul_f16h4: 7,
  matmul_bf16h4: 7,
  matmul_bf16h4_small: 7,
} as const;

export type ParallelOp = keyof typeof PARALLEL_OPS;

export const OP_NAMES = Object.keys(PARALLEL_OPS) as ParallelOp[];

/**
 * Multiply-adds an op will do, from its arguments, so the pool can run small ops on the calling
 * thread alone. Ops it cannot size (their shape sits in a cfg block) count as large.
 */
export function parallelWork(op: ParallelOp, a: ArrayLike<number>): number {
  switch (op) {
    case 'matmul_f32': case 'matmul_f16': case 'matmul_bf16': case 'matmul_f32r4':
    case 'matmul_f16h4': case 'matmul_bf16h4':
    case 'matmul_bf16h4_small': return a[4] * a[5] * a[6];
    case 'matmul_q8': return a[6] * a[7] * a[8];
    case 'attention': return 2 * a[11] * a[12] * a[9] * a[14];
    case 'pool_probe': return a[2];
    case 'matmul_q4_0': case 'matmul_q4_1': case 'matmul_q5_0': case 'matmul_q5_1': case 'matmul_q8_0':
    case 'matmul_q4_K': case 'matmul_q5_K': case 'matmul_q6_K': return a[5] * a[6] * a[7];
    default: return Infinity;
  }
}

/**
 * Ops whose `(tid, nth)` only cut disjoint ranges of the output, with no buffer indexed by tid: the
 * pool may run them as more chunks than threads (`tid` is then the chunk, `nth` the chunk count).
 * Other ops run as one chunk per thread, still taken by whichever thread comes first.
 */
export const FINE_CHUNKED_OPS: ReadonlySet<ParallelOp> = new Set<ParallelOp>(['matmul_f32', 'matmul_f16', 'matmul_bf16', 'matmul_q8', 'pool_probe', 'matmul_f32r4',
  'matmul_f16h4', 'matmul_bf16h4', 'matmul_bf16h4_small']);

type KernelFn = (...args: number[]) => void;

/** Calls a parallel kernel with `args` then `(tid, nth)`, without allocating an argument array. */
export function callParallel(fn: KernelFn, a: ArrayLike<number>, n: number, tid: number, nth: number): void {
  switch (n) {
    case 3: fn(a[0], a[1], a[2], tid, nth); return;
    case 7: fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], tid, nth); return;
    case 8: fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], tid, nth); return;
    case 9: fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], tid, nth); return;
    case 21: fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14],
      a[15], a[16], a[17], a[18], a[19], a[20], tid, nth); return;
    default: throw new Error(`callParallel: no call shape for ${n} arguments`);
  }
}
