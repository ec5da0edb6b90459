// bench:browser's engine worker (bundled by bench/browser.ts): loads the served model through
// streamlm/browser and runs bench/browser-timing.ts on request.
import { loadModel, type Model } from '../src/browser/index.js';
import { memoryTrace, timeWarm, warmUp } from './browser-timing.js';

type Job =
  | { t: 'load'; url: string; threads: number; dtype: 'auto' | 'f32' | 'q8_0' }
  | { t: 'warm'; prompt: number[]; cache: string }
  | { t: 'time'; prompt: number[]; gen: number; cache: string; reuseLogits: boolean }
  | { t: 'memory'; prompt: number[]; tokens: number; every: number; cache: string };

let model: Model | null = null;

self.onmessage = async (e: MessageEvent<Job>) => {
  const j = e.data;
  try {
    if (j.t === 'load') {
      await model?.close();
      model = await loadModel(j.url, { threads: j.threads, dtype: j.dtype, cacheName: null });
      postMessage({ ok: true, threads: model.threads, isolated: globalThis.crossOriginIsolated, simd: model.simd });
    } else if (j.t === 'warm') {
      warmUp(model!, j.prompt, j.cache);
      postMessage({ ok: true });
    } else if (j.t === 'time') {
      postMessage({ ok: true, ...timeWarm(model!, j.prompt, j.gen, j.cache, j.reuseLogits) });
    } else {
      // measureUserAgentSpecificMemory is a window API: the page samples it while this runs.
      postMessage({ ok: true, ...memoryTrace(model!, j.prompt, j.tokens, j.every, j.cache) });
    }
  } catch (err) {
    postMessage({ ok: false, error: err instanceof Error ? err.message : String(err) });
  }
};
