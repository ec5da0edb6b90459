// The few-row kernel (src/kernels/matmul_small.ts) that a speculative verify runs: each packed h4
// bf16 weight group widened once for M = 2..8 x rows. Against a float64 reference from the
// stored half values, |got - ref| <= 1e-5 · (Σ|terms| + |ref|), 1 and 2 threads, with and without
// bias, with rows past the last group of 4 (N % 4 != 0).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Runtime } from '../src/runtime/runtime.js';
import { kernelRuntimes } from './helpers/builds.js';
import { bf16ToF32, f16ToF32, halfRandom, put } from './helpers/halves.js';

const { nz, randHalves } = halfRandom(4242);

let rts: Runtime[] = [];
before(async () => { rts = await kernelRuntimes(); });
after(async () => { for (const rt of rts) await rt.close(); });

const SHAPES: [number, number][] = [[8, 4], [64, 13], [256, 30], [904, 41]];   // [K, N]

for (const kind of ['bf16'] as const) {
  const op = 'matmul_bf16h4_small';
  test(`${op} matches the float64 reference for M = 2..8 (1 and 2 threads)`, () => {
    for (const rt of rts) for (let M = 2; M <= 8; M++) for (const [K, N] of SHAPES) for (const withBias of [false, true]) {
      const mark = rt.mark();
      const x = Float32Array.from({ length: M * K }, nz);
      const h = randHalves(N * K, kind), wf = Array.from(h, kind === 'f16' ? f16ToF32 : bf16ToF32);
      const bias = withBias ? Float32Array.from({ length: N }, nz) : null;
      const xp = put(rt, x), wp = put(rt, h), bp = bias ? put(rt, bias) : 0, outp = rt.alloc(M * N * 4);
      assert.equal(rt.k.pack_h4(wp, N, K), 1);
      rt.run(op, [outp, xp, wp, bp, M, K, N]);
      const got = rt.f32(outp, M * N);
      for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
        let s = bias ? bias[n] : 0, a = Math.abs(s);
        for (let k = 0; k < K; k++) { const t = x[m * K + k] * wf[n * K + k]; s += t; a += Math.abs(t); }
        if (!(Math.abs(got[m * N + n] - s) <= 1e-5 * (a + Math.abs(s)))) {
          assert.fail(`${op} ${M}x${K}x${N} bias=${withBias} threads=${rt.threads} ${rt.simd} [${m},${n}]: got ${got[m * N + n]}, want ${s}`);
        }
      }
      rt.release(mark);
    }
  });
}
