// The pool's chunked dispatch (src/runtime/pool.ts): every chunk runs exactly once whoever takes
// it, a worker that does not show up (as one the OS has descheduled) does not hold up the step,
// and more threads than cores are capped with a warning.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { Runtime } from '../src/runtime/runtime.js';

let rt: Runtime;
before(async () => { rt = await Runtime.create({ threads: 2, minParallelWork: 0 }); });
after(async () => { await rt.close(); });

const sum = (a: number[]): number => a.reduce((s, v) => s + v, 0);

test('chunked dispatch: each chunk runs exactly once, 2 chunks or 16', { skip: os.availableParallelism() < 2 }, () => {
  assert.equal(rt.threads, 2);
  const n = 1000, reps = 300;
  const counts = rt.alloc(n * 4);
  // work 1 -> one chunk per thread; 16 * 65536 multiply-adds -> 16 chunks (CHUNK_WORK = 65536).
  for (const [work, chunks] of [[1, 2], [16 * 65536, 16]]) {
    rt.i32(counts, n).fill(0);
    const before = sum(rt.pool.chunksRun()), solo0 = rt.pool.soloDispatches;
    for (let r = 0; r < reps; r++) rt.run('pool_probe', [counts, n, work]);
    // A worker the OS takes off its core for over a millisecond sends the pool solo for a while: those
    // dispatches run whole on the caller, uncounted as chunks. Every other dispatch ran all its chunks.
    const solo = rt.pool.soloDispatches - solo0;
    assert.equal(sum(rt.pool.chunksRun()) - before, chunks * (reps - solo), `chunks run for work=${work} (${solo} solo dispatches)`);
    const got = rt.i32(counts, n);
    for (let i = 0; i < n; i++) if (got[i] !== reps) assert.fail(`work=${work}: element ${i} was touched ${got[i]} times, want ${reps}`);
  }
});

test('a stalled worker does not stall the step: the caller takes its chunks, results exact', { skip: os.availableParallelism() < 2 }, () => {
  // y = x · Wᵀ with small integers: every product and sum is exact in f32, so the reference is exact.
  const K = 64, N = 96;
  const x = rt.alloc(K * 4), w = rt.alloc(N * K * 4), out = rt.alloc(N * 4);
  const xv = rt.f32(x, K), wv = rt.f32(w, N * K);
  for (let k = 0; k < K; k++) xv[k] = (k % 7) - 3;
  for (let i = 0; i < N * K; i++) wv[i] = (i % 5) - 2;
  const want = Array.from({ length: N }, (_, r) => {
    let s = 0;
    for (let k = 0; k < K; k++) s += ((k % 7) - 3) * (((r * K + k) % 5) - 2);
    return s;
  });
  const STALL_MS = 4000;
  const ran0 = rt.pool.chunksRun(), solo0 = rt.pool.soloDispatches;
  rt.pool.stallWorkers(STALL_MS);
  const t0 = performance.now();
  try {
    for (let r = 0; r < 50; r++) {
      rt.f32(out, N).fill(NaN);
      rt.run('matmul_f32', [out, x, w, 0, 1, K, N]);
      assert.deepEqual(Array.from(rt.f32(out, N)), want, `dispatch ${r}`);
    }
  } finally {
    rt.pool.stallWorkers(0);
  }
  const ms = performance.now() - t0;
  const ran = rt.pool.chunksRun();
  // Liveness, not speed: 50 dispatches that waited on the sleeping worker would take >= STALL_MS.
  assert.ok(ms < STALL_MS / 2, `50 dispatches took ${ms.toFixed(0)} ms with the worker asleep`);
  assert.equal(ran[1] - ran0[1], 0, 'the sleeping worker ran no chunk');
  // Solo dispatches (after an earlier late worker) run whole on the caller and count no chunks.
  const solo = rt.pool.soloDispatches - solo0;
  assert.equal(ran[0] - ran0[0], (50 - solo) * 2, 'the caller ran both chunks of every other dispatch');
});

test('threads above the available cores: capped, with one warning naming both', async () => {
  const cores = os.availableParallelism();
  const warnings: string[] = [];
  const capped = await Runtime.create({ threads: cores + 3, onWarning: (m) => warnings.push(m) });
  try {
    assert.equal(capped.threads, cores);
    assert.deepEqual(warnings, [`threads=${cores + 3} exceeds the ${cores} available cores; using ${cores}`]);
  } finally {
    await capped.close();
  }
});
