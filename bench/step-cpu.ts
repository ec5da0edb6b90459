/**
 * bench/step-cpu.ts — CPU time (user + sys) per greedy decode step, 1 thread by default, for comparing
 * two checkouts of the forward pass on a shared machine: with one thread, other processes stretch the
 * wall time far more than the CPU time this process spends.
 *
 *   node --import tsx bench/step-cpu.ts [--model models/novels-8m-sink] [--steps 1500] [--cache sink:4+1020] [--dtype auto|f32|q8_0]
 *     [--rows M[,M2,...] --rounds 3] [--threads 1]
 *
 * With --rows M > 1 it times, in alternating rounds, plain 1-row steps and M-row forwards (a draft of
 * M tokens of which one is kept, as a speculative verify runs), and reports the median of each; a
 * list (--rows 2,3,4,5,6) gives the cost curve a draft length is chosen from (docs/speculative.md).
 * With --threads N > 1 the CPU time counts every thread; the wall time is then the one to compare.
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
const threads = Number(arg('threads', '1'));
if (!Number.isInteger(threads) || threads < 1) throw new Error(`--threads must be a positive integer, got '${arg('threads', '1')}'`);
const m = await loadModel(dir, { threads, dtype });
const s = m.session({ cache });
let logits = s.prefill([1, 2, 3, 4, 5, 6, 7, 8]);
const run = (n: number): void => {
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < logits.length; j++) if (logits[j] > logits[best]) best = j;
    logits = s.step(best);
  }
};
const rowsList = arg('rows', '1').split(',').map(Number);
if (rowsList.some((r) => !Number.isInteger(r) || r < 1 || r > 64)) throw new Error(`--rows must be integers in 1..64, got '${arg('rows', '1')}'`);
const multi = rowsList.filter((r) => r > 1);
const rounds = Number(arg('rounds', multi.length ? '3' : '1'));
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
for (const r of multi) runRows(50, r);
const one: number[] = [], oneW: number[] = [];
const many = multi.map(() => ({ cpu: [] as number[], wall: [] as number[] }));
for (let k = 0; k < rounds; k++) {
  for (const [i, r] of multi.entries()) {
    // Each r-row iteration also runs one step: the step timed just before it is subtracted.
    const a = time(1); one.push(a.cpu); oneW.push(a.wall);
    const b = time(r); many[i].cpu.push(b.cpu - a.cpu); many[i].wall.push(b.wall - a.wall);
  }
  if (!multi.length) { const a = time(1); one.push(a.cpu); oneW.push(a.wall); }
}
const step = median(one), stepW = median(oneW);
const forwards = multi.map((r, i) => ({
  rows: r, cpu_ms: +median(many[i].cpu).toFixed(4), wall_ms: +median(many[i].wall).toFixed(4),
  cpu_steps: +(median(many[i].cpu) / step).toFixed(3), wall_steps: +(median(many[i].wall) / stepW).toFixed(3),
}));
const row = {
  model: dir, cache, steps, rounds, threads, cpu_ms_per_tok: +step.toFixed(4), wall_ms_per_tok: +stepW.toFixed(4),
  ...(forwards.length === 1 ? { rows: forwards[0].rows, cpu_ms_per_rows_forward: forwards[0].cpu_ms, wall_ms_per_rows_forward: forwards[0].wall_ms } : {}),
  ...(forwards.length ? { forwards } : {}),
};
console.log(JSON.stringify(row));
process.stderr.write(`${dir} ${cache}, ${threads} thread(s): ${row.cpu_ms_per_tok} CPU ms/token, ${row.wall_ms_per_tok} wall ms/token over ${steps} steps` +
  forwards.map((f) => `; ${f.rows}-row forward ${f.cpu_ms} CPU ms (${f.cpu_steps}x a step, wall ${f.wall_steps}x)`).join('') + '\n');
s.close();
await m.close();
