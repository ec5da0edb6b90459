// The browser's side of the platform seams: pool workers are Web Workers over the shared memory,
// files are Blobs (picked Files, or downloads kept in the Cache API) read with FileReaderSync, and
// the kernels come from kernels.wasm next to the bundle. The engine runs inside a dedicated Web
// Worker: the pool's calling thread blocks in Atomics.wait, and FileReaderSync exists only there.
import { StreamlmError } from '../errors.js';
import type { WorkerInit } from '../runtime/control.js';
import { validatesRelaxedSimd } from './relaxed.js';
import type { ByteSource, FileSet, KernelBuild, Platform, PoolWorker } from './types.js';

/** Bytes per FileReaderSync call: a tensor is copied into wasm memory in pieces this size. */
const READ_CHUNK = 16 * 1024 * 1024;

interface SyncReader { readAsArrayBuffer(b: Blob): ArrayBuffer; readAsText(b: Blob): string }
type SyncReaderCtor = new () => SyncReader;

function syncReader(what: string): SyncReader {
  const Ctor = (globalThis as { FileReaderSync?: SyncReaderCtor }).FileReaderSync;
  if (!Ctor) throw new StreamlmError('models load inside a Web Worker (FileReaderSync is missing on this thread); use streamlm/browser from a worker', { file: what });
  return new Ctor();
}

/** A Blob (a File, or a cached download) read in chunks. */
export function blobSource(blob: Blob, name: string): ByteSource {
  return {
    size: blob.size,
    read(dest: Uint8Array, position: number): number {
      const reader = syncReader(name);
      let done = 0;
      while (done < dest.byteLength && position + done < blob.size) {
        const end = Math.min(blob.size, position + done + Math.min(READ_CHUNK, dest.byteLength - done));
        let chunk: ArrayBuffer;
        try {
          chunk = reader.readAsArrayBuffer(blob.slice(position + done, end));
        } catch (e) {
          throw new StreamlmError(`cannot read: ${(e as Error).message}`, { file: name });
        }
        dest.set(new Uint8Array(chunk), done);
        done += chunk.byteLength;
      }
      return done;
    },
  };
}

/** The files of one model by name, as Blobs; `label` (a URL or folder name) names them in messages. */
export function blobFiles(label: string, files: ReadonlyMap<string, Blob>): FileSet {
  const path = (name: string): string => `${label.replace(/\/+$/, '')}/${name}`;
  const get = (name: string): Blob => {
    const b = files.get(name);
    if (!b) throw new StreamlmError('not found among the model files', { file: path(name) });
    return b;
  };
  return {
    label,
    has: (name) => files.has(name),
    names: () => [...files.keys()].sort(),
    path,
    text(name) {
      try {
        return syncReader(path(name)).readAsText(get(name));
      } catch (e) {
        if (e instanceof StreamlmError) throw e;
        throw new StreamlmError(`cannot read: ${(e as Error).message}`, { file: path(name) });
      }
    },
    open: (name) => blobSource(get(name), path(name)),
  };
}

/** Where kernels.wasm is fetched from: beside the bundle unless the page says otherwise (setKernelsUrl). */
let kernelsUrl: string | URL = new URL('./kernels.wasm', import.meta.url);

/**
 * Points the runtime at kernels.wasm when the page serves it elsewhere than beside the bundle; the
 * relaxed-SIMD build, kernels-relaxed.wasm, is fetched from the same folder.
 */
export function setKernelsUrl(url: string | URL): void {
  kernelsUrl = url;
}

async function kernels(build: KernelBuild): Promise<ArrayBuffer> {
  const url = build === 'relaxed' ? new URL('kernels-relaxed.wasm', new URL(kernelsUrl, globalThis.location?.href)) : kernelsUrl;
  const res = await fetch(url);
  if (!res.ok) throw new StreamlmError(`HTTP ${res.status} fetching the kernels`, { file: String(url) });
  return res.arrayBuffer();
}

function startWorker(program: string, init: WorkerInit): PoolWorker {
  const source = `'use strict';
${program}
self.onmessage = (e) => { self.onmessage = null; main(e.data, () => postMessage('ready')); };
`;
  const url = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
  const w = new Worker(url, { name: `streamlm pool ${init.tid}` });
  const ready = new Promise<void>((resolve, reject) => {
    w.onmessage = () => { URL.revokeObjectURL(url); resolve(); };
    w.onerror = (e) => reject(new Error(`worker ${init.tid} failed to start: ${e.message}`));
  });
  w.postMessage(init);
  return { ready, terminate: () => { w.terminate(); return Promise.resolve(); } };
}

const noPaths = (what: string): never => {
  throw new StreamlmError('browsers have no file paths; pass a URL, Files, or a FileSet', { file: what });
};

export const webPlatform: Platform = {
  name: 'browser',
  cores: () => (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1,
  kernels,
  relaxedSimd: validatesRelaxedSimd,
  simdChoice: () => null,
  sharedMemoryMissing: () => ((globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated
    ? null
    : 'the page is not cross-origin isolated, so workers cannot share memory: serve it with the headers Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp'),
  startWorker,
  file: noPaths,
  dir: noPaths,
  warn: (message) => console.warn(`streamlm: warning: ${message}`),
};
