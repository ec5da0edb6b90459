import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { loadModel } from '../src/model.js';
import type { Session } from '../src/session.js';
import { StreamlmError } from '../src/errors.js';
import { SlotBook } from '../src/cache/book.js';
import { parsePolicy } from '../src/cache/policy.js';
import { crc32, SNAPSHOT_VERSION } from '../src/cache/snapshot.js';
import { FIXTURES } from './helpers/fixtures.js';

const FAMILIES = readdirSync(FIXTURES).filter((d) => existsSync(join(FIXTURES, d, 'config.json'))).sort();
/** Every policy, small enough that the 200 tokens evict many times over. */
const POLICIES: { cache: string; evictChunk?: number; maxTokens?: number }[] = [
  { cache: 'dense', maxTokens: 300 }, { cache: 'window:24' }, { cache: 'sink:4+20' }, { cache: 'recompute:12' }, { cache: 'sink:2+20', evictChunk: 5 },
];
const PROMPT = Array.from({ length: 19 }, (_, i) => 3 + ((i * 7) % 40));

/** Index of the largest logit, written here so the test does not lean on the sampler. */
function top(l: Float32Array): number {
  let b = 0;
  for (let i = 1; i < l.length; i++) if (l[i] > l[b]) b = i;
  return b;
}

/** `n` greedy tokens from the session's current logits. */
function greedy(s: Session, n: number): { ids: number[]; last: Float32Array } {
  const ids: number[] = [];
  let l = s.logits!;
  for (let i = 0; i < n; i++) { const t = top(l); ids.push(t); l = s.step(t); }
  return { ids, last: l };
}

/** Equal bit patterns, NaNs and signed zeros included. */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function refused(fn: () => unknown, why: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof StreamlmError && why.test(e.message) && !e.message.includes('\n'), String(why));
}

for (const name of FAMILIES) {
  test(`${name}: after a snapshot and restore, the next 200 greedy tokens equal an uninterrupted session's, for every policy`, async () => {
    const model = await loadModel(join(FIXTURES, name), { threads: 1 });
    try {
      // First, a restore into a pre-allocated cache (allocCache must precede sessions of their own).
      const pooled = { cache: 'sink:4+20', prefillChunk: 8 };
      const kv = model.allocCache(pooled);
      for (const p of POLICIES) {
        const a = model.session({ ...p, prefillChunk: 8 });
        a.prefill(PROMPT);
        greedy(a, 17);
        const snap = a.snapshot();
        const b = model.restoreSession(snap);
        assert.deepEqual(b.stats(), a.stats());
        assert.deepEqual(b.snapshot(), snap, `${p.cache}: snapshot → restore → snapshot is byte-identical`);
        const ra = greedy(a, 200), rb = greedy(b, 200);
        assert.deepEqual(rb.ids, ra.ids, `${p.cache}: tokens after restore`);
        assert.ok(sameBits(rb.last, ra.last), `${p.cache}: logits after 200 tokens are bit-identical`);
        b.close(); a.close();
      }
      const a = model.session(pooled);
      a.prefill(PROMPT);
      greedy(a, 40);
      const c = model.restoreSession(a.snapshot(), { kv });
      assert.deepEqual(greedy(c, 50).ids, greedy(a, 50).ids, 'restored into a pooled cache');
      c.close(); a.close();
    } finally {
      await model.close();
    }
  });
}

test('foreign, other-version, truncated and corrupt snapshots are refused with one clear line', async () => {
  const m1 = await loadModel(join(FIXTURES, 'llama'), { threads: 1 });
  const m2 = await loadModel(join(FIXTURES, 'llama-bf16'), { threads: 1 });
  try {
    const s = m1.session({ cache: 'sink:4+20' });
    s.prefill(PROMPT);
    const snap = s.snapshot();
    s.close();
    assert.equal(new TextDecoder().decode(snap.subarray(0, 7)), 'SLMSNAP');
    assert.notEqual(m1.fingerprint, m2.fingerprint);
    refused(() => m2.restoreSession(snap), /another model/);
    const reseal = (b: Uint8Array): Uint8Array => { new DataView(b.buffer).setUint32(b.length - 4, crc32(b.subarray(0, b.length - 4)), true); return b; };
    const v2 = snap.slice(); new DataView(v2.buffer).setUint32(8, SNAPSHOT_VERSION + 1, true);
    refused(() => m1.restoreSession(reseal(v2)), /version/);
    refused(() => m1.restoreSession(snap.subarray(0, snap.length - 100)), /checksum|truncated/);
    refused(() => m1.restoreSession(snap.subarray(0, 10)), /magic/);
    const flipped = snap.slice(); flipped[snap.length - 50] ^= 1;
    refused(() => m1.restoreSession(flipped), /checksum/);
    refused(() => m1.restoreSession(new Uint8Array(64)), /magic/);
    // A well-sealed snapshot with a broken slot book is still refused, not half-restored.
    const text = new TextDecoder().decode(snap);
    const at = text.indexOf('"order":[') + 9;
    const bad = snap.slice(); bad[at] = '9'.charCodeAt(0); bad[at + 1] = '9'.charCodeAt(0);
    refused(() => m1.restoreSession(reseal(bad)), /slot book|not a usable/);
    // Drafts: a snapshot is refused while one is open.
    const d = m1.session({ cache: 'sink:4+20' });
    d.prefill(PROMPT);
    d.draft([5, 6]);
    refused(() => d.snapshot(), /draft/);
    d.accept(2);
    d.close();
  } finally {
    await m2.close();
    await m1.close();
  }
});

