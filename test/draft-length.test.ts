// `--draft auto` (src/generate/draft-length.ts): the draft length that maximises tokens per
// millisecond under the costs and acceptances a stream measured, plain steps where no draft pays,
// and the same greedy tokens as plain decoding whatever it picks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DraftTuner } from '../src/generate/draft-length.js';
import { loadModel } from '../src/model.js';
import { generate } from '../src/generate/generate.js';
import { FIXTURES } from './helpers/fixtures.js';

/**
 * Runs `n` decisions against a synthetic machine: a forward of r rows costs rowMs(r), drafting is
 * free, and every draft position is accepted with probability `accept` (deterministically: the
 * counts are set, not sampled). Returns how often each length was chosen after the learning phase.
 */
function simulate(rowMs: (r: number) => number, accept: number, n = 200, maxDraft = 4): number[] {
  const t = new DraftTuner(maxDraft);
  // Teach it the acceptances first: 1000 walks whose kept count follows `accept` at each position.
  for (let i = 0; i < 1000; i++) {
    let kept = 0;
    while (kept < maxDraft && (((i * 7919 + kept * 104729) % 1000) + 0.5) / 1000 < accept) kept++;
    t.speculated(maxDraft, kept, 0, rowMs(maxDraft + 1));
  }
  const chosen = new Array<number>(maxDraft + 1).fill(0);
  for (let i = 0; i < n; i++) {
    const k = t.choose(maxDraft);
    if (i >= 10) chosen[k]++;
    if (k === 0) t.plain(rowMs(1));
    else t.speculated(k, k, 0, rowMs(k + 1));
  }
  return chosen;
}

test('draft auto: the longest draft where extra rows are nearly free, plain steps where each row costs a step', () => {
  // Memory-bound (a 0.5B model): 5 rows cost 1.2 steps; 85% acceptance -> draft 4.
  const cheap = simulate((r) => 1 + 0.05 * (r - 1), 0.85);
  assert.ok(cheap[4] >= 0.9 * 190, `cheap rows: ${cheap}`);
  // Compute-bound (the shipped 8M models): each row costs a step -> plain steps, except exploration.
  const dear = simulate((r) => r, 0.85);
  assert.ok(dear[0] >= 0.9 * 190, `dear rows: ${dear}`);
  // In between: rows at 0.3 step and 70% acceptance -> a short draft beats both ends.
  // E(k) = 1, 1.7, 2.19, 2.53, 2.77 over cost 1, 1.3, 1.6, 1.9, 2.2: tokens per step
  // 1, 1.31, 1.37, 1.33, 1.26, so k = 2.
  const mid = simulate((r) => 1 + 0.3 * (r - 1), 0.7);
  assert.ok(mid[2] >= 0.9 * 190, `middle: ${mid}`);
});

test('draft auto: never past the budget\'s limit, and a limit below 1 is a plain step', () => {
  const t = new DraftTuner(4);
  assert.equal(t.choose(0), 0);
  assert.equal(t.choose(2), 2, 'the first decision drafts the most it may');
  t.speculated(2, 1, 0, 2);
  for (let i = 0; i < 50; i++) {
    const k = t.choose(3);
    assert.ok(k >= 0 && k <= 3, `k = ${k}`);
    if (k === 0) t.plain(1); else t.speculated(k, 1, 0, k + 1);
  }
  // One tuner per session and drafter: the next turn of a conversation starts from what this one learned.
  const session = {};
  assert.equal(DraftTuner.of(session, 'ngram', 4), DraftTuner.of(session, 'ngram', 4));
  assert.notEqual(DraftTuner.of(session, 'ngram', 4), DraftTuner.of(session, 'mctp', 4));
  assert.notEqual(DraftTuner.of(session, 'ngram', 4), DraftTuner.of({}, 'ngram', 4));
});

test('greedy decoding with --draft auto gives plain decoding\'s tokens', async () => {
  const model = await loadModel(join(FIXTURES, 'llama'), { threads: 1 });
  try {
    const promptIds = [...Array.from({ length: 10 }, (_, i) => 3 + i * 5), ...Array.from({ length: 10 }, (_, i) => 3 + i * 5), 3, 8];
    const ids = async (speculate?: { mode: 'ngram'; draft: 'auto' }): Promise<number[]> => {
      const out: number[] = [];
      for await (const s of generate(model, { promptIds, ignoreEos: true, prefillChunk: 8, cache: 'sink:4+20', maxNewTokens: 120, ...(speculate ? { speculate } : {}) })) {
        if (s.id >= 0) out.push(s.id);
      }
      return out;
    };
    assert.deepEqual(await ids({ mode: 'ngram', draft: 'auto' }), await ids());
  } finally {
    await model.close();
  }
});
