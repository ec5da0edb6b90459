import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sampler, argmax } from '../src/generate/sampler.js';
import { StopMatcher } from '../src/generate/stop.js';
import { StreamlmError } from '../src/errors.js';

function logits(seed: number, n = 500): Float32Array {
  const x = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) { s = (s * 1103515245 + 12345) >>> 0; x[i] = (s / 2 ** 32) * 8 - 4; }
  return x;
}

test('greedy, top-k 1 and tiny top-p all pick the argmax', () => {
  for (let seed = 1; seed < 20; seed++) {
    const l = logits(seed);
    const want = argmax(l);
    assert.equal(new Sampler().sample(l), want);
    assert.equal(new Sampler({ temperature: 1, topK: 1, seed }).sample(l), want);
    assert.equal(new Sampler({ temperature: 1, topP: 1e-6, seed }).sample(l), want);
  }
});

test('sampling is reproducible from the seed and follows the distribution', () => {
  const l = new Float32Array([Math.log(0.7), Math.log(0.2), Math.log(0.1)]);
  const a = new Sampler({ temperature: 1, seed: 42 }), b = new Sampler({ temperature: 1, seed: 42 });
  const counts = [0, 0, 0];
  for (let i = 0; i < 20000; i++) { const x = a.sample(l); assert.equal(x, b.sample(l)); counts[x]++; }
  assert.ok(Math.abs(counts[0] / 20000 - 0.7) < 0.02, `p0 ${counts[0] / 20000}`);
  assert.ok(Math.abs(counts[2] / 20000 - 0.1) < 0.02, `p2 ${counts[2] / 20000}`);
  // top-p 0.75 keeps only the two most likely tokens.
  const c = new Sampler({ temperature: 1, topP: 0.75, seed: 3 });
  for (let i = 0; i < 2000; i++) assert.notEqual(c.sample(l), 2);
});

test('bad sampler settings name the parameter', () => {
  assert.throws(() => new Sampler({ temperature: -1 }), (e: unknown) => e instanceof StreamlmError && /temperature/.test(e.message));
  assert.throws(() => new Sampler({ topP: 0 }), /top_p/);
  assert.throws(() => new Sampler({ topK: 1.5 }), /top_k/);
});

test('stop strings split across tokens are never emitted', () => {
  const m = new StopMatcher(['</end>']);
  let out = '';
  let stopped = false;
  for (const piece of ['Hello', ' wor', 'ld<', '/e', 'nd> more']) {
    const r = m.push(piece);
    out += r.text;
    if (r.stopped) { stopped = true; break; }
  }
  assert.equal(out, 'Hello world');
  assert.ok(stopped);
  const n = new StopMatcher(['xyz']);
  assert.equal(n.push('abx').text, 'ab');
  assert.equal(n.push('q').text, 'xq');
  assert.equal(n.push('x', true).text, 'x');
});