test('a rejected draft leaves no trace, even with the window full and evicting', async () => {
  const model = await loadModel(join(FIXTURES, 'llama'), { threads: 1 });
  try {
    for (const p of [{ cache: 'sink:4+20' }, { cache: 'window:24' }, { cache: 'sink:2+20', evictChunk: 5 }, { cache: 'dense' }]) {
      const open = (): Session => { const s = model.session({ ...p, prefillChunk: 8, maxTokens: 300 }); s.prefill(PROMPT); greedy(s, 30); return s; };
      const a = open(), b = open();  // both windows are full and evict every token from here
      // Rejecting a whole draft returns to the state before it, byte for byte.
      const before = b.snapshot();
      b.draft([7, 8, 9, 10, 11]);
      b.accept(0);
      assert.deepEqual(b.snapshot(), before, `${p.cache}: accept(0) undoes the draft`);
      // Accepting 3 of 6 leaves a state that does not depend on the 3 rejected tokens at all: they
      // pushed no real token out, left no K/V in use, and their slots went back to the free stack in
      // order. (Compared with another draft of the same width: a forward's rounding depends on its width.)
      const c = model.restoreSession(a.snapshot());
      const good = greedy(c, 3).ids;
      c.close();
      a.draft([...good, 50, 51, 52]);
      a.accept(3);
      b.draft([...good, 40, 41, 42]);
      b.accept(3);
      assert.deepEqual(b.snapshot(), a.snapshot(), `${p.cache}: the rejected tokens left no trace`);
      assert.deepEqual(greedy(b, 40).ids, greedy(a, 40).ids, `${p.cache}: and the stream goes on alike`);
      b.close(); a.close();
    }
    const r = model.session({ cache: 'recompute:12' });
    r.prefill(PROMPT);
    refused(() => r.draft([5]), /recompute:12.*draft/);
    r.close();
  } finally {
    await model.close();
  }
});

// --- property tests over the slot book and the policies

type Op = { kind: 'append'; n: number } | { kind: 'draft'; n: number; keep: number };
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('append' as const), n: fc.integer({ min: 1, max: 6 }) }),
  fc.record({ kind: fc.constant('draft' as const), n: fc.integer({ min: 1, max: 6 }), keep: fc.integer({ min: 0, max: 6 }) }),
);
const policyArb = fc.oneof(
  fc.record({ s: fc.integer({ min: 0, max: 4 }), w: fc.integer({ min: 1, max: 12 }), c: fc.integer({ min: 1, max: 5 }) }).map(({ s, w, c }) => parsePolicy(`sink:${s}+${w}`, { evictChunk: c })),
  fc.integer({ min: 1, max: 12 }).map((w) => parsePolicy(`window:${w}`)),
);

