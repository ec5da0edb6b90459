import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensorsHeader, readTensorBytes } from '../src/runtime/safetensors.js';
import { writeSafetensors } from './helpers/safetensors-writer.js';
import { fixtureDir, readReference, readStreamRef, type Reference } from './helpers/fixtures.js';

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
const QWEN2 = fixtureDir('qwen2');

/** Index of the largest logit of row `row` of the HF reference logits. */
function refArgmax(ref: Reference, row: number): number {
  let best = 0;
  for (let i = 1; i < ref.vocab; i++) if (ref.logitsFull[row * ref.vocab + i] > ref.logitsFull[row * ref.vocab + best]) best = i;
  return best;
}

test('generate streams the greedy completion HF predicts, ends with a newline and a summary on stderr', () => {
  // The qwen2 fixture's tokenizer round-trips the first 4 reference ids (no BOS is added), so the
  // CLI sees exactly HF's input and its first greedy token must be HF's argmax after them.
  const ref = readReference('qwen2');
  const tok = JSON.parse(readFileSync(join(QWEN2, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
  const byId = new Map(Object.entries(tok.model.vocab).map(([k, v]) => [v, k]));
  assert.deepEqual(ref.inputIds.slice(0, 4).map((i) => byId.get(i)), ['Ġbe', '\u0115', 'Ġl', 'T']);   // byte-level BPE: Ġ is a space, ĕ is 0x15
  const prompt = ' be\u0015 lT';
  const first = refArgmax(ref, 3);
  assert.equal(byId.get(first), 'id');
  const r = cli('generate', '--model', QWEN2, '--prompt', prompt, '--max-tokens', '12', '--threads', '1');
  assert.equal(r.code, 0, r.err);
  assert.ok(r.out.startsWith('id'), `first greedy token: HF says 'id' (id ${first}); got ${JSON.stringify(r.out)}`);
  // Regression pin of the whole greedy run, recorded once (2026-12-02) from the library path whose
  // logits parity.test.ts checks against HF for this fixture: 318 318 then 196 (byte 0x06) x 10.
  assert.equal(r.out, 'idid' + '\u0006'.repeat(10) + '\n');
  assert.match(r.err, /prompt 4 tok, [\d.]+ tok\/s \| decode 12 tok, [\d.]+ tok\/s \| peak RSS \d+ MB \| 1 thread, cache sink:4\+1020, stop: length/);
  // q8_0 weights run the int8 kernels and keep the same greedy tokens on this prompt; 2 threads too.
  const q = cli('generate', '--model', QWEN2, '--prompt', prompt, '--max-tokens', '12', '--dtype', 'q8_0', '--threads', '2');
  assert.equal(q.code, 0, q.err);
  assert.equal(q.out, r.out);
  assert.match(q.err, /\| 2 threads,/);
});

test('eval-ppl reproduces the reference streaming perplexities; table on stdout, JSON with --json, the plot', () => {
  // stream.json holds transformers' perplexities of 2000 tokens of longeval text under each policy;
  // the qwen2 fixture's tokenizer round-trips those tokens, so the CLI reads exactly that stream.
  const sref = readStreamRef('qwen2')!;
  const tok = JSON.parse(readFileSync(join(QWEN2, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
  const byId = new Map(Object.entries(tok.model.vocab).map(([k, v]) => [v, k]));
  const bytes = [...sref.tokens.map((i) => byId.get(i)!).join('')].map((ch) => BYTE_OF.get(ch)!);
  const dir = mkdtempSync(join(tmpdir(), 'streamlm-ppl-'));
  const text = join(dir, 'stream.txt');
  writeFileSync(text, Uint8Array.from(bytes));
  const svg = join(dir, 'ppl.svg');
  const policies = ['dense', 'window:60', 'sink:4+60'];
  const r = cli('eval-ppl', '--model', QWEN2, '--text', text, '--cache', policies.join(','), '--tokens', '2000', '--json', '--plot', svg);
  assert.equal(r.code, 0, r.err);
  const out = r.out.trim().split('\n');
  assert.equal(out.length, 1, 'with --json, stdout holds the JSON line only');
  const last = JSON.parse(out[0]);
  assert.equal(last.tokens, 2000);
  assert.deepEqual(last.results.map((x: { cache: string }) => x.cache), policies);
  for (const x of last.results) {
    const want = sref.policies[x.cache].ppl;
    assert.ok(Math.abs(x.ppl - want) / want < 1e-3, `${x.cache}: ppl ${x.ppl} vs transformers ${want}`);
    assert.ok(x.tok_s > 0 && x.peak_rss_mb > 0 && x.nll_per_1k.length === 2);
  }
  assert.match(r.err, /^cache\s+ppl/m, 'the table goes to stderr when stdout carries JSON');
  assert.match(readFileSync(svg, 'utf8'), /<svg[\s\S]*polyline[\s\S]*sink:4\+60/);
  assert.deepEqual(readdirSync(dir).sort(), ['ppl.svg', 'stream.txt'], 'no temporary file is left');

  // Without --json the table is the result, on stdout (so `> out.txt` captures it); a short text says so.
  const t = cli('eval-ppl', '--model', QWEN2, '--text', text, '--cache', 'window:60', '--tokens', '100000');
  assert.equal(t.code, 0, t.err);
  assert.match(t.out, /^cache\s+ppl\s+ppl@>=60\s+tok\/s\s+rss MB\nwindow:60\s+([\d.]+)/);
  const ppl = Number(/window:60\s+([\d.]+)/.exec(t.out)![1]);
  assert.ok(Math.abs(ppl - sref.policies['window:60'].ppl) / sref.policies['window:60'].ppl < 1e-3, `window:60 table ppl ${ppl}`);
  assert.match(t.err, /the text gives only 2000 tokens; evaluating those 2000 \(--tokens 100000\)/);
  assert.match(t.err, /window:60 .* ETA /, 'the progress bar shows an ETA');
});

/** GPT-2 byte-level BPE: the printable character standing for each byte. */
const BYTE_OF: Map<string, number> = (() => {
  const keep = [...Array(256).keys()].filter((b) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255));
  const m = new Map<string, number>();
  let n = 0;
  for (let b = 0; b < 256; b++) m.set(String.fromCharCode(keep.includes(b) ? b : 256 + n++), b);
  return m;
})();

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
