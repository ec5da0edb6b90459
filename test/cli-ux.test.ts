// What a new user hit (issue 11): filesystem errors, output conventions, silent surprises, and
// compress's report. Each case spawns the CLI as a user would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensorsHeader } from '../src/runtime/safetensors.js';
import { fixtureDir } from './helpers/fixtures.js';

const ROOT = join(import.meta.dirname, '..');
const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const LLAMA = fixtureDir('llama');

function cli(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', timeout: 120_000, cwd: ROOT });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** Exit 1 with exactly one line on stderr, `streamlm: ...`, naming each of `mustName`. */
function assertOneLineError(r: { code: number; out: string; err: string }, ...mustName: string[]): void {
  assert.equal(r.code, 1, `exit code; stderr: ${r.err}`);
  assert.equal(r.err.trimEnd().split('\n').length, 1, `one line, got:\n${r.err}`);
  assert.match(r.err, /^streamlm: /);
  assert.doesNotMatch(r.err, /internal error|\n\s+at /);
  for (const m of mustName) assert.ok(r.err.includes(m), `'${m}' is named in: ${r.err}`);
}

const tmp = (): string => mkdtempSync(join(tmpdir(), 'streamlm-ux-'));

test('filesystem errors are one line naming the path, and outputs are checked before any work', () => {
  const d = tmp();
  const text = join(d, 't.txt');
  writeFileSync(text, 'Call me Ishmael. Some years ago, never mind how long precisely. '.repeat(4));
  assertOneLineError(cli('eval-ppl', '--model', LLAMA, '--text', d, '--cache', 'dense'), d, '--text', 'directory');
  assertOneLineError(cli('attention-map', '--model', LLAMA, '--text', d, '--out', join(d, 'm.svg')), d, '--text', 'directory');
  assertOneLineError(cli('attention-map', '--model', LLAMA, '--text', text, '--out', '/missing/dir/m.svg'), '/missing/dir', '--out', 'does not exist');
  assertOneLineError(cli('attention-map', '--model', LLAMA, '--text', text, '--out', d), d, '--out', 'is a directory');
  // The plot path is refused before the evaluation runs: no progress line was printed.
  const p = cli('eval-ppl', '--model', LLAMA, '--text', text, '--cache', 'dense', '--plot', '/missing/dir/p.svg');
  assertOneLineError(p, '/missing/dir', '--plot');
  assertOneLineError(cli('compress', '--model', LLAMA, '--out', '/missing/dir/small', '--rank-ratio', '0.5'), '/missing/dir', '--out');
  assertOneLineError(cli('serve', '--model', LLAMA, '--chat-template', d), d, '--chat-template', 'directory');
  assertOneLineError(cli('generate', '--model', LLAMA, '--prompt', 'hi', '--speculate', 'ngram', '--draft', 'many'), '--draft', 'auto or an integer');
  // The kernels build is chosen before the model loads; a bad choice names the variable.
  const badSimd = spawnSync(process.execPath, ['--import', 'tsx', MAIN, 'generate', '--model', LLAMA, '--prompt', 'hi'],
    { encoding: 'utf8', timeout: 120_000, cwd: ROOT, env: { ...process.env, STREAMLM_SIMD: 'fast' } });
  assertOneLineError({ code: badSimd.status ?? -1, out: badSimd.stdout, err: badSimd.stderr }, 'STREAMLM_SIMD', 'baseline');
  // Nothing was written anywhere: no output, no temporary file.
  assert.deepEqual(readdirSync(d), ['t.txt']);
});

test('what is not text is refused: binary files, invalid UTF-8 files and prompts; --model a file', () => {
  const d = tmp();
  assertOneLineError(cli('eval-ppl', '--model', LLAMA, '--text', join(ROOT, 'build', 'kernels.wasm')), 'kernels.wasm', 'not a text file', 'NUL');
  const latin1 = join(d, 'latin1.txt');
  writeFileSync(latin1, Buffer.from('caf\xe9 au lait, '.repeat(20), 'latin1'));
  assertOneLineError(cli('eval-ppl', '--model', LLAMA, '--text', latin1), latin1, 'not valid UTF-8');
  // Bytes that are not UTF-8 in an argument (a shell passes them through as they are).
  const bad = spawnSync('sh', ['-c', `exec "${process.execPath}" --import tsx "${MAIN}" generate --model "${LLAMA}" --prompt "$(printf 'caf\\351')"`], { encoding: 'utf8', cwd: ROOT });
  assertOneLineError({ code: bad.status ?? -1, out: bad.stdout, err: bad.stderr }, '--prompt', 'not valid UTF-8');
  assertOneLineError(cli('generate', '--model', join(ROOT, 'README.md'), '--prompt', 'hi'), 'README.md', 'is a file, not a model directory');
  // A .gguf file is a model format of its own: this check lets it through to the loader.
  const gguf = join(d, 'm.gguf');
  writeFileSync(gguf, 'GGUF');
  const g = cli('generate', '--model', gguf, '--prompt', 'hi');
  assert.equal(g.code, 1);
  assert.doesNotMatch(g.err, /is a file, not a model directory/);
});

test('negative numbers get our own error, with or without =', () => {
  for (const args of [['--max-tokens', '-5'], ['--max-tokens=-5']]) {
    const r = cli('generate', '--model', LLAMA, '--prompt', 'hi', ...args);
    assertOneLineError(r, '--max-tokens', "expected an integer >= 0, got '-5'");
  }
  assertOneLineError(cli('eval-ppl', '--model', LLAMA, '--text', 'x.txt', '--tokens', '-1'), '--tokens', '>= 2');
  // A value that begins with a dash is still a value, not a flag.
  const r = cli('generate', '--model', LLAMA, '--prompt', '- a dash', '--max-tokens', '1', '--threads', '1');
  assert.equal(r.code, 0, r.err);
});

test('--version, and every command says which model runs without --model', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const v = cli('--version');
  assert.equal(v.code, 0);
  assert.equal(v.out, `streamlm ${pkg.version}\n`);
  for (const cmd of ['generate', 'eval-ppl', 'attention-map', 'serve', 'chat']) {
    const h = cli(cmd, '--help');
    assert.equal(h.code, 0);
    assert.match(h.out, /--model DIR .*default: the shipped models\/novels-8m-sink/, `${cmd} --help`);
  }
  assert.match(cli('--help').out, /Without --model, commands run the shipped models\/novels-8m-sink/);
});