test('property: random appends, drafts and rollbacks keep the book consistent and the sinks in place', () => {
  fc.assert(fc.property(policyArb, fc.array(opArb, { maxLength: 60 }), (policy, ops) => {
    const chunk = 6;
    const book = new SlotBook(policy.capacity(chunk, 0));
    let next = 0;
    const kept: number[] = [];  // stream indices the book should hold, computed here from the rules
    const append = (n: number): void => {
      for (let i = 0; i < n; i++) { book.append(1000 + next, next, policy.groupOf(book.length)); kept.push(next++); }
    };
    const evict = (): void => {
      policy.evict(book);
      const over = kept.length - policy.keep!;
      if (over > 0) kept.splice(policy.sinks, Math.min(Math.max(over, policy.evictChunk), kept.length - policy.sinks));
    };
    for (const op of ops) {
      evict();
      if (op.kind === 'append') { append(op.n); evict(); continue; }
      const high = book.highWater;
      append(op.n);
      const back = op.n - Math.min(op.keep, op.n);
      book.truncate(back, high);
      kept.splice(kept.length - back, back);
      next -= back;
      evict();
    }
    assert.deepEqual(book.tokens(), kept.map((x) => 1000 + x));
    assert.ok(book.length <= policy.keep!);
    // The first S tokens ever seen are the sinks, and positions are contiguous per rotation group.
    const first = kept.slice(0, policy.sinks);
    assert.deepEqual(first, Array.from({ length: Math.min(policy.sinks, next) }, (_, i) => i));
    const off = book.groupOffsets(policy.numGroups);
    book.slots().forEach((slot, pos) => assert.equal(book.streamOfSlot(slot) - off[book.groupOfSlot(slot)], pos));
    // Used and free slots partition the capacity, and a state round trip is exact.
    const st = book.state();
    assert.deepEqual([...st.order, ...st.free].sort((a, b) => a - b), Array.from({ length: book.capacity }, (_, i) => i));
    assert.deepEqual(SlotBook.fromState(st, book.capacity).state(), st);
  }), { numRuns: 500 });
});

test('property: snapshot → restore → snapshot is byte-identical after random feeding, and so is what follows', async () => {
  const model = await loadModel(join(FIXTURES, 'llama'), { threads: 1 });
  try {
    const feedArb = fc.array(fc.oneof(
      fc.array(fc.integer({ min: 2, max: 300 }), { minLength: 1, maxLength: 12 }).map((ids) => ({ prefill: ids })),
      fc.integer({ min: 2, max: 300 }).map((id) => ({ step: id })),
      fc.record({ draft: fc.array(fc.integer({ min: 2, max: 300 }), { minLength: 1, maxLength: 8 }), keep: fc.integer({ min: 0, max: 8 }) }),
      fc.array(fc.integer({ min: 2, max: 300 }), { minLength: 1, maxLength: 3 }).map((ids) => ({ defer: ids })),
    ), { minLength: 1, maxLength: 8 });
    const specArb = fc.constantFrom('sink:4+16', 'window:10', 'sink:1+9', 'recompute:8', 'dense');
    fc.assert(fc.property(specArb, fc.integer({ min: 1, max: 4 }), feedArb, (cache, evictChunk, ops) => {
      const s = model.session({ cache, evictChunk, prefillChunk: 8, maxTokens: 200 });
      try {
        s.prefill([5]);
        for (const op of ops) {
          if ('prefill' in op) s.prefill(op.prefill);
          else if ('step' in op) s.step(op.step);
          else if ('defer' in op) s.defer(op.defer);
          else if (s.policy.carriesKV) {
            // A draft longer than draftLimit is refused (test below); the stepper never asks for one.
            const d = op.draft.slice(0, s.draftLimit);
            if (d.length) { s.draft(d); s.accept(Math.min(op.keep, d.length)); }
          }
        }
        const snap = s.snapshot();
        const r = model.restoreSession(snap);
        try {
          assert.deepEqual(r.snapshot(), snap);
          const la = s.step(9), lb = r.step(9);
          assert.ok(sameBits(la, lb));
          assert.deepEqual(r.snapshot(), s.snapshot());
        } finally {
          r.close();
        }
      } finally {
        s.close();
      }
    }), { numRuns: 60 });
  } finally {
    await model.close();
  }
});

test('a draft longer than draftLimit is refused with a one-line error and leaves the session as it was', async () => {
  const model = await loadModel(join(FIXTURES, 'llama'), { threads: 1 });
  try {
    const s = model.session({ cache: 'sink:1+9', evictChunk: 4, prefillChunk: 8, maxTokens: 200 });
    s.prefill([5, 2, 2, 2]);
    assert.equal(s.draftLimit, 5, 'keep 10 - 1 sink - evictChunk 4');
    const before = s.snapshot();
    assert.throws(() => s.draft([2, 2, 2, 2, 2, 2, 2, 2]), (e: unknown) => e instanceof StreamlmError && /^draft: a draft of 8 tokens would evict its own tokens under sink:1\+9; draft fewer$/.test(e.message));
    assert.deepEqual(s.snapshot(), before);
    // And the session goes on as an untouched one does.
    const r = model.restoreSession(before);
    assert.ok(sameBits(s.step(9), r.step(9)));
    r.close();
    s.close();
  } finally {
    await model.close();
  }
});
