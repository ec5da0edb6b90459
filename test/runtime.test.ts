// Runtime: allocator, growth and views, the 4 GiB limit, scratch high-water mark, the worker pool
// (dispatch, error path), and close(). Dispatch latency is a benchmark: bench/dispatch.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Runtime } from '../src/runtime/runtime.js';
import { StreamlmError } from '../src/errors.js';

test('alloc aligns, grows the memory, and views made after growth see it', async () => {
  const rt = await Runtime.create({ threads: 1 });
  try {
    const before = rt.memory.buffer.byteLength;
    const a = rt.alloc(3);
    const b = rt.alloc(10, 256);
    assert.equal(a % 64, 0);
    assert.equal(b % 256, 0);
    assert.ok(b >= a + 3);
    rt.f32(a, 1)[0] = 1.5;
    const big = rt.alloc(8 << 20);
    assert.ok(rt.memory.buffer.byteLength >= big + (8 << 20));
    assert.ok(rt.memory.buffer.byteLength > before);
    const v = rt.f32(big + (8 << 20) - 4, 1);
    v[0] = 7;
    assert.equal(rt.f32(big + (8 << 20) - 4, 1)[0], 7);
    assert.equal(rt.f32(a, 1)[0], 1.5, 'old data survives growth');
    assert.ok(rt.bytesAllocated >= (8 << 20) + 13);
  } finally {
    await rt.close();
  }
});

test('alloc past 4 GiB throws StreamlmError naming the request, and bad arguments throw', async () => {
  const rt = await Runtime.create({ threads: 1 });
  try {
    const used = rt.bytesAllocated;
    assert.throws(() => rt.alloc(2 ** 32), (e: unknown) => e instanceof StreamlmError && /alloc\(bytes\)/.test(e.message) && /4 GiB/.test(e.message));
    assert.equal(rt.bytesAllocated, used, 'a failed alloc changes nothing');
    assert.throws(() => rt.alloc(-1), StreamlmError);
    assert.throws(() => rt.alloc(8, 3), StreamlmError);
    await assert.rejects(Runtime.create({ threads: 0 }), StreamlmError);
  } finally {
    await rt.close();
  }
});

test('mark/release is stack-like and peakScratchBytes records the high-water mark', async () => {
  const rt = await Runtime.create({ threads: 1 });
  try {
    rt.alloc(1000);
    assert.equal(rt.peakScratchBytes, 0, 'allocations outside any mark are not scratch');
    const m0 = rt.mark();
    const a = rt.alloc(4096);
    const m1 = rt.mark();
    rt.alloc(10000);
    rt.release(m1);
    const b = rt.alloc(64);
    assert.equal(b, m1, 'release hands the space back');
    rt.release(m0);
    assert.equal(rt.alloc(0), a, 'outer release frees everything above it');
    assert.ok(rt.peakScratchBytes >= 4096 + 10000 && rt.peakScratchBytes < 4096 + 10000 + 256, `peak ${rt.peakScratchBytes}`);
    assert.throws(() => rt.release(m1), StreamlmError, 'a released mark is dead');
    rt.resetPeakScratch();
    assert.equal(rt.peakScratchBytes, 0);
  } finally {
    await rt.close();
  }
});

test('default thread count is os.availableParallelism()', async () => {
  const os = await import('node:os');
  const rt = await Runtime.create();
  try {
    assert.equal(rt.threads, os.availableParallelism());
  } finally {
    await rt.close();
  }
});

test('pool: every thread takes part, a failing kernel throws and the pool recovers', async () => {
  const rt = await Runtime.create({ threads: 2, minParallelWork: 0 });
  try {
    assert.equal(rt.threads, 2);
    // N = 12 rows split in groups of 4: each thread writes exactly its own 4 outputs.
    const K = 8, N = 12;
    const x = rt.alloc(K * 4), w = rt.alloc(N * K * 4), out = rt.alloc(N * 4);
    rt.f32(x, K).fill(1);
    const wv = rt.f32(w, N * K);
    for (let n = 0; n < N; n++) wv.fill(n + 1, n * K, (n + 1) * K);
    rt.f32(out, N).fill(NaN);
    rt.run('matmul_f32', [out, x, w, 0, 1, K, N]);
    assert.deepEqual(Array.from(rt.f32(out, N)), Array.from({ length: N }, (_, n) => (n + 1) * K));

    // Weights past the end of memory trap, on the main thread or in a worker; either way run throws.
    assert.throws(() => rt.run('matmul_f32', [out, x, 2 ** 32 - 64, 0, 1, K, N]));
    // Output rows 0-3 (chunk 0) fit at the very end of memory; rows 4-11 (chunk 1) do not, and
    // whichever thread takes that chunk, run throws the pool's one-line error.
    const edge = rt.memory.buffer.byteLength - 16;
    assert.throws(() => rt.run('matmul_f32', [edge, x, w, 0, 1, K, N]), (e: unknown) => e instanceof StreamlmError && /failed on thread [01]/.test(e.message));
    assert.throws(() => rt.run('matmul_f32', [out, x, w, 0, 1, K]), StreamlmError, 'wrong argument count');
    rt.f32(out, N).fill(0);
    rt.run('matmul_f32', [out, x, w, 0, 1, K, N]);
    assert.equal(rt.f32(out, N)[N - 1], N * K, 'the pool still works after a failure');
  } finally {
    await rt.close();
  }
});

test('ops below minParallelWork run on the calling thread alone', async () => {
  const rt = await Runtime.create({ threads: 2 });
  try {
    const K = 8, N = 12;
    const x = rt.alloc(K * 4), w = rt.alloc(N * K * 4);
    rt.f32(x, K).fill(1);
    rt.f32(w, N * K).fill(1);
    // 96 multiply-adds: no dispatch, so rows 4-11 trap on the main thread itself (a RuntimeError,
    // not the pool's "failed on thread 1").
    const edge = rt.memory.buffer.byteLength - 16;
    assert.throws(() => rt.run('matmul_f32', [edge, x, w, 0, 1, K, N]), (e: unknown) => e instanceof WebAssembly.RuntimeError);
    const out = rt.alloc(N * 4);
    rt.run('matmul_f32', [out, x, w, 0, 1, K, N]);
    assert.deepEqual(Array.from(rt.f32(out, N)), new Array(N).fill(K));
  } finally {
    await rt.close();
  }
});

test('close() stops the workers; run afterwards throws', async () => {
  const rt = await Runtime.create({ threads: 2 });
  await rt.close();
  await rt.close();
  const out = rt.alloc(64);
  assert.throws(() => rt.run('matmul_f32', [out, out, out, 0, 1, 4, 4]), StreamlmError);
});
