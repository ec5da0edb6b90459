// GGML block formats (src/runtime/quant) and their SIMD matmuls (src/kernels/q32.ts, qk.ts).
// 1. dequantizeRow on blocks written byte by byte from the ggml layouts, against values worked out
//    by hand from the spec (comments show the arithmetic).
// 2. quantizeRow -> dequantizeRow error on Gaussian rows, per type, under a stated bound.
// 3. Each matmul kernel against an f64 reference: the weights through dequantizeRow times the
//    activation as the kernel quantized it (xq·xs), |got − ref| <= 2e-6·(Σ|terms| + |ref|), at 1
//    and 2 threads; every output written by exactly one of nth partitions.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Runtime } from '../src/runtime/runtime.js';
import { kernelRuntimes } from './helpers/builds.js';
import { QUANT_MATMUL, QUANT_TYPES, chooseType, dequantizeRow, fallbackSummary, quantType, quantizeRow, rowBytes, widenQ5_0,
  type GgmlTypeName } from '../src/runtime/quant/index.js';
import { StreamlmError } from '../src/errors.js';
import { searchMode } from '../src/runtime/quant/search.js';

let seed = 977;
function rand(): number {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 2 ** 32;
}
function gauss(): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/** A block of `n` bytes: zeros, with `set` = {offset: byte}. */
function block(n: number, set: Record<number, number>): Uint8Array {
  const b = new Uint8Array(n);
  for (const [o, v] of Object.entries(set)) b[Number(o)] = v;
  return b;
}
function expectAt(type: GgmlTypeName, bytes: Uint8Array, k: number, want: Record<number, number>, rest?: number): void {
  const y = dequantizeRow(type, bytes, k);
  for (const [i, v] of Object.entries(want)) assert.equal(y[Number(i)], v, `${type}[${i}]`);
  if (rest !== undefined) {
    for (let i = 0; i < k; i++) if (!(i in want)) assert.equal(y[i], rest, `${type}[${i}] (untouched)`);
  }
}

// ------------------------------------------------------------------ 1. hand-written blocks

test('q4_0, q4_1, q5_0, q5_1, q8_0 blocks dequantize as the layout says', () => {
  // q4_0: d = 0x3800 = 0.5; element j < 16 is the low nibble of qs[j], j + 16 the high one, minus 8.
  const q40 = block(18, { 0: 0x00, 1: 0x38 });
  for (let j = 0; j < 16; j++) q40[2 + j] = 0x88; // (8 − 8)·d = 0
  q40[2] = 0x9f; q40[17] = 0x01;
  // [0]: (15−8)·0.5 = 3.5; [16]: (9−8)·0.5 = 0.5; [15]: (1−8)·0.5 = −3.5; [31]: (0−8)·0.5 = −4
  expectAt('q4_0', q40, 32, { 0: 3.5, 16: 0.5, 15: -3.5, 31: -4 }, 0);

  // q4_1: d = 1 (0x3c00), m = −2 (0xc000); x = d·q + m.
  const q41 = block(20, { 1: 0x3c, 3: 0xc0, 4: 0x5a });
  expectAt('q4_1', q41, 32, { 0: 8, 16: 3 }, -2); // 10 − 2, 5 − 2; code 0 gives m

  // q5_0: d = 2 (0x4000); qh = bits 0, 16, 31; x = d·((nibble | bit<<4) − 16).
  const q50 = block(22, { 1: 0x40, 2: 0x01, 3: 0x00, 4: 0x01, 5: 0x80, 6: 0x3f });
  // [0]: (15|16) − 16 = 15 → 30; [16]: (3|16) − 16 = 3 → 6; [31]: (0|16) − 16 = 0 → 0; the rest −16 → −32
  expectAt('q5_0', q50, 32, { 0: 30, 16: 6, 31: 0 }, -32);

  // q5_1: d = 0.5, m = 1; qh = bit 1; qs[1] = 0x21.
  const q51 = block(24, { 1: 0x38, 3: 0x3c, 4: 0x02, 9: 0x21 });
  // [1]: (1|16)·0.5 + 1 = 9.5; [17]: 2·0.5 + 1 = 2; the rest 0·0.5 + 1 = 1
  expectAt('q5_1', q51, 32, { 1: 9.5, 17: 2 }, 1);

  // q8_0: d = 0.25 (0x3400); int8 codes.
  const q80 = block(34, { 1: 0x34, 2: 0x80, 7: 0xff, 33: 0x7f });
  expectAt('q8_0', q80, 32, { 0: -32, 5: -0.25, 31: 31.75 }, 0);
});

