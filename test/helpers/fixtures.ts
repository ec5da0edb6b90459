import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensorsHeader, readTensorBytes } from '../../src/runtime/safetensors.js';

export const FIXTURES = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', 'fixtures');

export function fixtureDir(name: string): string { return join(FIXTURES, name); }
export function hasFixture(name: string): boolean { return existsSync(join(FIXTURES, name, 'config.json')); }

export interface Reference { inputIds: number[]; logitsFull: Float32Array; logitsIncremental: Float32Array; vocab: number }

/** Reads reference.safetensors written by research/fixtures.py. */
export function readReference(name: string): Reference {
  const { tensors } = readSafetensorsHeader(join(FIXTURES, name, 'reference.safetensors'));
  const get = (n: string) => {
    const t = tensors.find((x) => x.name === n);
    if (!t) throw new Error(`reference.safetensors of ${name} lacks ${n}`);
    const buf = new Uint8Array(t.byteLength);
    readTensorBytes(t, buf);
    return { t, buf };
  };
  const ids = get('input_ids');
  const full = get('logits_full');
  const inc = get('logits_incremental');
  const idArr = ids.t.dtype === 'I64' ? Array.from(new BigInt64Array(ids.buf.buffer), Number) : Array.from(new Int32Array(ids.buf.buffer));
  return { inputIds: idArr, logitsFull: new Float32Array(full.buf.buffer), logitsIncremental: new Float32Array(inc.buf.buffer), vocab: full.t.shape[1] };
}

export interface StreamRef { tokens: number[]; policies: Record<string, { ppl: number }> }
export function readStreamRef(name: string): StreamRef | null {
  const p = join(FIXTURES, name, 'stream.json');
  return existsSync(p) ? JSON.parse(readFileSync(p, 'utf8')) as StreamRef : null;
}

/** max |a − b| / max |b|: one number that is scale-free and strict on the largest logits. */
export function relErr(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i] - b[i])); m = Math.max(m, Math.abs(b[i])); }
  return d / m;
}
