import { basename } from 'node:path';
import { StreamlmError } from '../errors.js';
import { attentionMaps } from '../eval/attention.js';
import { heatmapSvg } from '../eval/heatmap.js';
import { num, parseFlags, str } from './args.js';
import { MODEL_FLAGS, MODEL_HELP, modelFlags, loadCliModel } from './common.js';
import { checkOutputFile, readTextFile, writeFileAtomic } from './files.js';

const HELP = `usage: streamlm attention-map [--model DIR] --text FILE [--layers 0,1,-1] [--tokens 64] --out map.svg
                             [--threads N] [--dtype auto|f32|q8_0|q6_K|q5_K|q4_K|q4_0]
Heatmaps of head-averaged attention over the first tokens (the paper's Figure 2) written to --out,
and a table on stdout of the attention share on position 0 per layer.
${MODEL_HELP}`;

export async function runAttentionMap(argv: string[]): Promise<void> {
  const { flags } = parseFlags(argv, { ...MODEL_FLAGS, text: { type: 'string' }, layers: { type: 'string' }, out: { type: 'string' }, tokens: { type: 'string' } }, 'attention-map');
  if (flags.help) { console.log(HELP); return; }
  const file = str(flags, 'text');
  if (!file) throw new StreamlmError('a text file is required', { field: '--text' });
  const outArg = str(flags, 'out');
  if (!outArg) throw new StreamlmError('an output path is required', { field: '--out' });
  const T = num(flags, 'tokens', { int: true, min: 2, max: 512 }) ?? 64;
  // Every input and output is checked before the model is loaded.
  const out = checkOutputFile(outArg, '--out');
  const text = readTextFile(file, '--text');
  if (!text.trim()) throw new StreamlmError('the text file is empty', { file, field: '--text' });
  const wanted = (str(flags, 'layers') ?? '0,1,-1').split(',').map((s) => {
    const n = Number(s.trim());
    if (s.trim() === '' || !Number.isInteger(n)) throw new StreamlmError(`expected integers separated by commas, got '${s}'`, { field: '--layers' });
    return n;
  });
  const m = modelFlags(flags);
  const model = await loadCliModel(m);
  try {
    const L = model.hparams.numLayers;
    const layers = wanted.map((n) => {
      if (n >= L || n < -L) throw new StreamlmError(`layer ${n} is outside [-${L}, ${L - 1}]`, { field: '--layers' });
      return n < 0 ? L + n : n;
    });
    const ids = model.encode(text).slice(0, T);
    if (ids.length < 2) throw new StreamlmError('the text gives fewer than 2 tokens', { file, field: '--text' });
    if (ids.length < T) console.error(`[streamlm] the text gives only ${ids.length} tokens; mapping those (--tokens ${T})`);
    const maps = attentionMaps(model, ids, ids.length);
    console.log('layer  attention on token 0  heads > 0.3');
    for (const mp of maps) console.log(`${String(mp.layer).padStart(5)}  ${(mp.sinkShare * 100).toFixed(1).padStart(19)}%  ${(mp.sinkHeads * 100).toFixed(0).padStart(10)}%`);
    const svg = heatmapSvg(maps.filter((mp) => layers.includes(mp.layer)), ids.length, `${basename(m.dir)}: attention over the first ${ids.length} tokens`);
    writeFileAtomic(out, svg, '--out');
    console.error(`[streamlm] wrote ${outArg}`);
  } finally {
    await model.close();
  }
}
