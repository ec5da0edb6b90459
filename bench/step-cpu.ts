/**
 * bench/step-cpu.ts — CPU time (user + sys) per greedy decode step, 1 thread, for comparing two
 * checkouts of the forward pass on a shared machine: with one thread, other processes stretch the
 * wall time far more than the CPU time this process spends.
 *
 *   node --import tsx bench/step-cpu.ts [--model models/novels-8m-sink] [--steps 1500] [--cache sink:4+1020] [--dtype auto|f32|q8_0]
 *     [--rows M --rounds 3]
 *
 * With --rows M > 1 it times, in alternating rounds, plain 1-row steps and M-row forwards (a draft of
 * M tokens of which one is kept, as a speculative verify runs), and reports the median of each.
 *
 * Output: one JSON line on stdout and a one-line summary on stderr.
 */
import { loadModel } from '../src/model.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}

const dir = arg('model', 'models/novels-8m-sink');
const steps = Number(arg('steps', '1500'));
const cache = arg('cache', 'sink:4+1020');
const dtype = arg('dtype', 'auto') as 'auto' | 'f32' | 'q8_0';
const m = await loadModel(dir, { threads: 1, dtype });
const s = m.session({ cache });
let logits = s.prefill([1, 2, 3, 4, 5, 6, 7, 8]);
const run = (n: number): void => {
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < logits.length; j++) if (logits[j] > logits[best]) best = j;
    logits = s.step(best);
  }
};
const rows = Number(arg('rows', '1'));
const rounds = Number(arg('rounds', rows > 1 ? '3' : '1'));
/** `n` forwards of `r` rows each (r > 1: a draft of r copies of the greedy token, one kept). */
const runRows = (n: number, r: number): void => {
  if (r === 1) { run(n); return; }
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < logits.length; j++) if (logits[j] > logits[best]) best = j;
    s.draft(new Array<number>(r).fill(best));
    s.accept(1);
    logits = s.step(best);
  }
};
/** CPU and wall ms per forward of `r` rows (r > 1 subtracts nothing: each iteration is one r-row forward plus one step). */
const time = (r: number): { cpu: number; wall: number } => {
  const c0 = process.cpuUsage(), t0 = performance.now();
  runRows(steps, r);
  const c = process.cpuUsage(c0);
  return { cpu: (c.user + c.system) / 1000 / steps, wall: (performance.now() - t0) / steps };
};
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1];
run(200);   // warm-up: V8 tiers up the JS around the kernels
if (rows > 1) runRows(50, rows);
const one: number[] = [], many: number[] = [], oneW: number[] = [], manyW: number[] = [];
for (let k = 0; k < rounds; k++) {
  const a = time(1); one.push(a.cpu); oneW.push(a.wall);
  if (rows > 1) { const b = time(rows); many.push(b.cpu - a.cpu); manyW.push(b.wall - a.wall); }
}
const row = {
  model: dir, cache, steps, rounds, cpu_ms_per_tok: +median(one).toFixed(4), wall_ms_per_tok: +median(oneW).toFixed(4),
  ...(rows > 1 ? { rows, cpu_ms_per_rows_forward: +median(many).toFixed(4), wall_ms_per_rows_forward: +median(manyW).toFixed(4) } : {}),
};
console.log(JSON.stringify(row));
process.stderr.write(`${dir} ${cache}: ${row.cpu_ms_per_tok} CPU ms/token, ${row.wall_ms_per_tok} wall ms/token over ${steps} steps` +
  (rows > 1 ? `; ${rows}-row forward ${row.cpu_ms_per_rows_forward} CPU ms (${(median(many) / median(one)).toFixed(2)}x a step)` : '') + '\n');
s.close();
await m.close();
