// Low-rank checkpoints (FlashSVD, issue 7): factorization, the format and its errors, the compress
// command, the materialized and streaming forwards, and a numpy float64 reference of the factors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel, type Model } from '../src/model.js';
import { compress } from '../src/lowrank/compress.js';
import { peakActivationBytes } from '../src/models/flashsvd.js';
import type { LowRankMode } from '../src/models/weights.js';
import { factorize, rankByEnergy, rankByRatio } from '../src/lowrank/svd.js';
import { readSafetensorsHeader, readTensorBytes } from '../src/runtime/safetensors.js';
import { StreamlmError } from '../src/errors.js';
import { startServer } from '../src/server/http.js';
import { fixtureDir } from './helpers/fixtures.js';
import { writeSafetensors } from './helpers/safetensors-writer.js';

const MAIN = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');
const LLAMA = fixtureDir('llama');
const LOWRANK = fixtureDir('lowrank-llama');   // llama compressed at --rank-ratio 0.5 (svd)
const IDS = Array.from({ length: 40 }, (_, i) => (i * 37 + 5) % 320);

function cli(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** ‖a − b‖ / ‖b‖ */
function l2Diff(a: Float32Array, b: Float32Array): number {
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) { d += (a[i] - b[i]) ** 2; m += b[i] ** 2; }
  return Math.sqrt(d / m);
}

function cat(xs: Float32Array[]): Float32Array {
  const out = new Float32Array(xs.reduce((n, x) => n + x.length, 0));
  let o = 0;
  for (const x of xs) { out.set(x, o); o += x.length; }
  return out;
}

function tmp(): string { return mkdtempSync(join(tmpdir(), 'streamlm-lr-')); }

/** max |a − b| / max |b| */
function relDiff(a: Float32Array, b: Float32Array): number {
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i] - b[i])); m = Math.max(m, Math.abs(b[i])); }
  return d / m;
}

/** Prefill in chunks under a sink cache that evicts (two rotation groups), then three decode steps. */
function stream(m: Model, cache = 'sink:4+16'): Float32Array[] {
  const s = m.session({ cache, prefillChunk: 24 });
  const out = [s.prefill(IDS)];
  for (const id of [7, 11, 13]) out.push(s.step(id));
  s.close();
  return out;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32 - 0.5; };
}

test('factorize: full rank reproduces W; ranks by ratio and energy; whitening lowers the error on the calibration inputs', () => {
  const r = rng(3);
  for (const [N, K] of [[12, 20], [20, 12]]) {
    const w = Float64Array.from({ length: N * K }, r);
    const f = factorize(w, N, K, rankByRatio(1));
    assert.equal(f.r, Math.min(N, K));
    let err = 0;
    for (let i = 0; i < N; i++) for (let j = 0; j < K; j++) {
      let s = 0;
      for (let t = 0; t < f.r; t++) s += f.b[i * f.r + t] * f.a[t * K + j];
      err = Math.max(err, Math.abs(s - w[i * K + j]));
    }
    assert.ok(err < 1e-6, `full-rank error ${err}`);
    assert.equal(factorize(w, N, K, rankByRatio(0.5)).r, Math.round(0.5 * Math.min(N, K)));
    assert.equal(rankByEnergy(1)(f.sigma), f.sigma.length);
    const e9 = rankByEnergy(0.9)(f.sigma);
    let tot = 0, acc = 0;
    for (const s of f.sigma) tot += s * s;
    for (let i = 0; i < e9; i++) acc += f.sigma[i] ** 2;
    assert.ok(acc >= 0.9 * tot * (1 - 1e-9) && acc - f.sigma[e9 - 1] ** 2 < 0.9 * tot);

    // Inputs with a few dominant directions: whitening should fit W where the inputs live.
    const T = 200;
    const x = new Float64Array(T * K);
    for (let t = 0; t < T; t++) for (let k = 0; k < K; k++) x[t * K + k] = r() * (k < 3 ? 10 : 0.1);
    const gram = new Float64Array(K * K);
    for (let t = 0; t < T; t++) for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) gram[i * K + j] += x[t * K + i] * x[t * K + j];
    const outErr = (g: Float64Array | null): number => {
      const ff = factorize(w, N, K, rankByRatio(0.25), g);
      let e = 0;
      for (let t = 0; t < T; t++) for (let i = 0; i < N; i++) {
        let y = 0, z = 0;
        for (let k = 0; k < K; k++) {
          y += w[i * K + k] * x[t * K + k];
          let bk = 0;
          for (let q = 0; q < ff.r; q++) bk += ff.b[i * ff.r + q] * ff.a[q * K + k];
          z += bk * x[t * K + k];
        }
        e += (y - z) ** 2;
      }
      return e;
    };
    assert.ok(outErr(gram) < outErr(null) * 0.5, `whiten ${outErr(gram)} vs svd ${outErr(null)}`);
  }
});

