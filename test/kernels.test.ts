// Every kernel against a scalar reference, on random non-zero inputs with odd sizes, at 1 and 2
// threads for the parallel ones. f32 results: |got - ref| <= 1e-5 · (Σ|terms| + |ref|); Q8_0:
// bit-exact against a scalar model of its integer arithmetic, and within quantization error of f32.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Runtime } from '../src/runtime/runtime.js';
import { kernelRuntimes } from './helpers/builds.js';

let seed = 12345;
function rand(): number {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 2 ** 32;
}
/** Uniform in ±[0.01, 1): never zero. */
function nz(): number {
  const v = 0.01 + 0.99 * rand();
  return rand() < 0.5 ? -v : v;
}
function randF32(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = nz() * scale;
  return a;
}

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  return e === 0 ? s * m * 2 ** -24 : s * 2 ** (e - 15) * (1 + m / 1024);
}
/** Random finite non-zero halves, subnormals included. */
function randF16(n: number): Uint16Array {
  const a = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    let h: number;
    do h = (rand() * 65536) & 0xffff; while ((h & 0x7c00) === 0x7c00 || (h & 0x7fff) === 0 || ((h >> 10) & 31) > 16);
    a[i] = h;
  }
  return a;
}
function randBf16(n: number): Uint16Array {
  const f = randF32(n), u = new Uint32Array(f.buffer), a = new Uint16Array(n);
  for (let i = 0; i < n; i++) a[i] = u[i] >>> 16;
  return a;
}
const bits = new Uint32Array(1), bitsF = new Float32Array(bits.buffer);
const bf16ToF32 = (h: number): number => { bits[0] = h << 16; return bitsF[0]; };

function close(got: ArrayLike<number>, ref: ArrayLike<number>, scale: ArrayLike<number> | null, what: string, rel = 1e-5): void {
  assert.equal(got.length, ref.length, `${what}: length`);
  for (let i = 0; i < ref.length; i++) {
    const tol = rel * ((scale ? scale[i] : 0) + Math.abs(ref[i])) + 1e-30;
    if (!(Math.abs(got[i] - ref[i]) <= tol)) assert.fail(`${what}[${i}]: got ${got[i]}, want ${ref[i]} (tol ${tol})`);
  }
}

let rts: Runtime[] = [];
before(async () => { rts = await kernelRuntimes(); });
after(async () => { for (const rt of rts) await rt.close(); });

function put(rt: Runtime, a: Float32Array | Int32Array | Uint16Array | Int8Array | Uint8Array): number {
  const p = rt.alloc(a.byteLength || 4);
  rt.u8(p, a.byteLength).set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return p;
}

// ---------------------------------------------------------------- matmul f32/f16/bf16

function matmulRef(x: Float32Array, w: ArrayLike<number>, bias: Float32Array | null, M: number, K: number, N: number) {
  const y = new Float64Array(M * N), mag = new Float64Array(M * N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
    let s = bias ? bias[n] : 0, a = bias ? Math.abs(bias[n]) : 0;
    for (let k = 0; k < K; k++) { const t = x[m * K + k] * w[n * K + k]; s += t; a += Math.abs(t); }
    y[m * N + n] = s; mag[m * N + n] = a;
  }
  return { y, mag };
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1], [1, 7, 5], [1, 33, 13], [1, 64, 64], [1, 100, 37], [1, 4096, 9],
  [2, 8, 4], [3, 33, 13], [5, 100, 37], [7, 300, 401], [25, 4096, 30],
];

