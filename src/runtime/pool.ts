// Worker pool over one shared memory: threads-1 workers plus the calling thread as tid 0. A
// dispatch cuts the op into chunks that any thread takes from one atomic counter (control.ts), so
// the calling thread runs whatever a descheduled worker has not started and a step is never
// slower than one thread would make it, however busy the machine. Workers spin briefly before
// sleeping, so back-to-back dispatches (a decode step makes ~5 per layer) skip the OS scheduler.
import { StreamlmError } from '../errors.js';
import {
  ARGS_BYTE, CLAIM, CONTROL_BYTES, DONE, FAILED, GEN, MAX_ARGS, MAX_CHUNKS, MAX_THREADS, NAP, OP, QUIT, RAN, SLEEPERS,
  SPIN_MS, STALL, awaitChange, claimChunk, type WorkerInit,
} from './control.js';
import { FINE_CHUNKED_OPS, OP_NAMES, PARALLEL_OPS, callParallel, parallelWork, type Kernels, type ParallelOp } from './kernels.js';
import type { Platform, PoolWorker } from '../platform/types.js';
import { workerSource } from './worker.js';

const OP_INDEX = new Map<string, number>(OP_NAMES.map((name, i) => [name, i]));

/**
 * Multiply-adds per chunk of a finely chunked op: about 10 us of one thread's work, so taking a
 * chunk (one compare-exchange and a wasm call, well under 1 us) stays cheap, while a late worker
 * leaves the caller at most one chunk to wait for.
 */
const CHUNK_WORK = 65536;
/** At most this many chunks per thread: finer cuts only add overhead. */
const MAX_CHUNKS_PER_THREAD = 8;
/**
 * A wait this long for a chunk a worker has started means the OS took that worker off its core
 * mid-chunk (a chunk is ~10-100 us of work): other processes want the cores. The pool then runs
 * on the calling thread alone for SOLO_MS, doubling on each repeat up to SOLO_MAX_MS, so that on a
 * busy machine it costs what one thread costs, and tries the workers again after that.
 */
const LATE_MS = 1;
const SOLO_MS = 10;
const SOLO_MAX_MS = 640;

export class Pool {
  private readonly ctl: Int32Array;
  private readonly args: Float64Array;
  private closed = false;
  /** Until this time (performance.now()), dispatches run on the calling thread alone. */
  private soloUntil = 0;
  private soloMs = SOLO_MS;
  /** Dispatches run solo because of a late worker, and late waits seen (statistics). */
  soloDispatches = 0;
  lateWaits = 0;

  private constructor(private readonly k: Kernels, private readonly workers: PoolWorker[], control: SharedArrayBuffer | ArrayBuffer,
    private readonly minWork: number) {
    this.ctl = new Int32Array(control);
    this.args = new Float64Array(control, ARGS_BYTE, MAX_ARGS);
  }

  /** Threads taking part in every dispatch, the calling thread included. */
  get threads(): number {
    return this.workers.length + 1;
  }

  /**
   * Starts `threads - 1` workers. `scratch[t]` is the per-thread scratch region (pointer, bytes)
   * that worker t's kernel instance gets through `set_scratch`.
   */
  static async create(platform: Platform, k: Kernels, module: WebAssembly.Module, memory: WebAssembly.Memory, threads: number,
    scratch: ReadonlyArray<readonly [number, number]>, minWork: number): Promise<Pool> {
    if (threads > MAX_THREADS) throw new StreamlmError(`at most ${MAX_THREADS} threads, got ${threads}`, { field: 'threads' });
    // One thread needs no sharing: a plain buffer also works where SharedArrayBuffer is withheld
    // (a browser page without cross-origin isolation).
    const control = threads > 1 ? new SharedArrayBuffer(CONTROL_BYTES) : new ArrayBuffer(CONTROL_BYTES);
    const workers: PoolWorker[] = [];
    if (threads > 1) {
      const source = workerSource();
      for (let tid = 1; tid < threads; tid++) {
        const init: WorkerInit = { module, memory, control: control as SharedArrayBuffer, tid, scratchPtr: scratch[tid][0], scratchBytes: scratch[tid][1] };
        workers.push(platform.startWorker(source, init));
      }
      try {
        await Promise.all(workers.map((w) => w.ready));
      } catch (e) {
        await Promise.all(workers.map((w) => w.terminate()));
        throw e;
      }
    }
    return new Pool(k, workers, control, minWork);
  }

