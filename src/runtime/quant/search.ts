// Scale searches shared by the quantizers: round-to-nearest codes for a few candidate scales, each
// followed by the least-squares scale (and offset) for those codes; the lowest squared error wins.
// Plain RTN at the block's extreme (ggml's *_ref rule) is one of the candidates, so a search never
// does worse than it on the block it fits.

/** Nearest integer, ties to even (as f32x4.nearest and ggml's nearest_int). */
export function rint(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

/** Offsets tried around the code range's end, in units of one code step. */
const SYM_STEPS = [0, -0.25, 0.25, -0.5, 0.5, -0.75, 0.75, 1];

/**
 * When true, the searches return plain round-to-nearest at the block's extreme with no refit
 * (ggml's *_ref rule for the 32-blocks): the baseline docs/quant.md compares against. Never set in
 * the engine; bench/quant-error.ts flips it.
 */
export const searchMode = { plain: false, weighted: true };

/**
 * Importance of each element of x[off .. off+n) for the error the searches minimise: rms + |x|,
 * with rms over the whole span. Large weights move a row's dot products most, so they get their
 * codes most exactly; every element still counts (ggml's k-quant reference quantizers weight the
 * same way, without a calibration set). All ones when `searchMode.weighted` is off.
 */
export function importance(x: ArrayLike<number>, off: number, n: number, w: Float64Array): Float64Array {
  let ss = 0;
  for (let i = 0; i < n; i++) ss += x[off + i] * x[off + i];
  const rms = Math.sqrt(ss / n);
  for (let i = 0; i < n; i++) w[i] = searchMode.weighted ? rms + Math.abs(x[off + i]) : 1;
  return w;
}

/**
 * Symmetric codes q in [qmin, qmax] (qmin = −qmax − 1) with x ≈ d·q for x[off .. off+n).
 * The extreme value is mapped near either end of the range (the negative end has one more code),
 * so `d` may be negative. Writes the codes to `q` and returns d (0 for an all-zero block).
 */
export function searchSymmetric(x: ArrayLike<number>, off: number, n: number, qmin: number, qmax: number, q: Int32Array): number {
  let v = 0;
  for (let i = 0; i < n; i++) if (Math.abs(x[off + i]) > Math.abs(v)) v = x[off + i];
  if (v === 0) { q.fill(0, 0, n); return 0; }
  if (searchMode.plain) {
    const d = v / qmin;
    for (let i = 0; i < n; i++) q[i] = Math.max(qmin, Math.min(qmax, rint(x[off + i] / d)));
    return d;
  }
  let bestErr = Infinity, bestD = 0;
  const cand = new Int32Array(n);
  for (const end of [qmin, qmax]) {
    for (const s of SYM_STEPS) {
      const t = end < 0 ? end - s : end + s;
      if (t === 0 || (end === qmax && s < -0.5)) continue;
      const id = t / v;
      let sxq = 0, sqq = 0;
      for (let i = 0; i < n; i++) {
        const c = Math.max(qmin, Math.min(qmax, rint(x[off + i] * id)));
        cand[i] = c; sxq += x[off + i] * c; sqq += c * c;
      }
      if (sqq === 0) continue;
      const d = sxq / sqq;
      let err = 0;
      for (let i = 0; i < n; i++) { const e = x[off + i] - d * cand[i]; err += e * e; }
      if (err < bestErr) { bestErr = err; bestD = d; q.set(cand.subarray(0, n)); }
    }
  }
  return bestD;
}

/** Code-range stretches tried for the affine search (0 = plain min/max RTN): −1.2 .. 1 by 0.1. */
const AFF_STEPS = Array.from({ length: 23 }, (_, i) => (i - 12) / 10);

/**
 * Affine codes q in [0, qmax] with x ≈ d·q + m for x[off .. off+n). With `minAtMostZero` (k-quants
 * store the offset as −dmin·m with m >= 0) the offset is kept <= 0. Writes the codes to `q` and
 * returns [d, m].
 */
export function searchAffine(x: ArrayLike<number>, off: number, n: number, qmax: number, minAtMostZero: boolean,
  q: Int32Array, w: ArrayLike<number> = importance(x, off, n, new Float64Array(n))): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < n; i++) { const v = x[off + i]; if (v < lo) lo = v; if (v > hi) hi = v; }
  if (minAtMostZero && lo > 0) lo = 0;
  if (hi === lo) { q.fill(0, 0, n); return [0, lo]; }
  let bestErr = Infinity, bestD = 0, bestM = lo;
  const cand = new Int32Array(n);
  for (const s of searchMode.plain ? [] : AFF_STEPS) {
    let id = (qmax + s) / (hi - lo), base = lo;
    // RTN codes, least-squares (d, m) for them, then codes again from that fit: up to 3 times.
    for (let it = 0; it < 3; it++) {
      let sw = 0, sq = 0, sqq = 0, sx = 0, sxq = 0, changed = false;
      for (let i = 0; i < n; i++) {
        const v = x[off + i], wi = w[i];
        const c = Math.max(0, Math.min(qmax, rint((v - base) * id)));
        if (c !== cand[i]) changed = true;
        cand[i] = c; sw += wi; sq += wi * c; sqq += wi * c * c; sx += wi * v; sxq += wi * v * c;
      }
      if (it > 0 && !changed) break;
      // Weighted least squares for x ≈ d·c + m.
      const det = sw * sqq - sq * sq;
      if (det <= 0) break;
      let d = (sw * sxq - sq * sx) / det;
      let m = (sx - d * sq) / sw;
      if (minAtMostZero && m > 0) { m = 0; d = sxq / sqq; }
      if (d <= 0) break;
      let err = 0;
      for (let i = 0; i < n; i++) { const e = x[off + i] - d * cand[i] - m; err += w[i] * e * e; }
      if (err < bestErr) { bestErr = err; bestD = d; bestM = m; q.set(cand.subarray(0, n)); }
      id = 1 / d; base = m;
    }
  }
  if (searchMode.plain || bestErr === Infinity) { // the baseline, or degenerate: fall back to plain min/max RTN
    bestD = (hi - lo) / qmax; bestM = lo;
    for (let i = 0; i < n; i++) q[i] = Math.max(0, Math.min(qmax, rint((x[off + i] - lo) / bestD)));
  }
  return [bestD, bestM];
}