for (const kind of ['f32', 'f16', 'bf16'] as const) {
  test(`matmul_${kind} matches reference (M=1 and M>1, odd K and N, 1 and 2 threads)`, () => {
    for (const rt of rts) for (const [M, K, N] of SHAPES) for (const withBias of [false, true]) {
      const mark = rt.mark();
      const x = randF32(M * K);
      let wp: number, wf: ArrayLike<number>;
      if (kind === 'f32') { const w = randF32(N * K); wp = put(rt, w); wf = w; }
      else { const h = kind === 'f16' ? randF16(N * K) : randBf16(N * K); wp = put(rt, h); wf = Array.from(h, kind === 'f16' ? f16ToF32 : bf16ToF32); }
      const bias = withBias ? randF32(N) : null;
      const xp = put(rt, x), bp = bias ? put(rt, bias) : 0, op = rt.alloc(M * N * 4);
      rt.run(`matmul_${kind}`, [op, xp, wp, bp, M, K, N]);
      const { y, mag } = matmulRef(x, wf, bias, M, K, N);
      close(rt.f32(op, M * N), y, mag, `matmul_${kind} ${M}x${K}x${N} bias=${withBias} threads=${rt.threads} ${rt.simd}`);
      rt.release(mark);
    }
  });
}

test('pack_f32r4 lays each group of 4 rows out as 64-byte column blocks, in place; rows past the last group stay', () => {
  const rt = rts[0];
  for (const [N, K] of [[1, 4], [4, 4], [7, 12], [9, 64], [13, 100]]) {
    const mark = rt.mark();
    const w = randF32(N * K), wp = put(rt, w);
    assert.equal(rt.k.pack_f32r4(wp, N, K), 1, `${N}x${K} packs`);
    const got = rt.f32(wp, N * K);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) {
      const g = n >> 2, r = n & 3;
      // Reference layout, written from the definition: group g at g·4K floats, block k/4 at 16 floats each.
      const at = n < (N & ~3) ? g * 4 * K + (k >> 2) * 16 + r * 4 + (k & 3) : n * K + k;
      if (got[at] !== w[n * K + k]) assert.fail(`${N}x${K}: W[${n}, ${k}] not at ${at}`);
    }
    rt.release(mark);
  }
  const mark = rt.mark();
  const w = randF32(8 * 6), wp = put(rt, w);
  assert.equal(rt.k.pack_f32r4(wp, 8, 6), 0, 'K not a multiple of 4: left row-major');
  assert.deepEqual(rt.f32(wp, 48), w);
  rt.release(mark);
});

test('matmul_f32r4 on packed weights matches the reference, and matmul_f32 bit for bit (1 and 2 threads)', () => {
  for (const rt of rts) for (const [M, K, N] of [...SHAPES, [1, 896, 37], [2, 896, 13], [9, 64, 96]]) for (const withBias of [false, true]) {
    if (K % 4 !== 0) continue;
    const mark = rt.mark();
    const x = randF32(M * K), w = randF32(N * K);
    const bias = withBias ? randF32(N) : null;
    const xp = put(rt, x), wp = put(rt, w), bp = bias ? put(rt, bias) : 0;
    const o1 = rt.alloc(M * N * 4), o2 = rt.alloc(M * N * 4);
    rt.run('matmul_f32', [o1, xp, wp, bp, M, K, N]);
    assert.equal(rt.k.pack_f32r4(wp, N, K), 1);
    rt.run('matmul_f32r4', [o2, xp, wp, bp, M, K, N]);
    const what = `matmul_f32r4 ${M}x${K}x${N} bias=${withBias} threads=${rt.threads} ${rt.simd}`;
    const { y, mag } = matmulRef(x, w, bias, M, K, N);
    close(rt.f32(o2, M * N), y, mag, what);
    assert.deepEqual(rt.f32(o2, M * N), rt.f32(o1, M * N), `${what}: same bits as matmul_f32`);
    rt.release(mark);
  }
});

test('matmul_f16 decode (powers of two folded into x and the sums) stays within tolerance for |x| from 2^-60 to 2^40', () => {
  const rt = rts[0];
  for (const scale of [2 ** -60, 2 ** -20, 2 ** 20, 2 ** 40]) for (const [K, N] of [[100, 9], [4096, 5]]) {
    const mark = rt.mark();
    const x = randF32(K, scale), h = randF16(N * K);
    const xp = put(rt, x), wp = put(rt, h), op = rt.alloc(N * 4);
    rt.run('matmul_f16', [op, xp, wp, 0, 1, K, N]);
    const { y, mag } = matmulRef(x, Array.from(h, f16ToF32), null, 1, K, N);
    close(rt.f32(op, N), y, mag, `matmul_f16 1x${K}x${N} |x| ~ ${scale}`);
    rt.release(mark);
  }
});

