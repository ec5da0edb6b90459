import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { exportGguf } from '../src/export/gguf.js';
import { readGgufHeader } from '../src/runtime/gguf.js';
import { TextTokenizer } from '../src/tokenizer.js';
import { ggufTokenizerSpec } from '../src/tokenizer-gguf.js';
import { fixtureDir } from './helpers/fixtures.js';
import { writeGgufF32, type Kv } from './helpers/gguf-writer.js';

const tmp = mkdtempSync(join(tmpdir(), 'streamlm-gguf-tok-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const MIXED = [
  'Héllo, wörld! Ça va? naïve café — “quotes” and ‘single’',
  'emoji: 😀🎉👩‍💻 and CJK 漢字かな',
  'digits 0 12 345 6789 3.14159 1,000,000',
  'whitespace:   three spaces,\ttab,\n\nnewlines,    \n  trailing   ',
  'code: function f(x) { return x => x ** 2; } // ok\n\tif (a != b) {}',
  '',
  ' leading space',
].join('\n');

function fromGguf(file: string): TextTokenizer {
  const spec = ggufTokenizerSpec(readGgufHeader(file));
  assert.ok(spec, 'the file should carry a vocabulary');
  return TextTokenizer.fromObjects(spec.json, spec.config, (spec.config.chat_template as string | null) ?? null, file);
}

const NOVELS = resolve(import.meta.dirname ?? '.', '..', 'models', 'novels-8m');

for (const [label, dir] of [['novels-8m (shipped)', NOVELS], ['llama fixture', fixtureDir('llama')], ['qwen2 fixture', fixtureDir('qwen2')]] as const) {
  test(`gpt2 vocabulary: ${label} from its GGUF encodes and decodes as its tokenizer.json`, () => {
    const file = join(tmp, `${label.split(' ')[0]}.gguf`);
    exportGguf(dir, file, { dtype: 'f16' });
    const hf = TextTokenizer.load(dir)!;
    const gg = fromGguf(file);
    for (const text of [MIXED, ...MIXED.split('\n')]) {
      for (const special of [true, false]) {
        const want = hf.encode(text, { addSpecialTokens: special });
        assert.deepEqual(gg.encode(text, { addSpecialTokens: special }), want, JSON.stringify(text));
        assert.equal(gg.decode(want), hf.decode(want));
      }
    }
    assert.equal(gg.vocabSize, hf.vocabSize);
    assert.equal(gg.bosTokenId, hf.bosTokenId);
    assert.deepEqual(gg.eosTokenIds, hf.eosTokenIds);
    assert.equal(gg.addBosToken, hf.addBosToken);
    assert.equal(gg.chatTemplate, hf.chatTemplate);
  });
}

// --- SentencePiece (`llama`) vocabularies: checked against SentencePiece's own merge rule ---

/**
 * SentencePiece BPE as llama.cpp's llm_tokenizer_spm runs it: spaces become ▁ (and one is
 * prepended), the text splits into characters, and the adjacent pair whose union is the
 * highest-scoring piece merges first (leftmost on ties); pieces left unknown fall back to <0xXX> bytes.
 */
function spmReference(text: string, tokens: string[], scores: number[]): number[] {
  const id = new Map(tokens.map((t, i) => [t, i]));
  let sym = Array.from('\u2581' + text.replaceAll(' ', '\u2581'));
  for (;;) {
    let best = -1, bestScore = -Infinity;
    for (let i = 0; i + 1 < sym.length; i++) {
      const j = id.get(sym[i] + sym[i + 1]);
      if (j !== undefined && scores[j] > bestScore) { best = i; bestScore = scores[j]; }
    }
    if (best < 0) break;
    sym = [...sym.slice(0, best), sym[best] + sym[best + 1], ...sym.slice(best + 2)];
  }
  const out: number[] = [];
  for (const s of sym) {
    const j = id.get(s);
    if (j !== undefined) out.push(j);
    else for (const b of new TextEncoder().encode(s)) out.push(id.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)!);
  }
  return out;
}

test('llama (SentencePiece) vocabulary: ids follow the SentencePiece merge rule, byte fallback, BOS', () => {
  const words = ['the', 'then', 'there', 'in', 'ing', 'thing', 'rain', 'train', 'code', 'coder', 'return', 'café', 'a', 'an', 'and', 'x'];
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [2, 3, 3];
  for (let b = 0; b < 256; b++) { tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`); types.push(6); }
  const pieces = new Set<string>(['\u2581', ...'abcdefghijklmnopqrstuvwxyzé0123456789(){}=>;.,!?']);
  for (const w of words) {
    const s = Array.from('\u2581' + w);
    for (let n = 2; n <= 5; n++) for (let i = 0; i + n <= s.length; i++) pieces.add(s.slice(i, i + n).join(''));
  }
  // Distinct scores in a scrambled order, so ranks do not follow length or position.
  const list = [...pieces];
  const scores = [0, 0, 0, ...new Array(256).fill(0)];
  list.forEach((p, i) => { tokens.push(p); types.push(1); scores.push(-((i * 7919) % list.length) - (Array.from(p).length === 1 ? 1000 : 0)); });
  const file = join(tmp, 'spm.gguf');
  const kv: Kv[] = [
    ['general.architecture', 'str', 'llama'], ['tokenizer.ggml.model', 'str', 'llama'], ['tokenizer.ggml.tokens', 'strs', tokens],
    ['tokenizer.ggml.token_type', 'i32s', Int32Array.from(types)], ['tokenizer.ggml.bos_token_id', 'u32', 1], ['tokenizer.ggml.eos_token_id', 'u32', 2],
    ['tokenizer.ggml.unknown_token_id', 'u32', 0], ['tokenizer.chat_template', 'str', '{{ messages }}'],
    ['tokenizer.ggml.scores', 'f32s', Float32Array.from(scores)],
  ];
  writeGgufF32(file, kv, []);
  const spec = ggufTokenizerSpec(readGgufHeader(file))!;
  const tok = TextTokenizer.fromObjects(spec.json, spec.config, spec.config.chat_template as string, file);
  assert.equal(tok.chatTemplate, '{{ messages }}');
  assert.equal(tok.addBosToken, true); // llama.cpp's default for SentencePiece files
  const f32 = Array.from(Float32Array.from(scores));
  const texts = [
    'the thing then there', 'train in the rain and code', 'coder return café', 'théré 😀 x=>{x}; 42', '  two  spaces ',
    MIXED, 'the', 'a',
  ];
  for (const t of texts) {
    const want = spmReference(t, tokens, f32);
    assert.deepEqual(tok.encode(t, { addSpecialTokens: false }), want, JSON.stringify(t));
    assert.deepEqual(tok.encode(t), [1, ...want]);
    assert.equal(tok.decode(want), t);
  }
});
