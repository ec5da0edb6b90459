// Attention for a few query rows at once (a speculative verify's K+1 rows, docs/speculative.md):
// the same result as `attention` (attention.ts), but parallel over heads, and within a head every
// 4-slot block of keys is scored against all M rows while it sits in L1, then each row's softmax
// and Σ p·v read that head's V (64 KB at 512 slots x 32 dims) from L2 rather than from memory.
// `attention` walks the (row, head) pairs row by row, so each row streams the whole layer's K/V
// (1 MB at 512 slots x 256) again; at M = 5 that streaming was most of the verify's attention.
// Each row keeps its own visibility (qPos[m], window), so a draft's per-row mask stays exact.
// Scratch: nth x M x nSlots f32 (each thread's rows of scores, then probabilities).
import { dot, dot4, weightedSum } from './attention';
import { expShiftSum, hmax } from './simd';

const NEG_INF = f32x4.splat(-Infinity);

export function attention_rows(out: usize, q: usize, qRowStride: i32, qGroupStride: i32, k: usize, v: usize,
  kvRowStride: i32, slotPos: usize, slotGroup: usize, nSlots: i32, qPos: usize, M: i32, nHeads: i32,
  nKvHeads: i32, headDim: i32, scale: f32, alibi: usize, window: i32, sinks: usize, probs: usize, scratch: usize,
  tid: i32, nth: i32): void {
  const h0 = <i32>(<i64>nHeads * tid / nth);
  const h1 = <i32>(<i64>nHeads * (tid + 1) / nth);
  const rowBytes = <usize>nSlots << 2;
  const sc0 = scratch + <usize>tid * M * rowBytes;
  const perKv = nHeads / nKvHeads;
  const hd = <usize>headDim << 2;
  const ldkv = <usize>kvRowStride << 2;
  const scv = f32x4.splat(scale);
  for (let h = h0; h < h1; h++) {
    const kh = h / perKv;
    const slope: f32 = alibi ? load<f32>(alibi + (<usize>h << 2)) : 0;
    const kBase = k + <usize>kh * hd;
    const qHead = q + (<usize>h * headDim << 2);
    // Scores, (M, nSlots) in scratch: one 4-slot block of keys against every row.
    let s = 0;
    for (; s + 4 <= nSlots; s += 4) {
      const pos = v128.load(slotPos + (<usize>s << 2));
      const grp = v128.load(slotGroup + (<usize>s << 2));
      const g0 = i32x4.extract_lane(grp, 0);
      const oneGroup = i32x4.all_true(i32x4.eq(grp, i32x4.splat(g0)));
      const kp = kBase + <usize>s * ldkv;
      for (let m = 0; m < M; m++) {
        const qp = load<i32>(qPos + (<usize>m << 2));
        const qpv = i32x4.splat(qp);
        const vis = v128.and(i32x4.le_s(pos, qpv), i32x4.gt_s(pos, i32x4.splat(window > 0 ? qp - window : i32.MIN_VALUE)));
        const dst = sc0 + <usize>m * rowBytes + (<usize>s << 2);
        if (!v128.any_true(vis)) { v128.store(dst, NEG_INF); continue; }
        const qm = qHead + (<usize>m * qRowStride << 2);
        let r: v128;
        if (oneGroup) {
          r = dot4(qm + (<usize>g0 * qGroupStride << 2), kp, ldkv, headDim);
        } else {
          // Rotation groups change inside these 4 slots (sink/window boundary): one dot each.
          r = f32x4.splat(dot(qm + (<usize>g0 * qGroupStride << 2), kp, headDim));
          r = f32x4.replace_lane(r, 1, dot(qm + (<usize>i32x4.extract_lane(grp, 1) * qGroupStride << 2), kp + ldkv, headDim));
          r = f32x4.replace_lane(r, 2, dot(qm + (<usize>i32x4.extract_lane(grp, 2) * qGroupStride << 2), kp + 2 * ldkv, headDim));
          r = f32x4.replace_lane(r, 3, dot(qm + (<usize>i32x4.extract_lane(grp, 3) * qGroupStride << 2), kp + 3 * ldkv, headDim));
        }
        r = f32x4.mul(r, scv);
        if (alibi) r = f32x4.sub(r, f32x4.mul(f32x4.splat(slope), f32x4.convert_i32x4_s(i32x4.sub(qpv, pos))));
        v128.store(dst, v128.bitselect(r, NEG_INF, vis));
      }
    }
    for (; s < nSlots; s++) {
      const pos = load<i32>(slotPos + (<usize>s << 2));
      const g = load<i32>(slotGroup + (<usize>s << 2));
      const kp = kBase + <usize>s * ldkv;
      for (let m = 0; m < M; m++) {
        const qp = load<i32>(qPos + (<usize>m << 2));
        let score: f32 = -Infinity;
        if (pos <= qp && (window <= 0 || pos > qp - window)) {
          score = scale * dot(qHead + ((<usize>m * qRowStride + <usize>g * qGroupStride) << 2), kp, headDim);
          if (alibi) score -= slope * <f32>(qp - pos);
        }
        store<f32>(sc0 + <usize>m * rowBytes + (<usize>s << 2), score);
      }
    }
    // Per row: softmax in place, then Σ p·v (V of this head is warm after the first row).
    for (let m = 0; m < M; m++) {
      const sc = sc0 + <usize>m * rowBytes;
      let mxv = NEG_INF;
      let t = 0;
      for (; t + 4 <= nSlots; t += 4) mxv = f32x4.max(mxv, v128.load(sc + (<usize>t << 2)));
      let mx = hmax(mxv);
      for (; t < nSlots; t++) mx = max<f32>(mx, load<f32>(sc + (<usize>t << 2)));
      const o = out + ((<usize>m * nHeads + h) * hd);
      const pr = probs ? probs + ((<usize>m * nHeads + h) * nSlots << 2) : 0;
      if (mx == -Infinity) {
        memory.fill(o, 0, hd);
        if (pr) memory.fill(pr, 0, rowBytes);
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
      t = 0;
      for (; t + 4 <= nSlots; t += 4) {
        const p = sc + (<usize>t << 2);
        v128.store(p, f32x4.mul(v128.load(p), iv));
      }
      for (; t < nSlots; t++) {
        const p = sc + (<usize>t << 2);
        store<f32>(p, load<f32>(p) * inv);
      }
      if (pr) memory.copy(pr, sc, rowBytes);
      weightedSum(o, sc, v + <usize>kh * hd, ldkv, nSlots, headDim);
    }
  }
}
