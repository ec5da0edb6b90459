import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StreamlmError } from '../src/errors.js';
import { readGgufHeader } from '../src/runtime/gguf.js';
import { openGgufModel } from '../src/runtime/gguf-source.js';
import { ggufTokenizerSpec } from '../src/tokenizer-gguf.js';
import { exportGguf } from '../src/export/gguf.js';
import { parseHParams } from '../src/models/registry.js';
import { TextTokenizer } from '../src/tokenizer.js';
import { fixtureDir } from './helpers/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'streamlm-gguf-reader-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// --- a byte writer for hand-made files, independent of the reader and of src/export ---

class W {
  parts: number[] = [];
  u8(v: number): this { this.parts.push(v & 0xff); return this; }
  u16(v: number): this { return this.u8(v).u8(v >>> 8); }
  u32(v: number): this { return this.u16(v & 0xffff).u16(v >>> 16); }
  u64(v: number | bigint): this { const b = BigInt.asUintN(64, BigInt(v)); return this.u32(Number(b & 0xffffffffn)).u32(Number(b >> 32n)); }
  f32(v: number): this { const b = new Uint8Array(new Float32Array([v]).buffer); b.forEach((x) => this.u8(x)); return this; }
  f64(v: number): this { const b = new Uint8Array(new Float64Array([v]).buffer); b.forEach((x) => this.u8(x)); return this; }
  str(s: string): this { const b = new TextEncoder().encode(s); this.u64(b.length); b.forEach((x) => this.u8(x)); return this; }
  pad(a: number): this { while (this.parts.length % a) this.u8(0); return this; }
  bytes(): Uint8Array { return Uint8Array.from(this.parts); }
}

/** A v`version` file with one key of every value type, nested arrays, and two F32 tensors. */
function handMade(version: number, alignment: number): Uint8Array {
  const w = new W().u32(0x46554747).u32(version).u64(2).u64(16);
  w.str('general.alignment').u32(4).u32(alignment);
  w.str('k.u8').u32(0).u8(200);
  w.str('k.i8').u32(1).u8(-5);
  w.str('k.u16').u32(2).u16(60000);
  w.str('k.i16').u32(3).u16(-300 & 0xffff);
  w.str('k.u32').u32(4).u32(4000000000);
  w.str('k.i32').u32(5).u32(-70000 >>> 0);
  w.str('k.f32').u32(6).f32(0.5);
  w.str('k.bool').u32(7).u8(1);
  w.str('k.str').u32(8).str('héllo ✓');
  w.str('k.u64').u32(10).u64(2n ** 60n);
  w.str('k.i64').u32(11).u64(-3);
  w.str('k.f64').u32(12).f64(-1.25);
  w.str('k.arr.f32').u32(9).u32(6).u64(3).f32(1).f32(-2).f32(3.5);
  w.str('k.arr.str').u32(9).u32(8).u64(2).str('a b').str('');
  w.str('k.arr.nested').u32(9).u32(9).u64(2).u32(5).u64(2).u32(7).u32(8).u32(8).u64(1).str('x');
  // tensors: a [3, 2] and a [4] F32, at aligned offsets
  w.str('t.a').u32(2).u64(3).u64(2).u32(0).u64(0);
  w.str('t.b').u32(1).u64(4).u32(0).u64(Math.ceil(24 / alignment) * alignment);
  w.pad(alignment);
  for (let i = 0; i < 6; i++) w.f32(i);
  w.pad(alignment);
  for (let i = 0; i < 4; i++) w.f32(10 + i);
  return w.bytes();
}

function write(name: string, bytes: Uint8Array): string {
  const p = join(tmp, name);
  writeFileSync(p, bytes);
  return p;
}