// ---------------------------------------------------------------- Q8_0

function roundEven(v: number): number {
  const f = Math.floor(v), d = v - f;
  return d < 0.5 ? f : d > 0.5 ? f + 1 : (f % 2 === 0 ? f : f + 1);
}
function quantizeRef(x: Float32Array, M: number, K: number) {
  const q = new Int8Array(M * K), s = new Float32Array(M * K / 32);
  for (let b = 0; b < M * K / 32; b++) {
    let a = 0;
    for (let i = 0; i < 32; i++) a = Math.max(a, Math.abs(x[b * 32 + i]));
    s[b] = Math.fround(a / 127);
    const id = a > 0 ? Math.fround(127 / a) : 0;
    for (let i = 0; i < 32; i++) q[b * 32 + i] = Math.max(-127, Math.min(127, roundEven(Math.fround(x[b * 32 + i] * id))));
  }
  return { q, s };
}
function matmulQ8Ref(xq: Int8Array, xs: Float32Array, wq: Int8Array, ws: Float32Array, bias: Float32Array | null, M: number, K: number, N: number) {
  const y = new Float32Array(M * N), nb = K / 32, f = Math.fround;
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
    let acc = 0;
    for (let b = 0; b < nb; b++) {
      let isum = 0;
      for (let i = 0; i < 32; i++) isum += xq[m * K + b * 32 + i] * wq[n * K + b * 32 + i];
      acc = f(acc + f(isum * f(xs[m * nb + b] * ws[n * nb + b])));
    }
    y[m * N + n] = bias ? f(acc + bias[n]) : acc;
  }
  return y;
}

test('quantize_q8 matches reference exactly (an all-zero block gives s = 0)', () => {
  const rt = rts[0];
  for (const [M, K] of [[1, 32], [3, 96], [2, 4096]]) {
    const mark = rt.mark();
    const x = randF32(M * K, 3);
    if (M === 3) x.fill(0, 32, 64);
    const xp = put(rt, x), qp = rt.alloc(M * K), sp = rt.alloc(M * K / 32 * 4);
    rt.k.quantize_q8(qp, sp, xp, M, K);
    const { q, s } = quantizeRef(x, M, K);
    assert.deepEqual(rt.i8(qp, M * K), q, `q ${M}x${K}`);
    assert.deepEqual(rt.f32(sp, M * K / 32), s, `s ${M}x${K}`);
    assert.ok(q.some((v) => v === 127 || v === -127), 'block max maps to ±127');
    rt.release(mark);
  }
});

