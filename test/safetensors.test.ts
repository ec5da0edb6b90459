import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StreamlmError } from '../src/errors.js';
import { readSafetensorsHeader, readTensorBytes, type TensorInfo } from '../src/runtime/safetensors.js';
import { openModelDir, requireTensor } from '../src/runtime/modeldir.js';
import { f32ToBf16, f32ToF16, writeSafetensors } from './helpers/safetensors-writer.js';

const tmp = mkdtempSync(join(tmpdir(), 'streamlm-st-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const fresh = (): string => join(tmp, `f${n++}.safetensors`);

/** An 8-byte little-endian header length, then `body`, then `pad` zero bytes. */
function withLength(len: number, body: Uint8Array, pad: number): Uint8Array {
  const out = new Uint8Array(8 + body.byteLength + pad);
  new DataView(out.buffer).setBigUint64(0, BigInt(len), true);
  out.set(body, 8);
  return out;
}

/** A file with the given raw header JSON and `dataBytes` zero bytes after it. */
function rawFile(header: unknown, dataBytes: number): string {
  const p = fresh();
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  writeFileSync(p, withLength(json.byteLength, json, dataBytes));
  return p;
}

function throwsNaming(fn: () => unknown, ...parts: (string | RegExp)[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof StreamlmError, `expected StreamlmError, got ${String(e)}`);
    for (const p of parts) {
      if (typeof p === 'string') assert.ok(e.message.includes(p), `"${e.message}" should name "${p}"`);
      else assert.match(e.message, p);
    }
    return true;
  });
}

function bytesOf(info: TensorInfo, shared = false): Uint8Array {
  const dest = new Uint8Array(shared ? new SharedArrayBuffer(info.byteLength + 16) : new ArrayBuffer(info.byteLength + 16), 8, info.byteLength);
  readTensorBytes(info, dest);
  return dest;
}

test('reads a file written by the Python safetensors package (torch)', () => {
  // safetensors 0.8 save({'a': arange(6).reshape(2,3) f32, 'b': [1.5,-2,3.25] f16, 'c': [[1,2]] bf16, 'd': [7,-8] i32}, metadata={'format': 'pt'})
  const b64 =
    'AAEAAAAAAAB7Il9fbWV0YWRhdGFfXyI6eyJmb3JtYXQiOiJwdCJ9LCJhIjp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOlsyLDNdLCJkYXRhX29mZnNldHMiOlswLDI0XX0sImQiOnsiZHR5cGUiOiJJMzIiLCJzaGFwZSI6WzJdLCJkYXRhX29mZnNldHMiOlsyNCwzMl19LCJjIjp7ImR0eXBlIjoiQkYxNiIsInNoYXBlIjpbMSwyXSwiZGF0YV9vZmZzZXRzIjpbMzIsMzZdfSwiYiI6eyJkdHlwZSI6IkYxNiIsInNoYXBlIjpbM10sImRhdGFfb2Zmc2V0cyI6WzM2LDQyXX19AAAAAAAAgD8AAABAAABAQAAAgEAAAKBABwAAAPj///+APwBAAD4AwIBC';
  const p = fresh();
  writeFileSync(p, new Uint8Array(Buffer.from(b64, 'base64')));
  const h = readSafetensorsHeader(p);
  assert.deepEqual(h.metadata, { format: 'pt' });
  const by = new Map(h.tensors.map((t) => [t.name, t]));
  assert.deepEqual([...by.keys()].sort(), ['a', 'b', 'c', 'd']);
  const a = by.get('a')!;
  assert.equal(a.dtype, 'F32');
  assert.deepEqual(a.shape, [2, 3]);
  assert.equal(a.offset, 8 + 256);
  assert.deepEqual([...new Float32Array(bytesOf(a).slice().buffer)], [0, 1, 2, 3, 4, 5]);
  assert.deepEqual([...new Int32Array(bytesOf(by.get('d')!).slice().buffer)], [7, -8]);
  assert.deepEqual([...new Uint16Array(bytesOf(by.get('b')!).slice().buffer)], [1.5, -2, 3.25].map(f32ToF16));
  assert.deepEqual([...new Uint16Array(bytesOf(by.get('c')!).slice().buffer)], [1, 2].map(f32ToBf16));
});

