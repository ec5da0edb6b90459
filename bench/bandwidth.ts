/**
 * Memory read bandwidth, measured the way decode reads weights: a wasm SIMD128 loop (v128.load +
 * v128.xor into independent accumulators) over a 1 GiB shared WebAssembly.Memory, split across
 * `threads` worker_threads, each thread its own slice read as `streams` side-by-side streams
 * (several streams per core keep more prefetches in flight: 4 read ~20-40% faster than 1 here,
 * as a matmul over several weight rows does). The module is a few hand-assembled bytes, so this
 * needs no build step. Also reports a single-thread
 * `TypedArray.prototype.set` copy (read + write bytes) for reference.
 */
import { Worker } from 'node:worker_threads';

export interface Bandwidth {
  /** Bytes read per second by the wasm SIMD loop with `threads` threads (best pass). */
  readBytesPerS: number;
  threads: number;
  /** Bytes (read + written) per second of a single-thread TypedArray.set copy (best pass). */
  copyBytesPerS: number;
  method: string;
}

const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
};
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const name = (s: string): number[] => [...uleb(s.length), ...new TextEncoder().encode(s)];

/**
 * `read(p0, .., p[streams-1], len) -> i32`: xor of every v128 in each [p_k, p_k + len), the streams
 * read side by side (`unroll` loads from each an iteration). More streams keep more prefetches in
 * flight per core. `len` must be a multiple of 16·`unroll`.
 */
export function readLoopModule(maxPages: number, streams = 2, unroll = 4): Uint8Array<ArrayBuffer> {
  const LG = 0x20, LS = 0x21, V128_LOAD = [0xfd, 0x00], XOR = [0xfd, 0x51];
  const END = streams + 1; // i32 local after the params
  const acc = (k: number, u: number): number => streams + 2 + k * unroll + u;
  const step = 16 * unroll;
  const sleb = (v: number): number[] => (v < 64 ? [v] : [(v & 0x7f) | 0x80, v >> 7]); // v < 8192
  const body: number[] = [];
  for (let k = 0; k < streams; k++) {
    for (let u = 0; u < unroll; u++) body.push(LG, acc(k, u), LG, k, ...V128_LOAD, 4, ...uleb(16 * u), ...XOR, LS, acc(k, u));
  }
  for (let k = 0; k < streams; k++) body.push(LG, k, 0x41, ...sleb(step), 0x6a, LS, k);
  const fold: number[] = [LG, acc(0, 0)];
  for (let i = 1; i < streams * unroll; i++) fold.push(LG, acc(0, 0) + i, ...XOR);
  const code = [
    2, 1, 0x7f, streams * unroll, 0x7b, // locals: end (i32), accumulators (v128)
    LG, 0, LG, streams, 0x6a, LS, END, // end = p0 + len
    0x02, 0x40, 0x03, 0x40, // block, loop
    LG, 0, LG, END, 0x4f, 0x0d, 1, // br_if 1 (p0 >= end)
    ...body,
    0x0c, 0, 0x0b, 0x0b, // br 0, end loop, end block
    ...fold, 0xfd, 0x1b, 0, // i32x4.extract_lane 0
    0x0b,
  ];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, streams + 1, ...new Array<number>(streams + 1).fill(0x7f), 1, 0x7f]),
    ...section(2, [1, ...name('env'), ...name('memory'), 0x02, 0x03, ...uleb(1), ...uleb(maxPages)]),
    ...section(3, [1, 0]),
    ...section(7, [1, ...name('read'), 0x00, 0]),
    ...section(10, [1, ...uleb(code.length), ...code]),
  ];
  return new Uint8Array(bytes);
}

const WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const { module, memory, ctl, lo, sub, streams, passes, chunk } = workerData;
const { read } = new WebAssembly.Instance(module, { env: { memory } }).exports;
const c = new Int32Array(ctl);
const args = new Array(streams + 1);
const pass = (len) => {
  let sink = 0;
  for (let off = 0; off < len; off += chunk) {
    for (let k = 0; k < streams; k++) args[k] = lo + k * sub + off;
    args[streams] = Math.min(chunk, len - off);
    sink ^= read(...args);
  }
  return sink;
};
let sink = 0;
for (let i = 0; i < 4000; i++) sink ^= pass(65536); // let V8 tier the loop up from Liftoff
for (let p = 0; p <= passes; p++) {
  Atomics.wait(c, 0, p);            // main bumps c[0] to p+1 to start pass p
  sink ^= pass(sub);
  Atomics.add(c, 1, 1); Atomics.notify(c, 1);
}
parentPort.postMessage(sink);
`;

/** Measures read bandwidth with `threads` threads over `bytes` (default 1 GiB) of wasm memory. */
export async function measureBandwidth(threads: number, bytes = 1 << 30, passes = 8, streams = 4): Promise<Bandwidth> {
  const pages = bytes / 65536;
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  new Uint8Array(memory.buffer).fill(1); // touch every page: untouched pages read the shared zero page
  const module = new WebAssembly.Module(readLoopModule(pages, streams));
  const ctl = new SharedArrayBuffer(8);
  const c = new Int32Array(ctl);
  const slice = Math.floor(bytes / threads / streams / (1 << 20)) * (1 << 20) * streams;
  const workers: Worker[] = [];
  const done: Promise<unknown>[] = [];
  for (let t = 0; t < threads; t++) {
    const w = new Worker(WORKER, {
      eval: true,
      workerData: { module, memory, ctl, lo: t * slice, sub: slice / streams, streams, passes, chunk: 1 << 18 },
    });
    workers.push(w);
    done.push(new Promise((res, rej) => { w.once('message', res); w.once('error', rej); }));
  }
  let best = Infinity;
  // Pass 0 warms the caches and TLBs; passes 1.. are timed.
  for (let p = 0; p <= passes; p++) {
    await new Promise((r) => setTimeout(r, p === 0 ? 50 : 5));
    const t0 = performance.now();
    Atomics.store(c, 0, p + 1);
    Atomics.notify(c, 0);
    for (let seen = Atomics.load(c, 1); seen < threads * (p + 1); seen = Atomics.load(c, 1)) Atomics.wait(c, 1, seen, 1000);
    const dt = performance.now() - t0;
    if (p > 0) best = Math.min(best, dt);
  }
  await Promise.all(done);
  await Promise.all(workers.map((w) => w.terminate()));

  // Single-thread copy, for reference.
  const half = new Uint8Array(memory.buffer, 0, bytes / 2);
  const other = new Uint8Array(memory.buffer, bytes / 2, bytes / 2);
  let bestCopy = Infinity;
  for (let p = 0; p < 4; p++) {
    const t0 = performance.now();
    other.set(half);
    bestCopy = Math.min(bestCopy, performance.now() - t0);
  }
  return {
    readBytesPerS: (slice * threads) / (best / 1000),
    threads,
    copyBytesPerS: bytes / (bestCopy / 1000),
    method: `wasm SIMD128 read loop, ${threads} worker thread(s) x ${streams} streams, 1 GiB shared memory, best pass`,
  };
}