test('compress at ratio 1.0 reproduces the dense logits for llama, qwen2 (biases, GQA), gpt_neox and falcon (fused QKV)', async () => {
  for (const name of ['llama', 'qwen2', 'gpt_neox', 'falcon']) {
    const out = join(tmp(), 'm');
    const rep = await compress({ model: fixtureDir(name), out, rankRatio: 1, threads: 2 });
    assert.ok(Object.keys(rep.ranks).length >= 8, name);
    assert.ok(!readdirSync(join(out, '..')).some((f) => f.includes('.tmp-')), 'temporary directory left behind');
    const dense = await loadModel(fixtureDir(name), { threads: 2 });
    const lr = await loadModel(out, { threads: 2 });
    try {
      const d = stream(dense), l = stream(lr);
      for (let i = 0; i < d.length; i++) assert.ok(relDiff(l[i], d[i]) < 1e-4, `${name} step ${i}: ${relDiff(l[i], d[i])}`);
    } finally {
      await lr.close();
      await dense.close();
    }
  }
});

test('lower ranks degrade gracefully: the logit error grows as the rank ratio falls', async () => {
  const dense = await loadModel(LLAMA, { threads: 2 });
  const ref = cat(stream(dense));
  await dense.close();
  const errs: number[] = [];
  for (const ratio of [1, 0.75, 0.5, 0.25]) {
    const out = join(tmp(), 'm');
    await compress({ model: LLAMA, out, rankRatio: ratio });
    const m = await loadModel(out, { threads: 2 });
    const l = cat(stream(m));
    await m.close();
    assert.ok(l.every(Number.isFinite));
    errs.push(l2Diff(l, ref));
  }
  for (let i = 1; i < errs.length; i++) assert.ok(errs[i] > errs[i - 1], `errors by ratio 1, .75, .5, .25: ${errs}`);
  assert.ok(errs[0] < 1e-4);
});

test('streaming kernels equal the materialized low-rank path within 1e-5 and use less activation memory', async () => {
  const mat = await loadModel(LOWRANK, { threads: 2, lowrank: 'materialized' });
  const str = await loadModel(LOWRANK, { threads: 2, lowrank: 'streaming' });
  try {
    assert.ok(str.net.paths.every((p) => p === 'streaming'), `paths ${str.net.paths}`);
    assert.ok(mat.net.paths.every((p) => p === 'dense'), `paths ${mat.net.paths}`);
    const a = stream(mat);
    const b = stream(str);
    for (let i = 0; i < a.length; i++) assert.ok(relDiff(b[i], a[i]) < 1e-5, `step ${i}: ${relDiff(b[i], a[i])}`);
    // One 256-token prefill into a dense cache, both ways: peak bytes allocated for activations.
    const peak = (m: Model): number => {
      const s = m.session({ cache: 'dense', maxTokens: 256, prefillChunk: 256 });
      const ids = Array.from({ length: 256 }, (_, i) => (i * 13 + 2) % 320);
      const { bytes } = peakActivationBytes(m.net.rt, () => s.prefill(ids));
      s.close();
      return bytes;
    };
    const pm = peak(mat), ps = peak(str);
    assert.ok(ps < 0.7 * pm, `streaming ${ps} B vs materialized ${pm} B`);
  } finally {
    await mat.close();
    await str.close();
  }
  // Ranks from --energy are odd and differ per linear; chunks of 23 leave ragged row blocks.
  const out = join(tmp(), 'm');
  const rep = await compress({ model: LLAMA, out, energy: 0.7 });
  assert.ok(Object.values(rep.ranks).some((r) => r % 4 !== 0), `ranks ${Object.values(rep.ranks)}`);
  const run = async (lowrank: LowRankMode): Promise<Float32Array> => {
    const e = await loadModel(out, { threads: 2, lowrank });
    try {
      const s = e.session({ cache: 'sink:4+16', prefillChunk: 23 });
      const l = s.forwardAll(IDS.slice(0, 23));
      s.close();
      return l;
    } finally {
      await e.close();
    }
  };
  const a = await run('materialized'), b = await run('streaming');
  assert.ok(relDiff(b, a) < 1e-5, `energy ranks: ${relDiff(b, a)}`);
});