test('writer and reader round-trip every dtype, into a SharedArrayBuffer view', () => {
  const p = fresh();
  const vals = new Float32Array([0, 1, -2.5, 65504, 1e-7, -0]);
  writeSafetensors(
    p,
    [
      { name: 'w32', dtype: 'F32', shape: [2, 3], data: vals },
      { name: 'w16', dtype: 'F16', shape: [6], data: vals },
      { name: 'wbf', dtype: 'BF16', shape: [3, 2], data: vals },
      { name: 'ids', dtype: 'I32', shape: [2], data: new Uint8Array(new Int32Array([5, -1]).buffer) },
      { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
    ],
    { format: 'pt' },
  );
  const h = readSafetensorsHeader(p);
  assert.equal((h.tensors[0].offset) % 8, 0, 'data starts 8-aligned like the Python writer');
  const by = new Map(h.tensors.map((t) => [t.name, t]));
  assert.deepEqual(new Float32Array(bytesOf(by.get('w32')!, true).slice().buffer), vals);
  const f16 = new Uint16Array(bytesOf(by.get('w16')!, true).slice().buffer);
  assert.deepEqual([...f16], [0x0000, 0x3c00, 0xc100, 0x7bff, 0x0002, 0x8000]);
  const bf = new Uint16Array(bytesOf(by.get('wbf')!, true).slice().buffer);
  assert.deepEqual([...bf], [0x0000, 0x3f80, 0xc020, 0x4780, 0x33d7, 0x8000]);
  assert.deepEqual([...new Int32Array(bytesOf(by.get('ids')!).slice().buffer)], [5, -1]);
  assert.equal(by.get('empty')!.byteLength, 0);
  readTensorBytes(by.get('empty')!, new Uint8Array(0));
});

test('reads a tensor larger than one 64 MiB chunk exactly', () => {
  const p = fresh();
  const big = new Uint8Array(64 * 1024 * 1024 + 12);
  for (let i = 0; i < big.length; i += 4093) big[i] = (i >>> 12) & 0xff;
  big[big.length - 1] = 0xab;
  writeSafetensors(p, [{ name: 'big', dtype: 'F32', shape: [big.length / 4], data: big }]);
  const [info] = readSafetensorsHeader(p).tensors;
  const got = bytesOf(info, true);
  assert.equal(got[got.length - 1], 0xab);
  assert.deepEqual(new Uint8Array(got), big);
});

test('rejects malformed files with the file and tensor named', () => {
  const tooShort = fresh();
  writeFileSync(tooShort, new Uint8Array(5));
  throwsNaming(() => readSafetensorsHeader(tooShort), tooShort, 'too short');

  const hugeLen = fresh();
  writeFileSync(hugeLen, withLength(1000, new Uint8Array(0), 8));
  throwsNaming(() => readSafetensorsHeader(hugeLen), hugeLen, 'larger than the file');

  const bad = rawFile('{"a": {', 0);
  throwsNaming(() => readSafetensorsHeader(bad), bad, 'not valid JSON');

  const arr = rawFile('[1,2]', 0);
  throwsNaming(() => readSafetensorsHeader(arr), 'not an object');

  const dt = rawFile({ w: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, 1);
  throwsNaming(() => readSafetensorsHeader(dt), dt, 'tensor w', 'F8_E4M3');

  const neg = rawFile({ w: { dtype: 'F32', shape: [-1, 2], data_offsets: [0, 8] } }, 8);
  throwsNaming(() => readSafetensorsHeader(neg), 'tensor w', 'shape');

  const frac = rawFile({ w: { dtype: 'F32', shape: [1.5], data_offsets: [0, 6] } }, 8);
  throwsNaming(() => readSafetensorsHeader(frac), 'tensor w', 'shape');

  const outside = rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8);
  throwsNaming(() => readSafetensorsHeader(outside), 'tensor w', 'outside');

  const mismatch = rawFile({ w: { dtype: 'F16', shape: [3], data_offsets: [0, 8] } }, 8);
  throwsNaming(() => readSafetensorsHeader(mismatch), 'tensor w', 'needs 6');

  const backwards = rawFile({ w: { dtype: 'U8', shape: [0], data_offsets: [4, 2] } }, 8);
  throwsNaming(() => readSafetensorsHeader(backwards), 'tensor w');

  const overlap = rawFile(
    { x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, y: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } },
    12,
  );
  throwsNaming(() => readSafetensorsHeader(overlap), overlap, 'tensor y', 'overlaps tensor x');
});

