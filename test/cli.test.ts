import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensorsHeader, readTensorBytes } from '../src/runtime/safetensors.js';
import { writeSafetensors } from './helpers/safetensors-writer.js';
import { fixtureDir } from './helpers/fixtures.js';

const MAIN = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');

function cli(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** A user error: non-zero exit, one line naming what is wrong, and no stack trace. */
function assertUserError(r: { code: number; err: string }, ...mustName: (string | RegExp)[]): void {
  assert.notEqual(r.code, 0, 'expected a non-zero exit');
  assert.doesNotMatch(r.err, /\n\s+at /, `stack trace leaked:\n${r.err}`);
  for (const m of mustName) assert.match(r.err, typeof m === 'string' ? new RegExp(m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : m);
}

function copyFixture(name = 'llama'): string {
  const d = mkdtempSync(join(tmpdir(), 'streamlm-cli-'));
  cpSync(fixtureDir(name), d, { recursive: true });
  return d;
}

const LLAMA = fixtureDir('llama');

test('generate streams text and ends with a tok/s and peak RSS summary', () => {
  const r = cli('generate', '--model', LLAMA, '--prompt', 'The house', '--max-tokens', '12', '--threads', '2');
  assert.equal(r.code, 0, r.err);
  assert.ok(r.out.length > 0);
  assert.match(r.err, /prompt \d+ tok, [\d.]+ tok\/s \| decode 12 tok, [\d.]+ tok\/s \| peak RSS \d+ MB/);
  // Greedy decoding is deterministic; q8_0 weights run the same path through int8 kernels.
  assert.equal(cli('generate', '--model', LLAMA, '--prompt', 'The house', '--max-tokens', '12').out, r.out);
  const q = cli('generate', '--model', LLAMA, '--prompt', 'The house', '--max-tokens', '4', '--dtype', 'q8_0');
  assert.equal(q.code, 0, q.err);
});

test('eval-ppl prints the JSON result as its last stdout line and writes the plot', () => {
  const dir = mkdtempSync(join(tmpdir(), 'streamlm-ppl-'));
  const text = join(dir, 'a.txt');
  writeFileSync(text, 'It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. '.repeat(8));
  const svg = join(dir, 'ppl.svg');
  const r = cli('eval-ppl', '--model', LLAMA, '--text', text, '--cache', 'dense,window:16,sink:4+12,recompute:16', '--tokens', '300', '--json', '--plot', svg);
  assert.equal(r.code, 0, r.err);
  const last = JSON.parse(r.out.trim().split('\n').pop()!);
  assert.equal(last.tokens, 300);
  assert.deepEqual(last.results.map((x: { cache: string }) => x.cache), ['dense', 'window:16', 'sink:4+12', 'recompute:16']);
  for (const x of last.results) {
    assert.ok(x.ppl > 1 && Number.isFinite(x.ppl));
    assert.ok(x.tok_s > 0 && x.peak_rss_mb > 0 && x.nll_per_1k.length === 1);
  }
  assert.match(readFileSync(svg, 'utf8'), /<svg[\s\S]*polyline[\s\S]*sink:4\+12/);
  assert.ok(!existsSync(svg + '.tmp'));
});

test('attention-map renders heatmaps and prints the share on token 0 per layer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'streamlm-att-'));
  const text = join(dir, 't.txt');
  writeFileSync(text, 'Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse.');
  const out = join(dir, 'map.svg');
  const r = cli('attention-map', '--model', LLAMA, '--text', text, '--layers', '0,-1', '--out', out);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /layer\s+attention on token 0/);
  assert.equal(r.out.trim().split('\n').length, 3); // header + 2 layers
  const svg = readFileSync(out, 'utf8');
  assert.match(svg, /layer 0:[\s\S]*layer 1:/);
});

test('bad input: each case names the file or field and exits non-zero', () => {
  assertUserError(cli('generate', '--model', '/no/such/dir', '--prompt', 'x'), '/no/such/dir');
  assertUserError(cli('generate', '--model', LLAMA), '--prompt');
  assertUserError(cli('eval-ppl', '--model', LLAMA, '--text', 'x.txt', '--cache', 'sink:4'), 'sink:S+W');
  assertUserError(cli('eval-ppl', '--model', LLAMA, '--text', 'x.txt', '--cache', 'window:0'), 'window:W');
  assertUserError(cli('eval-ppl', '--model', LLAMA, '--text', 'x.txt', '--cache', 'sink:-1+10'), 'Accepted forms');
  const empty = join(mkdtempSync(join(tmpdir(), 'streamlm-e-')), 'empty.txt');
  writeFileSync(empty, '  \n');
  assertUserError(cli('eval-ppl', '--model', LLAMA, '--text', empty, '--cache', 'dense'), empty, 'empty');

  const arch = copyFixture();
  const cfg = JSON.parse(readFileSync(join(arch, 'config.json'), 'utf8'));
  writeFileSync(join(arch, 'config.json'), JSON.stringify({ ...cfg, architectures: ['BertForMaskedLM'] }));
  assertUserError(cli('generate', '--model', arch, '--prompt', 'x'), 'config.json', 'architectures', 'BertForMaskedLM');

  const vocab = copyFixture();
  writeFileSync(join(vocab, 'config.json'), JSON.stringify({ ...cfg, vocab_size: 100 }));
  assertUserError(cli('generate', '--model', vocab, '--prompt', 'x'), 'tokenizer.json', 'vocab_size');

  const trunc = copyFixture();
  const st = join(trunc, 'model.safetensors');
  truncateSync(st, statSync(st).size - 1000);
  assertUserError(cli('generate', '--model', trunc, '--prompt', 'x'), 'model.safetensors');

  // A checkpoint without one of the tensors the config implies.
  const missing = copyFixture();
  const { tensors } = readSafetensorsHeader(join(missing, 'model.safetensors'));
  const keep = tensors.filter((t) => t.name !== 'model.layers.1.mlp.up_proj.weight').map((t) => {
    const data = new Uint8Array(t.byteLength);
    readTensorBytes(t, data);
    return { name: t.name, dtype: t.dtype as 'F32', shape: t.shape, data };
  });
  writeSafetensors(join(missing, 'model.safetensors'), keep);
  assertUserError(cli('generate', '--model', missing, '--prompt', 'x'), 'model.layers.1.mlp.up_proj.weight');

  // A tensor whose shape disagrees with the config.
  const shape = copyFixture();
  writeFileSync(join(shape, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: cfg.intermediate_size + 8 }));
  assertUserError(cli('generate', '--model', shape, '--prompt', 'x'), 'mlp.gate_proj.weight', 'shape');
});
