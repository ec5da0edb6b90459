import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { StreamlmError } from '../errors.js';
import { readSafetensorsHeader, type TensorInfo } from './safetensors.js';

/** A Hugging Face model directory: config.json, optional generation_config.json, safetensors weights. */
export interface ModelDir {
  dir: string;
  /** Path of config.json (joined onto `dir`), for error messages. */
  configFile: string;
  config: Record<string, unknown>;
  generationConfig: Record<string, unknown> | null;
  /** Every checkpoint tensor by its checkpoint name; data is read lazily with readTensorBytes. */
  tensors: Map<string, TensorInfo>;
}

function readJsonObject(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new StreamlmError(`cannot read: ${(e as Error).message}`, { file });
  }
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

function addAll(out: Map<string, TensorInfo>, file: string): void {
  for (const t of readSafetensorsHeader(file).tensors) {
    const prev = out.get(t.name);
    if (prev) throw new StreamlmError(`tensor is also in ${prev.file}`, { file, field: `tensor ${t.name}` });
    out.set(t.name, t);
  }
}

function fromIndex(dir: string, indexFile: string): Map<string, TensorInfo> {
  const index = readJsonObject(indexFile);
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
      const path = join(dir, shard);
      if (!existsSync(path)) {
        throw new StreamlmError(`shard ${shard} is listed but missing from the directory`, { file: indexFile, field: `weight_map.${name}` });
      }
      tensors = new Map(readSafetensorsHeader(path).tensors.map((t) => [t.name, t]));
      headers.set(shard, tensors);
    }
    const info = tensors.get(name);
    if (!info) throw new StreamlmError(`listed in ${indexFile} but absent from the shard`, { file: join(dir, shard), field: `tensor ${name}` });
    out.set(name, info);
  }
  return out;
}

function findTensors(dir: string): Map<string, TensorInfo> {
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) return fromIndex(dir, index);
  const out = new Map<string, TensorInfo>();
  const single = join(dir, 'model.safetensors');
  if (existsSync(single)) {
    addAll(out, single);
    return out;
  }
  const loose = readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();
  for (const f of loose) addAll(out, join(dir, f));
  if (loose.length === 0) {
    const bin = existsSync(join(dir, 'pytorch_model.bin')) ? '; pytorch_model.bin must be converted to safetensors first' : '';
    throw new StreamlmError(`no weights: expected model.safetensors, model.safetensors.index.json or *.safetensors${bin}`, { file: dir });
  }
  return out;
}

/** Opens a model directory, reading only JSON and safetensors headers. */
export function openModelDir(dir: string): ModelDir {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new StreamlmError('model directory not found', { file: dir });
  }
  const configFile = join(dir, 'config.json');
  if (!existsSync(configFile)) throw new StreamlmError('not found; a model directory needs config.json', { file: configFile });
  const config = readJsonObject(configFile);
  const genFile = join(dir, 'generation_config.json');
  const generationConfig = existsSync(genFile) ? readJsonObject(genFile) : null;
  return { dir, configFile, config, generationConfig, tensors: findTensors(dir) };
}

/** The tensor called `name`, or a StreamlmError naming it and the directory. */
export function requireTensor(md: ModelDir, name: string): TensorInfo {
  const t = md.tensors.get(name);
  if (!t) throw new StreamlmError(`checkpoint has no tensor ${name}`, { file: md.dir, field: `tensor ${name}` });
  return t;
}