test('a file truncated after its header was read fails the read with the file named', () => {
  const p = fresh();
  writeSafetensors(p, [{ name: 'w', dtype: 'F32', shape: [1024], data: new Float32Array(1024) }]);
  const [info] = readSafetensorsHeader(p).tensors;
  truncateSync(p, info.offset + 100);
  throwsNaming(() => bytesOf(info), p, 'truncated', 'tensor w');
  throwsNaming(() => readTensorBytes(info, new Uint8Array(3)), 'destination');
});

test('openModelDir: single file, sharded index, loose files, and errors', () => {
  const cfg = JSON.stringify({ architectures: ['LlamaForCausalLM'] });

  const single = join(tmp, 'single');
  mkdirSync(single);
  writeFileSync(join(single, 'config.json'), cfg);
  writeFileSync(join(single, 'generation_config.json'), '{"eos_token_id": [1, 2]}');
  writeSafetensors(join(single, 'model.safetensors'), [{ name: 'a', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) }]);
  const md = openModelDir(single);
  assert.equal(md.configFile, join(single, 'config.json'));
  assert.deepEqual(md.config.architectures, ['LlamaForCausalLM']);
  assert.deepEqual(md.generationConfig, { eos_token_id: [1, 2] });
  assert.equal(requireTensor(md, 'a').byteLength, 8);
  throwsNaming(() => requireTensor(md, 'lm_head.weight'), 'lm_head.weight', single);

  const sharded = join(tmp, 'sharded');
  mkdirSync(sharded);
  writeFileSync(join(sharded, 'config.json'), cfg);
  writeSafetensors(join(sharded, 'model-00001-of-00002.safetensors'), [{ name: 'a', dtype: 'F32', shape: [1], data: new Float32Array([1]) }]);
  writeSafetensors(join(sharded, 'model-00002-of-00002.safetensors'), [{ name: 'b', dtype: 'F16', shape: [2], data: new Float32Array([1, 2]) }]);
  const index = { metadata: { total_size: 8 }, weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } };
  writeFileSync(join(sharded, 'model.safetensors.index.json'), JSON.stringify(index));
  const ms = openModelDir(sharded);
  assert.equal(ms.generationConfig, null);
  assert.deepEqual([...ms.tensors.keys()].sort(), ['a', 'b']);
  assert.equal(ms.tensors.get('b')!.file, join(sharded, 'model-00002-of-00002.safetensors'));

  writeFileSync(join(sharded, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { ...index.weight_map, c: 'model-00001-of-00002.safetensors' } }));
  throwsNaming(() => openModelDir(sharded), 'tensor c', 'model-00001-of-00002.safetensors');
  writeFileSync(join(sharded, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 'missing.safetensors' } }));
  throwsNaming(() => openModelDir(sharded), 'missing.safetensors', 'model.safetensors.index.json');

  const loose = join(tmp, 'loose');
  mkdirSync(loose);
  writeFileSync(join(loose, 'config.json'), cfg);
  throwsNaming(() => openModelDir(loose), loose, 'no weights');
  writeSafetensors(join(loose, 'x.safetensors'), [{ name: 'x', dtype: 'F32', shape: [1], data: new Float32Array([1]) }]);
  writeSafetensors(join(loose, 'y.safetensors'), [{ name: 'y', dtype: 'F32', shape: [1], data: new Float32Array([1]) }]);
  assert.deepEqual([...openModelDir(loose).tensors.keys()].sort(), ['x', 'y']);
  writeSafetensors(join(loose, 'z.safetensors'), [{ name: 'x', dtype: 'F32', shape: [1], data: new Float32Array([1]) }]);
  throwsNaming(() => openModelDir(loose), 'tensor x', 'z.safetensors');

  throwsNaming(() => openModelDir(join(tmp, 'nope')), join(tmp, 'nope'), 'not found');
  const noCfg = join(tmp, 'nocfg');
  mkdirSync(noCfg);
  throwsNaming(() => openModelDir(noCfg), 'config.json', 'not found');
  writeFileSync(join(noCfg, 'config.json'), '{"a": ');
  throwsNaming(() => openModelDir(noCfg), 'config.json', 'not valid JSON');
  assert.ok(readFileSync(join(noCfg, 'config.json')).length > 0);
});
