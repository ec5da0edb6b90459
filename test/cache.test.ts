import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SlotBook, EMPTY_POS } from '../src/cache/book.js';
import { parsePolicy, type CachePolicy } from '../src/cache/policy.js';
import { StreamlmError } from '../src/errors.js';

/** Drives a book the way a session does for per-token steps: append, then evict. */
function stream(policy: CachePolicy, n: number, capacity: number, onStep?: (book: SlotBook, t: number) => void): SlotBook {
  const book = new SlotBook(capacity);
  for (let t = 0; t < n; t++) {
    book.append(1000 + t, t, policy.groupOf(book.length));
    onStep?.(book, t);
    policy.evict(book);
    assert.ok(book.length <= (policy.keep ?? Number.MAX_SAFE_INTEGER), `${policy.name}: ${book.length} > keep ${policy.keep}`);
  }
  return book;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 4294967296; };
}

test('sink:S+W keeps the first S tokens and the last W, at positions 0..n-1', () => {
  const r = rng(7);
  for (let trial = 0; trial < 50; trial++) {
    const S = Math.floor(r() * 5), W = 1 + Math.floor(r() * 20), n = 1 + Math.floor(r() * 80);
    const p = parsePolicy(`sink:${S}+${W}`);
    const book = stream(p, n, S + W + 1, (b, t) => {
      // During the step the current token sees every kept token plus itself.
      const seen = b.tokens();
      assert.equal(seen[seen.length - 1], 1000 + t);
      assert.equal(seen.length, Math.min(t + 1, S + W + 1));
    });
    const want: number[] = [];
    for (let t = 0; t < n; t++) if (t < S || t >= Math.max(S, n - W)) want.push(1000 + t);
    assert.deepEqual(book.tokens(), want, `S=${S} W=${W} n=${n}`);
    // Rotation invariant: stream index − group offset = cache position, for every kept token.
    const off = book.groupOffsets(p.numGroups);
    book.slots().forEach((slot, pos) => assert.equal(book.streamOfSlot(slot) - off[book.groupOfSlot(slot)], pos));
    const sp = new Int32Array(book.capacity), sg = new Int32Array(book.capacity);
    book.writePositions(sp, sg);
    const used = new Set(book.slots());
    book.slots().forEach((slot, pos) => assert.equal(sp[slot], pos));
    for (let s = 0; s < book.highWater; s++) if (!used.has(s)) assert.equal(sp[s], EMPTY_POS);
  }
});

test('paper example: cache [0,1,2,3,6,7,8] sees positions 0..6', () => {
  const p = parsePolicy('sink:4+3');
  const book = stream(p, 9, 8);
  assert.deepEqual(book.tokens(), [1000, 1001, 1002, 1003, 1006, 1007, 1008]);
  const off = book.groupOffsets(2);
  assert.deepEqual(off, [0, 2]);
  assert.deepEqual(book.slots().map((s) => book.streamOfSlot(s) - off[book.groupOfSlot(s)]), [0, 1, 2, 3, 4, 5, 6]);
});

test('window:W keeps the last W; dense keeps all; slots are reused, never grown', () => {
  const w = stream(parsePolicy('window:5'), 40, 6);
  assert.deepEqual(w.tokens(), [1035, 1036, 1037, 1038, 1039]);
  assert.ok(w.highWater <= 6);
  const d = stream(parsePolicy('dense'), 30, 30);
  assert.equal(d.length, 30);
  assert.deepEqual(d.groupOffsets(1), [0]);
});

test('chunked eviction keeps between keep−C+1 and keep tokens', () => {
  const p = parsePolicy('sink:2+10', { evictChunk: 4 });
  const book = new SlotBook(13);
  for (let t = 0; t < 100; t++) {
    book.append(t, t, p.groupOf(book.length));
    p.evict(book);
    if (t >= 12) assert.ok(book.length >= 12 - 4 + 1 && book.length <= 12, `length ${book.length}`);
  }
  assert.deepEqual(book.tokens().slice(0, 2), [0, 1]);
  const off = book.groupOffsets(2);
  book.slots().forEach((slot, pos) => assert.equal(book.streamOfSlot(slot) - off[book.groupOfSlot(slot)], pos));
});

test('policy strings: canonical names and clear errors listing accepted forms', () => {
  assert.equal(parsePolicy('sink:4+252').name, 'sink:4+252');
  assert.equal(parsePolicy(' window:256 ').keep, 256);
  assert.equal(parsePolicy('recompute:64').carriesKV, false);
  assert.equal(parsePolicy('dense').keep, null);
  assert.equal(parsePolicy('dense').bounded, false);
  assert.deepEqual([parsePolicy('sink:4+60').capacity(16, 999), parsePolicy('window:60').capacity(16, 999), parsePolicy('recompute:60').capacity(16, 999), parsePolicy('dense').capacity(16, 999)], [80, 76, 61, 999]);
  assert.equal(parsePolicy('sink:0+8').numGroups, 1);
  for (const bad of ['sink:4', 'window:0', 'sink:-1+10', 'sink:4+0', 'recompute:', 'lru:5', 'window:1.5', '']) {
    assert.throws(() => parsePolicy(bad), (e: unknown) => e instanceof StreamlmError && /dense.*window:W.*sink:S\+W.*recompute:W/.test(e.message), bad);
  }
  assert.throws(() => parsePolicy('sink:4+8', { evictChunk: 0 }), StreamlmError);
});

test('a full book refuses to append instead of overwriting', () => {
  const b = new SlotBook(2);
  b.append(1, 0, 0); b.append(2, 1, 0);
  assert.throws(() => b.append(3, 2, 0), /full/);
});
