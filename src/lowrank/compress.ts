// `streamlm compress`: factor every linear layer of a model directory into W ≈ B·A and write a new
// model directory (docs/lowrank.md). The output is written to a temporary directory next to --out
// and renamed at the end, so a crash leaves no half-written model. Factors keep the source's float
// dtype; the perplexity of both models on a text is measured and written into the new model card.
import { spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { StreamlmError } from '../errors.js';
import { evalStream } from '../eval/ppl.js';
import { f32ToF16Bits } from '../export/gguf.js';
import { Model } from '../model.js';
import { openModelDir } from '../runtime/modeldir.js';
import { readTensorBytes, type TensorInfo } from '../runtime/safetensors.js';
import type { Linear } from '../models/linear.js';
import { factorA, factorB, LOWRANK_KEY, lowRankSection, prefixOf, type LowRankMethod } from '../models/lowrank.js';
import { modelCard, PPL_WARN_RATIO } from './card.js';
import { factorize, rankByEnergy, rankByRatio, type RankRule } from './svd.js';

export interface CompressOptions {
  model: string;
  out: string;
  /** Rank as a fraction of min(N, K) per linear, in (0, 1]. Exactly one of rankRatio and energy. */
  rankRatio?: number;
  /** Keep the smallest rank whose σ² sum reaches this fraction, in (0, 1]. */
  energy?: number;
  /** `svd` (default) or `whiten` (needs calibration text). */
  method?: 'svd' | 'whiten';
  /** Calibration text files (.txt, or .xz through the xz tool), for `whiten`. */
  calib?: string[];
  /** Calibration tokens (default 2048); the files must hold at least this many. */
  calibTokens?: number;
  threads?: number;
  /**
   * Text on which the perplexity of the source and of the compressed model is measured (dense
   * cache, the first `evalTokens` tokens). Without it no perplexity is measured.
   */
  evalText?: { text: string; name: string };
  /** Tokens of `evalText` to score (default 512, at most the model's context). */
  evalTokens?: number;
  /** The command line, for the model card. */
  command?: string;
  /** Called after each factored tensor. */
  onProgress?: (done: number, total: number, name: string) => void;
}

export interface CompressReport {
  out: string;
  method: LowRankMethod;
  ranks: Record<string, number>;
  /** Parameters of the factored linears before and after. */
  denseParams: number;
  factorParams: number;
  /** Bytes of model.safetensors written. */
  bytes: number;
  /** Dtype of the factors: the source dtype of the linears (F32, F16 or BF16). */
  factorDtype: string;
  /** The whole checkpoint (every tensor) before and after. */
  model: { paramsBefore: number; paramsAfter: number; bytesBefore: number; bytesAfter: number };
  /** Perplexity of source and compressed model on `evalText`, or null when not measured. */
  ppl: { text: string; tokens: number; before: number; after: number } | null;
  /** Things the user should know: a model that grew, or a perplexity that rose by more than 10%. */
  warnings: string[];
  seconds: number;
}

/** 2-D `.weight` tensors inside numbered blocks: q/k/v/o, gate/up/down and their fused forms. */
function linearTensors(tensors: Map<string, TensorInfo>): TensorInfo[] {
  return [...tensors.values()].filter((t) => t.shape.length === 2 && /\.\d+\./.test(t.name) && t.name.endsWith('.weight') && t.shape[0] > 1 && t.shape[1] > 1);
}

function checkFraction(v: number | undefined, field: string): void {
  if (v !== undefined && !(typeof v === 'number' && v > 0 && v <= 1)) throw new StreamlmError(`must be in (0, 1], got ${v}`, { field });
}

/** A tensor as float64, whatever its float dtype. */
function readF64(t: TensorInfo): Float64Array {
  const raw = new Uint8Array(t.byteLength);
  readTensorBytes(t, raw);
  const n = t.shape.reduce((a, b) => a * b, 1);
  const out = new Float64Array(n);
  const dv = new DataView(raw.buffer);
  if (t.dtype === 'F32') for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
  else if (t.dtype === 'BF16') {
    const u = new Uint32Array(1), f = new Float32Array(u.buffer);
    for (let i = 0; i < n; i++) { u[0] = dv.getUint16(i * 2, true) << 16; out[i] = f[0]; }
  }
  else if (t.dtype === 'F16') for (let i = 0; i < n; i++) out[i] = f16(dv.getUint16(i * 2, true));
  else throw new StreamlmError(`dtype ${t.dtype} cannot be factored; only F32, F16 and BF16`, { file: t.file, field: t.name });
  return out;
}

function f16(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Reads calibration text; `.xz` files are decompressed with the xz tool. */
function readCalibText(files: string[]): string {
  let text = '';
  for (const f of files) {
    if (!existsSync(f)) throw new StreamlmError('calibration file not found', { file: f, field: '--calib' });
    let t: string;
    if (f.endsWith('.xz')) {
      const r = spawnSync('xz', ['-dc', f], { maxBuffer: 1 << 30 });
      if (r.status !== 0) throw new StreamlmError(`cannot decompress with xz: ${r.error?.message ?? r.stderr.toString().trim()}`, { file: f, field: '--calib' });
      t = r.stdout.toString('utf8');
    } else t = readFileSync(f, 'utf8');
    text += (text ? '\n\n' : '') + t;
  }
  return text;
}

/** Checkpoint names of each block linear's parts, over the supported families. */
const ROLE = {
  qkv: /(q_proj|k_proj|v_proj|query_key_value|Wqkv)\.weight$/,
  o: /(o_proj|\.dense|out_proj)\.weight$/,
  up: /(gate_proj|up_proj|dense_h_to_4h)\.weight$/,
  down: /(down_proj|dense_4h_to_h)\.weight$/,
} as const;

/**
 * Gram matrices C = XᵀX (f64, K×K) of the inputs of every linear, from `tokens` streamed through
 * the dense model under sink:4+1020 in chunks of 256. Keyed by checkpoint weight name; the parts
 * of a fused linear (q/k/v, gate/up) share their input and so their matrix.
 */
async function calibrationGrams(modelDir: string, tokens: number[], threads: number | undefined): Promise<Map<string, Float64Array>> {
  const model = await Model.load(modelDir, { threads, dtype: 'f32' });
  try {
    const net = model.net;
    const rt = net.rt;
    const watched = new Set<Linear>(net.w.layers.flatMap((L) => [L.qkv, L.o, L.up, L.down]));
    const byLinear = new Map<Linear, Float64Array>();
    const orig = net.linear.bind(net);
    net.linear = (out, x, lin, M, xq, xs) => {
      if (watched.has(lin)) {
        const K = lin.K;
        let g = byLinear.get(lin);
        if (!g) { g = new Float64Array(K * K); byLinear.set(lin, g); }
        const mark = rt.mark();
        const xt = rt.alloc(M * K * 4), gg = rt.alloc(K * K * 4);
        const xv = rt.f32(x, M * K), tv = rt.f32(xt, M * K);
        for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) tv[k * M + m] = xv[m * K + k];
        rt.run('matmul_f32', [gg, xt, xt, 0, K, M, K]);   // Xᵀ·X
        const gv = rt.f32(gg, K * K);
        for (let i = 0; i < K * K; i++) g[i] += gv[i];
        rt.release(mark);
      }
      orig(out, x, lin, M, xq, xs);
    };
    const s = model.session({ cache: 'sink:4+1020', prefillChunk: 256 });
    s.prefill(tokens);
    s.close();
    // Each checkpoint tensor takes the matrix of the block Linear its role maps to.
    const all = linearTensors(openModelDir(modelDir).tensors);
    const grams = new Map<string, Float64Array>();
    for (const [i, L] of net.w.layers.entries()) {
      const layer = all.filter((t) => t.name.includes(`.${i}.`));
      for (const [lin, re] of [[L.qkv, ROLE.qkv], [L.o, ROLE.o], [L.up, ROLE.up], [L.down, ROLE.down]] as const) {
        const g = byLinear.get(lin);
        if (g) for (const t of layer) if (re.test(t.name) && t.shape[1] === lin.K) grams.set(t.name, g);
      }
    }
    return grams;
  } finally {
    await model.close();
  }
}

/** Writes a safetensors file from (name, dtype, shape, bytes) entries, one write per tensor. */
function writeSafetensors(path: string, entries: { name: string; dtype: string; shape: number[]; data: Uint8Array }[]): number {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', producer: 'streamlm compress' } };
  let off = 0;
  for (const e of entries) { header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [off, off + e.data.byteLength] }; off += e.data.byteLength; }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const hb = new TextEncoder().encode(json);
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(hb.byteLength), true);
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, len);
    writeSync(fd, hb);
    for (const e of entries) writeSync(fd, e.data);
  } finally {
    closeSync(fd);
  }
  return 8 + hb.byteLength + off;
}

