// The timed loop of bench:browser, the same code in the page's worker and in Node: an untimed
// warm-up (V8 tiers wasm up from Liftoff after some hundreds of ms), then the prompt in one prefill,
// then `gen` single-token greedy steps. Also the long-stream memory probe.
import type { Model } from '../src/model.js';

export interface Speeds { prefill_tok_s: number; decode_tok_s: number }

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/**
 * An untimed warm-up of `ms` on a throwaway session: V8 runs wasm in Liftoff first and tiers hot
 * functions up to TurboFan while they run, so timing starts only after this.
 */
export function warmUp(model: Model, prompt: number[], cache: string, ms = 600): void {
  const warm = model.session({ cache, prefillChunk: prompt.length });
  const t = performance.now();
  while (performance.now() - t < ms) { let l = warm.prefill(prompt.slice(0, 32)); for (let i = 0; i < 8; i++) l = warm.step(argmax(l)); }
  warm.close();
}

/**
 * The prompt in one prefill, then `gen` greedy steps, on a fresh session (call warmUp first).
 * `reuseLogits`: every step writes its logits into the previous step's array (ForwardOptions.into)
 * instead of a new one.
 */
export function timeWarm(model: Model, prompt: number[], gen: number, cache: string, reuseLogits = false): Speeds {
  const s = model.session({ cache, prefillChunk: prompt.length });
  try {
    const t0 = performance.now();
    let logits = s.prefill(prompt);
    const t1 = performance.now();
    for (let i = 0; i < gen; i++) logits = s.step(argmax(logits), reuseLogits ? { into: logits } : {});
    const t2 = performance.now();
    return { prefill_tok_s: prompt.length / ((t1 - t0) / 1000), decode_tok_s: gen / ((t2 - t1) / 1000) };
  } finally {
    s.close();
  }
}

export function timeModel(model: Model, prompt: number[], gen: number, cache: string): Speeds {
  warmUp(model, prompt, cache);
  return timeWarm(model, prompt, gen, cache);
}

export interface MemoryTrace {
  tokens: number; every: number; tok_s: number;
  /** `WebAssembly.Memory.buffer.byteLength` before token 0, every `every` tokens, and after the last. */
  wasm_bytes: number[];
  /** The page's measureUserAgentSpecificMemory() over the run (null where unavailable); the page fills it. */
  ua_bytes: (number | null)[];
}

/** Generates `tokens` greedy tokens on one session, recording wasm memory every `every` tokens. */
export function memoryTrace(model: Model, prompt: number[], tokens: number, every: number, cache: string): Omit<MemoryTrace, 'ua_bytes'> {
  const s = model.session({ cache });
  const wasm: number[] = [];
  const t0 = performance.now();
  try {
    let logits = s.prefill(prompt);
    for (let i = 0; i < tokens; i++) {
      if (i % every === 0) wasm.push(model.net.rt.memory.buffer.byteLength);
      logits = s.step(argmax(logits));
    }
    wasm.push(model.net.rt.memory.buffer.byteLength);
  } finally {
    s.close();
  }
  return { tokens, every, wasm_bytes: wasm, tok_s: tokens / ((performance.now() - t0) / 1000) };
}
