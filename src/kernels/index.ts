// Entry point of build/kernels.wasm: every export listed in docs/design.md, plus set_scratch.
export { set_scratch } from './simd';
export { matmul_f32, matmul_f16, matmul_bf16 } from './matmul';
export { pack_f32r4, matmul_f32r4 } from './matmul_r4';
export { pack_h4, matmul_f16h4, matmul_bf16h4 } from './matmul_h4';
export { matmul_bf16h4_small } from './matmul_small';
export { quantize_q8, matmul_q8 } from './q8';
export { matmul_q4_0, matmul_q4_1, matmul_q5_0, matmul_q5_1, matmul_q8_0 } from './q32';
export { quantize_q8_K, matmul_q4_K, matmul_q5_K, matmul_q6_K } from './qk';
export { embed_q } from './qdequant';
export { rmsnorm, layernorm } from './norm';
export { rope } from './rope';
export { attention } from './attention';
export { swiglu, gelu, gelu_tanh, add } from './act';
export { embed_f32, embed_f16, embed_bf16, embed_packed } from './embed';
export { cross_entropy } from './loss';
export { clamp } from './clamp';
export { lowrank_ffn, lowrank_attention } from './lowrank';
export { pool_probe } from './probe';

/** End of the module's static data: the Runtime's allocator starts above it. */
export function heap_base(): usize {
  return __heap_base;
}
