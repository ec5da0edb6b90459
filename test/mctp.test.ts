import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadModel, type Model } from '../src/model.js';
import { generate, type GenerateOptions, type GenerationStats } from '../src/generate/generate.js';
import type { Linear } from '../src/models/linear.js';

const MODELS = ['novels-8m', 'novels-8m-sink'];
const dir = (m: string): string => resolve('models', m);

async function run(model: Model, opts: GenerateOptions): Promise<{ ids: number[]; stats: GenerationStats }> {
  const ids: number[] = [];
  const it = generate(model, { ignoreEos: true, ...opts });
  for (;;) {
    const r = await it.next();
    if (r.done) return { ids, stats: r.value };
    if (r.value.id >= 0) ids.push(r.value.id);
  }
}

const PROMPTS = [
  'It was a dark and stormy night, and the old man sat by the fire',
  'The letter arrived on a Tuesday. Mrs. Bennet read it twice before she',
  '"I do not know," said he, looking at her with',
];
/** Unbounded, a plain window, and sink windows that evict during the 96 generated tokens (and so during verifications). */
const POLICIES = ['dense', 'window:40', 'sink:4+28', 'sink:4+508'];

interface Ref { tokens: number[]; next: number; draft_vocab: number; steps: { argmax: number; logits16: number[]; max_logit: number }[]; chain: number[] }

test('greedy with --speculate mctp and auto gives plain greedy tokens, under every policy, on both shipped models', async () => {
  for (const name of MODELS) {
    const model = await loadModel(dir(name), { threads: 1 });
    try {
      assert.ok(model.mctp, `${name} ships MCTP heads`);
      for (const cache of POLICIES) {
        for (const prompt of cache === 'sink:4+28' ? PROMPTS : PROMPTS.slice(0, 1)) {
          const plain = await run(model, { prompt, cache, maxNewTokens: 96 });
          for (const mode of ['mctp', 'auto'] as const) {
            const spec = await run(model, { prompt, cache, maxNewTokens: 96, speculate: { mode, draft: 4 } });
            assert.deepEqual(spec.ids, plain.ids, `${name} ${cache} ${mode}: speculation changed the greedy output`);
            const sp = spec.stats.speculation!;
            assert.ok(sp.accepted.every((a, i) => a <= sp.proposed[i]));
          }
        }
      }
      // The heads are worth having: on this text they keep more than one token per forward.
      const mctp = await run(model, { prompt: PROMPTS[0], cache: 'sink:4+508', maxNewTokens: 96, speculate: { mode: 'mctp', draft: 4 } });
      assert.ok(mctp.stats.speculation!.tokensPerForward > 1.5, `${name}: ${mctp.stats.speculation!.tokensPerForward} tokens per forward`);
    } finally {
      await model.close();
    }
  }
});

test('the heads\' logits match research/mctp_train.py\'s float64 reference, step 1 and the chain', async () => {
  for (const name of MODELS) {
    const ref = JSON.parse(readFileSync(resolve('test/fixtures', `mctp-ref-${name}.json`), 'utf8')) as Ref;
    const model = await loadModel(dir(name), { threads: 1 });
    try {
      const heads = model.mctp!;
      assert.equal(heads.cfg.draft_vocab, ref.draft_vocab);
      const s = model.session({ cache: 'dense', draftHeads: true });
      const logits = s.prefill(ref.tokens);
      // The backbone's own next token, as PyTorch chose it (argmax).
      assert.equal(logits.indexOf(Math.max(...logits)), ref.next, `${name}: backbone argmax`);
      const log = s.mctp!.log;
      const e = log.since(0);
      assert.deepEqual(e.ids, ref.tokens);
      heads.acquire();
      const out = heads.draftLogits(e.rows, [...ref.tokens.slice(1), ref.next], 0, ref.steps.length);
      assert.deepEqual(out.tokens, ref.chain, `${name}: chained draft tokens`);
      // f32 engine vs float64 PyTorch with the same bf16 weights: 8 backbone layers and the module
      // left 3.3e-6 on logits of size ~10 (2026-12-02); 1e-4 leaves room for other CPUs' rounding and
      // is far below what a misread weight or a wrong mask would give (> 1e-2).
      let worst = 0;
      ref.steps.forEach((st, i) => {
        st.logits16.forEach((v, j) => { worst = Math.max(worst, Math.abs(out.logits[i][j] - v)); });
        worst = Math.max(worst, Math.abs(Math.max(...out.logits[i]) - st.max_logit));
      });
      assert.ok(worst < 1e-4, `${name}: logits differ from the reference by ${worst}`);
      s.close();
    } finally {
      await model.close();
    }
  }
});

test('heads that disagree with the backbone still give the backbone\'s output', async () => {
  const model = await loadModel(dir('novels-8m'), { threads: 1 });
  try {
    const prompt = PROMPTS[1], cache = 'sink:4+28';
    const plain = await run(model, { prompt, cache, maxNewTokens: 64 });
    // Negate the draft head: every draft is now the token the heads find least likely.
    const head = (model.mctp as unknown as { w: { head: Linear & { w: number } } }).w.head;
    const w = model.net.rt.f32(head.w, head.N * head.K);
    w.set(w.map((x) => -x));
    const spec = await run(model, { prompt, cache, maxNewTokens: 64, speculate: { mode: 'mctp', draft: 4 } });
    assert.deepEqual(spec.ids, plain.ids);
    const sp = spec.stats.speculation!;
    assert.ok(sp.accepted.reduce((a, b) => a + b, 0) <= 2, `negated heads had ${sp.accepted} drafts accepted`);
  } finally {
    await model.close();
  }
});

test('a directory without heads refuses --speculate mctp; a bad mctp entry is a one-line error naming its field', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'mctp-'));
  try {
    for (const f of readdirSync(dir('novels-8m'))) if (!f.startsWith('mctp') && f !== 'config.json') symlinkSync(join(dir('novels-8m'), f), join(tmp, f));
    const cfg = JSON.parse(readFileSync(join(dir('novels-8m'), 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(tmp, 'config.json'), JSON.stringify({ ...cfg, mctp: undefined }));
    const model = await loadModel(tmp, { threads: 1 });
    try {
      assert.equal(model.mctp, null);
      await assert.rejects(run(model, { prompt: PROMPTS[0], maxNewTokens: 4, speculate: { mode: 'mctp' } }), /--speculate mctp needs MCTP heads/);
      const auto = await run(model, { prompt: PROMPTS[0], maxNewTokens: 8, speculate: { mode: 'auto' } });
      assert.equal(auto.ids.length, 8);
    } finally {
      await model.close();
    }
    // An mctp entry without its file (a copy made without it): no heads, not an error.
    writeFileSync(join(tmp, 'config.json'), JSON.stringify(cfg));
    const noFile = await loadModel(tmp, { threads: 1 });
    assert.equal(noFile.mctp, null);
    await noFile.close();
    writeFileSync(join(tmp, 'config.json'), JSON.stringify({ ...cfg, mctp: { ...(cfg.mctp as object), window: 0 } }));
    await assert.rejects(loadModel(tmp, { threads: 1 }), /mctp\.window/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
