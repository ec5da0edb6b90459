// FlashSVD streaming kernels for low-rank linears (W ≈ B·A; see docs/lowrank.md). Both are parallel
// over rows of the prompt and keep their tiles in this instance's scratch region, so the
// full-size activations ([M, d_ff] for the FFN; Q and the scores for attention) never exist.
//
// lowrank_ffn(qd, p, bg, bu, ad, cfg, M):  cfg = i32 [ldp, rg, ru, F, rd, ldq]
//   P = x·[A_g; A_u]ᵀ (M, ldp): gate coefficients in columns [0, rg), up in [rg, rg + ru).
//   For each block of ROWS rows and each tile of TILE features f:
//     a[m, f] = silu(P_g[m]·B_g[f]) · (P_u[m]·B_u[f])   (B_g, B_u: (F, rg), (F, ru))
//     qd[m, :rd] += a[m, tile] · A_d[:, tile]ᵀ            (A_d: (rd, F); qd row stride ldq)
//   The caller finishes with y = qd·B_dᵀ.
//
// lowrank_attention(out, p, bq, k, v, cfg, M):  cfg = u32/f32 block, see ATT_* below.
//   For query row m and head h: q = P_q[m]·B_q[h·hd .. h·hd + hd)ᵀ (+ bias), rotated per rotation
//   group g with cos/sin (G, M, rotDim/2); then one pass over the slots in tiles of SLOT_TILE with
//   online softmax (running max, running sum, rescaled accumulator), as in flash attention.
import { exp4, expShiftSum, hsum, madd, scratchPtr } from './simd';

const ROWS: i32 = 4;
const TILE: i32 = 64;
const SLOT_TILE: i32 = 64;

/** Four dot products of length n: rows x0..x3 against one w row; w is loaded once per 4 lanes. */
// @ts-ignore: decorator
@inline function dots4(x0: usize, x1: usize, x2: usize, x3: usize, w: usize, n: i32): v128 {
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const wv = v128.load(w + o);
    a0 = madd(v128.load(x0 + o), wv, a0);
    a1 = madd(v128.load(x1 + o), wv, a1);
    a2 = madd(v128.load(x2 + o), wv, a2);
    a3 = madd(v128.load(x3 + o), wv, a3);
  }
  let r = f32x4(hsum(a0), hsum(a1), hsum(a2), hsum(a3));
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const wv = f32x4.splat(load<f32>(w + o));
    r = madd(f32x4(load<f32>(x0 + o), load<f32>(x1 + o), load<f32>(x2 + o), load<f32>(x3 + o)), wv, r);
  }
  return r;
}

// @ts-ignore: decorator
@inline function dot(a: usize, b: usize, n: i32): f32 {
  let s0 = f32x4.splat(0), s1 = s0;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i << 2;
    s0 = madd(v128.load(a + o), v128.load(b + o), s0);
    s1 = madd(v128.load(a + o, 16), v128.load(b + o, 16), s1);
  }
  let s = hsum(f32x4.add(s0, s1));
  for (; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

/** out[0..n) = out·c + p·v */
// @ts-ignore: decorator
@inline function scaleAxpy(out: usize, c: f32, p: f32, v: usize, n: i32): void {
  const cv = f32x4.splat(c), pv = f32x4.splat(p);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, f32x4.add(f32x4.mul(v128.load(out + o), cv), f32x4.mul(pv, v128.load(v + o))));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, load<f32>(out + o) * c + p * load<f32>(v + o));
  }
}

// @ts-ignore: decorator
@inline function silu(a: f32): f32 {
  return <f32>(<f64>a / (1 + Math.exp(-<f64>a)));
}

