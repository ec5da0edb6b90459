import { exportGguf } from '../src/export/gguf.js';
import { loadModel } from '../src/model.js';
import { relErr } from './helpers/fixtures.js';
const dir = 'models/novels-8m-sink';
const ids = Array.from({ length: 48 }, (_, i) => (i * 131 + 7) % 8192);
const lg = async (p: string, dtype: 'auto' | 'f32' = 'auto') => { const m = await loadModel(p, { threads: 1, dtype }); const s = m.session({ cache: 'dense', maxTokens: 64, prefillChunk: 64 }); const l = s.forwardAll(ids); s.close(); const wb = m.weightBytes; await m.close(); return { l, wb }; };
const hf = await lg(dir);
for (const t of ['q8_0', 'q6_K', 'q5_K', 'q4_K', 'q4_0'] as const) {
  const t0 = performance.now();
  const r = exportGguf(dir, `/tmp/gg/n-${t}.gguf`, { dtype: t });
  const t1 = performance.now();
  const a = await lg(`/tmp/gg/n-${t}.gguf`), b = await lg(`/tmp/gg/n-${t}.gguf`, 'f32');
  console.log(t, ((t1 - t0) / 1000).toFixed(1) + 's', JSON.stringify(r.types), r.fallbacks.map((f) => f.name).slice(0, 2), 'vsHF', relErr(a.l, hf.l).toFixed(4), 'vsDequant', relErr(a.l, b.l).toFixed(4), a.wb, b.wb);
}
