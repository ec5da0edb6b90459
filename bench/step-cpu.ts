/**
 * bench/step-cpu.ts — CPU time (user + sys) per greedy decode step, 1 thread, for comparing two
 * checkouts of the forward pass on a shared machine: with one thread, other processes stretch the
 * wall time far more than the CPU time this process spends.
 *
 *   node --import tsx bench/step-cpu.ts [--model models/novels-8m-sink] [--steps 1500] [--cache sink:4+1020] [--dtype auto|f32|q8_0]
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
run(200);   // warm-up: V8 tiers up the JS around the kernels
const c0 = process.cpuUsage(), t0 = performance.now();
run(steps);
const c = process.cpuUsage(c0), wall = performance.now() - t0;
const row = { model: dir, cache, steps, cpu_ms_per_tok: +((c.user + c.system) / 1000 / steps).toFixed(4), wall_ms_per_tok: +(wall / steps).toFixed(4) };
console.log(JSON.stringify(row));
process.stderr.write(`${dir} ${cache}: ${row.cpu_ms_per_tok} CPU ms/token, ${row.wall_ms_per_tok} wall ms/token over ${steps} steps\n`);
s.close();
await m.close();
