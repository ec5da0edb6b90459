import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { loadDTypeOf } from '../defaults.js';
import { StreamlmError } from '../errors.js';
import type { LoadDType } from '../models/weights.js';
import { num, str, type Flags, type FlagSpec } from './args.js';

/** Flags every model-running command takes. */
export const MODEL_FLAGS: FlagSpec = {
  model: { type: 'string' },
  threads: { type: 'string' },
  dtype: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

/** The model shipped in the repository, used when --model is absent. */
export function defaultModelDir(): string {
  const root = fileURLToPath(new URL('../../models/', import.meta.url));
  const preferred = ['novels-8m-sink', 'novels-8m'];
  for (const p of preferred) if (existsSync(join(root, p, 'config.json'))) return join(root, p);
  if (existsSync(root)) {
    for (const d of readdirSync(root).sort()) if (existsSync(join(root, d, 'config.json'))) return join(root, d);
  }
  throw new StreamlmError('no --model given and no model is shipped under models/', { field: '--model' });
}

export function modelFlags(flags: Flags): { dir: string; threads?: number; dtype: LoadDType } {
  const dtype = loadDTypeOf(str(flags, 'dtype'), '--dtype');
  return { dir: str(flags, 'model') ?? defaultModelDir(), threads: num(flags, 'threads', { int: true, min: 1, max: 256 }), dtype };
}

export function peakRssMb(): number { return process.resourceUsage().maxRSS / 1024; }
