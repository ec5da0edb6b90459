/**
 * bench/attention-rows.ts — CPU ms of one forward's attention (every layer once) on the shape of
 * models/novels-8m-sink (8 layers, 8 heads of 32, a full 512-slot cache, two rotation groups as
 * sink:4+508 has): 1 query row through `attention` (decode), and M rows (a speculative verify)
 * through `attention` (row by row) and through `attention_rows` (K/V shared by the rows), in
 * alternating rounds, 1 thread. Each layer has its own K/V, so a pass streams 8 MB as a forward does.
 *
 *   node --import tsx bench/attention-rows.ts [--rows 5] [--rounds 5] [--slots 512]
 */
import { Runtime } from '../src/runtime/runtime.js';
import type { ParallelOp } from '../src/runtime/kernels.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const M = Number(arg('rows', '5')), rounds = Number(arg('rounds', '5')), nSlots = Number(arg('slots', '512'));
const LAYERS = 8, nH = 8, hd = 32, qDim = nH * hd, G = 2;
const rt = await Runtime.create({ threads: 1 });
const fill = (p: number, n: number, seed: number): void => {
  const a = rt.f32(p, n);
  for (let i = 0; i < n; i++) a[i] = (((i + seed) * 2654435761) >>> 20 & 0xfff) / 4096 - 0.5;
};
const layers = Array.from({ length: LAYERS }, (_, l) => {
  const k = rt.alloc(nSlots * qDim * 4), v = rt.alloc(nSlots * qDim * 4);
  fill(k, nSlots * qDim, 2 * l); fill(v, nSlots * qDim, 2 * l + 1);
  return { k, v };
});
const q = rt.alloc(G * M * qDim * 4), out = rt.alloc(M * qDim * 4), scratch = rt.alloc(M * nSlots * 4);
fill(q, G * M * qDim, 99);
// Slots hold positions 0..nSlots-1 (the 4 sinks in group 0, the window in group 1); rows are the last M positions.
const slotPos = rt.alloc(nSlots * 4), slotGroup = rt.alloc(nSlots * 4), qPos = rt.alloc(M * 4);
rt.i32(slotPos, nSlots).set(Int32Array.from({ length: nSlots }, (_, s) => s));
rt.i32(slotGroup, nSlots).set(Int32Array.from({ length: nSlots }, (_, s) => (s < 4 ? 0 : 1)));
rt.i32(qPos, M).set(Int32Array.from({ length: M }, (_, m) => nSlots - M + m));
const reps = 100;
const time = (op: ParallelOp, m: number): number => {
  const c0 = process.cpuUsage();
  for (let r = 0; r < reps; r++) {
    for (const L of layers) {
      rt.run(op, [out, q, qDim, m * qDim, L.k, L.v, qDim, slotPos, slotGroup, nSlots, qPos, m, nH, nH, hd, 1 / Math.sqrt(hd), 0, 0, 0, 0, scratch]);
    }
  }
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000 / reps;
};
const res: Record<'one' | 'rowwise' | 'rows', number[]> = { one: [], rowwise: [], rows: [] };
time('attention', 1); time('attention', M); time('attention_rows', M);
for (let r = 0; r < rounds; r++) {
  res.one.push(time('attention', 1)); res.rowwise.push(time('attention', M)); res.rows.push(time('attention_rows', M));
}
const med = (a: number[]): number => +[...a].sort((x, y) => x - y)[a.length >> 1].toFixed(4);
const row = { rows: M, slots: nSlots, cpu_ms_1row: med(res.one), cpu_ms_rowwise: med(res.rowwise), cpu_ms_attention_rows: med(res.rows) };
console.log(JSON.stringify(row));
process.stderr.write(`attention over ${LAYERS} layers, ${nSlots} slots: 1 row ${row.cpu_ms_1row} ms; ${M} rows: row by row ${row.cpu_ms_rowwise} ms (${(row.cpu_ms_rowwise / row.cpu_ms_1row).toFixed(2)}x), attention_rows ${row.cpu_ms_attention_rows} ms (${(row.cpu_ms_attention_rows / row.cpu_ms_1row).toFixed(2)}x)\n`);
await rt.close();
