// The h4 layout (src/kernels/matmul_h4.ts): f16/bf16 rows packed 4 at a time into 64-byte blocks of
// 8 columns. Layout checked against its definition; matmul_f16h4/bf16h4 against a float64 reference
// from the half values, |got - ref| <= 1e-5 · (Σ|terms| + |ref|), decode and prefill, 1 and 2 threads,
// with and without rows past the last group of 4; embed_packed against the unpacked gathers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Runtime } from '../src/runtime/runtime.js';
import { kernelRuntimes } from './helpers/builds.js';
import { bf16ToF32, f16ToF32, halfRandom, put } from './helpers/halves.js';

const { nz, randHalves } = halfRandom(777);

let rts: Runtime[] = [];
before(async () => { rts = await kernelRuntimes(); });
after(async () => { for (const rt of rts) await rt.close(); });

test('pack_h4 lays each group of 4 half rows out as 64-byte blocks of 8 columns, in place; other rows stay', () => {
  const rt = rts[0];
  for (const [N, K] of [[1, 8], [4, 8], [7, 24], [9, 64], [13, 904]]) {
    const mark = rt.mark();
    const w = randHalves(N * K, 'f16'), wp = put(rt, w);
    assert.equal(rt.k.pack_h4(wp, N, K), 1, `${N}x${K} packs`);
    const got = rt.u16(wp, N * K);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) {
      // From the definition: group g at g·4K halves, block k/8 at 32 halves each, row r at 8r.
      const at = n < (N & ~3) ? (n >> 2) * 4 * K + (k >> 3) * 32 + (n & 3) * 8 + (k & 7) : n * K + k;
      if (got[at] !== w[n * K + k]) assert.fail(`${N}x${K}: W[${n}, ${k}] not at ${at}`);
    }
    rt.release(mark);
  }
  const mark = rt.mark();
  const w = randHalves(8 * 12, 'f16'), wp = put(rt, w);
  assert.equal(rt.k.pack_h4(wp, 8, 12), 0, 'K not a multiple of 8: left row-major');
  assert.deepEqual(rt.u16(wp, 96), w);
  rt.release(mark);
});

for (const kind of ['f16', 'bf16'] as const) {
  test(`matmul_${kind}h4 on packed weights matches the float64 reference (decode and prefill, 1 and 2 threads)`, () => {
    for (const rt of rts) for (const [M, K, N] of [[1, 8, 4], [1, 64, 13], [1, 896, 37], [2, 64, 9], [5, 256, 30], [9, 904, 41]]) for (const withBias of [false, true]) {
      const mark = rt.mark();
      const x = Float32Array.from({ length: M * K }, nz), h = randHalves(N * K, kind);
      const wf = Array.from(h, kind === 'f16' ? f16ToF32 : bf16ToF32);
      const bias = withBias ? Float32Array.from({ length: N }, nz) : null;
      const xp = put(rt, x), wp = put(rt, h), bp = bias ? put(rt, bias) : 0, op = rt.alloc(M * N * 4);
      assert.equal(rt.k.pack_h4(wp, N, K), 1);
      rt.run(kind === 'f16' ? 'matmul_f16h4' : 'matmul_bf16h4', [op, xp, wp, bp, M, K, N]);
      const got = rt.f32(op, M * N);
      for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
        let s = bias ? bias[n] : 0, a = Math.abs(s);
        for (let k = 0; k < K; k++) { const t = x[m * K + k] * wf[n * K + k]; s += t; a += Math.abs(t); }
        const tol = 1e-5 * (a + Math.abs(s));
        if (!(Math.abs(got[m * N + n] - s) <= tol)) assert.fail(`${kind}h4 ${M}x${K}x${N} bias=${withBias} threads=${rt.threads} ${rt.simd} [${m},${n}]: got ${got[m * N + n]}, want ${s}`);
      }
      rt.release(mark);
    }
  });
}

test('embed_packed gathers rows of an r4/h4-packed table (a tied head) exactly as embed_* gathers them unpacked', () => {
  const rt = rts[0];
  for (const kind of [0, 1, 2]) for (const [N, K] of [[7, 8], [13, 64], [9, 904]]) {
    const mark = rt.mark();
    const w = kind === 0 ? Float32Array.from({ length: N * K }, nz) : randHalves(N * K, kind === 1 ? 'f16' : 'bf16');
    const ids = Int32Array.from([0, N - 1, 3, 4, N - 2, 1, 0]);
    const wp = put(rt, w), ip = rt.alloc(ids.byteLength), want = rt.alloc(ids.length * K * 4), got = rt.alloc(ids.length * K * 4);
    rt.i32(ip, ids.length).set(ids);
    if (kind === 0) rt.k.embed_f32(want, wp, ip, ids.length, K);
    else if (kind === 1) rt.k.embed_f16(want, wp, ip, ids.length, K);
    else rt.k.embed_bf16(want, wp, ip, ids.length, K);
    assert.equal(kind === 0 ? rt.k.pack_f32r4(wp, N, K) : rt.k.pack_h4(wp, N, K), 1);
    rt.k.embed_packed(got, wp, ip, ids.length, K, N, kind);
    assert.deepEqual(rt.f32(got, ids.length * K), rt.f32(want, ids.length * K), `kind ${kind} ${N}x${K}`);
    rt.release(mark);
  }
});
