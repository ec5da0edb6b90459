// The Runtime: one shared wasm memory with a bump allocator, the kernels instantiated on it, and a
// worker pool for the parallel ones. See docs/design.md, "Runtime".
import { StreamlmError } from '../errors.js';
import type { Kernels, ParallelOp } from './kernels.js';
import { Pool } from './pool.js';
import { platform as defaultPlatform } from '../platform/current.js';
import type { KernelBuild, Platform } from '../platform/types.js';

export type { Kernels, ParallelOp } from './kernels.js';
export type { KernelBuild } from '../platform/types.js';

const PAGE = 65536;
/** wasm32 ceiling: 65536 pages. */
const MAX_BYTES = 2 ** 32;
/** Per-thread scratch for kernels (f16/bf16 GEMM widens weight blocks into it). */
const SCRATCH_BYTES = 1 << 20;

export interface RuntimeOptions {
  /** Threads for parallel kernels, the calling thread included. Default: the platform's cores. */
  threads?: number;
  /** The compiled kernels (bytes or a module). Default: `build/kernels.wasm` of the package, from the platform. */
  wasm?: BufferSource | WebAssembly.Module;
  /**
   * Which kernels build runs: 'relaxed' (relaxed SIMD: fused multiply-add, 20-25% less CPU per f16/bf16
   * decode GEMV and f32 prefill GEMM on x86; results differ from the baseline's in the last bits),
   * 'baseline' (SIMD128 only), or 'auto': relaxed where the engine validates it. Default: the
   * platform's setting (Node: the STREAMLM_SIMD variable), else 'auto'. Ignored when `wasm` is given.
   */
  simd?: 'auto' | KernelBuild;
  /** Where files, workers and kernels come from. Default: the build's own (Node, or the browser bundle's). */
  platform?: Platform;
  /**
   * Parallel ops with fewer multiply-adds than this run on the calling thread alone: below it, a
   * dispatch (about 1 us on a quiet machine, far more when other processes hold the cores) costs
   * more than the split saves. Default 65536 (about 10 us of single-thread work). 0: always split.
   */
  minParallelWork?: number;
  /**
   * Receives warnings (one line each), such as `threads` above the available cores or a page
   * without cross-origin isolation. Default: each distinct message once per process, through the
   * platform (stderr in Node, console.warn in browsers).
   */
  onWarning?: (message: string) => void;
}

const warned = new Set<string>();
function warnOnce(platform: Platform): (message: string) => void {
  return (message) => {
    if (warned.has(message)) return;
    warned.add(message);
    platform.warn(message);
  };
}

/** The build to run: the one asked for, checked, or relaxed wherever it validates. */
function pickBuild(opts: RuntimeOptions, platform: Platform): KernelBuild {
  const choice = opts.simd ?? platform.simdChoice() ?? 'auto';
  const field = opts.simd !== undefined ? 'simd' : 'STREAMLM_SIMD';
  if (choice !== 'auto' && choice !== 'baseline' && choice !== 'relaxed') {
    throw new StreamlmError(`must be auto, baseline or relaxed, got ${JSON.stringify(choice)}`, { field });
  }
  if (choice === 'baseline') return 'baseline';
  const ok = platform.relaxedSimd();
  if (choice === 'relaxed' && !ok) throw new StreamlmError('relaxed SIMD does not validate in this engine (Node >= 20, Chromium >= 114 have it)', { field });
  return ok ? 'relaxed' : 'baseline';
}

async function loadModule(wasm: RuntimeOptions['wasm'], build: KernelBuild, platform: Platform): Promise<WebAssembly.Module> {
  if (wasm instanceof WebAssembly.Module) return wasm;
  const bytes = wasm ?? await platform.kernels(build);
  return bytes instanceof WebAssembly.Module ? bytes : WebAssembly.compile(bytes);
}

export class Runtime {
  /** Main thread's kernel instance, for single-threaded ops. */
  readonly k: Kernels;
  readonly memory: WebAssembly.Memory;
  /** The worker pool: chunk statistics and the stall hook, for tests and benchmarks. */
  pool!: Pool;
  /** The kernels build running ('relaxed' or 'baseline'); null when the caller passed its own `wasm`. */
  simd: KernelBuild | null = null;
  private readonly base: number;
  private top: number;
  private marks: number[] = [];
  private peak = 0;

  private constructor(k: Kernels, memory: WebAssembly.Memory, base: number) {
    this.k = k;
    this.memory = memory;
    this.base = base;
    this.top = base;
  }