test('matmul_q8 matches its integer reference exactly and f32 within quantization error', () => {
  for (const rt of rts) for (const [M, K, N] of [[1, 32, 1], [1, 64, 13], [1, 4096, 37], [3, 96, 5], [4, 256, 130], [2, 4096, 9]]) {
    for (const withBias of [false, true]) {
      const mark = rt.mark();
      const x = randF32(M * K), w = randF32(N * K), bias = withBias ? randF32(N) : null;
      const xp = put(rt, x), wp = put(rt, w), bp = bias ? put(rt, bias) : 0;
      const xq = rt.alloc(M * K), xs = rt.alloc(M * K / 8), wq = rt.alloc(N * K), ws = rt.alloc(N * K / 8), op = rt.alloc(M * N * 4);
      rt.k.quantize_q8(xq, xs, xp, M, K);
      rt.k.quantize_q8(wq, ws, wp, N, K);
      rt.run('matmul_q8', [op, xq, xs, wq, ws, bp, M, K, N]);
      const got = rt.f32(op, M * N).slice();
      const where = `matmul_q8 ${M}x${K}x${N} bias=${withBias} threads=${rt.threads} ${rt.simd}`;
      const ref = matmulQ8Ref(rt.i8(xq, M * K), rt.f32(xs, M * K / 32), rt.i8(wq, N * K), rt.f32(ws, N * K / 32), bias, M, K, N);
      for (let i = 0; i < M * N; i++) if (got[i] !== ref[i]) assert.fail(`${where}[${i}]: got ${got[i]}, want ${ref[i]} exactly`);
      // |x·w - x̂·ŵ| <= Σ |x|·sw/2 + |ŵ|·sx/2 (each value is off by at most half its block's step).
      const { y } = matmulRef(x, w, bias, M, K, N);
      const sx = rt.f32(xs, M * K / 32), sw = rt.f32(ws, N * K / 32);
      for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
        let bound = 1e-4;
        for (let k = 0; k < K; k++) {
          bound += Math.abs(x[m * K + k]) * sw[(n * K + k) >> 5] / 2 + (Math.abs(w[n * K + k]) + sw[(n * K + k) >> 5]) * sx[(m * K + k) >> 5] / 2;
        }
        assert.ok(Math.abs(got[m * N + n] - y[m * N + n]) <= bound, `${where} vs f32 [${m},${n}]`);
      }
      rt.release(mark);
    }
  }
});

// ---------------------------------------------------------------- norms, rope, elementwise

test('rmsnorm and layernorm match reference (w/b present or absent)', () => {
  const rt = rts[0];
  for (const [M, K] of [[1, 1], [1, 7], [3, 33], [2, 896], [1, 4099]]) {
    const mark = rt.mark();
    const x = randF32(M * K, 4), w = randF32(K), b = randF32(K);
    const xp = put(rt, x), wp = put(rt, w), bp = put(rt, b), op = rt.alloc(M * K * 4);
    const eps = 1e-5;
    rt.k.rmsnorm(op, xp, wp, M, K, eps);
    const ref = new Float64Array(M * K);
    for (let m = 0; m < M; m++) {
      let ss = 0;
      for (let k = 0; k < K; k++) ss += x[m * K + k] ** 2;
      const r = 1 / Math.sqrt(ss / K + eps);
      for (let k = 0; k < K; k++) ref[m * K + k] = x[m * K + k] * r * w[k];
    }
    close(rt.f32(op, M * K), ref, null, `rmsnorm ${M}x${K}`);
    for (const [useW, useB] of [[true, true], [false, false], [true, false], [false, true]]) {
      rt.k.layernorm(op, xp, useW ? wp : 0, useB ? bp : 0, M, K, eps);
      const lref = new Float64Array(M * K), mag = new Float64Array(M * K);
      for (let m = 0; m < M; m++) {
        let mean = 0, v = 0;
        for (let k = 0; k < K; k++) mean += x[m * K + k] / K;
        for (let k = 0; k < K; k++) v += (x[m * K + k] - mean) ** 2 / K;
        const r = 1 / Math.sqrt(v + eps);
        for (let k = 0; k < K; k++) {
          const n = (x[m * K + k] - mean) * r * (useW ? w[k] : 1);
          lref[m * K + k] = n + (useB ? b[k] : 0);
          mag[m * K + k] = Math.abs(n) + (useB ? Math.abs(b[k]) : 0) + (Math.abs(mean) * r * (useW ? Math.abs(w[k]) : 1));
        }
      }
      close(rt.f32(op, M * K), lref, mag, `layernorm ${M}x${K} w=${useW} b=${useB}`);
    }
    rt.release(mark);
  }
});