for (const [version, alignment] of [[2, 32], [3, 64], [3, 8]] as const) {
  test(`reads every value type, nested arrays and tensor infos (v${version}, alignment ${alignment})`, () => {
    const h = readGgufHeader(write(`hand-${version}-${alignment}.gguf`, handMade(version, alignment)));
    const m = h.metadata;
    assert.equal(h.version, version);
    assert.equal(h.alignment, alignment);
    assert.equal(m.get('k.u8'), 200);
    assert.equal(m.get('k.i8'), -5);
    assert.equal(m.get('k.u16'), 60000);
    assert.equal(m.get('k.i16'), -300);
    assert.equal(m.get('k.u32'), 4000000000);
    assert.equal(m.get('k.i32'), -70000);
    assert.equal(m.get('k.f32'), 0.5);
    assert.equal(m.get('k.bool'), true);
    assert.equal(m.get('k.str'), 'héllo ✓');
    assert.equal(m.get('k.u64'), 2n ** 60n); // beyond 2^53: a bigint
    assert.equal(m.get('k.i64'), -3);
    assert.equal(m.get('k.f64'), -1.25);
    assert.deepEqual(Array.from(m.get('k.arr.f32') as Float32Array), [1, -2, 3.5]);
    assert.deepEqual(m.get('k.arr.str'), ['a b', '']);
    const nested = m.get('k.arr.nested') as unknown[];
    assert.deepEqual(Array.from(nested[0] as Int32Array), [7, 8]);
    assert.deepEqual(nested[1], ['x']);
    assert.equal(h.dataStart % alignment, 0);
    const [a, b] = h.tensors;
    assert.deepEqual([a.name, a.dims, a.type.name, a.byteLength], ['t.a', [3, 2], 'F32', 24]);
    assert.deepEqual([b.name, b.dims, b.byteLength], ['t.b', [4], 16]);
    const bytes = readFileSync(h.file);
    assert.deepEqual(Array.from(new Float32Array(bytes.buffer.slice(bytes.byteOffset + b.offset, bytes.byteOffset + b.offset + 16))), [10, 11, 12, 13]);
  });
}

// --- malformed files: only clean StreamlmErrors, never a crash, a hang or a huge allocation ---

function isClean(f: () => void): { ok: boolean; msg: string } {
  try {
    f();
    return { ok: true, msg: '' };
  } catch (e) {
    if (!(e instanceof StreamlmError)) throw new Error(`not a StreamlmError: ${e instanceof Error ? e.stack : String(e)}`);
    assert.ok(!e.message.includes('\n'), `multi-line message: ${e.message}`);
    return { ok: false, msg: e.message };
  }
}

/** Everything a model load does with the header: parse, map to HF names, build the tokenizer. */
function openAll(p: string): void {
  const src = openGgufModel(p);
  parseHParams(src.config, src.configFile, src.tensors);
  const spec = ggufTokenizerSpec(src.gguf);
  if (spec) TextTokenizer.fromObjects(spec.json, spec.config, null, p).encode('Hi there, 12 ünïcode');
}

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; return (s >>> 0) / 4294967296; };
}