/** The 12 scale bytes for sc = [1,2,3,4,17,33,50,63], m = [0,5,10,63,16,1,32,48], packed by hand:
 *  bytes 0-3 = sc[j] | (sc[j+4]>>4)<<6, bytes 4-7 = m[j] | (m[j+4]>>4)<<6,
 *  bytes 8-11 = (sc[j+4]&15) | (m[j+4]&15)<<4. */
const SCALES12 = [1 | 1 << 6, 2 | 2 << 6, 3 | 3 << 6, 4 | 3 << 6, 0 | 1 << 6, 5, 10 | 2 << 6, 63 | 3 << 6, 1, 1 | 1 << 4, 2, 15];

test('q4_K block: 6-bit packed scales and mins, nibble runs of 64', () => {
  const b = new Uint8Array(144);
  b[1] = 0x3c; b[3] = 0x38; // d = 1, dmin = 0.5
  b.set(SCALES12, 4);
  const qs = 16;
  b[qs + 0] = 0x73;       // [0]: sub 0, q 3 → 1·3 − 0.5·0 = 3;      [32]: sub 1, q 7 → 2·7 − 0.5·5 = 11.5
  b[qs + 37] = 0xf0;      // [69]: sub 2, q 0 → −0.5·10 = −5;         [101]: sub 3, q 15 → 4·15 − 0.5·63 = 28.5
  b[qs + 95] = 0x21;      // [159]: sub 4, q 1 → 17 − 0.5·16 = 9;     [191]: sub 5, q 2 → 66 − 0.5 = 65.5
  b[qs + 96] = 0x4f;      // [192]: sub 6, q 15 → 750 − 16 = 734;     [224]: sub 7, q 4 → 252 − 24 = 228
  expectAt('q4_K', b, 256, { 0: 3, 32: 11.5, 69: -5, 101: 28.5, 159: 9, 191: 65.5, 192: 734, 224: 228,
    1: 0, 33: -2.5, 255: -24, 128: -8, 200: -16 });
});

test('q5_K block: the 5th bit of sub-block j is bit j of qh[l]', () => {
  const b = new Uint8Array(176);
  b[1] = 0x3c; b[3] = 0x3c; // d = 1, dmin = 1
  b.set(SCALES12, 4);
  b[16 + 0] = 0x01;  // sub 0, l 0
  b[16 + 3] = 0x80;  // sub 7, l 3
  b[16 + 10] = 0x0c; // subs 2 and 3, l 10
  b[48 + 0] = 0x73;
  // [0]: (3|16)·1 − 0 = 19; [32]: 7·2 − 5 = 9; [227]: 16·63 − 48 = 960; [74]: 16·3 − 10 = 38; [106]: 16·4 − 63 = 1
  expectAt('q5_K', b, 256, { 0: 19, 32: 9, 227: 960, 74: 38, 106: 1, 1: 0, 33: -5, 75: -10 });
});

test('q6_K block: ql nibbles, 2 bits from qh, int8 scale per 16', () => {
  const b = new Uint8Array(210);
  const sc = [1, -2, 3, 4, -4, 6, 5, 8, 7, 1, 1, 1, 1, 1, 1, -1];
  sc.forEach((s, j) => { b[192 + j] = s & 0xff; });
  b[209] = 0x38; // d = 0.5
  b[0] = 0x5a; b[128] = 0xe4; // qh[0] = 0b11100100: quarters 0..3 get 0, 1, 2, 3
  b[32] = 0x3f;
  b[127] = 0xf0; b[191] = 0xc0;
  expectAt('q6_K', b, 256, {
    0: -11,    // q = 10 | 0<<4 = 10 − 32 = −22;  0.5·1·−22
    32: -1.5,  // q = 15 | 1<<4 = 31 − 32 = −1;   0.5·3·−1
    64: -10,   // q = 5 | 2<<4 = 37 − 32 = 5;     0.5·−4·5
    96: 47.5,  // q = 3 | 3<<4 = 51 − 32 = 19;    0.5·5·19
    17: 32,    // q = −32, scale sc[1] = −2:      0.5·−2·−32
    1: -16,    // q = −32, scale 1
    128: -112, // second half, scale sc[8] = 7:   0.5·7·−32
    255: -15.5, // ql[127] high 15 | qh[63] bits 6-7 = 3: 63 − 32 = 31; scale sc[15] = −1
  });
});

