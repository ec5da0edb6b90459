/**
 * bench:session — the session layer's own costs: microseconds per `session.step` on the tiny llama
 * test fixture (its forward is tens of µs, so session overhead would show), and the size and time of
 * a snapshot and a restore of a full `sink:4+2044` cache on the shipped model.
 *
 *   npm run bench:session -- [--json] [--steps 4000] [--model models/novels-8m-sink] [--cache sink:4+2044]
 *
 * To compare two trees (say main and a branch), run it in each, alternately, >= 3 rounds each.
 * Output: a table on stderr; with --json one JSON line on stdout:
 * {"step_us","snapshot":{"policy","tokens","bytes","snapshot_ms","snapshot_cpu_ms","restore_ms","restore_cpu_ms"},"load_avg","cpu"}.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../src/model.js';
import type { Session } from '../src/session.js';
import { benchArgs } from './common.js';

const args = benchArgs(process.argv.slice(2));
const root = join(import.meta.dirname, '..');
const steps = Number(args.get('steps') ?? 4000);
const modelDir = args.get('model') ?? join(root, 'models', 'novels-8m-sink');
const cache = args.get('cache') ?? 'sink:4+2044';

const top = (x: Float32Array): number => { let b = 0; for (let i = 1; i < x.length; i++) if (x[i] > x[b]) b = i; return b; };
const greedy = (s: Session, n: number): void => { let l = s.logits!; for (let i = 0; i < n; i++) l = s.step(top(l)); };

const tiny = await loadModel(join(root, 'test', 'fixtures', 'llama'), { threads: 1 });
const s = tiny.session({ cache: 'sink:4+60' });
s.prefill([5, 6, 7, 8]);
greedy(s, 500);  // warm-up: the wasm tier-up and a full, evicting window
let t0 = performance.now();
greedy(s, steps);
const stepUs = ((performance.now() - t0) / steps) * 1000;
s.close();
await tiny.close();

const model = await loadModel(modelDir, { threads: 1 });
const full = model.session({ cache });
// Enough tokens to fill the cache (its capacity is what it keeps plus one prefill chunk).
full.prefill(Array.from({ length: full.cache.capacity }, (_, i) => 10 + (i % 200)));
full.snapshot();  // warm-up: the fingerprint is computed on first use, and the copy loops get compiled
// CPU time beside wall time: on a shared machine the wall clock mostly measures the other processes.
const cpuMs = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;
t0 = performance.now();
let c0 = process.cpuUsage();
const snap = full.snapshot();
const snapshotMs = performance.now() - t0, snapshotCpu = cpuMs(process.cpuUsage(c0));
t0 = performance.now();
c0 = process.cpuUsage();
const back = model.restoreSession(snap);
const restoreMs = performance.now() - t0, restoreCpu = cpuMs(process.cpuUsage(c0));
const tokens = back.stats().length;
back.close(); full.close();
await model.close();

const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
const out = { step_us: +stepUs.toFixed(1), snapshot: { policy: cache, tokens, bytes: snap.length, snapshot_ms: +snapshotMs.toFixed(1), snapshot_cpu_ms: +snapshotCpu.toFixed(1), restore_ms: +restoreMs.toFixed(1), restore_cpu_ms: +restoreCpu.toFixed(1) }, load_avg: loadavg()[0], cpu };
console.error(`session.step on the llama fixture, sink:4+60: ${out.step_us} µs/step
snapshot of ${cache} holding ${tokens} tokens: ${(snap.length / 2 ** 20).toFixed(1)} MiB, ${out.snapshot.snapshot_ms} ms (${out.snapshot.snapshot_cpu_ms} ms CPU); restore ${out.snapshot.restore_ms} ms (${out.snapshot.restore_cpu_ms} ms CPU)
load ${out.load_avg.toFixed(1)}, ${cpu}`);
if (args.has('json')) console.log(JSON.stringify(out));
