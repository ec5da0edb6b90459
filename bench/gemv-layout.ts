/**
 * bench/gemv-layout.ts — decode GEMV, row-major f32 (matmul_f32) against the r4 layout
 * (matmul_f32r4), one thread, at Qwen2.5-0.5B shapes, cycling through enough distinct matrices that
 * weights stream from memory as in a real decode step.
 *
 *   node --import tsx bench/gemv-layout.ts [--rounds 21]
 *
 * The two run alternately in 25 ms slices of *CPU time* (process.cpuUsage), so time the thread
 * spends waiting for a core on a shared machine does not count; each round gives one ratio and
 * the median ratio is reported (memory-bandwidth contention from other processes still counts).
 * Prints one JSON line on stdout and a table on stderr.
 */
import { cpus, loadavg } from 'node:os';
import { Runtime } from '../src/runtime/runtime.js';
import { benchArgs } from './common.js';

const rounds = Number(benchArgs(process.argv.slice(2)).get('rounds') ?? 21);
const rt = await Runtime.create({ threads: 1 });
const cpuMs = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const load0 = loadavg()[0];
const rows: { shape: string; matrices: number; rowmajor_gb_s: number; r4_gb_s: number; speedup_median: number; speedup_p10: number; speedup_p90: number }[] = [];
for (const [N, K, reps] of [[896, 896, 48], [1152, 896, 40], [4864, 896, 8], [896, 4864, 8], [4096, 4096, 3]]) {
  const mark = rt.mark();
  const rowMajor: number[] = [], packed: number[] = [];
  for (let r = 0; r < reps; r++) {
    const w = rt.alloc(N * K * 4), p = rt.alloc(N * K * 4);
    const wv = rt.f32(w, N * K);
    for (let i = 0; i < N * K; i++) wv[i] = Math.random() - 0.5;
    rt.f32(p, N * K).set(wv);
    if (rt.k.pack_f32r4(p, N, K) !== 1) throw new Error('pack_f32r4 refused');
    rowMajor.push(w); packed.push(p);
  }
  const x = rt.alloc(K * 4), out = rt.alloc(N * 4);
  rt.f32(x, K).fill(0.5);
  const A = (): void => { for (const w of rowMajor) rt.k.matmul_f32(out, x, w, 0, 1, K, N, 0, 1); };
  const B = (): void => { for (const p of packed) rt.k.matmul_f32r4(out, x, p, 0, 1, K, N, 0, 1); };
  for (let t0 = performance.now(); performance.now() - t0 < 400;) { A(); B(); }
  const slice = (f: () => void): number => { let n = 0; const t0 = cpuMs(); while (cpuMs() - t0 < 25) { f(); n++; } return (cpuMs() - t0) / n; };
  const ratios: number[] = [];
  let ta = 0, tb = 0;
  for (let i = 0; i < rounds; i++) {
    const a = i % 2 ? slice(A) : 0, b = slice(B), a2 = i % 2 ? a : slice(A);
    ratios.push(a2 / b); ta += a2; tb += b;
  }
  ratios.sort((p, q) => p - q);
  const bytes = N * K * 4 * reps;
  const q = (f: number): number => Number(ratios[Math.min(rounds - 1, Math.floor(f * rounds))].toFixed(2));
  rows.push({ shape: `${N}x${K}`, matrices: reps, rowmajor_gb_s: Number((bytes / (ta / rounds) / 1e6).toFixed(1)), r4_gb_s: Number((bytes / (tb / rounds) / 1e6).toFixed(1)), speedup_median: q(0.5), speedup_p10: q(0.1), speedup_p90: q(0.9) });
  rt.release(mark);
}
await rt.close();
console.log(JSON.stringify({ bench: 'gemv-layout', date: new Date().toISOString(), cpu: cpus()[0]?.model, loadavg_start: load0, loadavg_end: loadavg()[0], rounds, rows }));
process.stderr.write('| shape | matrices | row-major GB/s per CPU-s | r4 GB/s per CPU-s | speedup median [p10, p90] |\n|---|---|---|---|---|\n');
for (const r of rows) process.stderr.write(`| ${r.shape} | ${r.matrices} | ${r.rowmajor_gb_s} | ${r.r4_gb_s} | ${r.speedup_median} [${r.speedup_p10}, ${r.speedup_p90}] |\n`);
