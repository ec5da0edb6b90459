import { StreamlmError } from '../errors.js';
import { compress } from '../lowrank/compress.js';
import { list, num, parseFlags, str } from './args.js';

const HELP = `usage: streamlm compress --model DIR --out DIR2 (--rank-ratio R | --energy E) [--method svd|whiten]
                         [--calib FILE... --calib-tokens N] [--threads N] [--json]
Factors every linear layer W (N, K) into B (N, r) · A (r, K) and writes a model directory that loads
with --model DIR2 everywhere (see docs/lowrank.md).
  --rank-ratio R   r = round(R · min(N, K)), R in (0, 1]; 1 keeps full rank (exact)
  --energy E       smallest r keeping a fraction E of Σσ², E in (0, 1]
  --method whiten  SVD-LLM: whiten with activation statistics of --calib text (.txt or .xz) first
  --calib-tokens N calibration tokens (default 2048; the text must hold that many)`;

export async function runCompress(argv: string[]): Promise<void> {
  const { flags } = parseFlags(argv, {
    model: { type: 'string' }, out: { type: 'string' }, 'rank-ratio': { type: 'string' }, energy: { type: 'string' },
    method: { type: 'string' }, calib: { type: 'string', multiple: true }, 'calib-tokens': { type: 'string' },
    threads: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  }, 'compress');
  if (flags.help) { console.log(HELP); return; }
  const model = str(flags, 'model');
  if (!model) throw new StreamlmError('a model directory is required', { field: '--model' });
  const out = str(flags, 'out');
  if (!out) throw new StreamlmError('an output directory is required', { field: '--out' });
  const fraction = (name: string): number | undefined => {
    const v = str(flags, name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 1) throw new StreamlmError(`must be a number in (0, 1], got '${v}'`, { field: `--${name}` });
    return n;
  };
  const method = str(flags, 'method') ?? 'svd';
  if (method !== 'svd' && method !== 'whiten') throw new StreamlmError(`must be svd or whiten, got '${method}'`, { field: '--method' });
  const r = await compress({
    model, out, rankRatio: fraction('rank-ratio'), energy: fraction('energy'), method,
    calib: list(flags, 'calib'), calibTokens: num(flags, 'calib-tokens', { int: true, min: 16 }),
    threads: num(flags, 'threads', { int: true, min: 1, max: 256 }),
    onProgress: (d, t, name) => { if (process.stderr.isTTY) process.stderr.write(`\rcompress ${d}/${t} ${name}\x1b[K${d === t ? '\n' : ''}`); },
  });
  const pct = (100 * r.factorParams / r.denseParams).toFixed(1);
  console.error(`[streamlm] ${Object.keys(r.ranks).length} linears factored (${r.method}); their parameters: ${r.denseParams} -> ${r.factorParams} (${pct}%); wrote ${r.out} (${(r.bytes / 1e6).toFixed(2)} MB) in ${r.seconds.toFixed(1)} s`);
  if (flags.json) console.log(JSON.stringify(r));
}