test('f16 factors: kept f16 for the GEMMs, widened to f32 for the streaming kernels; both give the same logits', async () => {
  const dir = tmp();
  cpSync(LOWRANK, dir, { recursive: true });
  const { tensors } = readSafetensorsHeader(join(LOWRANK, 'model.safetensors'));
  writeSafetensors(join(dir, 'model.safetensors'), tensors.map((t) => {
    const b = new Uint8Array(t.byteLength);
    readTensorBytes(t, b);
    const factor = /\.lr_[ab]$/.test(t.name);
    return { name: t.name, dtype: factor ? 'F16' : 'F32', shape: t.shape, data: factor ? new Float32Array(b.buffer) : b };
  }));
  const mat = await loadModel(dir, { threads: 2, lowrank: 'materialized' });
  const str = await loadModel(dir, { threads: 2, lowrank: 'streaming' });
  try {
    const a0 = mat.net.w.layers[0].qkv, b0 = str.net.w.layers[0].qkv;
    assert.ok(a0.kind === 'lowrank' && a0.a.kind === 'dense' && a0.a.dtype === 'f16', 'materialized keeps f16 factors');
    assert.ok(b0.kind === 'lowrank' && b0.a.kind === 'dense' && b0.a.dtype === 'f32', 'streaming widens them');
    const a = stream(mat), b = stream(str);
    for (let i = 0; i < a.length; i++) assert.ok(relDiff(b[i], a[i]) < 1e-5, `step ${i}: ${relDiff(b[i], a[i])}`);
  } finally {
    await mat.close();
    await str.close();
  }
});

test('the low-rank mode is checked at load: unknown names and blocks that cannot stream are refused', async () => {
  await assert.rejects(loadModel(LOWRANK, { threads: 1, lowrank: 'fast' as LowRankMode }), (e: unknown) => e instanceof StreamlmError && /lowrank.*auto, materialized or streaming.*'fast'/.test(e.message));
  // q8_0 factors are not what the FlashSVD kernels read.
  await assert.rejects(loadModel(LOWRANK, { threads: 1, dtype: 'q8_0', lowrank: 'streaming' }), (e: unknown) => e instanceof StreamlmError && /layer 0 cannot run the streaming low-rank kernels/.test(e.message));
  const q = await loadModel(LOWRANK, { threads: 1, dtype: 'q8_0' });
  try { assert.ok(q.net.paths.every((p) => p === 'dense')); } finally { await q.close(); }
});

test('the compressed model matches a numpy float64 forward of the same factors within 1e-4', async () => {
  const { tensors } = readSafetensorsHeader(join(LOWRANK, 'reference.safetensors'));
  const get = (n: string): Uint8Array => { const t = tensors.find((x) => x.name === n)!; const b = new Uint8Array(t.byteLength); readTensorBytes(t, b); return b; };
  const ids = Array.from(new Int32Array(get('input_ids').buffer));
  const ref = new Float32Array(get('logits').buffer);
  for (const mode of ['materialized', 'streaming'] as const) {
    const m = await loadModel(LOWRANK, { threads: 2, lowrank: mode });
    try {
      const s = m.session({ cache: 'dense', maxTokens: 64, prefillChunk: 64 });
      const got = s.forwardAll(ids);
      s.close();
      assert.ok(relDiff(got, ref) < 1e-4, `${mode}: ${relDiff(got, ref)}`);
    } finally {
      await m.close();
    }
  }
});

test('a low-rank section that disagrees with the factors is an error naming the tensor', async () => {
  const bad = async (edit: (c: Record<string, any>) => void, pattern: RegExp): Promise<void> => {
    const d = tmp();
    cpSync(LOWRANK, d, { recursive: true });
    const c = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
    edit(c);
    writeFileSync(join(d, 'config.json'), JSON.stringify(c));
    await assert.rejects(loadModel(d, { threads: 1 }), (e: unknown) => e instanceof StreamlmError && pattern.test(e.message));
  };
  await bad((c) => { c.streamlm_lowrank.ranks['model.layers.1.mlp.up_proj'] = 31; }, /model\.layers\.1\.mlp\.up_proj\.lr_a.*shape \[32,64\].*rank 31/);
  await bad((c) => { c.streamlm_lowrank.ranks['model.layers.9.mlp.up_proj'] = 4; }, /no tensor 'model\.layers\.9\.mlp\.up_proj\.lr_a'/);
  await bad((c) => { c.streamlm_lowrank.version = 2; }, /streamlm_lowrank\.version.*version 2/);
  await bad((c) => { delete c.streamlm_lowrank.ranks['model.layers.0.self_attn.k_proj']; }, /k_proj.*fused with low-rank/);
});

