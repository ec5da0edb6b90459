import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadModel, type Model } from '../src/model.js';
import { generate, type GenerateOptions, type GenerationStats } from '../src/generate/generate.js';
import type { Drafter } from '../src/generate/ngram.js';
import { NgramDrafter } from '../src/generate/ngram.js';
import type { TurnResult } from '../src/server/engine.js';
import { FIXTURES } from './helpers/fixtures.js';

/** Every policy, small enough that 120 tokens evict many times over (and so during verifications). */
const POLICIES: { cache: string; evictChunk?: number }[] = [
  { cache: 'dense' }, { cache: 'window:24' }, { cache: 'sink:4+20' }, { cache: 'sink:2+20', evictChunk: 5 }, { cache: 'recompute:12' },
];
/** A prompt that quotes itself, so the n-gram drafter finds matches from the start. */
const PROMPT = [...Array.from({ length: 10 }, (_, i) => 3 + i * 5), ...Array.from({ length: 10 }, (_, i) => 3 + i * 5), 3, 8];

async function run(model: Model, opts: GenerateOptions): Promise<{ ids: number[]; stats: GenerationStats }> {
  const ids: number[] = [];
  const it = generate(model, { promptIds: PROMPT, ignoreEos: true, prefillChunk: 8, ...opts });
  for (;;) {
    const r = await it.next();
    if (r.done) return { ids, stats: r.value };
    if (r.value.id >= 0) ids.push(r.value.id);
  }
}

/** Proposes tokens that are (almost) never right: the backbone must overrule every one. */
class WrongDrafter implements Drafter {
  readonly name = 'wrong';
  push(): void {}
  propose(next: number, k: number): number[] { return Array.from({ length: k }, (_, i) => (next * 31 + i * 7 + 1) % 200 + 2); }
}

test('greedy speculative decoding gives plain decoding\'s tokens under every policy, on several families', async () => {
  for (const fam of ['llama', 'qwen2', 'gpt_neox']) {
    const model = await loadModel(join(FIXTURES, fam), { threads: 1 });
    try {
      for (const p of POLICIES) {
        const plain = await run(model, { ...p, maxNewTokens: 120 });
        const ngram = await run(model, { ...p, maxNewTokens: 120, speculate: { mode: 'ngram', draft: 5 } });
        assert.deepEqual(ngram.ids, plain.ids, `${fam} ${p.cache}: n-gram speculation changed the greedy output`);
        const wrong = await run(model, { ...p, maxNewTokens: 120, speculate: { drafter: new WrongDrafter(), draft: 4 } });
        assert.deepEqual(wrong.ids, plain.ids, `${fam} ${p.cache}: a drafter that is always wrong changed the output`);
        const sp = ngram.stats.speculation!;
        if (p.cache.startsWith('recompute')) {
          // recompute keeps no K/V to take back: it decodes plainly, one token per forward.
          assert.equal(sp.tokensPerForward, 1);
        } else {
          // 119 tokens fed (the last stays pending); fewer forwards than tokens once drafts are accepted.
          assert.ok(sp.forwards <= 119, `${fam} ${p.cache}: ${sp.forwards} forwards`);
          assert.ok(sp.accepted.every((a, i) => a <= sp.proposed[i]));
        }
      }
    } finally {
      await model.close();
    }
  }
});

test('the n-gram drafter proposes what followed the latest match of the longest suffix, from a bounded ring', () => {
  const d = new NgramDrafter(8, 3);
  d.push([1, 2, 3, 4, 5, 1, 2]);
  assert.deepEqual(d.propose(3, 3), [4, 5, 1]);        // suffix 1 2 3 matched at the start
  assert.deepEqual(d.propose(9, 3), []);               // 9 never seen
  d.push([3, 9, 9, 9, 9, 9, 9, 9]);                    // the ring keeps only the last 8: 1 2 3 4 5 are gone
  assert.deepEqual(d.propose(4, 2), []);
  assert.deepEqual(d.propose(9, 2), [9, 9]);
});

/** Two-sample chi-square statistic over the categories either sample has. */
function chi2(a: Map<number, number>, b: Map<number, number>): { stat: number; df: number } {
  let stat = 0, df = -1;
  for (const k of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(k) ?? 0, y = b.get(k) ?? 0;
    stat += (x - y) ** 2 / (x + y);
    df++;
  }
  return { stat, df };
}

