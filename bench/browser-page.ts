// bench:browser's page script (bundled by bench/browser.ts): drives our engine worker and wllama
// (llama.cpp in wasm, @wllama/wllama) in the same page, on the same weights and thread count.
import * as wllamaModule from '@wllama/wllama';

/** The part of wllama's API used here, typed locally (its package types do not resolve under NodeNext). */
interface Timings { prompt_per_second: number; predicted_per_second: number; prompt_n: number; predicted_n: number }
interface WllamaLike {
  setCompat(mode: null): void;
  loadModelFromUrl(url: string, params: object): Promise<void>;
  createCompletion(options: object): Promise<{ timings?: Timings }>;
}
interface WllamaClass { new (paths: { default: string }, config: object): WllamaLike; getLibllamaVersion?(): string }
const Wllama = (wllamaModule as unknown as { Wllama: WllamaClass }).Wllama;

const worker = new Worker('/bench-worker.js', { type: 'module' });
function ask<T>(job: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    worker.onmessage = (e: MessageEvent<{ ok: boolean; error?: string }>) => (e.data.ok ? resolve(e.data as T) : reject(new Error(e.data.error)));
    worker.postMessage(job);
  });
}

let wllama: WllamaLike | null = null;

async function uaMemory(): Promise<number | null> {
  const m = (performance as unknown as { measureUserAgentSpecificMemory?: () => Promise<{ bytes: number }> }).measureUserAgentSpecificMemory;
  return m && globalThis.crossOriginIsolated ? (await m.call(performance)).bytes : null;
}

const api = {
  ours: ask,
  async wllamaLoad(url: string, threads: number, nCtx: number): Promise<string> {
    wllama = new Wllama({ default: '/wllama.wasm' }, { suppressNativeLog: true });
    // The package ships one wasm build (memory64, no asyncify); its own tests turn compat mode off the same way.
    wllama.setCompat(null);
    await wllama.loadModelFromUrl(url, { n_threads: threads, n_ctx: nCtx, n_batch: 512, useCache: false });
    return Wllama.getLibllamaVersion?.() ?? '';
  },
  /**
   * A prompt of `n` tokens, then `gen` greedy tokens with EOS ignored; llama.cpp's own timings.
   * wllama takes text only, and the exporter's GGUF carries a placeholder vocabulary (`tok_<id>`
   * plus byte tokens 3-258), so the prompt is `n` ASCII letters, one byte token each (the cost of a
   * token does not depend on its id). Byte tokens are banned from sampling: wllama's JSON reply
   * fails on the invalid UTF-8 they decode to (a logit bias, no change to the forward pass timed).
   */
  async wllamaTime(n: number, gen: number): Promise<{ prefill_tok_s: number; decode_tok_s: number; prompt_n: number; predicted_n: number }> {
    const ban = Array.from({ length: 256 }, (_, i) => [i + 3, false]);
    const prompt = 'a'.repeat(n);
    const r = await wllama!.createCompletion({ prompt, max_tokens: gen, temperature: 0, ignore_eos: true, cache_prompt: false, logit_bias: ban });
    const t = r.timings!;
    return { prefill_tok_s: t.prompt_per_second, decode_tok_s: t.predicted_per_second, prompt_n: t.prompt_n, predicted_n: t.predicted_n };
  },
  uaMemory,
  /**
   * The worker's long-stream memory trace, with the page's whole memory
   * (measureUserAgentSpecificMemory: a window API that needs cross-origin isolation) before, every
   * `uaEveryMs` during, and after the run.
   */
  async memoryRun(job: object, uaEveryMs: number): Promise<object> {
    const ua: (number | null)[] = [await uaMemory()];
    let running = true;
    const sampler = (async () => {
      while (running) {
        await new Promise((r) => setTimeout(r, uaEveryMs));
        if (running) ua.push(await uaMemory());
      }
    })();
    try {
      const trace = await ask<object>(job);
      running = false;
      await sampler;
      ua.push(await uaMemory());
      return { ...trace, ua_bytes: ua };
    } finally {
      running = false;
    }
  },
};
(window as unknown as { bench: typeof api }).bench = api;
document.title = 'ready';
