import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sampler, argmax } from '../src/generate/sampler.js';
import { StopMatcher } from '../src/generate/stop.js';
import { StreamlmError } from '../src/errors.js';
import { DecodeStepper, type StepperSession } from '../src/generate/stepper.js';
import { TextTokenizer } from '../src/tokenizer.js';
import { fixtureDir } from './helpers/fixtures.js';

function logits(seed: number, n = 500): Float32Array {
  const x = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) { s = (s * 1103515245 + 12345) >>> 0; x[i] = (s / 2 ** 32) * 8 - 4; }
  return x;
}

test('greedy, top-k 1 and tiny top-p all pick the argmax', () => {
  for (let seed = 1; seed < 20; seed++) {
    const l = logits(seed);
    // Every logit is in [-4, 4); plant a 5 at a known index, so the expected token comes from the test.
    const want = (seed * 37) % l.length;
    l[want] = 5;
    assert.equal(argmax(l), want);
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

// --- the decode stepper, on a scripted session: its logits put the next scripted id on top.

const TOK = TextTokenizer.load(fixtureDir('llama'))!;
const EOS = 1;
const CTX = TOK.encode('Once', { addSpecialTokens: false });
/** 'Once the cat sat on the mat' minus the context 'Once': the text a stepper must give back. */
const SCRIPT = TOK.encode('Once the cat sat on the mat', { addSpecialTokens: false }).slice(CTX.length);

class ScriptedSession implements StepperSession {
  fed: number[] = [];
  pending: number[] = [];
  private i = 0;
  constructor(private readonly ids: number[]) {}
  get logits(): Float32Array {
    const l = new Float32Array(320).fill(-1);
    l[this.i < this.ids.length ? this.ids[this.i] : EOS] = 3;
    return l;
  }
  step(id: number): Float32Array { this.fed.push(id); this.i++; return this.logits; }
  defer(ids: readonly number[]): void { this.pending.push(...ids); }
}

function drive(st: DecodeStepper): { text: string; ids: number[]; finish: string | null } {
  let text = '', finish: string | null = null;
  const ids: number[] = [];
  for (let n = 0; n < 100 && !finish; n++) { const s = st.next(); text += s.text; if (s.id !== null) ids.push(s.id); finish = s.finish; }
  return { text, ids, finish };
}

test('stepper: runs to EOS, emits the exact text, feeds every token and returns its stats', () => {
  const sess = new ScriptedSession(SCRIPT);
  const st = new DecodeStepper(sess, { maxNewTokens: 100, eos: [EOS], tokenizer: TOK, context: CTX });
  const r = drive(st);
  assert.deepEqual(r, { text: ' the cat sat on the mat', ids: SCRIPT, finish: 'stop' });
  assert.deepEqual(sess.fed, SCRIPT);
  assert.deepEqual(sess.pending, []);
  const stats = st.stats();
  assert.deepEqual([stats.newTokens, stats.finishReason], [SCRIPT.length, 'stop']);
});

test('stepper: the budget ends generation and leaves the last token pending; stop strings are cut', () => {
  const sess = new ScriptedSession(SCRIPT);
  const r = drive(new DecodeStepper(sess, { maxNewTokens: 3, eos: [EOS], tokenizer: TOK, context: CTX }));
  assert.deepEqual([r.ids, r.finish], [SCRIPT.slice(0, 3), 'length']);
  assert.deepEqual([sess.fed, sess.pending], [SCRIPT.slice(0, 2), [SCRIPT[2]]]);
  assert.equal(r.text, TOK.decode([...CTX, ...SCRIPT.slice(0, 3)]).slice('Once'.length));

  const s2 = new ScriptedSession(SCRIPT);
  const r2 = drive(new DecodeStepper(s2, { maxNewTokens: 100, eos: [EOS], tokenizer: TOK, context: CTX, stop: [' sat'] }));
  assert.deepEqual([r2.text, r2.finish], [' the cat', 'stop']);
  assert.deepEqual(s2.pending, []);

  const s3 = new ScriptedSession(SCRIPT);
  const r3 = drive(new DecodeStepper(s3, { maxNewTokens: 100, eos: [EOS], ignoreEos: true, tokenizer: null }));
  assert.equal(r3.ids.length, 100, 'EOS ignored: generation runs to the budget');
  assert.deepEqual(r3.ids.slice(SCRIPT.length, SCRIPT.length + 3), [EOS, EOS, EOS]);
  assert.equal(r3.finish, 'length');
  const ac = new AbortController();
  const s4 = new ScriptedSession(SCRIPT);
  const st4 = new DecodeStepper(s4, { maxNewTokens: 100, eos: [EOS], tokenizer: TOK, context: CTX, signal: ac.signal });
  assert.equal(st4.next().id, SCRIPT[0]);
  ac.abort();
  assert.deepEqual(st4.next(), { id: null, text: '', finish: 'abort' });
  assert.equal(st4.stats().newTokens, 1);
});
