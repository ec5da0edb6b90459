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
const ids = model.encode(longevalText());
const s = model.session({ cache });
const log: { tokens: number; rss_mb: number; ms_per_token: number; cache_len: number }[] = [];
let t0 = performance.now();
for (let t = 0; t < total; t++) {
  s.step(ids[t % ids.length]);
  if ((t + 1) % every === 0) {
    const now = performance.now();
    const row = { tokens: t + 1, rss_mb: +rssMb().toFixed(1), ms_per_token: +((now - t0) / every).toFixed(4), cache_len: s.cache.length };
    log.push(row);
    console.error(`${String(row.tokens).padStart(9)} tok  rss ${row.rss_mb.toFixed(1)} MB  ${row.ms_per_token.toFixed(3)} ms/tok  cache ${row.cache_len}`);
    t0 = performance.now();
  }
}
s.close();
await model.close();
const first = log[0], last = log[log.length - 1];
const rss_growth = (last.rss_mb - first.rss_mb) / first.rss_mb;
const ms = log.map((r) => r.ms_per_token);
console.log(JSON.stringify({ model: dir, cache, tokens: total, every, rss_first_mb: first.rss_mb, rss_last_mb: last.rss_mb, rss_growth, ms_first: ms[0], ms_last: ms[ms.length - 1], ms_min: Math.min(...ms), ms_max: Math.max(...ms), flat_memory: Math.abs(rss_growth) <= 0.02, log }));
