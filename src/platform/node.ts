// Node's side of the platform seams: files through node:fs, pool workers on node:worker_threads.
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import { StreamlmError } from '../errors.js';
import type { WorkerInit } from '../runtime/control.js';
import { validatesRelaxedSimd } from './relaxed.js';
import type { ByteSource, FileSet, KernelBuild, Platform, PoolWorker } from './types.js';

/** readSync takes at most 2 GiB per call; smaller chunks also keep each syscall short. */
const READ_CHUNK = 64 * 1024 * 1024;

/** A file read through a descriptor opened per call, so nothing is left open between tensors. */
export function fileSource(path: string): ByteSource {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (e) {
    throw new StreamlmError(`cannot open: ${(e as Error).message}`, { file: path });
  }
  return {
    size,
    read(dest: Uint8Array, position: number): number {
      let fd: number;
      try {
        fd = openSync(path, 'r');
      } catch (e) {
        throw new StreamlmError(`cannot open: ${(e as Error).message}`, { file: path });
      }
      try {
        let done = 0;
        while (done < dest.byteLength) {
          const got = readSync(fd, dest, done, Math.min(READ_CHUNK, dest.byteLength - done), position + done);
          if (got === 0) break;
          done += got;
        }
        return done;
      } finally {
        closeSync(fd);
      }
    },
  };
}

/** A model directory on disk. */
export function dirFiles(dir: string): FileSet {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new StreamlmError('model directory not found', { file: dir });
  return {
    label: dir,
    has: (name) => existsSync(join(dir, name)),
    names: () => readdirSync(dir).sort(),
    path: (name) => join(dir, name),
    text(name) {
      try {
        return readFileSync(join(dir, name), 'utf8');
      } catch (e) {
        throw new StreamlmError(`cannot read: ${(e as Error).message}`, { file: join(dir, name) });
      }
    },
    open: (name) => fileSource(join(dir, name)),
  };
}

/** Node 20 does not apply tsx inside workers, so the worker is eval'd source text (worker.ts). */
function startWorker(program: string, init: WorkerInit): PoolWorker {
  const source = `'use strict';
const { parentPort, workerData } = require('node:worker_threads');
${program}
main(workerData, () => parentPort.postMessage('ready'));
`;
  const w = new Worker(source, { eval: true, workerData: init });
  w.unref();
  const ready = new Promise<void>((resolve, reject) => {
    w.once('message', () => resolve());
    w.once('error', reject);
    w.once('exit', (code) => reject(new Error(`worker ${init.tid} exited with code ${code} during start`)));
  });
  return { ready, terminate: async () => { await w.terminate(); } };
}

function kernels(build: KernelBuild): Promise<Uint8Array> {
  const url = new URL(`../../build/${build === 'relaxed' ? 'kernels-relaxed' : 'kernels'}.wasm`, import.meta.url);
  try {
    return Promise.resolve(new Uint8Array(readFileSync(url)));
  } catch {
    return Promise.reject(new StreamlmError('not found; run `npm run build:kernels`', { file: url.pathname }));
  }
}

/**
 * Node 20's V8 (11.3) validates relaxed SIMD only behind --experimental-wasm-relaxed-simd; the flag
 * is process-wide and read when a module is compiled, so setting it here, before the kernels are,
 * covers the main thread and every pool worker started afterwards. Node >= 22 needs no flag.
 */
function relaxedSimd(): boolean {
  if (validatesRelaxedSimd()) return true;
  setFlagsFromString('--experimental-wasm-relaxed-simd');
  return validatesRelaxedSimd();
}

const SIMD_CHOICES = ['auto', 'baseline', 'relaxed'] as const;

/** STREAMLM_SIMD=auto|baseline|relaxed picks the kernels build without code (A/B runs, a suspect CPU). */
function simdChoice(): 'auto' | KernelBuild | null {
  const v = process.env.STREAMLM_SIMD;
  if (v === undefined || v === '') return null;
  if (!(SIMD_CHOICES as readonly string[]).includes(v)) {
    throw new StreamlmError(`must be one of ${SIMD_CHOICES.join(', ')}, got ${JSON.stringify(v)}`, { field: 'STREAMLM_SIMD' });
  }
  return v as 'auto' | KernelBuild;
}

export const nodePlatform: Platform = {
  name: 'node',
  cores: () => availableParallelism(),
  kernels,
  relaxedSimd,
  simdChoice,
  sharedMemoryMissing: () => null,
  startWorker,
  file: fileSource,
  dir: dirFiles,
  warn: (message) => { process.stderr.write(`streamlm: warning: ${message}\n`); },
};