test('rope rotates dims [0, rotDim) of each head (rotate_half) and leaves the rest', () => {
  const rt = rts[0];
  for (const [M, nHeads, headDim, rotDim, rowStride] of [[1, 2, 8, 8, 16], [3, 3, 12, 6, 40], [2, 4, 64, 64, 256], [2, 2, 64, 16, 130]]) {
    const mark = rt.mark();
    const half = rotDim / 2;
    const x = randF32(M * rowStride), cos = randF32(M * half), sin = randF32(M * half);
    const xp = put(rt, x), cp = put(rt, cos), sp = put(rt, sin);
    rt.k.rope(xp, rowStride, cp, sp, M, nHeads, headDim, rotDim);
    const ref = Float64Array.from(x), mag = new Float64Array(x.length);
    for (let m = 0; m < M; m++) for (let h = 0; h < nHeads; h++) for (let i = 0; i < half; i++) {
      const p = m * rowStride + h * headDim + i;
      const x1 = x[p], x2 = x[p + half], c = cos[m * half + i], s = sin[m * half + i];
      ref[p] = x1 * c - x2 * s; ref[p + half] = x2 * c + x1 * s;
      mag[p] = mag[p + half] = Math.abs(x1 * c) + Math.abs(x2 * s) + Math.abs(x2 * c) + Math.abs(x1 * s);
    }
    close(rt.f32(xp, x.length), ref, mag, `rope M=${M} heads=${nHeads} hd=${headDim} rot=${rotDim}`);
    rt.release(mark);
  }
});

/** erf to ~1e-15: Taylor series near 0, continued fraction for erfc beyond. */
function erf(x: number): number {
  const z = Math.abs(x);
  let r: number;
  if (z < 2.5) {
    let term = z, s = z;
    for (let n = 1; n < 80; n++) { term *= -z * z / n; s += term / (2 * n + 1); }
    r = 2 / Math.sqrt(Math.PI) * s;
  } else {
    let k = z;
    for (let n = 80; n >= 1; n--) k = z + (n / 2) / k;
    r = 1 - Math.exp(-z * z) / (Math.sqrt(Math.PI) * k);
  }
  return x < 0 ? -r : r;
}
function erfc(x: number): number {
  if (x < 2.5) return 1 - erf(x);
  let k = x;
  for (let n = 80; n >= 1; n--) k = x + (n / 2) / k;
  return Math.exp(-x * x) / (Math.sqrt(Math.PI) * k);
}

test('swiglu, gelu, gelu_tanh and add match reference', () => {
  const rt = rts[0];
  for (const n of [1, 5, 1003]) {
    const mark = rt.mark();
    const M = 2, F = n;
    const gu = randF32(M * 2 * F, 6);
    gu[0] = 100; if (F > 1) gu[1] = -100; // exp saturates: silu → x and → 0
    const gp = put(rt, gu), op = rt.alloc(M * F * 4);
    rt.k.swiglu(op, gp, M, F);
    const ref = new Float64Array(M * F);
    for (let m = 0; m < M; m++) for (let i = 0; i < F; i++) {
      const g = gu[m * 2 * F + i], u = gu[m * 2 * F + F + i];
      ref[m * F + i] = g / (1 + Math.exp(-g)) * u;
    }
    close(rt.f32(op, M * F), ref, null, `swiglu F=${F}`);

    const x = randF32(n, 6);
    x[0] = -6; // deep negative tail: Φ(-6) ≈ 1e-9, checked in relative terms
    if (n > 2) { x[1] = -12; x[2] = 30; }
    const xp = put(rt, x);
    rt.k.gelu(xp, n);
    close(rt.f32(xp, n), Array.from(x, (v) => 0.5 * v * erfc(-v / Math.SQRT2)), null, `gelu n=${n}`);
    rt.f32(xp, n).set(x);
    rt.k.gelu_tanh(xp, n);
    close(rt.f32(xp, n), Array.from(x, (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))), null, `gelu_tanh n=${n}`);

    const a = randF32(n), b = randF32(n), ap = put(rt, a), bp = put(rt, b), sp = rt.alloc(n * 4);
    rt.k.add(sp, ap, bp, n);
    assert.deepEqual(rt.f32(sp, n), Float32Array.from(a, (v, i) => v + b[i]), `add n=${n}`);
    rt.release(mark);
  }
});