test('compress: factors in the source dtype, numbers before and after, its own model card', () => {
  // A bf16 checkpoint with the files a published model carries beside its weights.
  const src = tmp();
  cpSync(fixtureDir('llama-bf16'), src, { recursive: true });
  writeFileSync(join(src, 'README.md'), '# the source model card\n');
  writeFileSync(join(src, 'metrics.json'), '{"ppl": 1}\n');
  writeFileSync(join(src, 'ref_ppl.json'), '{"ppl": 1}\n');
  const out = join(tmp(), 'small');
  const r = cli('compress', '--model', src, '--out', out, '--rank-ratio', '1', '--eval-tokens', '64', '--threads', '1', '--json');
  assert.equal(r.code, 0, r.err);
  const rep = JSON.parse(r.out) as { factorDtype: string; model: { paramsBefore: number; paramsAfter: number; bytesBefore: number; bytesAfter: number };
    ppl: { before: number; after: number; tokens: number; text: string }; warnings: string[]; denseParams: number; factorParams: number };
  // Every factor is bf16, like the weights it replaces.
  const { tensors } = readSafetensorsHeader(join(out, 'model.safetensors'));
  const factors = tensors.filter((t) => /\.lr_[ab]$/.test(t.name));
  assert.ok(factors.length > 0);
  for (const t of factors) assert.equal(t.dtype, 'BF16', t.name);
  assert.equal(rep.factorDtype, 'BF16');
  // Counted from the headers, not from the report: parameters and bytes before and after.
  const count = (ts: { shape: number[] }[]): number => ts.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
  assert.equal(rep.model.paramsBefore, count(readSafetensorsHeader(join(src, 'model.safetensors')).tensors));
  assert.equal(rep.model.paramsAfter, count(tensors));
  // bf16: two bytes per parameter plus the header.
  assert.ok(rep.model.bytesAfter > 2 * rep.model.paramsAfter && rep.model.bytesAfter < 2 * rep.model.paramsAfter + 65536);
  // Full rank is exact up to rounding the factors to bf16 (8 bits of mantissa): perplexity within 2%.
  assert.equal(rep.ppl.tokens, 64);
  assert.equal(rep.ppl.text, 'models/samples/pride-and-prejudice.txt');
  assert.ok(Math.abs(rep.ppl.after / rep.ppl.before - 1) < 0.02, `ppl ${rep.ppl.before} -> ${rep.ppl.after}`);
  // Rank 1.0 stores more numbers than the dense matrices: the user is told.
  assert.ok(rep.factorParams > rep.denseParams);
  assert.match(r.err, /warning: the factored linears hold \d+ parameters, not fewer than/);
  assert.match(r.err, /parameters\s+\d+ -> \d+/);
  assert.match(r.err, /weight bytes\s+[\d.]+ MB -> [\d.]+ MB/);
  assert.match(r.err, /perplexity\s+[\d.]+ -> [\d.]+ \(dense, first 64 tokens of models\/samples\/pride-and-prejudice.txt\)/);
  // Its own card; the source's card and measurements stay behind.
  const card = readFileSync(join(out, 'README.md'), 'utf8');
  assert.match(card, /^# small\n/);
  assert.match(card, /A low-rank compression of `[^`]+`/);
  assert.match(card, /BF16 like the source/);
  assert.ok(card.includes(rep.ppl.after.toFixed(3)) && card.includes(rep.model.paramsAfter.toLocaleString('en-US')));
  assert.ok(!existsSync(join(out, 'metrics.json')) && !existsSync(join(out, 'ref_ppl.json')));
  assert.ok(existsSync(join(out, 'tokenizer.json')));
  // And it runs.
  const g = cli('generate', '--model', out, '--prompt', 'The house', '--max-tokens', '3', '--threads', '1');
  assert.equal(g.code, 0, g.err);

  // Too low a rank: the perplexity rise is reported as a warning, in the output and in the card.
  const low = join(tmp(), 'low');
  const w = cli('compress', '--model', LLAMA, '--out', low, '--rank-ratio', '0.1', '--eval-tokens', '64', '--threads', '1', '--json');
  assert.equal(w.code, 0, w.err);
  const wr = JSON.parse(w.out) as { ppl: { before: number; after: number }; factorDtype: string };
  assert.equal(wr.factorDtype, 'F32');
  assert.ok(wr.ppl.after > 1.1 * wr.ppl.before, `this rank raises ppl by more than 10% on the fixture: ${wr.ppl.before} -> ${wr.ppl.after}`);
  assert.match(w.err, /warning: perplexity rose from [\d.]+ to [\d.]+ \(\+\d+%\): this rank is too low/);
  assert.match(readFileSync(join(low, 'README.md'), 'utf8'), /\*\*Warnings\.\*\*[\s\S]*perplexity rose/);
});