  static async create(opts: RuntimeOptions = {}): Promise<Runtime> {
    const platform = opts.platform ?? defaultPlatform;
    const warn = opts.onWarning ?? warnOnce(platform);
    const cores = platform.cores();
    let threads = opts.threads ?? cores;
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) {
      throw new StreamlmError(`must be an integer in 1..256, got ${threads}`, { field: 'threads' });
    }
    // More threads than cores never pays here: each thread streams weights and a dispatch ends
    // only when every chunk is done, so extra threads just queue for the same cores (and each
    // costs a worker's memory). Cap, and say so.
    if (threads > cores) {
      warn(`threads=${threads} exceeds the ${cores} available cores; using ${cores}`);
      threads = cores;
    }
    const missing = platform.sharedMemoryMissing();
    if (missing !== null && threads > 1) {
      warn(`${missing}; running on 1 thread instead of ${threads}`);
      threads = 1;
    }
    const build = opts.wasm === undefined ? pickBuild(opts, platform) : null;
    const module = await loadModule(opts.wasm, build ?? 'baseline', platform);
    const memory = new WebAssembly.Memory({ initial: 2, maximum: MAX_BYTES / PAGE, shared: true });
    const instance = await WebAssembly.instantiate(module, { env: { memory } });
    const k = instance.exports as unknown as Kernels;
    const base = Math.ceil(k.heap_base() / 64) * 64;
    const rt = new Runtime(k, memory, base);
    const scratch: [number, number][] = [];
    for (let t = 0; t < threads; t++) scratch.push([rt.alloc(SCRATCH_BYTES), SCRATCH_BYTES]);
    k.set_scratch(scratch[0][0], scratch[0][1]);
    rt.simd = build;
    rt.pool = await Pool.create(platform, k, module, memory, threads, scratch, opts.minParallelWork ?? 65536);
    return rt;
  }

  /** Threads used by `run`, the calling thread included. */
  get threads(): number {
    return this.pool.threads;
  }

  /** Bytes handed out by `alloc` (and not released), the per-thread scratch included. */
  get bytesAllocated(): number {
    return this.top - this.base;
  }

  /** High-water mark of bytes allocated above the outermost live `mark()`, since creation or `resetPeakScratch()`. */
  get peakScratchBytes(): number {
    return this.peak;
  }

  resetPeakScratch(): void {
    this.peak = this.marks.length ? this.top - this.marks[0] : 0;
  }

  /** Reserves `bytes` (aligned to `align`) and returns the byte offset; grows the memory as needed. */
  alloc(bytes: number, align = 64): number {
    if (!Number.isInteger(bytes) || bytes < 0) throw new StreamlmError(`bytes must be a non-negative integer, got ${bytes}`, { field: 'Runtime.alloc(bytes)' });
    if (!Number.isInteger(align) || align <= 0 || (align & (align - 1)) !== 0) {
      throw new StreamlmError(`align must be a power of two, got ${align}`, { field: 'Runtime.alloc(align)' });
    }
    const ptr = Math.ceil(this.top / align) * align;
    const end = ptr + bytes;
    if (end > MAX_BYTES) {
      throw new StreamlmError(`cannot allocate ${bytes} bytes: ${this.bytesAllocated} are in use and wasm32 memory stops at 4 GiB`,
        { field: 'Runtime.alloc(bytes)' });
    }
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
    this.top = end;
    if (this.marks.length) this.peak = Math.max(this.peak, end - this.marks[0]);
    return ptr;
  }

  /** Remembers the allocation top; `release(mark)` frees everything allocated after it. */
  mark(): number {
    this.marks.push(this.top);
    return this.top;
  }

  release(mark: number): void {
    const i = this.marks.lastIndexOf(mark);
    if (i < 0 || mark > this.top) throw new StreamlmError(`no live mark at ${mark}`, { field: 'Runtime.release(mark)' });
    this.marks.length = i;
    this.top = mark;
  }

  f32(ptr: number, len: number): Float32Array { return new Float32Array(this.memory.buffer, ptr, len); }
  i32(ptr: number, len: number): Int32Array { return new Int32Array(this.memory.buffer, ptr, len); }
  u16(ptr: number, len: number): Uint16Array { return new Uint16Array(this.memory.buffer, ptr, len); }
  u8(ptr: number, len: number): Uint8Array { return new Uint8Array(this.memory.buffer, ptr, len); }
  i8(ptr: number, len: number): Int8Array { return new Int8Array(this.memory.buffer, ptr, len); }

  /** Runs a parallel kernel on every thread, `op(...args, tid, nth)`; below minParallelWork, on this thread alone. */
  run(op: ParallelOp, args: ArrayLike<number>): void {
    this.pool.run(op, args);
  }

  /** Stops the workers so the process can exit. The memory stays readable. */
  async close(): Promise<void> {
    await this.pool.close();
  }
}