test('embed_f32/f16/bf16 gather rows', () => {
  const rt = rts[0];
  const V = 11, K = 13, ids = Int32Array.from([3, 0, 10, 3, 7]), M = ids.length;
  const mark = rt.mark();
  const ip = put(rt, ids), op = rt.alloc(M * K * 4);
  const t32 = randF32(V * K), t16 = randF16(V * K), tb = randBf16(V * K);
  rt.k.embed_f32(op, put(rt, t32), ip, M, K);
  assert.deepEqual(rt.f32(op, M * K), Float32Array.from({ length: M * K }, (_, i) => t32[ids[Math.floor(i / K)] * K + i % K]));
  rt.k.embed_f16(op, put(rt, t16), ip, M, K);
  assert.deepEqual(rt.f32(op, M * K), Float32Array.from({ length: M * K }, (_, i) => f16ToF32(t16[ids[Math.floor(i / K)] * K + i % K])));
  rt.k.embed_bf16(op, put(rt, tb), ip, M, K);
  assert.deepEqual(rt.f32(op, M * K), Float32Array.from({ length: M * K }, (_, i) => bf16ToF32(tb[ids[Math.floor(i / K)] * K + i % K])));
  rt.release(mark);
});

test('cross_entropy matches logsumexp - logit[target]', () => {
  const rt = rts[0];
  for (const [M, N] of [[1, 1], [3, 7], [2, 32003]]) {
    const mark = rt.mark();
    const logits = randF32(M * N, 20), targets = Int32Array.from({ length: M }, () => Math.floor(rand() * N));
    const np = rt.alloc(M * 4);
    rt.k.cross_entropy(np, put(rt, logits), put(rt, targets), M, N);
    const ref = new Float64Array(M);
    for (let m = 0; m < M; m++) {
      let mx = -Infinity, s = 0;
      for (let n = 0; n < N; n++) mx = Math.max(mx, logits[m * N + n]);
      for (let n = 0; n < N; n++) s += Math.exp(logits[m * N + n] - mx);
      ref[m] = Math.log(s) + mx - logits[m * N + targets[m]];
    }
    close(rt.f32(np, M), ref, Array.from(ref, () => 20), `cross_entropy ${M}x${N}`);
    rt.release(mark);
  }
});

// ---------------------------------------------------------------- attention

interface AttnCase { M: number; nHeads: number; nKvHeads: number; headDim: number; nSlots: number; groups: number; alibi: boolean; probs: boolean; contiguous?: boolean }

function attentionRef(c: AttnCase, q: Float32Array, qRowStride: number, qGroupStride: number, k: Float32Array, v: Float32Array,
  kvRowStride: number, slotPos: Int32Array, slotGroup: Int32Array, qPos: Int32Array, scale: number, alibi: Float32Array | null) {
  const { M, nHeads, nKvHeads, headDim, nSlots } = c;
  const out = new Float64Array(M * nHeads * headDim), probs = new Float64Array(M * nHeads * nSlots);
  for (let m = 0; m < M; m++) for (let h = 0; h < nHeads; h++) {
    const kh = Math.floor(h / (nHeads / nKvHeads));
    const sc = new Float64Array(nSlots).fill(-Infinity);
    let mx = -Infinity;
    for (let s = 0; s < nSlots; s++) {
      if (slotPos[s] > qPos[m]) continue;
      const qb = slotGroup[s] * qGroupStride + m * qRowStride + h * headDim, kb = s * kvRowStride + kh * headDim;
      let d = 0;
      for (let i = 0; i < headDim; i++) d += q[qb + i] * k[kb + i];
      sc[s] = scale * d - (alibi ? alibi[h] * (qPos[m] - slotPos[s]) : 0);
      mx = Math.max(mx, sc[s]);
    }
    if (mx === -Infinity) continue;
    let sum = 0;
    for (let s = 0; s < nSlots; s++) sum += Math.exp(sc[s] - mx);
    for (let s = 0; s < nSlots; s++) {
      const p = Math.exp(sc[s] - mx) / sum;
      probs[(m * nHeads + h) * nSlots + s] = p;
      for (let i = 0; i < headDim; i++) out[(m * nHeads + h) * headDim + i] += p * v[s * kvRowStride + kh * headDim + i];
    }
  }
  return { out, probs };
}

