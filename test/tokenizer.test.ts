import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StreamlmError } from '../src/errors.js';
import { checkTokenizerMatches, StreamDecoder, TextTokenizer } from '../src/tokenizer.js';

const tmp = mkdtempSync(join(tmpdir(), 'streamlm-tok-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function modelDir(name: string, tokenizer: unknown, config?: unknown): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'tokenizer.json'), typeof tokenizer === 'string' ? tokenizer : JSON.stringify(tokenizer));
  if (config !== undefined) writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
  return dir;
}

/** GPT-2's byte → printable-character map, the alphabet of byte-level BPE. */
function byteAlphabet(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const out: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(keep.includes(b) ? b : 256 + extra++));
  return out;
}

// A byte-level BPE trained by Python tokenizers 0.23 (BpeTrainer, vocab 300, specials <s> </s>) on a
// tiny corpus: ids are the specials, the sorted byte alphabet, then one per merge, in merge order.
const MERGES = [["h", "e"], ["l", "d"], ["l", "l"], ["r", "ld"], ["t", "he"], ["ã", "Ĥ"], ["ã", "ĥ"], ["Ġ", "w"], ["ll", "o"], ["a", "z"], ["b", "r"], ["c", "k"], ["d", "o"], ["e", "r"], ["f", "o"], ["h", "Ã"], ["i", "ck"], ["j", "u"], ["l", "az"], ["m", "p"], ["o", "v"], ["o", "w"], ["o", "rld"], ["q", "u"], ["¥", "æ"], ["©", "llo"], ["ª", "ŀ"], ["¬", "è"], ["®", "ãĥ"], ["¶", "rld"], ["¹", "ãĥ"], ["Ã", "¶rld"], ["ã", "ģ"], ["æ", "Ĺ"], ["Ġ", "the"], ["Ġ", "br"], ["Ġ", "do"], ["Ġ", "fo"], ["Ġ", "hÃ"], ["Ġ", "ju"], ["Ġ", "laz"], ["Ġ", "ov"]];
// Python tokenizers' encode() of each text, and decode() of those ids.
const GOLDEN = [
  { text: 'hello world', ids: [258, 266, 265, 280] },
  { text: 'héllo wörld! 日本', ids: [273, 283, 265, 289, 2, 222, 291, 282, 252, 107] },
  { text: 'the lazy fox 🙂 jumps', ids: [262, 298, 90, 295, 89, 222, 174, 255, 249, 226, 297, 277, 84] },
];

function byteLevelBpe(): unknown {
  const vocab: Record<string, number> = { '<s>': 0, '</s>': 1 };
  for (const c of byteAlphabet().sort()) vocab[c] = Object.keys(vocab).length;
  for (const [a, b] of MERGES) vocab[a + b] = Object.keys(vocab).length;
  const bl = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [0, 1].map((id) => ({ id, content: id ? '</s>' : '<s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null, pre_tokenizer: bl, post_processor: null, decoder: { ...bl, add_prefix_space: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: MERGES },
  };
}

/** A Llama-2-style sentencepiece BPE: ▁ for spaces, byte fallback, BOS from the post-processor. */
function sentencepieceBpe(): unknown {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  for (const t of ['▁', 'h', 'i', 'w', 'o', 'r', 'l', 'd', '▁h', '▁hi', '▁w', 'or', '▁wor', 'ld', '▁world']) vocab[t] = Object.keys(vocab).length;
  const merges = ['▁ h', '▁h i', '▁ w', 'o r', '▁w or', 'l d', '▁wor ld'];
  const special = (id: number, content: string): unknown => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }],
    },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges },
  };
}

function stream(tok: TextTokenizer, ids: number[]): string[] {
  const d = new StreamDecoder(tok);
  const out = ids.map((id) => d.push(id));
  out.push(d.flush());
  return out;
}

test('byte-level BPE matches Python tokenizers, with BOS from tokenizer_config', () => {
  const dir = modelDir('bytelevel', byteLevelBpe(), { bos_token: '<s>', eos_token: { content: '</s>', special: true }, add_bos_token: true, chat_template: '{{ messages }}' });
  const tok = TextTokenizer.load(dir)!;
  assert.equal(tok.vocabSize, 2 + 256 + MERGES.length);
  assert.deepEqual([tok.bosTokenId, tok.eosTokenIds, tok.addBosToken, tok.chatTemplate], [0, [1], true, '{{ messages }}']);
  assert.equal(tok.tokenId('he'), 258);
  assert.equal(tok.tokenId('not-a-token'), null);
  for (const g of GOLDEN) {
    assert.deepEqual(tok.encode(g.text, { addSpecialTokens: false }), g.ids, g.text);
    assert.deepEqual(tok.encode(g.text), [0, ...g.ids], `${g.text} with BOS`);
    assert.equal(tok.decode(g.ids), g.text);
  }
  assert.equal(tok.decode([0, ...GOLDEN[0].ids, 1]), '<s>hello world</s>');
  assert.equal(tok.decode([0, ...GOLDEN[0].ids, 1], { skipSpecialTokens: true }), 'hello world');
  assert.equal(tok.decode([]), '');
});