test('compress: bad inputs are clear errors; the result streams through generate and eval-ppl under a sink cache', async () => {
  const d = tmp();
  const userError = (r: { code: number; err: string }, re: RegExp): void => {
    assert.notEqual(r.code, 0);
    assert.doesNotMatch(r.err, /\n\s+at /);
    assert.match(r.err, re);
  };
  userError(cli('compress', '--model', LLAMA, '--out', join(d, 'a'), '--rank-ratio', '0'), /--rank-ratio.*\(0, 1\].*'0'/);
  const rejects = (o: Partial<Parameters<typeof compress>[0]>, re: RegExp) =>
    assert.rejects(compress({ model: LLAMA, out: join(d, 'a'), ...o }), (e: unknown) => e instanceof StreamlmError && re.test(e.message));
  await rejects({ rankRatio: 1.5 }, /--rank-ratio: must be in \(0, 1\], got 1\.5/);
  await rejects({ energy: 0 }, /--energy: must be in \(0, 1\], got 0/);
  await rejects({}, /exactly one of --rank-ratio and --energy/);
  await rejects({ out: d, rankRatio: 0.5 }, /--out: already exists/);
  const short = join(d, 'short.txt');
  writeFileSync(short, 'A few words only.');
  await rejects({ rankRatio: 0.5, method: 'whiten', calib: [short], calibTokens: 512 }, /--calib: the calibration text gives \d+ tokens but --calib-tokens asks for 512/);
  await rejects({ rankRatio: 0.5, method: 'whiten' }, /--calib: --method whiten needs calibration text/);
  assert.ok(!existsSync(join(d, 'a')));

  const text = join(d, 'calib.txt');
  writeFileSync(text, 'It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. '.repeat(20));
  const out = join(d, 'w');
  const c = cli('compress', '--model', LLAMA, '--out', out, '--energy', '0.9', '--method', 'whiten', '--calib', text, '--calib-tokens', '256', '--json');
  assert.equal(c.code, 0, c.err);
  const rep = JSON.parse(c.out.trim().split('\n').pop()!);
  assert.equal(rep.method, 'whiten');
  const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.equal(cfg.streamlm_lowrank.version, 1);
  assert.equal(cfg.streamlm_lowrank.energy, 0.9);

  const g = cli('generate', '--model', out, '--prompt', 'The house', '--max-tokens', '24', '--cache', 'sink:4+12', '--threads', '2');
  assert.equal(g.code, 0, g.err);
  assert.match(g.err, /decode 24 tok/);
  const e = cli('eval-ppl', '--model', out, '--text', text, '--cache', 'sink:4+12', '--tokens', '60', '--json');
  assert.equal(e.code, 0, e.err);
  const ppl = JSON.parse(e.out.trim().split('\n').pop()!).results[0].ppl;
  // The same evaluation of the uncompressed fixture: keeping 90% of each weight's (whitened) energy
  // must leave the streamed perplexity close to the original's (measured +2.0%; a broken factor
  // layout or a wrong rank gives several times the original on this random model).
  const o = cli('eval-ppl', '--model', LLAMA, '--text', text, '--cache', 'sink:4+12', '--tokens', '60', '--json');
  assert.equal(o.code, 0, o.err);
  const base = JSON.parse(o.out.trim().split('\n').pop()!).results[0].ppl;
  assert.ok(Math.abs(Math.log(ppl / base)) < 0.05, `compressed ppl ${ppl} vs original ${base}`);
});

test('a compressed model serves completions under a sink cache', async () => {
  const m = await loadModel(LOWRANK, { threads: 1 });
  const srv = await startServer(m, { port: 0, cache: 'sink:4+12' });
  try {
    const r = await fetch(`${srv.url}/v1/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: srv.modelId, prompt: IDS.slice(0, 20), max_tokens: 24, temperature: 0 }) });
    const body = await r.text();
    assert.equal(r.status, 200, body);
    const j = JSON.parse(body) as { choices: { text: string; finish_reason: string }[]; usage: { completion_tokens: number } };
    assert.equal(j.usage.completion_tokens, 24);
    assert.equal(j.choices[0].finish_reason, 'length');
  } finally {
    await srv.close();
    await m.close();
  }
});