test('attention matches reference: groups, GQA, empty and masked slots, alibi, probs, 1 and 2 threads', () => {
  const cases: AttnCase[] = [
    { M: 1, nHeads: 2, nKvHeads: 2, headDim: 8, nSlots: 5, groups: 1, alibi: false, probs: true },
    { M: 3, nHeads: 4, nKvHeads: 2, headDim: 12, nSlots: 9, groups: 2, alibi: false, probs: true },
    { M: 4, nHeads: 6, nKvHeads: 1, headDim: 64, nSlots: 37, groups: 2, alibi: true, probs: false },
    { M: 2, nHeads: 3, nKvHeads: 3, headDim: 7, nSlots: 11, groups: 3, alibi: true, probs: true },
    // Sink-style layout: a few slots of group 0, then the window in group 1 (the 4-slot fast path).
    { M: 1, nHeads: 14, nKvHeads: 2, headDim: 64, nSlots: 70, groups: 2, alibi: false, probs: true, contiguous: true },
    { M: 3, nHeads: 4, nKvHeads: 4, headDim: 128, nSlots: 41, groups: 1, alibi: true, probs: false, contiguous: true },
  ];
  for (const rt of rts) for (const c of cases) {
    const mark = rt.mark();
    const { M, nHeads, nKvHeads, headDim, nSlots, groups } = c;
    const qRowStride = nHeads * headDim + 3, qGroupStride = M * qRowStride + 5, kvRowStride = nKvHeads * headDim + 2;
    const q = randF32(groups * qGroupStride), k = randF32(nSlots * kvRowStride), v = randF32(nSlots * kvRowStride);
    const slotPos = Int32Array.from({ length: nSlots }, (_, s) => s * 2);
    slotPos[nSlots - 1] = 2 ** 31 - 1; // an empty slot
    const slotGroup = Int32Array.from({ length: nSlots }, (_, s) => c.contiguous ? (s < 5 ? 0 : groups - 1) : s % groups);
    // Row 0 sees a few slots; the last row of a multi-row case sees none (its output must be 0).
    const qPos = Int32Array.from({ length: M }, (_, m) => c.contiguous ? 2 * nSlots - 7 - m * 9 : 3 + m * 5);
    if (M > 1) qPos[M - 1] = -1;
    const alibi = c.alibi ? randF32(nHeads) : null;
    const scale = 1 / Math.sqrt(headDim);
    const op = rt.alloc(M * nHeads * headDim * 4), pp = c.probs ? rt.alloc(M * nHeads * nSlots * 4) : 0;
    if (pp) rt.f32(pp, M * nHeads * nSlots).fill(NaN);
    rt.f32(op, M * nHeads * headDim).fill(NaN);
    const scratch = rt.alloc(rt.threads * nSlots * 4);
    rt.run('attention', [op, put(rt, q), qRowStride, qGroupStride, put(rt, k), put(rt, v), kvRowStride, put(rt, slotPos),
      put(rt, slotGroup), nSlots, put(rt, qPos), M, nHeads, nKvHeads, headDim, scale, alibi ? put(rt, alibi) : 0, 0, 0, pp, scratch]);
    const ref = attentionRef(c, q, qRowStride, qGroupStride, k, v, kvRowStride, slotPos, slotGroup, qPos, scale, alibi);
    const what = `attention ${JSON.stringify(c)} threads=${rt.threads} ${rt.simd}`;
    close(rt.f32(op, ref.out.length), ref.out, Array.from(ref.out, () => 1), what, 1e-5);
    if (pp) close(rt.f32(pp, ref.probs.length), ref.probs, Array.from(ref.probs, () => 1), `${what} probs`, 1e-5);
    rt.release(mark);
  }
});
