// Attention over a slot-addressed KV cache (see docs/design.md, "attention"). Parallel over the
// M·nHeads (row, head) pairs, split contiguously. For one (m, h): scores for 4 slots at a time
// (one q load feeds 4 keys) into this thread's part of `scratch`, masked slots set to -inf; a
// SIMD softmax (exp4 is exactly 0 below -87, so masked slots get p = 0); then Σ p·v with the output
// held in 8 registers (32 floats) per pass over the slots.
// A slot is visible to query row m iff qPos[m] - window < slotPos[s] <= qPos[m] (window 0: no lower
// bound), as transformers' sliding-window mask. A learned sink logit s_h (gpt-oss) adds exp(s_h) to
// the softmax denominator and nothing to the output.
import { exp4, expShiftSum, hmax, hsum, madd, reduce4 } from './simd';

const NEG_INF = f32x4.splat(-Infinity);

// @ts-ignore: decorator
@inline function dot(a: usize, b: usize, n: i32): f32 {
  let s0 = f32x4.splat(0), s1 = s0;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i << 2;
    s0 = madd(v128.load(a + o), v128.load(b + o), s0);
    s1 = madd(v128.load(a + o, 16), v128.load(b + o, 16), s1);
  }
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    s0 = madd(v128.load(a + o), v128.load(b + o), s0);
  }
  let s = hsum(f32x4.add(s0, s1));
  for (; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

/** [q·k0, q·k1, q·k2, q·k3] for four keys `ld` bytes apart. */
// @ts-ignore: decorator
@inline function dot4(q: usize, k: usize, ld: usize, n: i32): v128 {
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  const k1 = k + ld, k2 = k1 + ld, k3 = k2 + ld;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const qv = v128.load(q + o);
    a0 = madd(qv, v128.load(k + o), a0);
    a1 = madd(qv, v128.load(k1 + o), a1);
    a2 = madd(qv, v128.load(k2 + o), a2);
    a3 = madd(qv, v128.load(k3 + o), a3);
  }
  let r = reduce4(a0, a1, a2, a3);
  for (; i < n; i++) {
    const o = <usize>i << 2;
    let kv = f32x4.splat(load<f32>(k + o));
    kv = f32x4.replace_lane(kv, 1, load<f32>(k1 + o));
    kv = f32x4.replace_lane(kv, 2, load<f32>(k2 + o));
    kv = f32x4.replace_lane(kv, 3, load<f32>(k3 + o));
    r = madd(f32x4.splat(load<f32>(q + o)), kv, r);
  }
  return r;
}

/** out[0..n) = Σ_s p[s] · v_s, v_s at v + s·ld; slots with p = 0 are skipped. */
// @ts-ignore: decorator
@inline function weightedSum(out: usize, p: usize, v: usize, ld: usize, nSlots: i32, n: i32): void {
  let d = 0;
  for (; d + 32 <= n; d += 32) {
    const dv = v + (<usize>d << 2);
    let o0 = f32x4.splat(0), o1 = o0, o2 = o0, o3 = o0, o4 = o0, o5 = o0, o6 = o0, o7 = o0;
    for (let s = 0; s < nSlots; s++) {
      const ps = load<f32>(p + (<usize>s << 2));
      if (ps == 0) continue;
      const pv = f32x4.splat(ps);
      const r = dv + <usize>s * ld;
      o0 = madd(pv, v128.load(r), o0);
      o1 = madd(pv, v128.load(r, 16), o1);
      o2 = madd(pv, v128.load(r, 32), o2);
      o3 = madd(pv, v128.load(r, 48), o3);
      o4 = madd(pv, v128.load(r, 64), o4);
      o5 = madd(pv, v128.load(r, 80), o5);
      o6 = madd(pv, v128.load(r, 96), o6);
      o7 = madd(pv, v128.load(r, 112), o7);
    }
    const op = out + (<usize>d << 2);
    v128.store(op, o0); v128.store(op, o1, 16); v128.store(op, o2, 32); v128.store(op, o3, 48);
    v128.store(op, o4, 64); v128.store(op, o5, 80); v128.store(op, o6, 96); v128.store(op, o7, 112);
  }
  for (; d + 4 <= n; d += 4) {
    const dv = v + (<usize>d << 2);
    let o0 = f32x4.splat(0);
    for (let s = 0; s < nSlots; s++) {
      const ps = load<f32>(p + (<usize>s << 2));
      if (ps != 0) o0 = madd(f32x4.splat(ps), v128.load(dv + <usize>s * ld), o0);
    }
    v128.store(out + (<usize>d << 2), o0);
  }
  for (; d < n; d++) {
    const dv = v + (<usize>d << 2);
    let o: f32 = 0;
    for (let s = 0; s < nSlots; s++) o += load<f32>(p + (<usize>s << 2)) * load<f32>(dv + <usize>s * ld);
    store<f32>(out + (<usize>d << 2), o);
  }
}