test('q8_K, f16, bf16, f32 rows', () => {
  const b = new Uint8Array(292);
  new DataView(b.buffer).setFloat32(0, 0.25, true);
  b[4] = 0xfd; b[4 + 255] = 100;
  expectAt('q8_K', b, 256, { 0: -0.75, 255: 25 }, undefined);
  expectAt('f16', new Uint8Array([0x00, 0xc5, 0x00, 0x3c]), 2, { 0: -5, 1: 1 });
  expectAt('bf16', new Uint8Array([0xc0, 0x3f, 0x80, 0xbf]), 2, { 0: 1.5, 1: -1 });
  expectAt('f32', new Uint8Array(new Float32Array([0.1, -2]).buffer), 2, { 0: Math.fround(0.1), 1: -2 });
});

test('type table matches ggml ids and block sizes', () => {
  const want: [GgmlTypeName, number, number, number][] = [
    ['f32', 0, 1, 4], ['f16', 1, 1, 2], ['q4_0', 2, 32, 18], ['q4_1', 3, 32, 20], ['q5_0', 6, 32, 22],
    ['q5_1', 7, 32, 24], ['q8_0', 8, 32, 34], ['q4_K', 12, 256, 144], ['q5_K', 13, 256, 176],
    ['q6_K', 14, 256, 210], ['q8_K', 15, 256, 292], ['bf16', 30, 1, 2],
  ];
  for (const [name, id, be, bb] of want) {
    assert.deepEqual([quantType(name).id, quantType(id).name, QUANT_TYPES[name].blockElems, QUANT_TYPES[name].blockBytes], [id, name, be, bb]);
  }
  assert.equal(quantType('Q4_K').name, 'q4_K');
  assert.equal(rowBytes(quantType('q6_K'), 768), 630);
  assert.throws(() => quantType('q3_K'), (e: Error) => e instanceof StreamlmError && /unknown type 'q3_K'/.test(e.message));
  assert.throws(() => quantType(10), /ggml type 10 is not supported/);
  assert.throws(() => rowBytes(quantType('q4_K'), 576), /row width 576 is not a positive multiple of q4_K's block of 256/);
  assert.throws(() => dequantizeRow('q4_0', new Uint8Array(17), 32), /needs 18 bytes, got 17/);
  assert.throws(() => quantizeRow('q4_0', new Float32Array(32).fill(NaN)), /element 0 is NaN/);
});

test('chooseType falls back per tensor as llama.cpp does', () => {
  const c = (t: GgmlTypeName, k: number) => { const r = chooseType(t, k); return [r.type.name, r.fallback]; };
  assert.deepEqual(c('q4_K', 2048), ['q4_K', false]);
  assert.deepEqual(c('q4_K', 576), ['q5_0', true]);
  assert.deepEqual(c('q5_K', 576), ['q5_1', true]);
  assert.deepEqual(c('q6_K', 576), ['q8_0', true]);
  assert.deepEqual(c('q4_0', 576), ['q4_0', false]);
  assert.deepEqual(c('q4_K', 100), ['f16', true]);
  assert.deepEqual(c('q8_0', 100), ['f16', true]);
  assert.equal(chooseType('q4_K', 576).reason, "row width 576 is not a multiple of q4_K's super-blocks of 256: stored as q5_0");
  const summary = fallbackSummary('q4_K', [
    { name: 'blk.0.attn_q.weight', choice: chooseType('q4_K', 256) },
    { name: 'blk.0.ffn_down.weight', choice: chooseType('q4_K', 576) },
  ]);
  assert.equal(summary, "q4_K: 1 tensors; 1 fell back (row width 576 is not a multiple of q4_K's super-blocks of 256): q5_0 for blk.0.ffn_down.weight");
  assert.equal(fallbackSummary('q8_0', [{ name: 'a', choice: chooseType('q8_0', 64) }]), 'q8_0: 1 tensors');
});

// ------------------------------------------------------------------ 2. quantizer error

/**
 * RMSE / RMS of quantize -> dequantize on Gaussian rows with a few outliers (16 rows of 4096), with
 * the bound each type must meet: about 1.1x what this quantizer measured here (docs/quant.md has
 * the table, and the same on the shipped model's weights). Each bit per weight about halves it. The
 * search must also beat plain round-to-nearest at the block's extreme (ggml's *_ref rule).
 */
const ERROR_BOUND: [GgmlTypeName, number][] = [
  ['q8_0', 0.0086], ['q6_K', 0.0255], ['q5_1', 0.044], ['q5_0', 0.066], ['q5_K', 0.047],
  ['q4_1', 0.091], ['q4_0', 0.13], ['q4_K', 0.094], ['q8_K', 0.0185], ['bf16', 0.0019], ['f16', 0.00024],
];

function relRmse(type: GgmlTypeName, x: Float32Array, K: number): number {
  let se = 0, ss = 0;
  for (let r = 0; r < x.length / K; r++) {
    const row = x.subarray(r * K, (r + 1) * K);
    const y = dequantizeRow(type, quantizeRow(type, row), K);
    for (let i = 0; i < K; i++) { se += (y[i] - row[i]) ** 2; ss += row[i] ** 2; }
  }
  return Math.sqrt(se / ss);
}

test('quantize -> dequantize error per type (RMSE relative to row RMS)', () => {
  const K = 4096, rows = 16;
  const x = Float32Array.from({ length: K * rows }, gauss);
  for (let i = 0; i < x.length; i += 97) x[i] *= 6; // a few outliers, as real weight rows have
  const got: Record<string, number> = {};
  for (const [type] of ERROR_BOUND) got[type] = relRmse(type, x, K);
  if (process.env.QUANT_ERRORS) console.log(JSON.stringify(got));
  for (const [type, bound] of ERROR_BOUND) assert.ok(got[type] <= bound, `${type}: relative RMSE ${got[type].toFixed(5)} > ${bound}`);
  searchMode.plain = true;
  try {
    for (const type of ['q6_K', 'q5_1', 'q5_0', 'q5_K', 'q4_1', 'q4_0', 'q4_K'] as GgmlTypeName[]) {
      const plain = relRmse(type, x.subarray(0, 4 * K), K);
      searchMode.plain = false;
      const searched = relRmse(type, x.subarray(0, 4 * K), K);
      searchMode.plain = true;
      assert.ok(searched < plain, `${type}: search ${searched} not below plain round-to-nearest ${plain}`);
    }
  } finally { searchMode.plain = false; }
});

test('quantizeRow keeps exact zeros and reproduces rows that fill a 32-block type exactly', () => {
  for (const type of ['q4_0', 'q4_1', 'q5_0', 'q5_1', 'q8_0', 'q4_K', 'q5_K', 'q6_K'] as GgmlTypeName[]) {
    const k = QUANT_TYPES[type].blockElems;
    assert.ok(dequantizeRow(type, quantizeRow(type, new Float32Array(k)), k).every((v) => v === 0), `${type}: zeros`);
  }
  // Rows d·q + m whose codes span the whole range: the plain round-to-nearest candidate fits them exactly.
  const rows: [GgmlTypeName, (i: number) => number][] = [
    ['q4_0', (i) => ((i % 16) - 8) * 0.5], ['q4_1', (i) => (i % 16) * 0.5 - 4],
    ['q5_0', (i) => (i - 16) * 0.25], ['q5_1', (i) => i * 0.25 - 2],
    ['q8_0', (i) => Math.round((i - 16) * 127 / 16) / 16],
  ];
  for (const [type, f] of rows) {
    const x = Float32Array.from({ length: 32 }, (_, i) => f(i));
    assert.deepEqual([...dequantizeRow(type, quantizeRow(type, x), 32)], [...x], type);
  }
});

// ------------------------------------------------------------------ 3. kernels

let rts: Runtime[] = [];
before(async () => { rts = await kernelRuntimes(); });
after(async () => { for (const rt of rts) await rt.close(); });

/** Offsets of f16 fields in a block: random bytes there could be NaN or huge, so they get small values. */
const F16_FIELDS: Partial<Record<GgmlTypeName, number[]>> = {
  q4_0: [0], q4_1: [0, 2], q5_0: [0], q5_1: [0, 2], q8_0: [0], q4_K: [0, 2], q5_K: [0, 2], q6_K: [208],
};

/** Random weight bytes: every code and sub-scale pattern, f16 scales in ±[2^-8, 2^-4). */
function randomWeights(type: GgmlTypeName, N: number, K: number): Uint8Array {
  const t = QUANT_TYPES[type], bytes = new Uint8Array(N * rowBytes(t, K));
  for (let i = 0; i < bytes.length; i++) bytes[i] = (rand() * 256) & 0xff;
  for (let b = 0; b < bytes.length / t.blockBytes; b++) {
    for (const o of F16_FIELDS[type]!) {
      const h = ((rand() < 0.5 ? 0x8000 : 0) | ((7 + Math.floor(rand() * 4)) << 10) | Math.floor(rand() * 1024));
      bytes[b * t.blockBytes + o] = h & 0xff; bytes[b * t.blockBytes + o + 1] = h >> 8;
    }
  }
  return bytes;
}

function put(rt: Runtime, a: Uint8Array | Float32Array): number {
  const p = rt.alloc(Math.max(16, a.byteLength));
  rt.u8(p, a.byteLength).set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return p;
}

/** The activation as the kernel quantized it, dequantized in f64: xq·d per block. */
function activation(rt: Runtime, type: GgmlTypeName, xq: number, xs: number, M: number, K: number): Float64Array {
  const k = QUANT_MATMUL[type]!, q = new Int8Array(rt.u8(xq, M * K).slice().buffer);
  const xsb = rt.u8(xs, k.xsBytes(M, K)).slice(), dv = new DataView(xsb.buffer);
  const y = new Float64Array(M * K);
  for (let i = 0; i < M * K; i++) {
    const blk = Math.floor(i / k.blockElems);
    y[i] = q[i] * dv.getFloat32(k.blockElems === 32 ? blk * 4 : blk * 20, true);
  }
  return y;
}

const TYPES32: GgmlTypeName[] = ['q4_0', 'q4_1', 'q5_0', 'q5_1', 'q8_0'];
const TYPESK: GgmlTypeName[] = ['q4_K', 'q5_K', 'q6_K'];
const SHAPES: [number, number, number][] = [[1, 768, 13], [5, 768, 13], [1, 256, 1], [2, 512, 9], [5, 256, 4]];
const SHAPES32: [number, number, number][] = [[1, 32, 3], [3, 160, 7], [5, 96, 17]];
/** Rows too wide for the rearranged activation in the 1 MiB scratch (68 bytes per 32): q4_0, q4_1, q4_K take the widening path. */
const WIDE: [number, number, number] = [1, 256 * 1960, 5];

for (const type of [...TYPES32, ...TYPESK]) {
  test(`matmul_${type} equals the f64 reference (dequantized weights x quantized activation)`, () => {
    const k = QUANT_MATMUL[type]!;
    for (const rt of rts) {
      const wide = ['q4_0', 'q4_1', 'q4_K'].includes(type) && rt.threads === 1 ? [WIDE] : [];
      for (const [M, K, N] of [...(TYPES32.includes(type) ? [...SHAPES, ...SHAPES32] : SHAPES), ...wide]) {
        for (const withBias of K === WIDE[1] ? [true] : [false, true]) {
          const mark = rt.mark();
          const x = Float32Array.from({ length: M * K }, gauss);
          const wb = randomWeights(type, N, K);
          const bias = Float32Array.from({ length: N }, gauss);
          const xp = put(rt, x), wp = put(rt, wb), bp = withBias ? put(rt, bias) : 0;
          const xq = rt.alloc(k.xqBytes(M, K)), xs = rt.alloc(k.xsBytes(M, K)), op = rt.alloc(M * N * 4);
          rt.k[k.quantize](xq, xs, xp, M, K);
          rt.f32(op, M * N).fill(NaN);
          rt.run(k.matmul, [op, xq, xs, wp, bp, M, K, N]);
          const got = rt.f32(op, M * N).slice();
          const xa = activation(rt, type, xq, xs, M, K);
          const rb = rowBytes(QUANT_TYPES[type], K);
          for (let n = 0; n < N; n++) {
            const w = dequantizeRow(type, wb.subarray(n * rb, (n + 1) * rb), K);
            for (let m = 0; m < M; m++) {
              let s = withBias ? bias[n] : 0, mag = Math.abs(s);
              for (let i = 0; i < K; i++) { const t = xa[m * K + i] * w[i]; s += t; mag += Math.abs(t); }
              const g = got[m * N + n], tol = 2e-6 * (mag + Math.abs(s)) + 1e-30;
              if (!(Math.abs(g - s) <= tol)) {
                assert.fail(`matmul_${type} ${M}x${K}x${N} bias=${withBias} threads=${rt.threads} ${rt.simd} [${m},${n}]: got ${g}, want ${s} (tol ${tol})`);
              }
            }
          }
          rt.release(mark);
        }
      }
    }
  });
}

test('quantized matmuls: nth partitions write every output exactly once', () => {
  const rt = rts[0];
  for (const type of [...TYPES32, ...TYPESK]) {
    const k = QUANT_MATMUL[type]!;
    const M = 2, K = 256, N = 23, mark = rt.mark();
    const xp = put(rt, Float32Array.from({ length: M * K }, gauss)), wp = put(rt, randomWeights(type, N, K));
    const xq = rt.alloc(k.xqBytes(M, K)), xs = rt.alloc(k.xsBytes(M, K)), op = rt.alloc(M * N * 4);
    rt.k[k.quantize](xq, xs, xp, M, K);
    // wasm exports are plain functions with no `this`; the union of every kernel's signature is too wide here.
    // eslint-disable-next-line @typescript-eslint/unbound-method, @typescript-eslint/no-unnecessary-type-assertion
    const fn = rt.k[k.matmul] as unknown as (...a: number[]) => void;
    for (const nth of [1, 2, 3, 7]) {
      const count = new Int32Array(M * N);
      for (let tid = 0; tid < nth; tid++) {
        rt.f32(op, M * N).fill(NaN);
        fn(op, xq, xs, wp, 0, M, K, N, tid, nth);
        rt.f32(op, M * N).forEach((v, i) => { if (!Number.isNaN(v)) count[i]++; });
      }
      assert.ok(count.every((c) => c === 1), `matmul_${type} nth=${nth}: write counts ${[...count].join(',')}`);
    }
    rt.release(mark);
  }
});

test('quantize_q8_K kernel equals quantizeRow(q8_K) codes, scales and sub-block sums', () => {
  const rt = rts[0], M = 3, K = 512, nb = K / 256;
  const x = Float32Array.from({ length: M * K }, gauss);
  x.fill(0, 256, 512); // an all-zero super-block: d = 0, codes 0
  const mark = rt.mark();
  const xp = put(rt, x), xq = rt.alloc(M * K), xs = rt.alloc(M * nb * 20);
  rt.k.quantize_q8_K(xq, xs, xp, M, K);
  const q = new Int8Array(rt.u8(xq, M * K).slice().buffer), rec = new DataView(rt.u8(xs, M * nb * 20).slice().buffer);
  for (let m = 0; m < M; m++) {
    const ref = quantizeRow('q8_K', x.subarray(m * K, (m + 1) * K)), rv = new DataView(ref.buffer);
    for (let b = 0; b < nb; b++) {
      const r = (m * nb + b) * 20;
      assert.equal(rec.getFloat32(r, true), rv.getFloat32(b * 292, true), `d[${m},${b}]`);
      for (let j = 0; j < 256; j++) assert.equal(q[m * K + b * 256 + j], (ref[b * 292 + 4 + j] << 24) >> 24, `q[${m},${b * 256 + j}]`);
      for (let g = 0; g < 8; g++) {
        const want = rv.getInt16(b * 292 + 260 + 4 * g, true) + rv.getInt16(b * 292 + 262 + 4 * g, true);
        assert.equal(rec.getInt16(r + 4 + 2 * g, true), want, `sum[${m},${b},${g}]`);
      }
    }
  }
  rt.release(mark);
});

test('embed_q gathers rows equal to dequantizeRow bit for bit, for every block type', () => {
  const rt = rts[0], N = 7, M = 5;
  for (const type of [...TYPES32, ...TYPESK]) {
    const K = QUANT_TYPES[type].blockElems === 256 ? 512 : 96, rb = rowBytes(QUANT_TYPES[type], K);
    const mark = rt.mark();
    const wb = randomWeights(type, N, K);
    const ids = Int32Array.from([3, 0, 6, 3, 1]);
    const wp = put(rt, wb), ip = put(rt, new Uint8Array(ids.buffer)), op = rt.alloc(M * K * 4);
    assert.equal(rt.k.embed_q(op, wp, ip, M, K, QUANT_TYPES[type].id), 1, type);
    const got = rt.f32(op, M * K);
    for (let m = 0; m < M; m++) {
      const want = dequantizeRow(type, wb.subarray(ids[m] * rb, (ids[m] + 1) * rb), K);
      for (let i = 0; i < K; i++) if (!Object.is(got[m * K + i], want[i])) assert.fail(`embed_q ${type} [${m},${i}]: ${got[m * K + i]} vs ${want[i]}`);
    }
    rt.release(mark);
  }
  assert.equal(rt.k.embed_q(0, 0, 0, 0, 32, 0), 0, 'f32 is not a block type');
});

test('q5_0 widened to planar int8 (load-time repack): d·q equals dequantizeRow bit for bit, and matmul_q8 on it equals matmul_q5_0', () => {
  const N = 9, K = 160, nb = (N * K) / 32;
  const wb = randomWeights('q5_0', N, K);
  // Every code at both ends: block 0 all 0 (q = -16), block 1 all 31 (q = 15).
  wb.fill(0, 2, 22); wb.fill(255, 22 + 2, 44);
  const q = new Int8Array(N * K), sc = new Float32Array(nb);
  widenQ5_0(wb, q, sc);
  assert.equal(q[0], -16); assert.equal(q[32 + 31], 15);
  const ref = dequantizeRow('q5_0', wb, N * K);
  for (let i = 0; i < N * K; i++) if (!Object.is(Math.fround(q[i] * sc[i >> 5]), ref[i])) assert.fail(`widened [${i}]: ${q[i]}·${sc[i >> 5]} vs ${ref[i]}`);
  // Same arithmetic in both kernels (per block: f32(Σ xq·q) · (xs·d), summed in block order): equal outputs.
  for (const rt of rts) {
    for (const M of [1, 3]) {
      const mark = rt.mark();
      const xp = put(rt, Float32Array.from({ length: M * K }, gauss)), bp = put(rt, Float32Array.from({ length: N }, gauss));
      const xq = rt.alloc(M * K), xs = rt.alloc(M * K / 8), o5 = rt.alloc(M * N * 4), o8 = rt.alloc(M * N * 4);
      const wp = put(rt, wb), qp = put(rt, new Uint8Array(q.buffer)), sp = put(rt, sc);
      rt.k.quantize_q8(xq, xs, xp, M, K);
      rt.run('matmul_q5_0', [o5, xq, xs, wp, bp, M, K, N]);
      rt.run('matmul_q8', [o8, xq, xs, qp, sp, bp, M, K, N]);
      // Rows in groups of 4 match bit for bit; the N % 4 tail rows sum their blocks' lanes in another order.
      const a = rt.f32(o8, M * N), b = rt.f32(o5, M * N);
      for (let i = 0; i < M * N; i++) {
        const tail = i % N >= N - (N % 4), ok = tail ? Math.abs(a[i] - b[i]) <= 1e-6 * (Math.abs(b[i]) + 1) : Object.is(a[i], b[i]);
        if (!ok) assert.fail(`M=${M} threads=${rt.threads} ${rt.simd} [${i}]: matmul_q8 ${a[i]} vs matmul_q5_0 ${b[i]}`);
      }
      rt.release(mark);
    }
  }
});
