import type { TensorInfo } from '../runtime/safetensors.js';
import type { Fields, HParams } from './config.js';
import type { ModelWeights, WeightLoader } from './weights.js';

/**
 * Everything the engine knows about one model family, in one record (families/*.ts). registry.ts
 * maps `architectures` to records; nothing else switches on the architecture.
 */
export interface Family {
  /** The HF `architectures[0]` names this family serves. */
  architectures: readonly string[];
  /** config.json → HParams; `arch` is one of `architectures`. Refuses what the blocks cannot run. */
  parse(f: Fields, arch: string): HParams;
  /**
   * Widths the checkpoint decides rather than the config (MPT's FFN), from the tensors' shapes.
   * Absent: the config's numbers stand, and the loader checks every shape against them.
   */
  fromTensors?(hp: HParams, tensors: ReadonlyMap<string, TensorInfo>, file: string): HParams;
  /** Tensor names, fused QKV layout and block wiring: checkpoint tensors onto the shared blocks. */
  load(hp: HParams, w: WeightLoader, config: Record<string, unknown>): ModelWeights;
}
