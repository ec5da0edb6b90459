// Attention windows and learned sink logits (issue 10): the `attention` kernel against a float64
// reference written here, and the FlashSVD `lowrank_attention` kernel against `attention` through
// a low-rank model whose layers are given a window and sinks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel, type Model } from '../src/model.js';
import { Runtime } from '../src/runtime/runtime.js';
import { BUILDS } from './helpers/builds.js';
import { fixtureDir } from './helpers/fixtures.js';

const EMPTY = 2 ** 31 - 1;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32 - 0.5; };
}

interface Case { M: number; nHeads: number; nKv: number; hd: number; nSlots: number; groups: number; window: number; sinks: boolean; alibi: boolean }

/**
 * float64 attention as transformers computes it with a sliding window and gpt-oss sinks: slot s is
 * visible to row m iff qPos − W < slotPos ≤ qPos (W = 0: no lower bound); softmax over
 * [scores, sink_h] with the sink's probability dropped.
 */
function reference(c: Case, q: Float32Array, k: Float32Array, v: Float32Array, slotPos: Int32Array, slotGroup: Int32Array,
  qPos: Int32Array, sinks: Float32Array | null, alibi: Float32Array | null): { out: Float64Array; probs: Float64Array } {
  const { M, nHeads, nKv, hd, nSlots } = c;
  const qDim = nHeads * hd, kvDim = nKv * hd, scale = 1 / Math.sqrt(hd);
  const out = new Float64Array(M * qDim), probs = new Float64Array(M * nHeads * nSlots);
  for (let m = 0; m < M; m++) for (let h = 0; h < nHeads; h++) {
    const kh = Math.floor(h / (nHeads / nKv));
    const logits: number[] = [], slots: number[] = [];
    for (let s = 0; s < nSlots; s++) {
      const p = slotPos[s];
      if (p > qPos[m] || (c.window > 0 && p <= qPos[m] - c.window)) continue;
      const qb = (slotGroup[s] * M + m) * qDim + h * hd;
      let d = 0;
      for (let i = 0; i < hd; i++) d += q[qb + i] * k[s * kvDim + kh * hd + i];
      logits.push(scale * d - (alibi ? alibi[h] * (qPos[m] - p) : 0));
      slots.push(s);
    }
    if (slots.length === 0) continue;
    const all = sinks ? [...logits, sinks[h]] : logits;
    const mx = Math.max(...all);
    const denom = all.reduce((a, x) => a + Math.exp(x - mx), 0);
    slots.forEach((s, j) => {
      const p = Math.exp(logits[j] - mx) / denom;
      probs[(m * nHeads + h) * nSlots + s] = p;
      for (let i = 0; i < hd; i++) out[m * qDim + h * hd + i] += p * v[s * kvDim + kh * hd + i];
    });
  }
  return { out, probs };
}

