/**
 * Worker-pool dispatch overhead: the round trip of an empty parallel op (matmul_f32 with N = 0), so
 * only the wake-up, the Atomics handshake and the join are timed. This was a test once; a latency
 * is a number to watch, not to assert (timings move 15-30% between runs on the shared machine).
 *
 *   node --import tsx bench/dispatch.ts [--threads 2,3] [--rounds 3] [--ms 200]
 *
 * Prints one JSON line and a table: the median over `rounds` rounds, thread counts alternating
 * within each round, each round after a 400 ms warm-up (PLATFORM.md: let V8 tier up).
 */
import { Runtime } from '../src/runtime/runtime.js';
import { benchArgs } from './common.js';

const args = benchArgs(process.argv.slice(2));
const threadCounts = (args.get('threads') ?? '2').split(',').map(Number);
const rounds = Number(args.get('rounds') ?? '3');
const ms = Number(args.get('ms') ?? '200');

/** Microseconds per empty dispatch over `ms` milliseconds of back-to-back dispatches. */
function roundTripUs(rt: Runtime, out: number, windowMs: number): number {
  const empty = [out, out, out, 0, 1, 4, 0];
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < windowMs) { rt.run('matmul_f32', empty); n++; }
  return ((performance.now() - t0) / n) * 1000;
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; };

const runtimes = await Promise.all(threadCounts.map((threads) => Runtime.create({ threads, minParallelWork: 0 })));
try {
  const outs = runtimes.map((rt) => rt.alloc(64));
  runtimes.forEach((rt, i) => roundTripUs(rt, outs[i], 400));
  const samples: number[][] = threadCounts.map(() => []);
  for (let r = 0; r < rounds; r++) runtimes.forEach((rt, i) => samples[i].push(roundTripUs(rt, outs[i], ms)));
  const rows = threadCounts.map((threads, i) => ({ threads, round_trip_us_median: +median(samples[i]).toFixed(2), rounds: samples[i].map((x) => +x.toFixed(2)) }));
  console.log(JSON.stringify({ bench: 'dispatch', window_ms: ms, rows }));
  console.log('threads | empty dispatch round trip, median (us)');
  for (const r of rows) console.log(`${String(r.threads).padStart(7)} | ${r.round_trip_us_median.toFixed(2)}`);
} finally {
  for (const rt of runtimes) await rt.close();
}
