import { checkOutputFile } from './files.js';
import { StreamlmError } from '../errors.js';
import { exportGguf, GGUF_TYPES, type GgufDtype } from '../export/gguf.js';
import { parseFlags, str } from './args.js';

const HELP = `usage: streamlm quantize --model DIR --out FILE.gguf --type TYPE [--json]
Writes the Hugging Face model in DIR (Llama, Mistral or Qwen2) as one GGUF file that loads with
--model FILE.gguf everywhere and runs in llama.cpp. 2-D weights are stored as TYPE; norms and
biases stay f32. Rows that cannot hold TYPE's blocks fall back per tensor, as llama.cpp does.
  --type   ${GGUF_TYPES.join(', ')}`;

/** The CLI command; a promise so every command has one shape (the work itself is synchronous). */
export function runQuantize(argv: string[]): Promise<void> {
  return Promise.resolve().then(() => quantize(argv));
}

function quantize(argv: string[]): void {
  const { flags } = parseFlags(argv, {
    model: { type: 'string' }, out: { type: 'string' }, type: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  }, 'quantize');
  if (flags.help) { console.log(HELP); return; }
  const model = str(flags, 'model');
  if (!model) throw new StreamlmError('a model directory is required', { field: '--model' });
  const out = str(flags, 'out');
  if (!out) throw new StreamlmError('an output file is required', { field: '--out' });
  if (!out.endsWith('.gguf')) throw new StreamlmError(`the output must end in .gguf, got '${out}'`, { field: '--out' });
  const type = str(flags, 'type');
  if (!type) throw new StreamlmError(`a type is required (${GGUF_TYPES.join(', ')})`, { field: '--type' });
  if (!(GGUF_TYPES as readonly string[]).includes(type)) throw new StreamlmError(`expected one of ${GGUF_TYPES.join(', ')}, got '${type}'`, { field: '--type' });
  checkOutputFile(out, '--out');
  const t0 = performance.now();
  const r = exportGguf(model, out, {
    dtype: type as GgufDtype,
    onTensor: (name, d, n) => { if (process.stderr.isTTY) process.stderr.write(`\rquantize ${d}/${n} ${name}\x1b[K${d === n ? '\n' : ''}`); },
  });
  const seconds = (performance.now() - t0) / 1000;
  const counts = Object.entries(r.types).map(([k, v]) => `${v} ${k}`).join(', ');
  console.error(`[streamlm] wrote ${r.file}: ${r.tensors} tensors (${counts}), ${(r.dataBytes / 1e6).toFixed(2)} MB of weights in ${seconds.toFixed(1)} s`);
  for (const f of r.fallbacks) console.error(`[streamlm]   ${f.name}: ${f.reason}`);
  if (flags.json) console.log(JSON.stringify({ ...r, seconds }));
}