export function attention(out: usize, q: usize, qRowStride: i32, qGroupStride: i32, k: usize, v: usize,
  kvRowStride: i32, slotPos: usize, slotGroup: usize, nSlots: i32, qPos: usize, M: i32, nHeads: i32,
  nKvHeads: i32, headDim: i32, scale: f32, alibi: usize, window: i32, sinks: usize, probs: usize, scratch: usize,
  tid: i32, nth: i32): void {
  const total = M * nHeads;
  const i0 = <i32>(<i64>total * tid / nth);
  const i1 = <i32>(<i64>total * (tid + 1) / nth);
  const sc = scratch + (<usize>tid * nSlots << 2);
  const perKv = nHeads / nKvHeads;
  const hd = <usize>headDim << 2;
  const ldkv = <usize>kvRowStride << 2;
  const scv = f32x4.splat(scale);
  for (let i = i0; i < i1; i++) {
    const m = i / nHeads, h = i - m * nHeads;
    const kh = h / perKv;
    const qp = load<i32>(qPos + (<usize>m << 2));
    const qpv = i32x4.splat(qp);
    const lo = window > 0 ? qp - window : i32.MIN_VALUE;   // visible iff lo < pos <= qp
    const lov = i32x4.splat(lo);
    const slope: f32 = alibi ? load<f32>(alibi + (<usize>h << 2)) : 0;
    const qBase = q + ((<usize>m * qRowStride + <usize>h * headDim) << 2);
    const kBase = k + <usize>kh * hd;
    let mxv = NEG_INF;
    let s = 0;
    for (; s + 4 <= nSlots; s += 4) {
      const pos = v128.load(slotPos + (<usize>s << 2));
      const vis = v128.and(i32x4.le_s(pos, qpv), i32x4.gt_s(pos, lov));
      if (!v128.any_true(vis)) {
        v128.store(sc + (<usize>s << 2), NEG_INF);
        continue;
      }
      const grp = v128.load(slotGroup + (<usize>s << 2));
      const g0 = i32x4.extract_lane(grp, 0);
      let r: v128;
      if (i32x4.all_true(i32x4.eq(grp, i32x4.splat(g0)))) {
        r = dot4(qBase + (<usize>g0 * qGroupStride << 2), kBase + <usize>s * ldkv, ldkv, headDim);
      } else {
        // Rotation groups change inside these 4 slots (sink/window boundary): one dot each.
        const kp = kBase + <usize>s * ldkv;
        r = f32x4.splat(dot(qBase + (<usize>g0 * qGroupStride << 2), kp, headDim));
        r = f32x4.replace_lane(r, 1, dot(qBase + (<usize>i32x4.extract_lane(grp, 1) * qGroupStride << 2), kp + ldkv, headDim));
        r = f32x4.replace_lane(r, 2, dot(qBase + (<usize>i32x4.extract_lane(grp, 2) * qGroupStride << 2), kp + 2 * ldkv, headDim));
        r = f32x4.replace_lane(r, 3, dot(qBase + (<usize>i32x4.extract_lane(grp, 3) * qGroupStride << 2), kp + 3 * ldkv, headDim));
      }
      r = f32x4.mul(r, scv);
      if (alibi) r = f32x4.sub(r, f32x4.mul(f32x4.splat(slope), f32x4.convert_i32x4_s(i32x4.sub(qpv, pos))));
      r = v128.bitselect(r, NEG_INF, vis);
      mxv = f32x4.max(mxv, r);
      v128.store(sc + (<usize>s << 2), r);
    }
    let mx = hmax(mxv);
    for (; s < nSlots; s++) {
      const pos = load<i32>(slotPos + (<usize>s << 2));
      let score: f32 = -Infinity;
      if (pos <= qp && pos > lo) {
        const g = load<i32>(slotGroup + (<usize>s << 2));
        score = scale * dot(qBase + (<usize>g * qGroupStride << 2), kBase + <usize>s * ldkv, headDim);
        if (alibi) score -= slope * <f32>(qp - pos);
        mx = max<f32>(mx, score);
      }
      store<f32>(sc + (<usize>s << 2), score);
    }
    const o = out + ((<usize>m * nHeads + h) * hd);
    const pr = probs ? probs + ((<usize>m * nHeads + h) * nSlots << 2) : 0;
    if (mx == -Infinity) {
      memory.fill(o, 0, hd);
      if (pr) memory.fill(pr, 0, <usize>nSlots << 2);
      continue;
    }
    let denom: f32;
    if (sinks) {
      // Shift by the larger of the two so neither exponential overflows.
      const sink = load<f32>(sinks + (<usize>h << 2));
      const shift = max<f32>(mx, sink);
      denom = expShiftSum(sc, nSlots, shift) + Mathf.exp(sink - shift);
    } else {
      denom = expShiftSum(sc, nSlots, mx);
    }
    const inv: f32 = 1 / denom;
    const iv = f32x4.splat(inv);
    s = 0;
    for (; s + 4 <= nSlots; s += 4) {
      const p = sc + (<usize>s << 2);
      v128.store(p, f32x4.mul(v128.load(p), iv));
    }
    for (; s < nSlots; s++) {
      const p = sc + (<usize>s << 2);
      store<f32>(p, load<f32>(p) * inv);
    }
    if (pr) memory.copy(pr, sc, <usize>nSlots << 2);
    weightedSum(o, sc, v + <usize>kh * hd, ldkv, nSlots, headDim);
  }
}
