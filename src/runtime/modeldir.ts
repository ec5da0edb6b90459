import { StreamlmError } from '../errors.js';
import { platform } from '../platform/current.js';
import type { FileSet } from '../platform/types.js';
import { readSafetensorsHeader, type TensorInfo } from './safetensors.js';

/** A Hugging Face model directory: config.json, optional generation_config.json, safetensors weights. */
export interface ModelDir {
  /** The directory path or URL (FileSet.label). */
  dir: string;
  /** Its files (on disk, picked in a page, or downloaded). */
  files: FileSet;
  /** Path of config.json (joined onto `dir`), for error messages. */
  configFile: string;
  config: Record<string, unknown>;
  generationConfig: Record<string, unknown> | null;
  /** Every checkpoint tensor by its checkpoint name; data is read lazily with readTensorBytes. */
  tensors: Map<string, TensorInfo>;
}

/** `name` of `fs` parsed as a JSON object, or a StreamlmError naming the file. */
export function readJsonObject(fs: FileSet, name: string): Record<string, unknown> {
  const file = fs.path(name);
  const text = fs.text(name);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new StreamlmError(`not valid JSON: ${(e as Error).message}`, { file });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new StreamlmError('expected a JSON object at the top level', { file });
  }
  return json as Record<string, unknown>;
}

function addAll(out: Map<string, TensorInfo>, fs: FileSet, name: string): void {
  const file = fs.path(name);
  for (const t of readSafetensorsHeader(file, fs.open(name)).tensors) {
    const prev = out.get(t.name);
    if (prev) throw new StreamlmError(`tensor is also in ${prev.file}`, { file, field: `tensor ${t.name}` });
    out.set(t.name, t);
  }
}

function fromIndex(fs: FileSet, indexName: string): Map<string, TensorInfo> {
  const indexFile = fs.path(indexName);
  const index = readJsonObject(fs, indexName);
  const map = index.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new StreamlmError('weight_map is missing or not an object', { file: indexFile, field: 'weight_map' });
  }
  const headers = new Map<string, Map<string, TensorInfo>>();
  const out = new Map<string, TensorInfo>();
  for (const [name, shard] of Object.entries(map)) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\')) {
      throw new StreamlmError(`shard ${JSON.stringify(shard)} is not a file name`, { file: indexFile, field: `weight_map.${name}` });
    }
    let tensors = headers.get(shard);
    if (!tensors) {
      if (!fs.has(shard)) {
        throw new StreamlmError(`shard ${shard} is listed but missing from the directory`, { file: indexFile, field: `weight_map.${name}` });
      }
      tensors = new Map(readSafetensorsHeader(fs.path(shard), fs.open(shard)).tensors.map((t) => [t.name, t]));
      headers.set(shard, tensors);
    }
    const info = tensors.get(name);
    if (!info) throw new StreamlmError(`listed in ${indexFile} but absent from the shard`, { file: fs.path(shard), field: `tensor ${name}` });
    out.set(name, info);
  }
  return out;
}

function findTensors(fs: FileSet): Map<string, TensorInfo> {
  if (fs.has('model.safetensors.index.json')) return fromIndex(fs, 'model.safetensors.index.json');
  const out = new Map<string, TensorInfo>();
  if (fs.has('model.safetensors')) {
    addAll(out, fs, 'model.safetensors');
    return out;
  }
  // mctp.safetensors holds MCTP draft heads beside a model (src/models/mctp.ts), not its weights.
  const loose = fs.names().filter((f) => f.endsWith('.safetensors') && f !== 'mctp.safetensors');
  for (const f of loose) addAll(out, fs, f);
  if (loose.length === 0) {
    const bin = fs.has('pytorch_model.bin') ? '; pytorch_model.bin must be converted to safetensors first' : '';
    throw new StreamlmError(`no weights: expected model.safetensors, model.safetensors.index.json or *.safetensors${bin}`, { file: fs.label });
  }
  return out;
}

/** Opens a model directory (a path, or the files of a FileSet), reading only JSON and safetensors headers. */
export function openModelDir(dir: string | FileSet): ModelDir {
  const fs = typeof dir === 'string' ? platform.dir(dir) : dir;
  const configFile = fs.path('config.json');
  if (!fs.has('config.json')) throw new StreamlmError('not found; a model directory needs config.json', { file: configFile });
  const config = readJsonObject(fs, 'config.json');
  const generationConfig = fs.has('generation_config.json') ? readJsonObject(fs, 'generation_config.json') : null;
  return { dir: fs.label, files: fs, configFile, config, generationConfig, tensors: findTensors(fs) };
}

/** The tensor called `name`, or a StreamlmError naming it and the directory. */
export function requireTensor(md: ModelDir, name: string): TensorInfo {
  const t = md.tensors.get(name);
  if (!t) throw new StreamlmError(`checkpoint has no tensor ${name}`, { file: md.dir, field: `tensor ${name}` });
  return t;
}
