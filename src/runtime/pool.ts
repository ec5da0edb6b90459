// Worker pool over one shared memory: threads-1 workers plus the calling thread as tid 0. A
// dispatch costs two atomic writes and a notify; workers spin briefly before sleeping, so
// back-to-back dispatches (a decode step makes ~5 per layer) never touch the OS scheduler.
import type { Worker } from 'node:worker_threads';
import { StreamlmError } from '../errors.js';
import { ARGS_BYTE, CONTROL_BYTES, EXIT, FAILED, GEN, MAX_ARGS, NTH, OP, PENDING, awaitChange, type WorkerInit } from './control.js';
import { OP_NAMES, PARALLEL_OPS, callParallel, parallelWork, type Kernels, type ParallelOp } from './kernels.js';
import { workerSource } from './worker.js';

const OP_INDEX = new Map<string, number>(OP_NAMES.map((name, i) => [name, i]));

export class Pool {
  private readonly ctl: Int32Array;
  private readonly args: Float64Array;
  private closed = false;

  private constructor(private readonly k: Kernels, private readonly workers: Worker[], control: SharedArrayBuffer,
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
  static async create(k: Kernels, module: WebAssembly.Module, memory: WebAssembly.Memory, threads: number,
    scratch: ReadonlyArray<readonly [number, number]>, minWork: number): Promise<Pool> {
    const control = new SharedArrayBuffer(CONTROL_BYTES);
    const workers: Worker[] = [];
    if (threads > 1) {
      const { Worker } = await import('node:worker_threads');
      const source = workerSource();
      const ready: Promise<void>[] = [];
      for (let tid = 1; tid < threads; tid++) {
        const init: WorkerInit = { module, memory, control, tid, scratchPtr: scratch[tid][0], scratchBytes: scratch[tid][1] };
        const w = new Worker(source, { eval: true, workerData: init });
        w.unref();
        workers.push(w);
        ready.push(new Promise((resolve, reject) => {
          w.once('message', () => resolve());
          w.once('error', reject);
          w.once('exit', (code) => reject(new Error(`worker ${tid} exited with code ${code} during start`)));
        }));
      }
      try {
        await Promise.all(ready);
      } catch (e) {
        await Promise.all(workers.map((w) => w.terminate()));
        throw e;
      }
    }
    return new Pool(k, workers, control, minWork);
  }

  /** Runs `op(...args, tid, nth)` on every thread (or, for small ops, on this one) and returns when all are done. */
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
    if (nth === 1 || parallelWork(op, args) < this.minWork) {
      callParallel(fn, args, n, 0, 1);
      return;
    }
    const ctl = this.ctl;
    for (let i = 0; i < n; i++) this.args[i] = args[i];
    ctl[OP] = index;
    ctl[NTH] = nth;
    Atomics.store(ctl, PENDING, nth - 1);
    Atomics.add(ctl, GEN, 1);
    Atomics.notify(ctl, GEN);
    let error: unknown;
    try {
      callParallel(fn, args, n, 0, nth);
    } catch (e) {
      error = e;
    }
    this.join();
    const failed = Atomics.exchange(ctl, FAILED, 0);
    if (error !== undefined) throw error;
    if (failed) throw new StreamlmError(`kernel ${op} failed on thread ${failed - 1} (see stderr)`, { field: 'Runtime.run' });
  }

  /** Waits for PENDING to reach 0. Workers notify only at 0, so sleeps are capped at 1 ms. */
  private join(): void {
    for (let left = Atomics.load(this.ctl, PENDING); left !== 0;) left = awaitChange(this.ctl, PENDING, left, 1);
  }

  /** Stops every worker; the pool cannot run afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.workers.length === 0) return;
    const ctl = this.ctl;
    ctl[OP] = EXIT;
    Atomics.add(ctl, GEN, 1);
    Atomics.notify(ctl, GEN);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
