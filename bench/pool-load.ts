/**
 * bench/pool-load.ts — decode tok/s with 1 and 2 threads, on a quiet machine and with competing
 * CPU-bound processes running (issue 11, item 3: 2 threads must never be slower than 1).
 *
 *   node --import tsx bench/pool-load.ts [--model models/novels-8m] [--dtype auto|q8_0]
 *        [--tokens 256] [--rounds 3] [--load 1] [--json]
 *
 * Both thread counts load the model in this process. Each round times, in alternating order,
 * quiet 1T and 2T, then starts `--load` busy processes (`node -e 'for(;;){}'`) and times loaded
 * 1T and 2T, then stops them. A timing is a dense-cache session: a short prompt, then `--tokens`
 * greedy steps (after an untimed warm-up run). Reports the median over rounds of each cell, and
 * prints one JSON line with --json (on stdout; the table goes to stderr).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { benchArgs } from './common.js';
import { loadModel } from '../src/index.js';
import { StreamlmError } from '../src/errors.js';

type Model = Awaited<ReturnType<typeof loadModel>>;

const a = benchArgs(process.argv.slice(2));
const modelDir = a.get('model') ?? 'models/novels-8m';
const dtype = (a.get('dtype') ?? 'auto') as 'auto' | 'q8_0';
const tokens = Number(a.get('tokens') ?? 256);
const rounds = Number(a.get('rounds') ?? 3);
const load = Number(a.get('load') ?? 1);
for (const [flag, v, min] of [['--tokens', tokens, 8], ['--rounds', rounds, 1], ['--load', load, 0]] as const) {
  if (!Number.isInteger(v) || v < min) throw new StreamlmError(`must be an integer >= ${min}, got ${v}`, { field: flag });
}

function decodeTokS(model: Model, prompt: number[], steps: number): number {
  const s = model.session({ cache: 'dense', maxTokens: prompt.length + steps + 1 });
  try {
    let logits = s.prefill(prompt);
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) {
      let best = 0;
      for (let j = 1; j < logits.length; j++) if (logits[j] > logits[best]) best = j;
      logits = s.step(best);
    }
    return steps / ((performance.now() - t0) / 1000);
  } finally {
    s.close();
  }
}

function startLoad(n: number): ChildProcess[] {
  return Array.from({ length: n }, () => spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
}

async function stopLoad(ps: ChildProcess[]): Promise<void> {
  await Promise.all(ps.map((p) => new Promise<void>((resolve) => {
    if (p.exitCode !== null) return resolve();
    p.once('exit', () => resolve());
    p.kill('SIGKILL');
  })));
}

const median = (v: number[]): number => {
  const s = [...v].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const models: Record<1 | 2, Model> = {
  1: await loadModel(modelDir, { threads: 1, dtype }),
  2: await loadModel(modelDir, { threads: 2, dtype }),
};
const prompt = models[1].encode('It was a dark and stormy night; the rain fell in torrents');
for (const t of [1, 2] as const) decodeTokS(models[t], prompt, 64);

const cells: Record<string, number[]> = { quiet_1t: [], quiet_2t: [], loaded_1t: [], loaded_2t: [] };
const load0 = loadavg()[0];
for (let r = 0; r < rounds; r++) {
  const order: (1 | 2)[] = r % 2 ? [2, 1] : [1, 2];
  for (const t of order) cells[`quiet_${t}t`].push(decodeTokS(models[t], prompt, tokens));
  const busy = startLoad(load);
  await new Promise((res) => setTimeout(res, 300));
  try {
    for (const t of [...order].reverse()) cells[`loaded_${t}t`].push(decodeTokS(models[t], prompt, tokens));
  } finally {
    await stopLoad(busy);
  }
  process.stderr.write(`round ${r + 1}: ${Object.entries(cells).map(([k, v]) => `${k} ${v[r].toFixed(0)}`).join(', ')}\n`);
}
const pool = models[2].net.rt.pool;
const poolStats = { late_waits: pool.lateWaits, solo_dispatches: pool.soloDispatches, chunks_run: pool.chunksRun() };
for (const t of [1, 2] as const) await models[t].close();

const med = Object.fromEntries(Object.entries(cells).map(([k, v]) => [k, Math.round(median(v))])) as Record<string, number>;
const result = {
  model: modelDir, dtype, tokens, rounds, competing_processes: load, cpu: cpus()[0]?.model ?? 'unknown',
  loadavg_start: Number(load0.toFixed(2)), loadavg_end: Number(loadavg()[0].toFixed(2)),
  median_tok_s: med, all_tok_s: cells,
  ratio_2t_over_1t: { quiet: Number((med.quiet_2t / med.quiet_1t).toFixed(3)), loaded: Number((med.loaded_2t / med.loaded_1t).toFixed(3)) },
  // Each round's 2T/1T, timed back to back, then their median: less exposed to load drifting between rounds.
  median_round_ratio: {
    quiet: Number(median(cells.quiet_2t.map((v, i) => v / cells.quiet_1t[i])).toFixed(3)),
    loaded: Number(median(cells.loaded_2t.map((v, i) => v / cells.loaded_1t[i])).toFixed(3)),
  },
  pool_2t: poolStats,
};
process.stderr.write(`\n${modelDir} (${dtype}), decode tok/s, median of ${rounds} rounds, ${load} competing process(es)\n`);
process.stderr.write(`           1 thread  2 threads  2T/1T  median of round ratios\n`);
process.stderr.write(`quiet      ${String(med.quiet_1t).padStart(8)}  ${String(med.quiet_2t).padStart(9)}  ${result.ratio_2t_over_1t.quiet.toFixed(2)}   ${result.median_round_ratio.quiet.toFixed(2)}\n`);
process.stderr.write(`loaded     ${String(med.loaded_1t).padStart(8)}  ${String(med.loaded_2t).padStart(9)}  ${result.ratio_2t_over_1t.loaded.toFixed(2)}   ${result.median_round_ratio.loaded.toFixed(2)}\n`);
process.stderr.write(`pool (2T): ${poolStats.late_waits} late waits, ${poolStats.solo_dispatches} dispatches run solo\n`);
if (a.has('json')) console.log(JSON.stringify(result));