test('malformed files: named errors for bad magic, version, truncation, lying lengths, unknown types, overlaps', () => {
  const good = handMade(3, 32);
  const expect = (bytes: Uint8Array, ...parts: string[]): void => {
    const p = write('bad.gguf', bytes);
    const r = isClean(() => readGgufHeader(p));
    assert.ok(!r.ok, `accepted a bad file (${parts.join(', ')})`);
    assert.ok(r.msg.startsWith(p), r.msg);
    for (const s of parts) assert.ok(r.msg.includes(s), `"${r.msg}" should mention ${s}`);
  };
  expect(new TextEncoder().encode('GGML0000'), 'bad magic');
  const v1 = good.slice(); v1[4] = 1; expect(v1, 'version 1');
  const be = good.slice(); be.set([0, 0, 0, 3], 4); expect(be, 'big-endian');
  expect(good.slice(0, 100), 'truncated');
  expect(good.slice(0, good.length - 4), 'tensor t.b', 'past the end');
  const dv = (b: Uint8Array) => new DataView(b.buffer);
  const nTensors = good.slice(); dv(nTensors).setBigUint64(8, 1n << 60n, true); expect(nTensors, 'tensor count');
  const nKv = good.slice(); dv(nKv).setBigUint64(16, 1n << 62n, true); expect(nKv, 'metadata key count');
  const keyLen = good.slice(); dv(keyLen).setBigUint64(24, 1n << 40n, true); expect(keyLen, 'length of metadata key #0');
  // The f32 array's length (after its key, value type 9, and item type 6).
  const find = (b: Uint8Array, s: string): number => Buffer.from(b).indexOf(Buffer.from(s)) + s.length;
  const arr = good.slice(); dv(arr).setBigUint64(find(arr, 'k.arr.f32') + 8, 1n << 50n, true); expect(arr, 'k.arr.f32', 'array length');
  const type = good.slice(); dv(type).setUint32(find(type, 't.a') + 4 + 16, 77, true); expect(type, 'tensor t.a', 'unknown ggml type 77');
  const vtype = good.slice(); dv(vtype).setUint32(find(vtype, 'k.u8'), 13, true); expect(vtype, 'k.u8', 'unknown value type 13');
  const off = good.slice(); dv(off).setBigUint64(find(off, 't.b') + 4 + 8 + 4, 0n, true); expect(off, 'overlaps tensor t.a');
  const unal = good.slice(); dv(unal).setBigUint64(find(unal, 't.b') + 4 + 8 + 4, 36n, true); expect(unal, 'tensor t.b', 'not a multiple');
  const dims = good.slice(); dv(dims).setUint32(find(dims, 't.a'), 9, true); expect(dims, 'tensor t.a', '9 dimensions');
  const align = good.slice(); dv(align).setUint32(find(align, 'general.alignment') + 4, 24, true); expect(align, 'general.alignment');
});

test('hundreds of truncated, bit-flipped and lying-header files (real exported models) only raise StreamlmErrors', () => {
  // A real file: the llama fixture with its byte-level vocabulary, so the tokenizer path is fuzzed too.
  const src = join(tmp, 'fuzz-src.gguf');
  exportGguf(fixtureDir('llama'), src, { dtype: 'q8_0' });
  const good = new Uint8Array(readFileSync(src));
  const headerEnd = readGgufHeader(src).dataStart;
  const r = rng(1234);
  const pick = (n: number): number => Math.floor(r() * n);
  let cases = 0, refused = 0;
  const t0 = performance.now();
  const run = (bytes: Uint8Array): void => {
    const p = write(`fuzz.gguf`, bytes);
    const t = performance.now();
    if (!isClean(() => openAll(p)).ok) refused++;
    assert.ok(performance.now() - t < 2000, 'one case took over 2 s');
    cases++;
  };
  // Truncations: every length up to 512, then spread over the header and the data.
  for (let n = 0; n < 512; n += 3) run(good.slice(0, n));
  for (let i = 0; i < 100; i++) run(good.slice(0, pick(good.length)));
  // Bit flips in the header.
  for (let i = 0; i < 300; i++) {
    const b = good.slice();
    for (let k = 1 + pick(4); k > 0; k--) b[pick(headerEnd)] ^= 1 << pick(8);
    run(b);
  }
  // Lying u64 / u32 fields: overwrite 8 or 4 bytes at a random header position with extreme values.
  const extremes = [0n, 1n, 0xffffffffn, 1n << 32n, 1n << 53n, (1n << 64n) - 1n, BigInt(good.length), BigInt(good.length) * 2n];
  for (let i = 0; i < 300; i++) {
    const b = good.slice();
    const dv = new DataView(b.buffer);
    const at = pick(headerEnd - 8);
    if (r() < 0.5) dv.setBigUint64(at, extremes[pick(extremes.length)], true);
    else dv.setUint32(at, Number(extremes[pick(extremes.length)] & 0xffffffffn), true);
    run(b);
  }
  assert.ok(cases >= 800, `${cases} cases`);
  assert.ok(refused > cases / 2, `only ${refused} of ${cases} refused; the mutations should break most files`);
  assert.ok(performance.now() - t0 < 60_000);
});
