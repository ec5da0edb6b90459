import { StreamlmError } from '../errors.js';
import type { HParams } from './config.js';
import { loadFalcon } from './families/falcon.js';
import { loadGptNeox } from './families/gpt_neox.js';
import { loadLlama } from './families/llama.js';
import { loadMpt } from './families/mpt.js';
import type { ModelWeights } from './transformer.js';
import type { WeightLoader } from './weights.js';

/** Maps checkpoint tensors onto the shared blocks. */
export type LoadTensors = (hp: HParams, w: WeightLoader, config: Record<string, unknown>) => ModelWeights;

/** The only switch on `architectures`. */
const FAMILIES: Record<string, LoadTensors> = {
  LlamaForCausalLM: loadLlama,
  MistralForCausalLM: loadLlama,
  Qwen2ForCausalLM: loadLlama,
  GPTNeoXForCausalLM: loadGptNeox,
  FalconForCausalLM: loadFalcon,
  MptForCausalLM: loadMpt,
};

export function familyFor(hp: HParams, configFile: string): LoadTensors {
  const f = FAMILIES[hp.architecture];
  if (!f) throw new StreamlmError(`architecture '${hp.architecture}' is not supported; supported: ${Object.keys(FAMILIES).join(', ')}`, { file: configFile, field: 'architectures' });
  return f;
}

export function supportedArchitectures(): string[] { return Object.keys(FAMILIES); }