export function lowrank_ffn(qd: usize, p: usize, bg: usize, bu: usize, ad: usize, cfg: usize, M: i32, tid: i32, nth: i32): void {
  const ldp = load<i32>(cfg), rg = load<i32>(cfg, 4), ru = load<i32>(cfg, 8);
  const F = load<i32>(cfg, 12), rd = load<i32>(cfg, 16), ldq = load<i32>(cfg, 20);
  const blocks = (M + ROWS - 1) / ROWS;
  const b0 = <i32>(<i64>blocks * tid / nth), b1 = <i32>(<i64>blocks * (tid + 1) / nth);
  const act = scratchPtr;                                   // (ROWS, TILE) activation tile
  const pad = scratchPtr + (<usize>ROWS * TILE << 2);        // a zero row for ragged row blocks
  memory.fill(pad, 0, <usize>max(max(rg, ru), TILE) << 2);
  const ldpB = <usize>ldp << 2, ldqB = <usize>ldq << 2, tB = <usize>TILE << 2;
  for (let b = b0; b < b1; b++) {
    const m0 = b * ROWS;
    const nr = min(ROWS, M - m0);
    for (let m = 0; m < nr; m++) memory.fill(qd + <usize>(m0 + m) * ldqB, 0, <usize>rd << 2);
    const pr0 = p + <usize>m0 * ldpB;
    const pr1 = nr > 1 ? pr0 + ldpB : pad, pr2 = nr > 2 ? pr0 + 2 * ldpB : pad, pr3 = nr > 3 ? pr0 + 3 * ldpB : pad;
    const ub = <usize>rg << 2;
    for (let f0 = 0; f0 < F; f0 += TILE) {
      const T = min(TILE, F - f0);
      for (let t = 0; t < T; t++) {
        const f = f0 + t;
        const g = dots4(pr0, pr1, pr2, pr3, bg + (<usize>f * rg << 2), rg);
        const u = dots4(pr0 + ub, pr1 == pad ? pad : pr1 + ub, pr2 == pad ? pad : pr2 + ub, pr3 == pad ? pad : pr3 + ub, bu + (<usize>f * ru << 2), ru);
        const o = act + (<usize>t << 2);
        store<f32>(o, silu(f32x4.extract_lane(g, 0)) * f32x4.extract_lane(u, 0));
        store<f32>(o + tB, silu(f32x4.extract_lane(g, 1)) * f32x4.extract_lane(u, 1));
        store<f32>(o + 2 * tB, silu(f32x4.extract_lane(g, 2)) * f32x4.extract_lane(u, 2));
        store<f32>(o + 3 * tB, silu(f32x4.extract_lane(g, 3)) * f32x4.extract_lane(u, 3));
      }
      // qd[m, j] += Σ_t act[m, t] · A_d[j, f0 + t]
      for (let j = 0; j < rd; j++) {
        const s = dots4(act, act + tB, act + 2 * tB, act + 3 * tB, ad + ((<usize>j * F + f0) << 2), T);
        const q = qd + <usize>m0 * ldqB + (<usize>j << 2);
        store<f32>(q, load<f32>(q) + f32x4.extract_lane(s, 0));
        if (nr > 1) store<f32>(q + ldqB, load<f32>(q + ldqB) + f32x4.extract_lane(s, 1));
        if (nr > 2) store<f32>(q + 2 * ldqB, load<f32>(q + 2 * ldqB) + f32x4.extract_lane(s, 2));
        if (nr > 3) store<f32>(q + 3 * ldqB, load<f32>(q + 3 * ldqB) + f32x4.extract_lane(s, 3));
      }
    }
  }
}

// cfg layout for lowrank_attention (4-byte slots).
const ATT_LDP = 0;        // i32: row stride of P_q in floats
const ATT_RQ = 4;         // i32: rank of the query factor
const ATT_QBIAS = 8;      // u32: f32 (qDim) query bias, 0 = none
const ATT_KVSTRIDE = 12;  // i32: slot stride of k and v in floats
const ATT_SLOTPOS = 16;   // u32: i32 (nSlots)
const ATT_SLOTGROUP = 20; // u32: i32 (nSlots)
const ATT_NSLOTS = 24;    // i32
const ATT_QPOS = 28;      // u32: i32 (M)
const ATT_NHEADS = 32;    // i32
const ATT_NKV = 36;       // i32
const ATT_HD = 40;        // i32
const ATT_SCALE = 44;     // f32
const ATT_ALIBI = 48;     // u32: f32 (nHeads), 0 = none
const ATT_COS = 52;       // u32: f32 (G, M, rotDim/2), 0 = no RoPE
const ATT_SIN = 56;       // u32
const ATT_ROTDIM = 60;    // i32
const ATT_GROUPS = 64;    // i32: G
const ATT_LDO = 68;       // i32: row stride of out in floats
const ATT_WINDOW = 72;    // i32: attention window W (visible iff qPos - W < slotPos <= qPos), 0 = none
const ATT_SINKS = 76;     // u32: f32 (nHeads) learned sink logits, 0 = none