test('speculative sampling draws tokens with plain sampling\'s distribution (chi-square)', async () => {
  const model = await loadModel(join(FIXTURES, 'llama'), { threads: 1 });
  try {
    // A drafter that proposes the greedy continuation, which the sampler accepts often but not always.
    const greedy = (await run(model, { cache: 'sink:4+20', maxNewTokens: 4 })).ids;
    const drafter = (): Drafter => {
      let at = 0;
      return { name: 'greedy', push(ids: readonly number[]) { at += ids.length; }, propose: (_n, k) => greedy.slice(at - PROMPT.length + 1, at - PROMPT.length + 1 + k) };
    };
    const N = 1500, sampler = { temperature: 0.7, topK: 6 };
    const count = (): Map<number, number>[] => [new Map(), new Map(), new Map()];
    const plain = count(), spec = count();
    let accepted = 0, proposed = 0;
    for (let seed = 0; seed < N; seed++) {
      const a = await run(model, { cache: 'sink:4+20', maxNewTokens: 4, sampler: { ...sampler, seed } });
      const b = await run(model, { cache: 'sink:4+20', maxNewTokens: 4, sampler: { ...sampler, seed: seed + 1e6 }, speculate: { drafter: drafter(), draft: 2 } });
      for (let i = 0; i < 3; i++) {
        plain[i].set(a.ids[i], (plain[i].get(a.ids[i]) ?? 0) + 1);
        spec[i].set(b.ids[i], (spec[i].get(b.ids[i]) ?? 0) + 1);
      }
      const sp = b.stats.speculation!;
      accepted += sp.accepted.reduce((x, y) => x + y, 0);
      proposed += sp.proposed.reduce((x, y) => x + y, 0);
    }
    // Both paths must actually be exercised: some drafts accepted, some rejected and resampled.
    assert.ok(accepted > N / 10 && accepted < proposed - N / 10, `accepted ${accepted} of ${proposed}`);
    for (let i = 0; i < 3; i++) {
      const { stat, df } = chi2(plain[i], spec[i]);
      // Bound: the chi-square 0.999 quantile, ~ df + 3.1·sqrt(2·df) + 5 for these df (<= 6·6·6 categories at most).
      const bound = df + 3.1 * Math.sqrt(2 * df) + 5;
      assert.ok(stat < bound, `token ${i + 1}: chi-square ${stat.toFixed(1)} >= ${bound.toFixed(1)} (df ${df})`);
    }
  } finally {
    await model.close();
  }
});

test('the server engine speculates per turn: same tokens as plain, and speculation stats in the result', async () => {
  const { Engine } = await import('../src/server/engine.js');
  const model = await loadModel(join(FIXTURES, 'llama'), { threads: 1 });
  try {
    const turn = async (speculate: GenerateOptions['speculate']): Promise<{ text: string; r: TurnResult }> => {
      const eng = new Engine(model, { cache: 'sink:4+20', maxSessions: 1, prefillChunk: 8, speculate });
      try {
        const t = await eng.start({ session: null, input: { kind: 'text', prompt: PROMPT }, maxTokens: 60, sampler: {}, stop: [], ignoreEos: true });
        let text = '';
        for await (const x of t) text += x.text;
        return { text, r: await t.result };
      } finally {
        eng.close();
      }
    };
    const plain = await turn(undefined), spec = await turn({ mode: 'ngram', draft: 4 });
    assert.equal(spec.r.completionTokens, 60);
    assert.equal(plain.r.completionTokens, 60);
    assert.equal(plain.r.speculation, undefined);
    const sp = spec.r.speculation!;
    assert.ok(sp.forwards < 59 && sp.tokensPerForward > 1, `${sp.forwards} forwards, ${sp.tokensPerForward} tokens per forward`);
    assert.ok(plain.text.length > 0);
    assert.equal(spec.text, plain.text);
  } finally {
    await model.close();
  }
});

test('a stop string inside an accepted draft leaves the cache where plain decoding leaves it', async () => {
  const model = await loadModel(join(FIXTURES, 'llama'), { threads: 1 });
  try {
    const decode = async (stop: string[], speculate?: GenerateOptions['speculate']) => {
      const session = model.session({ cache: 'dense', maxTokens: 256 });
      let text = '';
      const it = generate(model, { promptIds: PROMPT, ignoreEos: true, prefillChunk: 8, maxNewTokens: 60, session, stop, speculate });
      let r = await it.next();
      for (; !r.done; r = await it.next()) text += r.value.text;
      const out = { text, stats: r.value, cache: session.stats(), logits: Float32Array.from(session.logits!) };
      session.close();
      return out;
    };
    const full = await decode([]);
    let midDraft = 0;
    // Stop strings starting at several places of the greedy text; some end inside an accepted draft.
    for (let at = 20; at < Math.min(full.text.length - 4, 120); at += 7) {
      const stop = [full.text.slice(at, at + 3)];
      const plain = await decode(stop), spec = await decode(stop, { mode: 'ngram', draft: 5 });
      assert.equal(spec.text, plain.text, `stop ${JSON.stringify(stop[0])}: text`);
      assert.equal(spec.stats.finishReason, 'stop');
      assert.deepEqual(spec.cache, plain.cache, `stop ${JSON.stringify(stop[0])}: the cache holds other tokens than plain decoding's`);
      // Batched verification rows against one-row steps: the same numbers up to float reassociation.
      for (let i = 0; i < plain.logits.length; i++) assert.ok(Math.abs(spec.logits[i] - plain.logits[i]) < 1e-4, `logit ${i}`);
      if (spec.stats.speculation!.tokensPerForward > 1) midDraft++;
    }
    assert.ok(midDraft > 0, 'no case where drafts were accepted before the stop');
  } finally {
    await model.close();
  }
});
