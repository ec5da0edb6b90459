import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { loadDTypeOf } from '../defaults.js';
import { StreamlmError } from '../errors.js';
import type { LoadDType } from '../models/weights.js';
import { loadModel, type Model } from '../model.js';
import { num, str, type Flags, type FlagSpec } from './args.js';

/** Flags every model-running command takes. */
export const MODEL_FLAGS: FlagSpec = {
  model: { type: 'string' },
  threads: { type: 'string' },
  dtype: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

/** The help line on --model shared by every command. */
export const MODEL_HELP = `  --model DIR      a Hugging Face model directory (default: the shipped models/novels-8m-sink)`;

const MODELS_ROOT = fileURLToPath(new URL('../../models/', import.meta.url));

/** The model shipped in the repository, used when --model is absent. */
export function defaultModelDir(): string {
  const preferred = ['novels-8m-sink', 'novels-8m'];
  for (const p of preferred) if (existsSync(join(MODELS_ROOT, p, 'config.json'))) return join(MODELS_ROOT, p);
  if (existsSync(MODELS_ROOT)) {
    for (const d of readdirSync(MODELS_ROOT).sort()) if (existsSync(join(MODELS_ROOT, d, 'config.json'))) return join(MODELS_ROOT, d);
  }
  throw new StreamlmError('no --model given and no model is shipped under models/', { field: '--model' });
}

/**
 * Single-file model formats the loader reads in place of a directory. A path to any other file is
 * refused here with a clear message; extend this list when a loader for a format lands.
 */
export const MODEL_FILE_EXTENSIONS: readonly string[] = ['.gguf'];

/** Refuses a --model path that exists but is a plain file of a format no loader reads. */
export function checkModelPath(path: string): void {
  if (!existsSync(path) || statSync(path).isDirectory()) return;   // the loader names a missing directory
  if (MODEL_FILE_EXTENSIONS.some((ext) => path.toLowerCase().endsWith(ext))) return;
  throw new StreamlmError('is a file, not a model directory (a directory with config.json, *.safetensors and tokenizer.json)', { file: path, field: '--model' });
}

export function modelFlags(flags: Flags): { dir: string; threads?: number; dtype: LoadDType } {
  const dtype = loadDTypeOf(str(flags, 'dtype'), '--dtype');
  const dir = str(flags, 'model') ?? defaultModelDir();
  checkModelPath(dir);
  return { dir, threads: num(flags, 'threads', { int: true, min: 1, max: 256 }), dtype };
}

/**
 * Refuses text that reached us as invalid UTF-8: Node decodes a command-line argument's bad bytes
 * to U+FFFD, which would otherwise be tokenized as if the user had typed it.
 */
export function checkPrompt(text: string, field: string): void {
  if (text.includes('\uFFFD')) throw new StreamlmError('is not valid UTF-8 text (it has bytes that decode to U+FFFD)', { field });
}

export function peakRssMb(): number { return process.resourceUsage().maxRSS / 1024; }

/** "1 thread", "2 threads". */
export function plural(n: number, word: string): string { return `${n} ${word}${n === 1 ? '' : 's'}`; }

/** The package version from package.json (two levels above both src/cli and dist/cli). */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}

/**
 * Loads the model a command's flags name; a block --dtype (q4_0, q4_K, q5_K, q6_K) prints one line
 * on stderr saying what each linear was quantized to.
 */
export async function loadCliModel(m: { dir: string; threads?: number; dtype: LoadDType }): Promise<Model> {
  const model = await loadModel(m.dir, { threads: m.threads, dtype: m.dtype });
  if (model.quantSummary) console.error(`[streamlm] ${model.quantSummary}`);
  return model;
}
