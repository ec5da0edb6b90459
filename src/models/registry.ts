// The one map from config.json `architectures` to a family record (family.ts). Adding a family is
// its file under families/ plus one line in FAMILIES (docs/models.md).
import { StreamlmError } from '../errors.js';
import type { TensorInfo } from '../runtime/safetensors.js';
import { Fields, type HParams } from './config.js';
import type { Family } from './family.js';
import { falcon } from './families/falcon.js';
import { gptNeox } from './families/gpt_neox.js';
import { llama } from './families/llama.js';
import { mpt } from './families/mpt.js';

const FAMILIES: readonly Family[] = [llama, gptNeox, falcon, mpt];

const BY_ARCH = new Map<string, Family>(FAMILIES.flatMap((f) => f.architectures.map((a) => [a, f] as const)));

/** Supported values of config.json `architectures[0]`. */
const SUPPORTED_ARCHITECTURES: readonly string[] = [...BY_ARCH.keys()];

/** Remote-code class names whose checkpoints transformers loads with a native class; HParams carries the native name. */
const ALIASES: Record<string, string> = { MPTForCausalLM: 'MptForCausalLM' };

/** The family serving `hp.architecture`. */
export function familyOf(hp: HParams): Family {
  const f = BY_ARCH.get(hp.architecture);
  if (!f) throw new StreamlmError(`${JSON.stringify(hp.architecture)} is not supported; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}`, { field: 'architectures' });
  return f;
}

/**
 * Parses an HF config.json object; `file` is its path, for error messages. With the checkpoint's
 * `tensors`, widths the family takes from shapes (MPT's FFN) come from them.
 */
export function parseHParams(config: Record<string, unknown>, file: string, tensors?: ReadonlyMap<string, TensorInfo>): HParams {
  const archs = config.architectures;
  if (!Array.isArray(archs) || archs.length === 0 || typeof archs[0] !== 'string') {
    throw new StreamlmError(`missing or not a list of names; expected one of ${SUPPORTED_ARCHITECTURES.join(', ')}`, { file, field: 'architectures' });
  }
  const arch = ALIASES[archs[0]] ?? archs[0];
  const family = BY_ARCH.get(arch);
  if (!family) {
    throw new StreamlmError(`${JSON.stringify(arch)} is not supported; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}`, { file, field: 'architectures' });
  }
  const hp = family.parse(new Fields(config, file), arch);
  return tensors && family.fromTensors ? family.fromTensors(hp, tensors, file) : hp;
}
