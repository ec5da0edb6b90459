// ForwardOptions.into, which the page's streaming evaluation (src/browser/page/engine.ts) and
// bench:browser use so that a decode step allocates no vocab-sized array: the
// logits written into the caller's array must be exactly those a step returns in a new one, and the
// decode stepper (generate, the server, the page's chat) decodes with it as plain steps do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../src/model.js';
import { DecodeStepper } from '../src/generate/stepper.js';
import { argmax } from '../src/generate/sampler.js';

const MODEL = 'models/novels-8m-sink';

test('step(id, { into }) returns `into` holding the same logits as a plain step, bit for bit', async () => {
  const m = await loadModel(MODEL, { threads: 1, dtype: 'f32' });
  try {
    const plain = m.session({ cache: 'sink:4+28' });
    const reused = m.session({ cache: 'sink:4+28' });
    const prompt = m.encode('Once upon a time');
    let a = plain.prefill(prompt);
    let b = reused.prefill(prompt);
    assert.deepEqual(b, a);
    const buffer = b;
    // 40 greedy steps: past the 32-slot window, so eviction runs too.
    for (let i = 0; i < 40; i++) {
      const best = argmax(a);
      const before = a;
      a = plain.step(best);
      b = reused.step(best, { into: buffer });
      assert.equal(b, buffer, 'the logits come back in the array given');
      assert.notEqual(a, before, 'without into, every step returns a new array');
      assert.deepEqual(new Uint32Array(b.buffer, b.byteOffset, b.length), new Uint32Array(a.buffer, a.byteOffset, a.length), `step ${i}`);
      assert.equal(reused.logits, buffer);
    }
    // An array of another length is not written: the step allocates as without it.
    const wrong = new Float32Array(7);
    const c = reused.step(1, { into: wrong });
    assert.notEqual(c, wrong);
    assert.equal(c.length, a.length);
    assert.deepEqual(wrong, new Float32Array(7));
    reused.close();   // sessions close in reverse order of creation
    plain.close();
  } finally {
    await m.close();
  }
});

test('the decode stepper writes every plain step into one array and decodes as plain greedy steps do', async () => {
  const m = await loadModel(MODEL, { threads: 1, dtype: 'f32' });
  try {
    const plain = m.session({ cache: 'sink:4+28' });
    const stepped = m.session({ cache: 'sink:4+28' });
    const prompt = m.encode('Once upon a time');
    let a = plain.prefill(prompt);
    stepped.prefill(prompt);
    const expected: number[] = [];
    for (let i = 0; i < 40; i++) {
      const best = argmax(a);
      expected.push(best);
      a = plain.step(best);
    }
    const st = new DecodeStepper(stepped, { maxNewTokens: 41, sampler: { temperature: 0 }, eos: [], tokenizer: null });
    const got: number[] = [];
    const arrays = new Set<Float32Array>();
    for (let i = 0; i < 40; i++) {
      got.push(st.next().id!);
      arrays.add(stepped.logits!);
    }
    assert.deepEqual(got, expected);
    assert.equal(arrays.size, 1, 'the first step allocates, every later one writes into that array (40 arrays without into)');
    stepped.close();
    plain.close();
  } finally {
    await m.close();
  }
});
