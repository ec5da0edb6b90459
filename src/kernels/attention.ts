// Attention over a slot-addressed KV cache (see docs/design.md, "attention"). Parallel over the
// M·nHeads (row, head) pairs, split contiguously. Scores for one (m, h) go to this thread's part of
// `scratch` (nSlots floats); masked slots hold -inf, so exp() gives them exactly 0.
import { hsum } from './simd';

// @ts-ignore: decorator
@inline function dot(a: usize, b: usize, n: i32): f32 {
  let s0 = f32x4.splat(0), s1 = s0;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i << 2;
    s0 = f32x4.add(s0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
    s1 = f32x4.add(s1, f32x4.mul(v128.load(a + o, 16), v128.load(b + o, 16)));
  }
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    s0 = f32x4.add(s0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
  }
  let s = hsum(f32x4.add(s0, s1));
  for (; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

/** out[0..n] += p · v[0..n] */
// @ts-ignore: decorator
@inline function axpy(out: usize, p: f32, v: usize, n: i32): void {
  const pv = f32x4.splat(p);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, f32x4.add(v128.load(out + o), f32x4.mul(pv, v128.load(v + o))));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, load<f32>(out + o) + p * load<f32>(v + o));
  }
}

export function attention(out: usize, q: usize, qRowStride: i32, qGroupStride: i32, k: usize, v: usize,
  kvRowStride: i32, slotPos: usize, slotGroup: usize, nSlots: i32, qPos: usize, M: i32, nHeads: i32,
  nKvHeads: i32, headDim: i32, scale: f32, alibi: usize, probs: usize, scratch: usize, tid: i32, nth: i32): void {
  const total = M * nHeads;
  const i0 = <i32>(<i64>total * tid / nth);
  const i1 = <i32>(<i64>total * (tid + 1) / nth);
  const sc = scratch + (<usize>tid * nSlots << 2);
  const perKv = nHeads / nKvHeads;
  const hd = <usize>headDim << 2;
  for (let i = i0; i < i1; i++) {
    const m = i / nHeads, h = i - m * nHeads;
    const kh = h / perKv;
    const qp = load<i32>(qPos + (<usize>m << 2));
    const slope: f32 = alibi ? load<f32>(alibi + (<usize>h << 2)) : 0;
    const qBase = q + ((<usize>m * qRowStride + <usize>h * headDim) << 2);
    let mx: f32 = -Infinity;
    for (let s = 0; s < nSlots; s++) {
      const pos = load<i32>(slotPos + (<usize>s << 2));
      let score: f32 = -Infinity;
      if (pos <= qp) {
        const g = load<i32>(slotGroup + (<usize>s << 2));
        const kp = k + ((<usize>s * kvRowStride + <usize>kh * headDim) << 2);
        score = scale * dot(qBase + (<usize>g * qGroupStride << 2), kp, headDim);
        if (alibi) score -= slope * <f32>(qp - pos);
        mx = max<f32>(mx, score);
      }
      store<f32>(sc + (<usize>s << 2), score);
    }
    const o = out + ((<usize>m * nHeads + h) * hd);
    memory.fill(o, 0, hd);
    const pr = probs ? probs + ((<usize>m * nHeads + h) * nSlots << 2) : 0;
    if (mx == -Infinity) {
      if (pr) memory.fill(pr, 0, <usize>nSlots << 2);
      continue;
    }
    let sum: f32 = 0;
    for (let s = 0; s < nSlots; s++) {
      const e = Mathf.exp(load<f32>(sc + (<usize>s << 2)) - mx);
      store<f32>(sc + (<usize>s << 2), e);
      sum += e;
    }
    const inv: f32 = 1 / sum;
    for (let s = 0; s < nSlots; s++) {
      const p = load<f32>(sc + (<usize>s << 2)) * inv;
      if (pr) store<f32>(pr + (<usize>s << 2), p);
      if (p != 0) axpy(o, p, v + ((<usize>s * kvRowStride + <usize>kh * headDim) << 2), headDim);
    }
  }
}
