import { after, test } from 'node:test';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportGguf } from '../src/export/gguf.js';
import { runQuantize } from '../src/cli/quantize.js';
import { StreamlmError } from '../src/errors.js';
import { loadModel, type Model } from '../src/model.js';
import { readGgufHeader } from '../src/runtime/gguf.js';
import { fixtureDir, relErr } from './helpers/fixtures.js';
import { MIXED_OVERRIDES, writeRandomLlama } from './helpers/gguf-writer.js';

const tmp = mkdtempSync(join(tmpdir(), 'streamlm-gguf-quant-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const IDS = Array.from({ length: 24 }, (_, i) => (i * 37 + 5) % 320);

async function logits(path: string, dtype: 'auto' | 'f32' = 'auto'): Promise<{ l: Float32Array; bytes: number }> {
  const m: Model = await loadModel(path, { threads: 1, dtype });
  try {
    const s = m.session({ cache: 'dense', maxTokens: IDS.length, prefillChunk: IDS.length });
    const l = s.forwardAll(IDS);
    s.close();
    return { l, bytes: m.weightBytes };
  } finally {
    await m.close();
  }
}

/** llama.cpp's per-tensor rule for rows that cannot hold super-blocks (llama_tensor_get_type). */
const DOWN_FALLBACK: Record<string, string> = { q4_K: 'q5_0', q5_K: 'q5_1', q6_K: 'q8_0' };
/**
 * Bytes per 256 weights of a linear in memory: ggml-common.h's block sizes; Q8_0 is repacked planar
 * (int8 + an f32 scale per 32) and Q5_0 widened to the same (src/runtime/quant/widen.ts).
 */
const BYTES_PER_256: Record<string, number> = { q4_0: 144, q4_1: 160, q5_0: 256 + 32, q5_1: 192, q8_0: 256 + 32, q4_K: 144, q5_K: 176, q6_K: 210 };

test('quantized GGUF files: blocks as the spec lays them out, per-tensor fallback, weights kept in blocks, logits of the dequantized weights', async () => {
  const dir = join(tmp, 'rand');
  writeRandomLlama(dir);
  for (const type of ['q4_0', 'q5_1', 'q4_K', 'q5_K', 'q6_K']) {
    const file = join(tmp, `rand-${type}.gguf`);
    const r = exportGguf(dir, file, { dtype: type as 'q4_0' });
    const h = readGgufHeader(file);
    const down = DOWN_FALLBACK[type] ?? type;
    for (const t of h.tensors) {
      // output.weight keeps q6_K below 8 bits (llama.cpp's rule for the output projection).
      const want = t.dims.length === 1 ? 'F32' : t.name.endsWith('ffn_down.weight') ? down : t.name === 'output.weight' ? 'q6_K' : type;
      assert.equal(t.type.name.toLowerCase(), want.toLowerCase(), `${type}: ${t.name}`);
    }
    assert.equal(r.fallbacks.length, (DOWN_FALLBACK[type] ? 1 : 0) + (type === 'q6_K' ? 0 : 1));
    // The linears and the embedding stay in their blocks: weight bytes as the block sizes say (+ f32 norms).
    const n2d = (H: number, K: number): number => (H * K) / 256;
    const blocks = 1 * (BYTES_PER_256[type] * (n2d(256, 256) * 2 + n2d(128, 256) * 2 + n2d(576, 256) * 2) + BYTES_PER_256[down] * n2d(256, 576)) + BYTES_PER_256.q6_K * n2d(320, 256) + BYTES_PER_256[type] * n2d(320, 256);
    const floats = 4 * (256 * 3);
    const q = await logits(file);
    assert.equal(q.bytes, blocks + floats, `${type}: weight bytes`);
    // Same weights expanded to f32 by the dequantization reference: only the 8-bit activations differ,
    // which moves these sharp random logits by 2-3% (as load-time q8_0 does in test/parity.test.ts).
    const f = await logits(file, 'f32');
    const e = relErr(q.l, f.l);
    assert.ok(e < 5e-2 && e > 0, `${type}: block kernels vs dequantized f32 weights, rel err ${e}`);
  }
});

test('fused linears whose parts have different types (a Q4_K_M-style mix) keep every part in its own blocks', async () => {
  const dir = join(tmp, 'rand-mixed');
  writeRandomLlama(dir);
  const file = join(tmp, 'rand-mixed.gguf');
  exportGguf(dir, file, { dtype: 'q4_K', overrides: MIXED_OVERRIDES });
  const types = new Map(readGgufHeader(file).tensors.map((t) => [t.name, t.type.name.toLowerCase()]));
  assert.deepEqual(['attn_q', 'attn_k', 'attn_v', 'ffn_gate', 'ffn_up', 'ffn_down'].map((n) => types.get(`blk.0.${n}.weight`)), ['q4_k', 'f16', 'q6_k', 'q4_k', 'q8_0', 'q5_0']);
  // Nothing expanded: q (q4_K), k (f16), v (q6_K), o (q4_K), gate (q4_K), up (planar q8_0), down
  // (q5_0 fallback), output (q6_K), token_embd (q4_K), three f32 norms.
  const n = (rows: number, K: number): number => (rows * K) / 256;
  const want = BYTES_PER_256.q4_K * (n(256, 256) * 2 + n(576, 256) + n(320, 256)) + 2 * 128 * 256 + BYTES_PER_256.q6_K * (n(128, 256) + n(320, 256))
    + BYTES_PER_256.q8_0 * n(576, 256) + BYTES_PER_256.q5_0 * n(256, 576) + 4 * 256 * 3;
  const q = await logits(file);
  assert.equal(q.bytes, want, 'weight bytes');
  // Against the same weights dequantized to f32: only the 8-bit activations of the quantized parts
  // differ (2-3% on these sharp random logits, as in the first test); a part written into the wrong
  // output columns or with the wrong bias offset moves them by whole multiples of the logit scale.
  const f = await logits(file, 'f32');
  const e = relErr(q.l, f.l);
  assert.ok(e < 5e-2 && e > 0, `mixed parts vs dequantized f32 weights, rel err ${e}`);
  // One decoded row writes each part straight into its output columns; it must agree with the
  // prefill's last row (which goes through a scratch per part) to float rounding.
  const m = await loadModel(file, { threads: 1 });
  try {
    const s = m.session({ cache: 'dense', maxTokens: IDS.length });
    s.prefill(IDS.slice(0, -1));
    const last = s.prefill(IDS.slice(-1));
    s.close();
    const V = last.length, row = q.l.subarray((IDS.length - 1) * V, IDS.length * V);
    assert.ok(relErr(last, row) < 1e-5, `decode vs prefill row, rel err ${relErr(last, row)}`);
  } finally {
    await m.close();
  }
});

const MAIN = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');
function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', timeout: 120_000 });
}

test('streamlm quantize writes a GGUF that generate runs; bad flags are one-line errors', async () => {
  const out = join(tmp, 'cli-q8.gguf');
  const q = cli('quantize', '--model', fixtureDir('llama'), '--out', out, '--type', 'q8_0');
  assert.equal(q.status, 0, q.stderr);
  assert.match(q.stderr, /wrote .*cli-q8\.gguf: 21 tensors \(16 q8_0, 5 f32\)/);
  const g = cli('generate', '--model', out, '--prompt', 'Hello', '--max-tokens', '4', '--threads', '1');
  assert.equal(g.status, 0, g.stderr);
  // Flag errors in-process (the CLI prints StreamlmError messages alone, as test/cli.test.ts checks).
  for (const [args, part] of [
    [['--model', fixtureDir('llama'), '--out', out, '--type', 'q3_K'], '--type'],
    [['--model', fixtureDir('llama'), '--out', join(tmp, 'x.bin'), '--type', 'q8_0'], '--out'],
    [['--out', out, '--type', 'q8_0'], '--model'],
  ] as const) {
    await assert.rejects(runQuantize([...args]), (e: unknown) => e instanceof StreamlmError && !e.message.includes('\n') && e.message.includes(part));
  }
});

test('--dtype q4_0|q4_K|q5_K|q6_K at load: the same blocks and logits as the GGUF our exporter writes', async () => {
  // The exported files are checked against llama.cpp (test/gguf-llamacpp.test.ts); a load-time
  // quantization must give the same blocks (same quantizer, same per-tensor rules), so the same logits.
  const dir = join(tmp, 'rand-load');
  writeRandomLlama(dir);
  for (const type of ['q4_0', 'q4_K', 'q5_K', 'q6_K'] as const) {
    const file = join(tmp, `load-${type}.gguf`);
    // A load keeps the token embedding in the checkpoint's dtype (f32 here): so does this file.
    exportGguf(dir, file, { dtype: type, overrides: [{ pattern: /^token_embd/, dtype: 'f32' }] });
    const g = await logits(file);
    const m = await loadModel(dir, { threads: 1, dtype: type });
    try {
      const s = m.session({ cache: 'dense', maxTokens: IDS.length, prefillChunk: IDS.length });
      const l = s.forwardAll(IDS);
      s.close();
      // q6_K's 576-wide fallback is q8_0: at load the q8_0 kernel keeps f32 scales where the file
      // stores f16 ones (a 2^-11 relative step per block), which moves these sharp logits ~2e-3.
      const tol = type === 'q6_K' ? 5e-3 : 1e-5;
      assert.ok(relErr(l, g.l) < tol, `${type}: load-time vs exported GGUF, rel err ${relErr(l, g.l)}`);
      assert.equal(m.weightBytes, g.bytes, `${type}: weight bytes`);
      assert.match(m.quantSummary ?? '', new RegExp(`^quantized at load: ${type}: \\d+ tensors`));
      if (DOWN_FALLBACK[type]) assert.ok(m.quantSummary!.includes(`${DOWN_FALLBACK[type]} for model.layers.0.mlp.down_proj.weight`), m.quantSummary!);
    } finally {
      await m.close();
    }
  }
  await assert.rejects(loadModel(dir, { threads: 1, dtype: 'q3_K' as 'q4_K' }),
    (e: unknown) => e instanceof StreamlmError && e.message.includes('q3_K') && !e.message.includes('\n'));
});