test('attention kernel: sliding windows and learned sink logits match a float64 reference (1 and 2 threads)', async () => {
  const cases: Case[] = [
    { M: 1, nHeads: 4, nKv: 2, hd: 16, nSlots: 23, groups: 1, window: 8, sinks: false, alibi: false },
    { M: 5, nHeads: 4, nKv: 4, hd: 12, nSlots: 30, groups: 2, window: 6, sinks: true, alibi: false },
    { M: 3, nHeads: 6, nKv: 2, hd: 64, nSlots: 41, groups: 1, window: 0, sinks: true, alibi: true },
    { M: 4, nHeads: 2, nKv: 1, hd: 7, nSlots: 13, groups: 3, window: 1, sinks: true, alibi: false },
    // Large sink logits: the softmax must shift by the sink, not only by the largest score.
    { M: 2, nHeads: 3, nKv: 3, hd: 32, nSlots: 17, groups: 1, window: 5, sinks: true, alibi: false },
  ];
  for (const simd of BUILDS) for (const threads of [1, 2]) {
    const rt = await Runtime.create({ threads, simd });
    try {
      for (const [ci, c] of cases.entries()) {
        const r = rng(ci * 7 + threads);
        const mark = rt.mark();
        const { M, nHeads, nKv, hd, nSlots, groups } = c;
        const qDim = nHeads * hd, kvDim = nKv * hd;
        const rand = (n: number, sc = 1): Float32Array => Float32Array.from({ length: n }, () => r() * 2 * sc);
        const q = rand(groups * M * qDim, 2), k = rand(nSlots * kvDim, 2), v = rand(nSlots * kvDim);
        // Positions with a gap (a sink/window cache) and one empty slot.
        const slotPos = Int32Array.from({ length: nSlots }, (_, s) => (s < 3 ? s : s + 4));
        slotPos[nSlots - 2] = EMPTY;
        const slotGroup = Int32Array.from({ length: nSlots }, (_, s) => (s < 3 ? 0 : groups - 1));
        const qPos = Int32Array.from({ length: M }, (_, m) => slotPos[nSlots - 3] - (M - 1 - m));
        const sinks = c.sinks ? Float32Array.from({ length: nHeads }, (_, h) => (ci === 4 ? 40 + h : r() * 4)) : null;
        const alibi = c.alibi ? Float32Array.from({ length: nHeads }, (_, h) => 2 ** -(h + 1)) : null;
        const put = (a: Float32Array | Int32Array): number => { const p = rt.alloc(a.byteLength); rt.u8(p, a.byteLength).set(new Uint8Array(a.buffer)); return p; };
        const out = rt.alloc(M * qDim * 4), probs = rt.alloc(M * nHeads * nSlots * 4);
        rt.run('attention', [out, put(q), qDim, M * qDim, put(k), put(v), kvDim, put(slotPos), put(slotGroup), nSlots, put(qPos),
          M, nHeads, nKv, hd, 1 / Math.sqrt(hd), alibi ? put(alibi) : 0, c.window, sinks ? put(sinks) : 0, probs, rt.alloc(threads * nSlots * 4)]);
        const ref = reference(c, q, k, v, slotPos, slotGroup, qPos, sinks, alibi);
        const got = rt.f32(out, M * qDim), gotP = rt.f32(probs, M * nHeads * nSlots);
        const what = `case ${ci} ${JSON.stringify(c)} threads=${threads} ${simd}`;
        // f32 dot products of length hd against float64: 1e-5 relative plus 1e-6 absolute.
        for (let i = 0; i < ref.out.length; i++) assert.ok(Math.abs(got[i] - ref.out[i]) <= 1e-5 * Math.abs(ref.out[i]) + 1e-6, `${what} out[${i}] ${got[i]} vs ${ref.out[i]}`);
        for (let i = 0; i < ref.probs.length; i++) assert.ok(Math.abs(gotP[i] - ref.probs[i]) <= 1e-5 * ref.probs[i] + 1e-7, `${what} probs[${i}] ${gotP[i]} vs ${ref.probs[i]}`);
        // The window really masks: some slot ≤ qPos is invisible to row 0 whenever W is small.
        if (c.window > 0 && c.window < 10) assert.equal(gotP[2], 0, `${what}: slot 2 is outside the window`);
        // Sinks take mass: visible probabilities sum below 1 (to 1 without sinks).
        const p0 = ref.probs.subarray(0, nSlots).reduce((a, x) => a + x, 0);
        if (sinks) assert.ok(p0 < 1 - 1e-6, `${what}: probabilities sum ${p0}`); else assert.ok(Math.abs(p0 - 1) < 1e-9);
        rt.release(mark);
      }
    } finally {
      await rt.close();
    }
  }
});

/** Layer windows and sinks on every block, then a sink-cache prefill in chunks and two steps. */
function run(m: Model, window: number, sinkSeed: number): Float32Array[] {
  const rt = m.net.rt, nH = m.hparams.numHeads;
  const r = rng(sinkSeed);
  for (const L of m.net.w.layers) {
    L.window = window;
    const p = rt.alloc(nH * 4);
    rt.f32(p, nH).set(Float32Array.from({ length: nH }, () => r() * 6));
    L.sinks = p;
  }
  const s = m.session({ cache: 'sink:4+20', prefillChunk: 20 });
  const ids = Array.from({ length: 40 }, (_, i) => (i * 37 + 5) % 320);
  const out = [s.forwardAll(ids.slice(0, 20)), s.forwardAll(ids.slice(20)), s.step(3), s.step(9)];
  s.close();
  return out;
}

test('lowrank_attention applies windows and sinks as the attention kernel does (streaming vs materialized, 1e-5)', async () => {
  const dir = fixtureDir('lowrank-llama');
  const mat = await loadModel(dir, { threads: 2, lowrank: 'materialized' });
  const str = await loadModel(dir, { threads: 2, lowrank: 'streaming' });
  try {
    const a = run(mat, 6, 1), b = run(str, 6, 1);
    const plain = await loadModel(dir, { threads: 2, lowrank: 'materialized' });
    const s = plain.session({ cache: 'sink:4+20', prefillChunk: 20 });
    const c = s.forwardAll(Array.from({ length: 20 }, (_, i) => (i * 37 + 5) % 320));
    s.close();
    await plain.close();
    for (let i = 0; i < a.length; i++) {
      let d = 0, mx = 0;
      for (let j = 0; j < a[i].length; j++) { d = Math.max(d, Math.abs(a[i][j] - b[i][j])); mx = Math.max(mx, Math.abs(a[i][j])); }
      assert.ok(d / mx < 1e-5, `part ${i}: rel ${d / mx}`);
    }
    // And they change the model: the first chunk differs from the plain model's.
    let diff = 0;
    for (let j = 0; j < c.length; j++) diff = Math.max(diff, Math.abs(c[j] - a[0][j]));
    assert.ok(diff > 1e-3, `windows and sinks had no effect (${diff})`);
  } finally {
    await mat.close();
    await str.close();
  }
});