/** Compresses `opts.model` into `opts.out`. */
export async function compress(opts: CompressOptions): Promise<CompressReport> {
  const t0 = performance.now();
  const method = opts.method ?? 'svd';
  if (method !== 'svd' && method !== 'whiten') throw new StreamlmError(`must be svd or whiten, got '${method}'`, { field: '--method' });
  checkFraction(opts.rankRatio, '--rank-ratio');
  checkFraction(opts.energy, '--energy');
  if ((opts.rankRatio === undefined) === (opts.energy === undefined)) throw new StreamlmError('give exactly one of --rank-ratio and --energy', { field: '--rank-ratio' });
  const rule: RankRule = opts.rankRatio !== undefined ? rankByRatio(opts.rankRatio) : rankByEnergy(opts.energy!);
  const md = openModelDir(opts.model);
  if (md.config[LOWRANK_KEY] !== undefined) throw new StreamlmError('this model is already low-rank; compress the dense original', { file: md.configFile, field: LOWRANK_KEY });
  const out = resolve(opts.out);
  if (existsSync(out)) throw new StreamlmError('already exists; choose a new directory', { file: out, field: '--out' });
  if (!existsSync(dirname(out))) throw new StreamlmError('parent directory does not exist', { file: dirname(out), field: '--out' });
  const targets = linearTensors(md.tensors);
  if (targets.length === 0) throw new StreamlmError('no linear layers (2-D .weight tensors inside numbered blocks) to factor', { file: md.dir });

  let grams: Map<string, Float64Array> | null = null;
  if (method === 'whiten') {
    if (!opts.calib?.length) throw new StreamlmError('--method whiten needs calibration text', { field: '--calib' });
    const want = opts.calibTokens ?? 2048;
    if (!Number.isInteger(want) || want < 16) throw new StreamlmError(`must be an integer >= 16, got ${want}`, { field: '--calib-tokens' });
    const probe = await Model.load(opts.model, { threads: 1 });
    let ids: number[];
    try { ids = probe.encode(readCalibText(opts.calib)); } finally { await probe.close(); }
    if (ids.length < want) throw new StreamlmError(`the calibration text gives ${ids.length} tokens but --calib-tokens asks for ${want}`, { file: opts.calib.join(', '), field: '--calib' });
    grams = await calibrationGrams(opts.model, ids.slice(0, want), opts.threads);
  }

  const evalIds = opts.evalText ? await evalTokenIds(opts.model, opts.evalText, opts.evalTokens ?? 512) : null;
  const pplBefore = evalIds ? await perplexity(opts.model, evalIds, opts.threads) : null;

  const ranks = new Map<string, number>();
  const entries: { name: string; dtype: string; shape: number[]; data: Uint8Array }[] = [];
  const factored = new Set(targets.map((t) => t.name));
  let denseParams = 0, factorParams = 0, done = 0;
  const dtypes = new Set<string>();
  for (const t of [...md.tensors.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    if (!factored.has(t.name)) {
      const data = new Uint8Array(t.byteLength);
      readTensorBytes(t, data);
      entries.push({ name: t.name, dtype: t.dtype, shape: t.shape, data });
      continue;
    }
    const [N, K] = t.shape;
    const gram = grams?.get(t.name) ?? null;
    if (grams && !gram) throw new StreamlmError('no calibration statistics were gathered for this linear (its family is not mapped)', { file: md.dir, field: t.name });
    const f = factorize(readF64(t), N, K, rule, gram);
    const p = prefixOf(t.name)!;
    ranks.set(p, f.r);
    entries.push({ name: factorA(p), dtype: t.dtype, shape: [f.r, K], data: encodeFloats(f.a, t.dtype) });
    entries.push({ name: factorB(p), dtype: t.dtype, shape: [N, f.r], data: encodeFloats(f.b, t.dtype) });
    dtypes.add(t.dtype);
    denseParams += N * K;
    factorParams += f.r * (N + K);
    opts.onProgress?.(++done, targets.length, t.name);
  }

  const tmp = join(dirname(out), `.${basename(out)}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    for (const f of readdirSync(md.dir)) {
      const src = join(md.dir, f);
      if (!statSync(src).isFile() || f.endsWith('.safetensors') || f === 'model.safetensors.index.json' || f === 'config.json' || NOT_COPIED.test(f)) continue;
      copyFileSync(src, join(tmp, f));
    }
    // MCTP heads were trained on the dense backbone's states: the compressed model goes without them.
    const { mctp: _heads, ...base } = md.config;
    const config = { ...base, [LOWRANK_KEY]: lowRankSection({ method, rankRatio: opts.rankRatio ?? null, energy: opts.energy ?? null, ranks }) };
    const bytes = writeSafetensors(join(tmp, 'model.safetensors'), entries);
    writeFileSync(join(tmp, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    const pplAfter = evalIds ? await perplexity(tmp, evalIds, opts.threads) : null;
    const count = (shapes: number[][]): number => shapes.reduce((a, sh) => a + sh.reduce((x, y) => x * y, 1), 0);
    const report: CompressReport = {
      out, method, ranks: Object.fromEntries(ranks), denseParams, factorParams, bytes,
      factorDtype: [...dtypes].join('+'),
      model: {
        paramsBefore: count([...md.tensors.values()].map((t) => t.shape)), paramsAfter: count(entries.map((e) => e.shape)),
        bytesBefore: [...new Set([...md.tensors.values()].map((t) => t.file))].reduce((a, f) => a + statSync(f).size, 0), bytesAfter: bytes,
      },
      ppl: evalIds && pplBefore !== null && pplAfter !== null ? { text: opts.evalText!.name, tokens: evalIds.length, before: pplBefore, after: pplAfter } : null,
      warnings: [],
      seconds: (performance.now() - t0) / 1000,
    };
    report.warnings = warningsFor(report);
    writeFileSync(join(tmp, 'README.md'), modelCard(report, { source: md.dir, command: opts.command }));
    renameSync(tmp, out);
    return report;
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Files of the source that describe the source, not the compressed model: its card and its measurements. */
const NOT_COPIED = /^(README\.md|metrics\.json|ref_ppl\.json|mctp_config\.json|mctp_metrics\.json)$/i;

/** f32 values as the bytes of a float tensor of `dtype` (F32, F16, BF16; rounding to nearest even). */
export function encodeFloats(x: Float32Array, dtype: string): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  const out = new Uint16Array(x.length);
  if (dtype === 'F16') for (let i = 0; i < x.length; i++) out[i] = f32ToF16Bits(x[i]);
  else if (dtype === 'BF16') {
    const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
    for (let i = 0; i < x.length; i++) {
      const b = u[i];
      out[i] = (b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;   // NaN stays NaN
    }
  } else throw new StreamlmError(`cannot store factors as ${dtype}`, { field: 'dtype' });
  return new Uint8Array(out.buffer);
}

/** The first `limit` tokens of the text (at most the model's context), for a dense perplexity. */
async function evalTokenIds(dir: string, evalText: { text: string; name: string }, limit: number): Promise<number[]> {
  const probe = await Model.load(dir, { threads: 1 });
  try {
    const ids = probe.encode(evalText.text).slice(0, Math.min(limit, probe.hparams.maxPositionEmbeddings));
    if (ids.length < 2) throw new StreamlmError(`gives ${ids.length} token(s); at least 2 are needed to measure perplexity`, { file: evalText.name, field: '--eval-text' });
    return ids;
  } finally {
    await probe.close();
  }
}

/** Dense perplexity of the model in `dir` on `ids`. */
async function perplexity(dir: string, ids: number[], threads: number | undefined): Promise<number> {
  const model = await Model.load(dir, { threads });
  try {
    return evalStream(model, ids, { cache: 'dense', afterWindow: ids.length }).ppl;
  } finally {
    await model.close();
  }
}

function warningsFor(r: CompressReport): string[] {
  const w: string[] = [];
  if (r.factorParams >= r.denseParams)
    w.push(`the factored linears hold ${r.factorParams} parameters, not fewer than the ${r.denseParams} of the dense ones: a rank r saves memory only below N·K/(N+K) (half the width for a square matrix); lower --rank-ratio or --energy`);
  if (r.ppl && r.ppl.after > r.ppl.before * PPL_WARN_RATIO)
    w.push(`perplexity rose from ${r.ppl.before.toFixed(2)} to ${r.ppl.after.toFixed(2)} (+${(100 * (r.ppl.after / r.ppl.before - 1)).toFixed(0)}%): this rank is too low for this model; raise --rank-ratio or --energy${r.method === 'svd' ? ', or try --method whiten' : ''}`);
  return w;
}
