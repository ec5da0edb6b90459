// Soak: stream many tokens through sink:4+1020 and log RSS and ms/token every 10k tokens.
// Memory must stay flat (end RSS within 2% of RSS at 10k tokens) and so must latency.
// Usage: npm run bench:soak -- --tokens 1000000 [--model DIR] [--cache sink:4+1020] [--every 10000]
import { loadModel } from '../src/index.js';
import { defaultModelDir } from '../src/cli/common.js';
import { benchArgs, longevalText, rssMb } from './common.js';

const args = benchArgs(process.argv.slice(2));
const dir = args.get('model') ?? defaultModelDir();
const total = Number(args.get('tokens') ?? 1_000_000);
const every = Number(args.get('every') ?? 10_000);
const cache = args.get('cache') ?? 'sink:4+1020';
const model = await loadModel(dir, { threads: args.has('threads') ? Number(args.get('threads')) : undefined });
// 2M characters (about 500k tokens) loop as often as needed; encoding all 10 MB would only cost start-up.
const ids = model.encode(longevalText(2_000_000));
const s = model.session({ cache });
const log: { tokens: number; rss_mb: number; heap_mb: number; wasm_mb: number; ms_per_token: number; cache_len: number }[] = [];
let t0 = performance.now();
for (let t = 0; t < total; t++) {
  s.step(ids[t % ids.length]);
  if ((t + 1) % every === 0) {
    const now = performance.now();
    // wasm memory holds weights, KV and activations: it must not move at all. RSS also carries the
    // JS heap, which breathes with garbage collection.
    const row = { tokens: t + 1, rss_mb: +rssMb().toFixed(1), heap_mb: +(process.memoryUsage().heapUsed / 2 ** 20).toFixed(1), wasm_mb: +(model.net.rt.bytesAllocated / 2 ** 20).toFixed(2), ms_per_token: +((now - t0) / every).toFixed(4), cache_len: s.cache.length };
    log.push(row);
    console.error(`${String(row.tokens).padStart(9)} tok  rss ${row.rss_mb.toFixed(1)} MB  wasm ${row.wasm_mb} MB  ${row.ms_per_token.toFixed(3)} ms/tok  cache ${row.cache_len}`);
    t0 = performance.now();
  }
}
s.close();
await model.close();
const first = log[0], last = log[log.length - 1];
const rss_growth = (last.rss_mb - first.rss_mb) / first.rss_mb;
const ms = log.map((r) => r.ms_per_token);
console.log(JSON.stringify({ model: dir, cache, tokens: total, every, rss_first_mb: first.rss_mb, rss_last_mb: last.rss_mb, rss_growth, ms_first: ms[0], ms_last: ms[ms.length - 1], ms_min: Math.min(...ms), ms_max: Math.max(...ms), flat_memory: Math.abs(rss_growth) <= 0.02, wasm_first_mb: first.wasm_mb, wasm_last_mb: last.wasm_mb, log }));