test('StreamDecoder never emits half a UTF-8 character and skips special tokens', () => {
  const tok = TextTokenizer.load(join(tmp, 'bytelevel'))!;
  for (const g of GOLDEN.slice(1)) {
    const pieces = stream(tok, [...g.ids, 1]);
    assert.equal(pieces.join(''), g.text);
    for (const p of pieces) assert.ok(!p.includes('\uFFFD'), `piece ${JSON.stringify(p)} of ${g.text}`);
  }
  // ' 日本': 日 = e6 97 a5 and 本 = e6 9c ac; token 282 is a5 e6, so 日 completes while 本 starts, and
  // the run is held until 本 is whole.
  const ja = stream(tok, [222, 291, 282, 252, 107]);
  assert.deepEqual(ja, [' ', '', '', '', '日本', '']);
  // A lone continuation byte can never complete: emitted as U+FFFD once 4 tokens have passed.
  const bad = new StreamDecoder(tok);
  const outs = [136, 258, 258, 258].map((id) => bad.push(id));
  assert.ok(outs.join('').startsWith('\uFFFD'), JSON.stringify(outs));
});

test('sentencepiece-style: leading spaces survive streaming; add_bos_token=false overrides the template', () => {
  const dir = modelDir('spm', sentencepieceBpe(), { bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' });
  const tok = TextTokenizer.load(dir)!;
  const hi = 3 + 256 + 9;
  assert.deepEqual(tok.encode('hi world'), [1, hi, hi + 5]);
  assert.deepEqual(tok.encode('hi world', { addSpecialTokens: false }), [hi, hi + 5]);
  assert.equal(tok.addBosToken, true);
  assert.equal(tok.decode([1, hi, hi + 5], { skipSpecialTokens: true }), 'hi world');
  // 'é' falls back to bytes c3 a9.
  const ids = tok.encode('hi world é', { addSpecialTokens: false });
  assert.deepEqual(ids.slice(-3), [3 + 256, 3 + 0xc3, 3 + 0xa9]);
  const pieces = stream(tok, ids);
  assert.equal(pieces.join(''), tok.decode(ids));
  assert.equal(pieces.join(''), 'hi world é');
  assert.equal(pieces[1], ' world', 'the second word keeps its space');
  assert.equal(pieces[3], '', 'half of é is held back');
  // Without context the first token loses its space, as in a full decode; the prompt's tail as context keeps it.
  assert.equal(new StreamDecoder(tok).push(hi + 5), 'world');
  assert.equal(new StreamDecoder(tok, { context: [1, hi] }).push(hi + 5), ' world');
  // Ids beyond the tokenizer (padded model vocabularies) decode to nothing.
  assert.equal(tok.decode([hi, 99999, hi + 5]), 'hi world');

  const noBos = TextTokenizer.load(modelDir('spm-nobos', sentencepieceBpe(), { bos_token: '<s>', add_bos_token: false }))!;
  assert.equal(noBos.addBosToken, false);
  assert.deepEqual(noBos.encode('hi world'), [hi, hi + 5]);
});

test('load: null without tokenizer.json, errors name the file', () => {
  const empty = join(tmp, 'empty');
  mkdirSync(empty);
  assert.equal(TextTokenizer.load(empty), null);
  const named = (fn: () => unknown, ...parts: string[]): void =>
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof StreamlmError);
      for (const p of parts) assert.ok(e.message.includes(p), `"${e.message}" lacks "${p}"`);
      return true;
    });
  const bad = modelDir('badjson', '{"model": ');
  named(() => TextTokenizer.load(bad), join(bad, 'tokenizer.json'), 'JSON');
  const badCfg = modelDir('badcfg', byteLevelBpe(), undefined);
  writeFileSync(join(badCfg, 'tokenizer_config.json'), '[');
  named(() => TextTokenizer.load(badCfg), 'tokenizer_config.json');
  const unknown = modelDir('unknownmodel', { ...(byteLevelBpe() as object), model: { type: 'Mystery' } });
  named(() => TextTokenizer.load(unknown), 'tokenizer.json', 'Mystery');
  const missingBos = modelDir('missingbos', byteLevelBpe(), { bos_token: '<|begin|>' });
  named(() => TextTokenizer.load(missingBos), 'tokenizer_config.json', 'bos_token', '<|begin|>');

  const tok = TextTokenizer.load(join(tmp, 'bytelevel'))!;
  checkTokenizerMatches(tok, 300, tmp);
  checkTokenizerMatches(tok, tok.vocabSize, tmp);
  named(() => checkTokenizerMatches(tok, 100, tmp), 'tokenizer.json', 'vocab_size', '300', '100');
});

test('chat template from chat_template.jinja or a named list', () => {
  const a = modelDir('jinja', byteLevelBpe(), {});
  writeFileSync(join(a, 'chat_template.jinja'), '{% for m in messages %}{{ m.content }}{% endfor %}');
  assert.equal(TextTokenizer.load(a)!.chatTemplate, '{% for m in messages %}{{ m.content }}{% endfor %}');
  const b = modelDir('named', byteLevelBpe(), { chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D' }] });
  assert.equal(TextTokenizer.load(b)!.chatTemplate, 'D');
  assert.equal(TextTokenizer.load(join(tmp, 'spm'))!.chatTemplate, null);
});