export function lowrank_attention(out: usize, p: usize, bq: usize, k: usize, v: usize, cfg: usize, M: i32, tid: i32, nth: i32): void {
  const ldp = load<i32>(cfg + ATT_LDP), rq = load<i32>(cfg + ATT_RQ);
  const qBias = <usize>load<u32>(cfg + ATT_QBIAS);
  const kvStride = load<i32>(cfg + ATT_KVSTRIDE);
  const slotPos = <usize>load<u32>(cfg + ATT_SLOTPOS), slotGroup = <usize>load<u32>(cfg + ATT_SLOTGROUP);
  const nSlots = load<i32>(cfg + ATT_NSLOTS);
  const qPos = <usize>load<u32>(cfg + ATT_QPOS);
  const nHeads = load<i32>(cfg + ATT_NHEADS), nKv = load<i32>(cfg + ATT_NKV), hd = load<i32>(cfg + ATT_HD);
  const scale = load<f32>(cfg + ATT_SCALE);
  const alibi = <usize>load<u32>(cfg + ATT_ALIBI);
  const cosT = <usize>load<u32>(cfg + ATT_COS), sinT = <usize>load<u32>(cfg + ATT_SIN);
  const rotDim = load<i32>(cfg + ATT_ROTDIM), G = load<i32>(cfg + ATT_GROUPS), ldo = load<i32>(cfg + ATT_LDO);
  const window = load<i32>(cfg + ATT_WINDOW), sinks = <usize>load<u32>(cfg + ATT_SINKS);
  const half = rotDim >> 1;
  const hdB = <usize>hd << 2;
  // Scratch: G rotated query copies (G, hd), the accumulator (hd), one tile of scores.
  const qg = scratchPtr;
  const acc = qg + <usize>G * hdB;
  const sc = acc + hdB;
  const perKv = nHeads / nKv;
  const total = M * nHeads;
  const i0 = <i32>(<i64>total * tid / nth), i1 = <i32>(<i64>total * (tid + 1) / nth);
  for (let i = i0; i < i1; i++) {
    const m = i / nHeads, h = i - m * nHeads;
    const kh = h / perKv;
    const qp = load<i32>(qPos + (<usize>m << 2));
    const lo = window > 0 ? qp - window : i32.MIN_VALUE;
    const slope: f32 = alibi ? load<f32>(alibi + (<usize>h << 2)) : 0;
    // Rebuild this head's query from the rank-rq coefficients, then rotate it once per group.
    const pm = p + (<usize>m * ldp << 2);
    for (let d = 0; d < hd; d++) {
      const n = h * hd + d;
      let q = dot(pm, bq + (<usize>n * rq << 2), rq);
      if (qBias) q += load<f32>(qBias + (<usize>n << 2));
      for (let g = 0; g < G; g++) store<f32>(qg + <usize>g * hdB + (<usize>d << 2), q);
    }
    if (cosT) {
      for (let g = 0; g < G; g++) {
        const row = (<usize>g * M + m) * half << 2;
        const c = cosT + row, s = sinT + row, x = qg + <usize>g * hdB, hb = <usize>half << 2;
        for (let j = 0; j < half; j++) {
          const o = <usize>j << 2;
          const x1 = load<f32>(x + o), x2 = load<f32>(x + hb + o);
          const cv = load<f32>(c + o), sv = load<f32>(s + o);
          store<f32>(x + o, x1 * cv - x2 * sv);
          store<f32>(x + hb + o, x2 * cv + x1 * sv);
        }
      }
    }
    memory.fill(acc, 0, hdB);
    let mx: f32 = -Infinity, sum: f32 = 0;
    for (let s0 = 0; s0 < nSlots; s0 += SLOT_TILE) {
      const S = min(SLOT_TILE, nSlots - s0);
      let tmx: f32 = -Infinity;
      for (let t = 0; t < S; t++) {
        const s = s0 + t;
        const pos = load<i32>(slotPos + (<usize>s << 2));
        let score: f32 = -Infinity;
        if (pos <= qp && pos > lo) {
          const g = load<i32>(slotGroup + (<usize>s << 2));
          score = scale * dot(qg + <usize>g * hdB, k + ((<usize>s * kvStride + <usize>kh * hd) << 2), hd);
          if (alibi) score -= slope * <f32>(qp - pos);
          tmx = max<f32>(tmx, score);
        }
        store<f32>(sc + (<usize>t << 2), score);
      }
      if (tmx == -Infinity) continue;
      const nmx = max<f32>(mx, tmx);
      const corr: f32 = mx == -Infinity ? 0 : Mathf.exp(mx - nmx);
      mx = nmx;
      sum = sum * corr + expShiftSum(sc, S, mx);
      let c = corr;
      for (let t2 = 0; t2 < S; t2++) {
        const e = load<f32>(sc + (<usize>t2 << 2));
        if (e != 0 || c != 1) {
          scaleAxpy(acc, c, e, v + (((<usize>(s0 + t2)) * kvStride + <usize>kh * hd) << 2), hd);
          c = 1;
        }
      }
    }
    const o = out + ((<usize>m * ldo + <usize>h * hd) << 2);
    if (sum == 0) { memory.fill(o, 0, hdB); continue; }
    // A learned sink adds exp(s_h) to the denominator and no value; above the running max, move
    // both sum and accumulator into its frame so nothing overflows.
    let num: f32 = 1;
    if (sinks) {
      const sl = load<f32>(sinks + (<usize>h << 2));
      if (sl > mx) { num = Mathf.exp(mx - sl); sum = sum * num + 1; } else sum += Mathf.exp(sl - mx);
    }
    const inv: f32 = num / sum;
    for (let d = 0; d < hd; d++) store<f32>(o + (<usize>d << 2), load<f32>(acc + (<usize>d << 2)) * inv);
  }
}
