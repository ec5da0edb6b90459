import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportGguf } from '../src/export/gguf.js';
import { loadModel, type Model } from '../src/model.js';
import { StreamlmError } from '../src/errors.js';
import { fixtureDir, hasFixture, readReference, relErr } from './helpers/fixtures.js';
import { convertFixture } from './helpers/gguf-writer.js';

const tmp = mkdtempSync(join(tmpdir(), 'streamlm-gguf-load-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function logits(model: Model, ids: number[]): Float32Array {
  const s = model.session({ cache: 'dense', maxTokens: ids.length, prefillChunk: ids.length });
  try {
    return s.forwardAll(ids);
  } finally {
    s.close();
  }
}

async function withModel<R>(path: string, f: (m: Model) => R | Promise<R>, dtype: 'auto' | 'f32' | 'q8_0' = 'auto'): Promise<R> {
  const m = await loadModel(path, { threads: 1, dtype });
  try {
    return await f(m);
  } finally {
    await m.close();
  }
}

/**
 * Tolerances, relative to the largest logit. f32: the same numbers by another road (1e-5).
 * f16: weights rounded to 11 bits (2^-11 relative per weight), which moves these small random
 * models' logits by up to 0.3%. q8_0: 8-bit weights and, in the int8 matmul, 8-bit activations;
 * the same 8e-2 bound as test/parity.test.ts's load-time q8_0.
 */
const TOL = { f32: 1e-5, f16: 5e-3, q8_0: 8e-2 } as const;

for (const name of ['llama', 'qwen2', 'mistral', 'llama-bf16', 'llama-rope-linear']) {
  test(`${name}: HF dir -> our exporter -> GGUF gives the HF directory's logits (f32, f16, q8_0)`, { skip: !hasFixture(name) && 'fixture not generated' }, async () => {
    const ref = readReference(name);
    const hf = await withModel(fixtureDir(name), (m) => logits(m, ref.inputIds));
    for (const dtype of ['f32', 'f16', 'q8_0'] as const) {
      const file = join(tmp, `${name}-${dtype}.gguf`);
      exportGguf(fixtureDir(name), file, { dtype });
      const got = await withModel(file, (m) => {
        assert.equal(m.weightBytes > 0, true);
        return logits(m, ref.inputIds);
      });
      const e = relErr(got, hf);
      assert.ok(e < TOL[dtype], `${dtype}: rel err ${e} vs the HF directory`);
      // And against transformers itself, the outside reference (bf16 fixture: its own 1e-2).
      const eRef = relErr(got, ref.logitsFull);
      assert.ok(eRef < Math.max(TOL[dtype], name === 'llama-bf16' ? 1e-2 : 1e-4), `${dtype}: rel err ${eRef} vs transformers`);
      if (dtype === 'q8_0') {
        // The file's Q8_0 blocks expand exactly to f32; only the int8 activations then differ.
        const exact = await withModel(file, (m) => logits(m, ref.inputIds), 'f32');
        assert.ok(relErr(got, exact) < TOL.q8_0 && relErr(got, exact) > 0, 'q8_0 weights must run through the int8 kernel');
      }
    }
  });
}

for (const name of ['gpt_neox', 'falcon', 'falcon-new', 'mpt']) {
  test(`${name}: a GGUF file laid out as llama.cpp's converter does gives transformers' logits`, { skip: !hasFixture(name) && 'fixture not generated' }, async () => {
    const ref = readReference(name);
    const file = join(tmp, `${name}.gguf`);
    convertFixture(fixtureDir(name), file);
    const got = await withModel(file, (m) => logits(m, ref.inputIds));
    const e = relErr(got, ref.logitsFull);
    assert.ok(e < 1e-4, `rel err ${e} vs transformers`);
    const hf = await withModel(fixtureDir(name), (m) => logits(m, ref.inputIds));
    assert.ok(relErr(got, hf) < 1e-5, `rel err ${relErr(got, hf)} vs the HF directory`);
  });
}

test('streaming under sink:4+28 matches the HF directory (cache policies see the same model)', async () => {
  const file = join(tmp, 'llama-stream.gguf');
  exportGguf(fixtureDir('llama'), file, { dtype: 'f32' });
  const ids = Array.from({ length: 80 }, (_, i) => (i * 37 + 11) % 320);
  const run = (m: Model): Float32Array => {
    const s = m.session({ cache: 'sink:4+28' });
    const out = new Float32Array(ids.length);
    let lg = s.prefill(ids.slice(0, 1));
    for (let t = 1; t < ids.length; t++) {
      let mx = -Infinity, z = 0;
      for (const v of lg) mx = Math.max(mx, v);
      for (const v of lg) z += Math.exp(v - mx);
      out[t] = lg[ids[t]] - mx - Math.log(z);
      lg = s.step(ids[t]);
    }
    s.close();
    return out;
  };
  const a = await withModel(fixtureDir('llama'), run);
  const b = await withModel(file, run);
  assert.ok(relErr(b, a) < 1e-5, `log-prob rel err ${relErr(b, a)}`);
});

test('GGUF load errors are one line and name the file and the key or tensor', async () => {
  const bad = join(tmp, 'not-a-model.gguf');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(bad, 'hello, world');
  await assert.rejects(loadModel(bad), (e: unknown) => e instanceof StreamlmError && e.message.startsWith(bad) && /bad magic/.test(e.message));
  await assert.rejects(loadModel(join(tmp, 'missing.gguf')), (e: unknown) => e instanceof StreamlmError && e.message.startsWith(join(tmp, 'missing.gguf')) && /not found|no such file/.test(e.message) && !e.message.includes('\n'));
});
