// The seams between the engine and what hosts it (Node or a browser). Each entry point picks one
// Platform (platform/current.ts: Node; the browser bundle swaps in platform/current-web.ts), so no
// module below it sniffs its environment. See docs/browser.md.
import type { WorkerInit } from '../runtime/control.js';

/**
 * Random-access bytes of one file, read synchronously: a Node file descriptor, or a Blob read with
 * FileReaderSync inside a Web Worker. Loaders copy tensors straight into wasm memory through it,
 * chunk by chunk, so no file is ever held whole in a JS buffer.
 */
export interface ByteSource {
  readonly size: number;
  /** Fills `dest` from `position`; returns the bytes read (fewer only at the end of the file). */
  read(dest: Uint8Array, position: number): number;
}

/** The files of one model by name (an HF-layout folder): a directory, picked Files, downloaded Blobs. */
export interface FileSet {
  /** The directory path or URL, for error messages and `Model.dir`. */
  readonly label: string;
  has(name: string): boolean;
  /** File names, sorted. */
  names(): string[];
  /** `name` joined onto the label, for error messages. */
  path(name: string): string;
  /** The file as UTF-8 text (JSON files); a StreamlmError naming the file if unreadable. */
  text(name: string): string;
  open(name: string): ByteSource;
}

/** One pool worker, started on `init` (control.ts); `ready` resolves once its kernels are instantiated. */
export interface PoolWorker {
  readonly ready: Promise<void>;
  terminate(): Promise<void>;
}

/**
 * The two builds of the kernels (scripts/build-kernels.mjs): SIMD128 only, or SIMD128 plus relaxed
 * SIMD (fused multiply-add where the CPU has it).
 */
export type KernelBuild = 'baseline' | 'relaxed';

export interface Platform {
  readonly name: 'node' | 'browser';
  /** Cores this process may use. */
  cores(): number;
  /** The compiled kernels of one build, from the package (fs in Node, fetch in browsers). */
  kernels(build: KernelBuild): Promise<BufferSource | WebAssembly.Module>;
  /**
   * Whether the relaxed build can run here. Node 20 has relaxed SIMD behind a V8 flag, which this
   * turns on first (Node >= 22 and Chromium >= 114 have it on already).
   */
  relaxedSimd(): boolean;
  /** The build the user chose outside the API (Node: the STREAMLM_SIMD variable), or null for the default. */
  simdChoice(): 'auto' | KernelBuild | null;
  /**
   * Why threads cannot share memory here (a one-line message naming what is missing), or null when
   * they can. The runtime then runs on one thread and warns once.
   */
  sharedMemoryMissing(): string | null;
  /** Starts a pool worker running `program` (worker.ts), an `async function main(init, ready)`. */
  startWorker(program: string, init: WorkerInit): PoolWorker;
  /** One file at `path`; browsers have no paths and throw. */
  file(path: string): ByteSource;
  /** The files of a model directory at `path`; browsers have no paths and throw. */
  dir(path: string): FileSet;
  /** One warning line for the user (stderr or console.warn). */
  warn(message: string): void;
}
