// The paper's Figure 10 on our engine: per-token decode latency and memory of StreamingLLM
// (sink:4+(C−4)) against sliding window with re-computation (recompute:C), per cache size C.
// Usage: npm run bench:streaming -- [--model DIR] [--sizes 256,512,...] [--steps N] [--threads N] [--json]
import { loadModel } from '../src/index.js';
import { defaultModelDir } from '../src/cli/common.js';
import { benchArgs, longevalText } from './common.js';

const args = benchArgs(process.argv.slice(2));
const dir = args.get('model') ?? defaultModelDir();
const sizes = (args.get('sizes') ?? '256,512,1024,2048,4096').split(',').map(Number);
const steps = Number(args.get('steps') ?? 16);
const model = await loadModel(dir, { threads: args.has('threads') ? Number(args.get('threads')) : undefined });
const ids = model.encode(longevalText(200_000));

function measure(cache: string, size: number): { ms: number; peakMb: number } {
  const rt = model.net.rt;
  rt.resetPeakScratch();
  const s = model.session({ cache, prefillChunk: 64 });
  // Fill the cache first: the cost that matters is the steady state, once evictions happen.
  s.prefill(ids.slice(0, size));
  let t = size;
  s.step(ids[t++]); // warm-up
  const n = cache.startsWith('recompute') ? Math.max(2, Math.min(steps, Math.ceil(8192 / size))) : steps * 4;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) s.step(ids[t++]);
  const ms = (performance.now() - t0) / n;
  // Everything the session allocated above its mark: the KV cache plus the forward's activations.
  const peakMb = rt.peakScratchBytes / 2 ** 20;
  s.close();
  return { ms, peakMb };
}

const sink_ms: number[] = [], recompute_ms: number[] = [], sink_peak_mb: number[] = [], recompute_peak_mb: number[] = [];
for (const c of sizes) {
  const a = measure(`sink:4+${c - 4}`, c);
  const b = measure(`recompute:${c}`, c);
  sink_ms.push(+a.ms.toFixed(3)); sink_peak_mb.push(+a.peakMb.toFixed(2));
  recompute_ms.push(+b.ms.toFixed(3)); recompute_peak_mb.push(+b.peakMb.toFixed(2));
  console.error(`cache ${String(c).padStart(5)}: sink ${a.ms.toFixed(2).padStart(9)} ms/tok ${a.peakMb.toFixed(1).padStart(7)} MB | recompute ${b.ms.toFixed(2).padStart(9)} ms/tok ${b.peakMb.toFixed(1).padStart(7)} MB | speedup ${(b.ms / a.ms).toFixed(1)}x`);
}
await model.close();
const speedup = sink_ms.map((s, i) => +(recompute_ms[i] / s).toFixed(2));
console.log(JSON.stringify({ model: dir, threads: model.threads, cache_sizes: sizes, sink_ms, recompute_ms, speedup, sink_peak_mb, recompute_peak_mb }));
