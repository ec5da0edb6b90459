import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PhraseChunker, splitPhrases, type Phrase } from '../src/speech/chunker.js';

const texts = (ps: Phrase[]): string[] => ps.map((p) => p.text);

/** Feeds `text` in pieces of `size` characters, as a token stream would. */
function streamed(text: string, size: number): Phrase[] {
  const c = new PhraseChunker();
  const out: Phrase[] = [];
  for (let i = 0; i < text.length; i += size) out.push(...c.push(text.slice(i, i + size)));
  return [...out, ...c.flush()];
}

test('the first phrase is the first clause, then whole sentences', () => {
  assert.deepEqual(texts(splitPhrases('Well, I think so. The sky is blue, the grass is green. Done!')),
    ['Well,', 'I think so.', 'The sky is blue, the grass is green.', 'Done!']);
});

test('the first phrase is cut after four words when no punctuation comes', () => {
  assert.deepEqual(texts(splitPhrases('Once upon a time there was a king who ruled the land.')),
    ['Once upon a time', 'there was a king who ruled the land.']);
});

test('secondWords cuts the second phrase early too, at a clause or after that many words', () => {
  assert.deepEqual(texts(splitPhrases('It was a dark and stormy night and the rain fell in torrents, except at intervals. Then it stopped.', { firstWords: 2, secondWords: 6 })),
    ['It was', 'a dark and stormy night and', 'the rain fell in torrents, except at intervals.', 'Then it stopped.']);
  assert.deepEqual(texts(splitPhrases('Oh. Well, then we go. Now, we wait.', { firstWords: 2, secondWords: 6 })), ['Oh.', 'Well,', 'then we go.', 'Now, we wait.']);
});

test('growth caps each later phrase by the words already cut, and the cap grows away', () => {
  // 2 + 2 words cut: the third phrase ends after ceil(1.5 * 4) = 6 words, the fourth after ceil(1.5 * 10) = 15.
  assert.deepEqual(texts(splitPhrases('It was, I think, a dark and stormy night and the rain fell in torrents except at intervals when it was checked by a violent gust of wind.', { firstWords: 2, secondWords: 8, growth: 1.5 })),
    ['It was,', 'I think,', 'a dark and stormy night and', 'the rain fell in torrents except at intervals when it was checked by a violent', 'gust of wind.']);
  // A sentence that ends first is cut there, as without the cap.
  assert.deepEqual(texts(splitPhrases('Oh. Well, then we go. Now, we wait.', { firstWords: 2, secondWords: 6, growth: 1.5 })), ['Oh.', 'Well,', 'then we go.', 'Now, we wait.']);
});

test('abbreviations, initials and decimals do not end a sentence', () => {
  assert.deepEqual(texts(splitPhrases('Hi. Mr. Smith met Dr. J. R. Watson at 3.30 pm. They paid $1,250.75 for it. No. 5 won.')),
    ['Hi.', 'Mr. Smith met Dr. J. R. Watson at 3.30 pm.', 'They paid $1,250.75 for it.', 'No. 5 won.']);
});

test('e.g., etc. and ellipses end a sentence only when a capital follows', () => {
  assert.deepEqual(texts(splitPhrases('Hm. Fruit, e.g. apples, pears etc. are sweet... and cheap. Wait... What?')),
    ['Hm.', 'Fruit, e.g. apples, pears etc. are sweet... and cheap.', 'Wait...', 'What?']);
});

test('closing quotes stay with their sentence; newlines end a phrase', () => {
  assert.deepEqual(texts(splitPhrases('Yes. "Go home," she said. "Now!" He went.\nChapter 2\nIt rained.')),
    ['Yes.', '"Go home," she said.', '"Now!"', 'He went.', 'Chapter 2', 'It rained.']);
});

test('a long sentence is cut at its clause marks', () => {
  const s = 'Ok. It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness, it was the epoch of belief.';
  const got = texts(splitPhrases(s));
  assert.equal(got[0], 'Ok.');
  assert.ok(got.length >= 3, JSON.stringify(got));
  assert.ok(got.slice(1).every((p) => p.length <= 120), JSON.stringify(got));
});

test('spans point at the phrase text in the whole input', () => {
  const s = '  Hello there, friend.  "Quoted!" said Mr. Brown…  Next line\nend';
  for (const p of splitPhrases(s)) assert.equal(s.slice(p.start, p.end), p.text);
});

test('the first phrase is out as soon as its clause mark and a space arrive', () => {
  const c = new PhraseChunker();
  assert.deepEqual(c.push('Sure'), []);
  assert.deepEqual(c.push(','), []);
  assert.deepEqual(texts(c.push(' I')), ['Sure,']);
});

test('property: any split of the stream gives the same phrases, covering every word in order', () => {
  const alphabet = fc.constantFrom('a', 'B', 'c', ' ', ' ', '.', ',', '!', '?', '"', '3', '\n', 'Mr', 'e.g', '…', ';');
  fc.assert(fc.property(fc.array(alphabet, { maxLength: 80 }).map((a) => a.join('')), fc.integer({ min: 1, max: 7 }), (s, size) => {
    const whole = splitPhrases(s);
    const parts = streamed(s, size);
    assert.deepEqual(parts, whole);
    let at = 0;
    for (const p of whole) {
      assert.equal(s.slice(p.start, p.end), p.text);
      assert.ok(p.start >= at);
      assert.ok(s.slice(at, p.start).trim().length === 0 || !/[\p{L}\p{N}]/u.test(s.slice(at, p.start)), `lost text before ${JSON.stringify(p)}`);
      at = p.end;
    }
    assert.ok(!/[\p{L}\p{N}]/u.test(s.slice(at)));
  }), { numRuns: 500 });
});