  /** Runs `op(...args, chunk, chunks)` for every chunk, across the threads, and returns when all are done. */
  run(op: ParallelOp, args: ArrayLike<number>): void {
    const index = OP_INDEX.get(op);
    if (index === undefined) throw new StreamlmError(`unknown parallel op '${op}'`, { field: 'Runtime.run(op)' });
    const n = PARALLEL_OPS[op];
    if (args.length !== n) {
      throw new StreamlmError(`${op} takes ${n} arguments before (tid, nth), got ${args.length}`, { field: 'Runtime.run(args)' });
    }
    if (this.closed) throw new StreamlmError('the runtime is closed', { field: 'Runtime.run' });
    const fn = this.k[op] as (...a: number[]) => void;
    const nth = this.workers.length + 1;
    const work = parallelWork(op, args);
    if (nth === 1 || work < this.minWork) {
      callParallel(fn, args, n, 0, 1);
      return;
    }
    if (this.soloUntil !== 0) {
      if (performance.now() < this.soloUntil) {
        this.soloDispatches++;
        callParallel(fn, args, n, 0, 1);
        return;
      }
      this.soloUntil = 0;
    }
    const chunks = FINE_CHUNKED_OPS.has(op)
      ? Math.min(MAX_CHUNKS, nth * MAX_CHUNKS_PER_THREAD, Math.max(nth, Math.floor(work / CHUNK_WORK)))
      : nth;
    const ctl = this.ctl;
    for (let i = 0; i < n; i++) this.args[i] = args[i];
    ctl[OP] = index;
    Atomics.store(ctl, DONE, 0);
    Atomics.store(ctl, CLAIM, chunks << 16);
    Atomics.add(ctl, GEN, 1);
    if (Atomics.load(ctl, SLEEPERS) > 0) Atomics.notify(ctl, GEN);
    let error: Error | undefined;
    let ran = 0;
    for (let v = claimChunk(ctl, CLAIM); v >= 0; v = claimChunk(ctl, CLAIM)) {
      try {
        callParallel(fn, args, n, v & 0xffff, chunks);
      } catch (e) {
        error ??= e instanceof Error ? e : new Error(JSON.stringify(e));
      }
      ran++;
    }
    ctl[RAN] += ran;
    const done = Atomics.add(ctl, DONE, ran) + ran;
    // Chunks still out are running on workers right now; wait for them (they notify at the end).
    if (done !== chunks) {
      const t0 = performance.now();
      for (let d = done; d !== chunks;) d = awaitChange(ctl, DONE, d, SPIN_MS, 1, -1);
      const t1 = performance.now();
      if (t1 - t0 > LATE_MS) {
        this.lateWaits++;
        this.soloUntil = t1 + this.soloMs;
        this.soloMs = Math.min(SOLO_MAX_MS, this.soloMs * 2);
      } else this.soloMs = SOLO_MS;
    } else this.soloMs = SOLO_MS;
    const failed = Atomics.exchange(ctl, FAILED, 0);
    // Which thread ran the bad chunk is chance, so both paths give the same kind of error.
    if (error !== undefined) {
      throw new StreamlmError(`kernel ${op} failed on thread 0: ${error.message}`, { field: 'Runtime.run' });
    }
    if (failed) throw new StreamlmError(`kernel ${op} failed on thread ${failed - 1} (see stderr)`, { field: 'Runtime.run' });
  }

  /** Chunks each thread has run since creation (index = tid; 0 is the calling thread). */
  chunksRun(): number[] {
    return Array.from({ length: this.threads }, (_, t) => Atomics.load(this.ctl, RAN + t));
  }

  /**
   * Makes every worker sleep `ms` after each wake-up before taking chunks, as a worker the OS has
   * descheduled would: for tests and benchmarks of the pool under load. 0 turns it off.
   */
  stallWorkers(ms: number): void {
    if (!(ms >= 0 && Number.isInteger(ms))) throw new StreamlmError(`must be a non-negative integer, got ${ms}`, { field: 'stallWorkers(ms)' });
    Atomics.store(this.ctl, STALL, ms);
  }

  /** Stops every worker; the pool cannot run afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.workers.length === 0) return;
    const ctl = this.ctl;
    Atomics.store(ctl, QUIT, 1);
    Atomics.store(ctl, STALL, 0);
    Atomics.add(ctl, GEN, 1);
    Atomics.notify(ctl, GEN);
    Atomics.notify(ctl, NAP);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
