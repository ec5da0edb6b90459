import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StreamlmError } from '../errors.js';
import { compress, type CompressReport } from '../lowrank/compress.js';
import { list, num, parseFlags, str } from './args.js';
import { checkModelPath, plural } from './common.js';
import { checkWritableDir, readTextFile } from './files.js';

/** The text the perplexity before and after is measured on when --eval-text is not given. */
export const SAMPLE_TEXT = fileURLToPath(new URL('../../models/samples/pride-and-prejudice.txt', import.meta.url));

const HELP = `usage: streamlm compress --model DIR --out DIR2 (--rank-ratio R | --energy E) [--method svd|whiten]
                         [--calib FILE... --calib-tokens N] [--eval-text FILE] [--eval-tokens N]
                         [--threads N] [--json]
Factors every linear layer W (N, K) into B (N, r) · A (r, K), stored in the source's dtype, and
writes a model directory with its own model card (README.md) that loads with --model DIR2
everywhere (see docs/lowrank.md). Prints parameters, bytes and perplexity before and after on
stderr (--json: the report as JSON on stdout), with a warning when perplexity rises by over 10%.
  --rank-ratio R   r = round(R · min(N, K)), R in (0, 1]; 1 keeps full rank (exact). A rank saves
                   memory only below N·K/(N+K): 0.5 of a square matrix stores as many numbers as W.
  --energy E       smallest r keeping a fraction E of Σσ², E in (0, 1]
  --method whiten  SVD-LLM: whiten with activation statistics of --calib text (.txt or .xz) first
  --calib-tokens N calibration tokens (default 2048; the text must hold that many)
  --eval-text FILE perplexity text (default: models/samples/pride-and-prejudice.txt, shipped:
                   the opening of Pride and Prejudice, which the shipped models never trained on)
  --eval-tokens N  tokens scored, dense, at most the model's context (default 512; 0 skips it)`;

export async function runCompress(argv: string[]): Promise<void> {
  const { flags } = parseFlags(argv, {
    model: { type: 'string' }, out: { type: 'string' }, 'rank-ratio': { type: 'string' }, energy: { type: 'string' },
    method: { type: 'string' }, calib: { type: 'string', multiple: true }, 'calib-tokens': { type: 'string' },
    'eval-text': { type: 'string' }, 'eval-tokens': { type: 'string' },
    threads: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  }, 'compress');
  if (flags.help) { console.log(HELP); return; }
  const model = str(flags, 'model');
  if (!model) throw new StreamlmError('a model directory is required', { field: '--model' });
  checkModelPath(model);
  const out = str(flags, 'out');
  if (!out) throw new StreamlmError('an output directory is required', { field: '--out' });
  if (existsSync(out)) throw new StreamlmError('already exists; choose a new directory', { file: out, field: '--out' });
  checkWritableDir(dirname(resolve(out)), '--out');
  const fraction = (name: string): number | undefined => {
    const v = str(flags, name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 1) throw new StreamlmError(`must be a number in (0, 1], got '${v}'`, { field: `--${name}` });
    return n;
  };
  const method = str(flags, 'method') ?? 'svd';
  if (method !== 'svd' && method !== 'whiten') throw new StreamlmError(`must be svd or whiten, got '${method}'`, { field: '--method' });
  const calib = list(flags, 'calib');
  for (const f of calib) if (!f.endsWith('.xz')) readTextFile(f, '--calib');
  const evalTokens = num(flags, 'eval-tokens', { int: true, min: 0 }) ?? 512;
  const evalFile = str(flags, 'eval-text') ?? SAMPLE_TEXT;
  const evalText = evalTokens > 0 ? { text: readTextFile(evalFile, '--eval-text'), name: evalFile === SAMPLE_TEXT ? 'models/samples/pride-and-prejudice.txt' : evalFile } : undefined;
  const r = await compress({
    model, out, rankRatio: fraction('rank-ratio'), energy: fraction('energy'), method,
    calib, calibTokens: num(flags, 'calib-tokens', { int: true, min: 16 }),
    threads: num(flags, 'threads', { int: true, min: 1, max: 256 }),
    evalText, evalTokens, command: ['streamlm', 'compress', ...argv].map(shellWord).join(' '),
    onProgress: (d, t, name) => { if (process.stderr.isTTY) process.stderr.write(`\rcompress ${d}/${t} ${name}\x1b[K${d === t ? '\n' : ''}`); },
  });
  console.error(summary(r));
  for (const w of r.warnings) console.error(`[streamlm] warning: ${w}`);
  if (flags.json) console.log(JSON.stringify(r));
}

function summary(r: CompressReport): string {
  const m = r.model;
  const mb = (b: number): string => `${(b / 1e6).toFixed(2)} MB`;
  const lines = [
    `[streamlm] ${plural(Object.keys(r.ranks).length, 'linear')} factored (${r.method}, ${r.factorDtype} factors) into ${r.out} in ${r.seconds.toFixed(1)} s`,
    `  parameters        ${m.paramsBefore} -> ${m.paramsAfter} (${(100 * m.paramsAfter / m.paramsBefore).toFixed(1)}%; the factored linears ${r.denseParams} -> ${r.factorParams})`,
    `  weight bytes      ${mb(m.bytesBefore)} -> ${mb(m.bytesAfter)} (${(100 * m.bytesAfter / m.bytesBefore).toFixed(1)}%)`,
  ];
  if (r.ppl) lines.push(`  perplexity        ${r.ppl.before.toFixed(3)} -> ${r.ppl.after.toFixed(3)} (dense, first ${r.ppl.tokens} tokens of ${r.ppl.text})`);
  lines.push('  model card        README.md in the output directory');
  return lines.join('\n');
}

function shellWord(s: string): string { return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`; }
