// The kernel tests run every kernel on both builds of the kernels (scripts/build-kernels.mjs):
// SIMD128 ('baseline') and relaxed SIMD ('relaxed', fused multiply-add), each at 1 thread and at
// 2 threads with every op split. Tolerances are the same for both: a fused multiply-add rounds once
// instead of twice, so it is never further from the float64 reference than the bound allows.
import { Runtime, type KernelBuild } from '../../src/runtime/runtime.js';

export const BUILDS: readonly KernelBuild[] = ['baseline', 'relaxed'];

/** [baseline 1 thread, baseline 2 threads, relaxed 1 thread, relaxed 2 threads]. */
export async function kernelRuntimes(): Promise<Runtime[]> {
  const rts: Runtime[] = [];
  for (const simd of BUILDS) rts.push(await Runtime.create({ threads: 1, simd }), await Runtime.create({ threads: 2, minParallelWork: 0, simd }));
  return rts;
}
