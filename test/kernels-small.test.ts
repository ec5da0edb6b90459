// The few-row kernel (src/kernels/matmul_small.ts) that a speculative verify runs: each packed h4
// bf16 weight group widened once for M = 2..8 x rows. Against a float64 reference from the
// stored half values, |got - ref| <= 1e-5 · (Σ|terms| + |ref|), 1 and 2 threads, with and without
// bias, with rows past the last group of 4 (N % 4 != 0).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Runtime } from '../src/runtime/runtime.js';

let seed = 4242;
const rand = (): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed / 2 ** 32; };
const nz = (): number => { const v = 0.01 + 0.99 * rand(); return rand() < 0.5 ? -v : v; };

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  return e === 0 ? s * m * 2 ** -24 : s * 2 ** (e - 15) * (1 + m / 1024);
}
const bf16ToF32 = (h: number): number => new Float32Array(new Uint32Array([h << 16]).buffer)[0];
/** Finite non-zero halves with exponents up to 2^1 (subnormals included for f16). */
function randHalves(n: number, kind: 'f16' | 'bf16'): Uint16Array {
  const a = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    if (kind === 'bf16') { a[i] = new Uint32Array(new Float32Array([nz()]).buffer)[0] >>> 16; continue; }
    let h: number;
    do h = (rand() * 65536) & 0xffff; while ((h & 0x7fff) === 0 || ((h >> 10) & 31) > 16);
    a[i] = h;
  }
  return a;
}

let rts: Runtime[] = [];
before(async () => { rts = [await Runtime.create({ threads: 1 }), await Runtime.create({ threads: 2, minParallelWork: 0 })]; });
after(async () => { for (const rt of rts) await rt.close(); });

function put(rt: Runtime, a: Float32Array | Uint16Array): number {
  const p = rt.alloc(a.byteLength);
  rt.u8(p, a.byteLength).set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return p;
}

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
          assert.fail(`${op} ${M}x${K}x${N} bias=${withBias} threads=${rt.threads} [${m},${n}]: got ${got[m * N + n]}, want ${s}`);
        }
      }
      rt.release(mark);
    }
  });
}
