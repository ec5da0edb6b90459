// streamlm/browser: the engine in a page. Same kernels, model code and cache policies as Node; the
// platform seams (src/platform/web.ts) give Web Workers, Blob reads and fetched kernels. Use it
// inside a dedicated Web Worker (see docs/browser.md): the pool's calling thread blocks in
// Atomics.wait, which a page's main thread may not do.
import { loadModel as loadFiles, type LoadOptions, type Model } from '../model.js';
import type { FileSet } from '../platform/types.js';
import { filesFromPicked, filesFromUrl, ggufFromUrl } from './files.js';
import type { DownloadProgress } from './download.js';

// generate() yields to the event loop between tokens with setImmediate, which browsers lack; a
// MessageChannel post is the same kind of macrotask, without setTimeout's 4 ms clamp.
if (typeof (globalThis as { setImmediate?: unknown }).setImmediate !== 'function') {
  const ch = new MessageChannel();
  const queue: (() => void)[] = [];
  ch.port1.onmessage = () => queue.shift()?.();
  (globalThis as { setImmediate?: unknown }).setImmediate = (fn: () => void): void => { queue.push(fn); ch.port2.postMessage(0); };
}

export interface BrowserLoadOptions extends LoadOptions {
  /** Download progress per file (URL sources). */
  onProgress?: (p: DownloadProgress) => void;
  /** Cache API bucket for downloads; null: do not cache. Default 'streamlm-models'. */
  cacheName?: string | null;
  signal?: AbortSignal;
}

/** A model source in a page: the URL of an HF-layout folder or of a .gguf file, Files the user picked (a folder, or one .gguf), or a FileSet. */
export type BrowserModelSource = string | URL | FileList | File[] | FileSet;

function isFileSet(x: unknown): x is FileSet {
  return typeof x === 'object' && x !== null && typeof (x as FileSet).open === 'function' && typeof (x as FileSet).label === 'string';
}

/**
 * Loads a model in a page (call it in a Web Worker). Weights are copied into wasm memory tensor by
 * tensor, in 16 MiB slices of the downloaded or picked Blob.
 */
export async function loadModel(source: BrowserModelSource, opts: BrowserLoadOptions = {}): Promise<Model> {
  let files: FileSet;
  if (typeof source === 'string' || source instanceof URL) {
    const url = new URL(String(source), (globalThis as { location?: { href: string } }).location?.href).href;
    const dl = { onProgress: opts.onProgress, cacheName: opts.cacheName, signal: opts.signal };
    files = /\.gguf$/i.test(new URL(url).pathname) ? await ggufFromUrl(url, dl) : await filesFromUrl(url, dl);
  } else if (isFileSet(source)) {
    files = source;
  } else {
    files = filesFromPicked(source);
  }
  return loadFiles(files, opts);
}

export { Model, type LoadOptions } from '../model.js';
export { Session, type SessionOptions, type CacheStats } from '../session.js';
export { generate, type GenerateOptions, type GeneratedToken, type GenerationStats } from '../generate/generate.js';
export { DecodeStepper, type DecodeStep, type FinishReason } from '../generate/stepper.js';
export { Sampler, type SamplerOptions } from '../generate/sampler.js';
export { parsePolicy, type CachePolicy, POLICY_FORMS } from '../cache/policy.js';
export { nll } from '../eval/ppl.js';
export { StreamlmError } from '../errors.js';
export type { HParams } from '../models/config.js';
export type { ByteSource, FileSet } from '../platform/types.js';
export { blobFiles, blobSource, setKernelsUrl, webPlatform } from '../platform/web.js';
export { filesFromPicked, filesFromUrl, ggufFromUrl } from './files.js';
export { download, type DownloadOptions, type DownloadProgress } from './download.js';
export { saveSnapshot, loadSnapshot, deleteSnapshot } from './store.js';
export { loadWebEspeak, espeakAvailable, WEB_ESPEAK_INSTALL } from './espeak-web.js';
export { SpeechStream, type SpokenChunk, type SpeechStreamOptions } from '../speech/stream.js';
export { CHAT_CHUNKER } from '../speech/chunker.js';
export { PhraseChunker, type Phrase, type ChunkerOptions } from '../speech/chunker.js';
export type { Synthesizer, VoiceOptions } from '../speech/synth.js';
