import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { loadModel } from '../src/model.js';
import { generate } from '../src/generate/generate.js';
import { StreamlmError } from '../src/errors.js';
import { fixtureDir } from './helpers/fixtures.js';

const MAIN = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');
const LLAMA = fixtureDir('llama');
const MODELS = join(import.meta.dirname, '..', 'models');

function cli(args: string[], input?: string): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', timeout: 60_000, input });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** Exit 1 with one line on stderr naming each of `must`, and no stack trace or native crash. */
function oneLineError(r: { code: number; err: string }, ...must: (string | RegExp)[]): void {
  assert.equal(r.code, 1, `exit code ${r.code}; stderr:\n${r.err}`);
  const lines = r.err.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected:\n${r.err}`);
  for (const m of must) assert.match(lines[0], typeof m === 'string' ? new RegExp(m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : m);
}

// The fixture's cache costs 2 layers · 2 (K, V) · 64 floats · 4 bytes + 8 = 1032 bytes per slot, so
// about 4 million slots fit in the 4 GiB of wasm memory and these ask for far more.
test('a cache larger than wasm memory is refused before allocation, naming --cache and the largest that fits', () => {
  oneLineError(cli(['generate', '--model', LLAMA, '--prompt', 'hi there', '--max-tokens', '5', '--cache', 'window:99999999999']), '--cache', 'window:99999999999', /at most window:\d{6,7} fits/);
  oneLineError(cli(['generate', '--model', LLAMA, '--prompt', 'hi there', '--max-tokens', '5', '--cache', 'sink:4+100000000']), '--cache', /at most sink:4\+\d{6,7} fits/);
  oneLineError(cli(['generate', '--model', LLAMA, '--prompt', 'hi', '--max-tokens', '100000000', '--cache', 'dense']), '--max-tokens', /at most a dense cache of \d{6,7} tokens fits/);
});

test('serve refuses --max-sessions beyond wasm memory, naming the flag and how many fit', () => {
  oneLineError(cli(['serve', '--model', LLAMA, '--port', '0', '--cache', 'sink:4+2044', '--max-sessions', '100000']), '--max-sessions', '100000 caches', /at most \d{3,4} fit/);
});

test('the largest value the error names does run', async () => {
  const model = await loadModel(LLAMA, { threads: 1 });
  try {
    let fits = '';
    assert.throws(() => model.session({ cache: 'window:99999999999' }), (e: unknown) => {
      fits = /at most (window:\d+) fits/.exec((e as Error).message)?.[1] ?? '';
      return e instanceof StreamlmError && e.field === 'cache';
    });
    const s = model.session({ cache: fits });
    assert.equal(s.cache.capacity, Number(fits.slice(7)) + 64);
    assert.equal(s.prefill([5, 6, 7]).length, model.hparams.vocabSize);
    s.close();
  } finally {
    await model.close();
  }
});

test('--evict-chunk is accepted by generate and chat', async () => {
  const r = cli(['generate', '--model', LLAMA, '--prompt', 'The house stood', '--max-tokens', '30', '--cache', 'sink:2+6', '--evict-chunk', '3']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /cache sink:2\+6/);
  // The text equals plain greedy decoding of a session under the same policy and evict chunk.
  const model = await loadModel(LLAMA, { threads: 1 });
  try {
    const ids = model.encode('The house stood');
    const s = model.session({ cache: 'sink:2+6', evictChunk: 3 });
    const out: number[] = [];
    let l = s.prefill(ids);
    for (let i = 0; i < 30; i++) {
      let b = 0;
      for (let j = 1; j < l.length; j++) if (l[j] > l[b]) b = j;
      if (model.eosTokenIds.includes(b)) break;
      out.push(b);
      l = s.step(b);
    }
    s.close();
    const tok = model.tokenizer!, ctx = ids.slice(-4);
    const want = tok.decode([...ctx, ...out], { skipSpecialTokens: true }).slice(tok.decode(ctx, { skipSpecialTokens: true }).length);
    assert.equal(r.out, want + '\n');
  } finally {
    await model.close();
  }
  oneLineError(cli(['generate', '--model', LLAMA, '--prompt', 'x', '--evict-chunk', '0']), '--evict-chunk');
  const c = cli(['chat', '--model', LLAMA, '--cache', 'sink:2+6', '--evict-chunk', '3', '--max-tokens', '12'], 'Hello there\n/exit\n');
  assert.equal(c.code, 0, c.err);
  const status = /sinks (\d+)\/2 \| window (\d+)\/6 \| evicted (\d+)/.exec(c.err);
  assert.ok(status, c.err);
  // Chunked eviction: after an overflow the window holds between W−C+1 and W tokens.
  assert.ok(Number(status[2]) >= 6 - 3 + 1 && Number(status[2]) <= 6 && Number(status[3]) > 0, status[0]);
});

test('an empty prompt is refused the same way by both shipped models and by the library', async () => {
  for (const m of ['novels-8m', 'novels-8m-sink']) oneLineError(cli(['generate', '--model', join(MODELS, m), '--prompt', '', '--max-tokens', '3']), '--prompt', 'empty');
  const model = await loadModel(LLAMA, { threads: 1 });
  try {
    await assert.rejects(async () => { for await (const _ of generate(model, { prompt: '' })) { /* nothing */ } }, (e: unknown) => e instanceof StreamlmError && e.field === 'prompt');
  } finally {
    await model.close();
  }
});
