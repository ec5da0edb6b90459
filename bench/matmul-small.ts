/**
 * bench/matmul-small.ts — CPU ms of one packed half-precision bf16 linear for M = 1 (the decode GEMV),
 * and for M rows through the few-row kernel (matmul_bf16h4_small) and through the prefill path
 * (matmul_bf16h4, which widens blocks to f32 and runs the GEMM), in alternating rounds, 1 thread, on the
 * linear shapes of models/novels-8m-sink (assumed fused qkv and gate|up) (hidden 256, FFN 576, vocab 8192).
 *
 *   node --import tsx bench/matmul-small.ts [--rows 5] [--rounds 5]
 */
import { Runtime } from '../src/runtime/runtime.js';
import type { ParallelOp } from '../src/runtime/kernels.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const M = Number(arg('rows', '5')), rounds = Number(arg('rounds', '5'));
const dtype = 'bf16';
const SHAPES: [number, number][] = [[256, 768], [256, 256], [256, 1152], [576, 256], [256, 8192]];   // [K, N]
const rt = await Runtime.create({ threads: 1 });
const ops: Record<'gemv' | 'small' | 'big', ParallelOp> = { gemv: 'matmul_bf16h4', small: 'matmul_bf16h4_small', big: 'matmul_bf16h4' };
const layers = SHAPES.map(([K, N]) => {
  const w = rt.alloc(N * K * 2), x = rt.alloc(M * K * 4), out = rt.alloc(M * N * 4);
  const u = rt.u8(w, N * K * 2);
  for (let i = 0; i < u.length; i++) u[i] = (i * 2654435761) >>> 24 & 0x3f;   // small finite values
  rt.f32(x, M * K).fill(0.5);
  rt.k.pack_h4(w, N, K);
  return { K, N, w, x, out };
});
const reps = 200;
const time = (op: ParallelOp, m: number): number => {
  const c0 = process.cpuUsage();
  for (let r = 0; r < reps; r++) for (const l of layers) rt.run(op, [l.out, l.x, l.w, 0, m, l.K, l.N]);
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000 / reps;
};
const res: Record<string, number[]> = { gemv: [], small: [], big: [] };
time(ops.gemv, 1); time(ops.small, M); time(ops.big, M);
for (let k = 0; k < rounds; k++) {
  res.gemv.push(time(ops.gemv, 1)); res.small.push(time(ops.small, M)); res.big.push(time(ops.big, M));
}
const med = (a: number[]): number => +[...a].sort((x, y) => x - y)[a.length >> 1].toFixed(4);
const row = { dtype, rows: M, shapes: SHAPES, cpu_ms_gemv_1row: med(res.gemv), cpu_ms_small: med(res.small), cpu_ms_prefill_path: med(res.big) };
console.log(JSON.stringify(row));
process.stderr.write(`${dtype} one pass over ${SHAPES.length} linears: 1 row ${row.cpu_ms_gemv_1row} ms; ${M} rows: small ${row.cpu_ms_small} ms (${(row.cpu_ms_small / row.cpu_ms_gemv_1row).toFixed(2)}x), prefill path ${row.cpu_ms_prefill_path} ms (${(row.cpu_ms_prefill_path / row.cpu_ms_gemv_1row).toFixed(2)}x)\n`);
await rt.close();
