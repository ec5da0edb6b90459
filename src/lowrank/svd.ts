// Truncated factorizations W (N, K) ≈ B (N, r) · A (r, K), in float64.
//
// exact: one-sided Jacobi (f64) on the min(N, K) rows of W or Wᵀ. With W = U·Σ·Vᵀ: N ≤ K gives
//   B = U_r, A = U_rᵀ·W; N > K gives A = V_rᵀ, B = W·V_r. Either way B·A = W·(orthogonal
//   projection), so at full rank the product equals W to rounding, however ill-conditioned W is.
// whiten (SVD-LLM): minimise ‖(W − B·A)·Xᵀ‖ for calibration inputs X, i.e. truncate W·L where
//   C = XᵀX = L·Lᵀ. With W·L = U·Σ·Vᵀ: N ≤ K gives B = U_r, A = U_rᵀ·W; N > K gives
//   A = V_rᵀ·L⁻¹, B = W·L·V_r.
// randomized (Halko et al. 2011): range finder Y = W·Ω with q power iterations on the wasm GEMM,
//   then the exact method on the small (r + p, K) matrix Qᵀ·W. See bench/lowrank.ts for timings.
import { StreamlmError } from '../errors.js';
import type { Runtime } from '../runtime/runtime.js';

export interface Factors {
  a: Float32Array;    // (r, K)
  b: Float32Array;    // (N, r)
  r: number;
  /** Singular values (of W, or of W·L when whitened), descending, all min(N, K) of them. */
  sigma: Float64Array;
}

/** Picks the rank from the descending singular values. */
export type RankRule = (sigma: Float64Array) => number;

/** r = round(ratio · min(N, K)), at least 1: ratio 1 keeps full rank. */
export function rankByRatio(ratio: number): RankRule {
  return (s) => Math.max(1, Math.min(s.length, Math.round(ratio * s.length)));
}

/** Smallest r with Σ_{i<r} σᵢ² ≥ energy · Σ σᵢ². */
export function rankByEnergy(energy: number): RankRule {
  return (s) => {
    let total = 0;
    for (const x of s) total += x * x;
    let acc = 0;
    for (let i = 0; i < s.length; i++) {
      acc += s[i] * s[i];
      if (acc >= energy * total * (1 - 1e-12)) return i + 1;
    }
    return s.length;
  };
}

/** a (n, k) · bᵀ where b is (m, k): (n, m), row-major f64. */
function mulABt(a: Float64Array, n: number, b: Float64Array, m: number, k: number): Float64Array {
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    const ai = i * k;
    for (let j = 0; j < m; j++) {
      const bj = j * k;
      let s = 0;
      for (let t = 0; t < k; t++) s += a[ai + t] * b[bj + t];
      out[i * m + j] = s;
    }
  }
  return out;
}

function transpose(a: Float64Array, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j];
  return t;
}

/**
 * One-sided (Hestenes) Jacobi: rotates pairs of rows of m (n, k) in place until all rows are
 * mutually orthogonal, and returns the accumulated rotation Qᵀ (n, n) with m_out = Qᵀ·m_in. Every
 * access is a contiguous row, which is what makes it fast in JS. Row norms of m_out are the
 * singular values of m_in; normalized rows are its right singular vectors; Q's columns the left.
 * Pairs count as orthogonal at |cos| ≤ 1e-10: Qᵀ is orthogonal whatever the tolerance (a product
 * of rotations), so full rank stays exact and only the truncation's optimality depends on it.
 */
function rowJacobi(m: Float64Array, n: number, k: number): Float64Array {
  const qt = new Float64Array(n * n);
  for (let i = 0; i < n; i++) qt[i * n + i] = 1;
  const norm = new Float64Array(n);
  for (let i = 0; i < n; i++) { let a = 0; for (let t = i * k; t < (i + 1) * k; t++) a += m[t] * m[t]; norm[i] = a; }
  for (let sweep = 0; sweep < 60; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      const rp = p * k;
      for (let q = p + 1; q < n; q++) {
        const rq = q * k;
        let g = 0;
        for (let t = 0; t < k; t++) g += m[rp + t] * m[rq + t];
        const a = norm[p], b = norm[q];
        if (Math.abs(g) <= 1e-10 * Math.sqrt(a * b) || g === 0) continue;
        rotated = true;
        const zeta = (b - a) / (2 * g);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t), s = c * t;
        for (let i = 0; i < k; i++) {
          const x = m[rp + i], y = m[rq + i];
          m[rp + i] = c * x - s * y;
          m[rq + i] = s * x + c * y;
        }
        const qp = p * n, qq = q * n;
        for (let i = 0; i < n; i++) {
          const x = qt[qp + i], y = qt[qq + i];
          qt[qp + i] = c * x - s * y;
          qt[qq + i] = s * x + c * y;
        }
        norm[p] = a - t * g;
        norm[q] = b + t * g;
      }
    }
    if (!rotated) break;
    // Refresh the norms from the rows so rounding in the running updates cannot accumulate.
    for (let i = 0; i < n; i++) { let a = 0; for (let t = i * k; t < (i + 1) * k; t++) a += m[t] * m[t]; norm[i] = a; }
  }
  return qt;
}

function rowNormsDesc(m: Float64Array, n: number, k: number): { order: number[]; sigma: Float64Array } {
  const nrm = new Float64Array(n);
  for (let i = 0; i < n; i++) { let a = 0; for (let t = i * k; t < (i + 1) * k; t++) a += m[t] * m[t]; nrm[i] = Math.sqrt(a); }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => nrm[j] - nrm[i]);
  return { order, sigma: Float64Array.from(order, (i) => nrm[i]) };
}

/**
 * W (N, K) ≈ B·A. `gram` is C = XᵀX (K, K) of calibration inputs for the whitened variant, or null.
 * Both sides go through one-sided Jacobi on the rows of M = W·L (L = I unless whitened), or of Mᵀ
 * when N > K, so the Jacobi works on min(N, K) rows.
 */
export function factorize(w: Float64Array, N: number, K: number, rank: RankRule, gram: Float64Array | null = null): Factors {
  let L: Float64Array | null = null;
  let m = w;                                                          // M = W·L (N, K)
  if (gram) { L = cholesky(gram, K); m = mulABt(w, N, transpose(L, K, K), K, K); }
  if (N <= K) {
    m = Float64Array.from(m);
    const qt = rowJacobi(m, N, K);                                    // m = Qᵀ·M = Σ·Vᵀ, U = Q
    const { order, sigma } = rowNormsDesc(m, N, K);
    const r = rank(sigma);
    const b = new Float32Array(N * r), a = new Float32Array(r * K);
    for (let j = 0; j < r; j++) {
      const u = order[j] * N;
      for (let i = 0; i < N; i++) b[i * r + j] = qt[u + i];          // B = U_r
      if (!L) a.set(m.subarray(order[j] * K, (order[j] + 1) * K), j * K);  // A = U_rᵀ·W = Σ_r·V_rᵀ
      else {                                                          // A = U_rᵀ·W
        const row = new Float64Array(K);
        for (let i = 0; i < N; i++) { const c = qt[u + i]; if (c !== 0) for (let t = 0; t < K; t++) row[t] += c * w[i * K + t]; }
        a.set(row, j * K);
      }
    }
    return { a, b, r, sigma };
  }
  const mt = transpose(m, N, K);                                      // Mᵀ (K, N)
  const qt = rowJacobi(mt, K, N);                                     // mt = Qᵀ·Mᵀ = Σ·Uᵀ, V = Q
  const { order, sigma } = rowNormsDesc(mt, K, N);
  const r = rank(sigma);
  const b = new Float32Array(N * r), a = new Float32Array(r * K);
  const linv = L ? invertLower(L, K) : null;
  for (let j = 0; j < r; j++) {
    const row = order[j];
    for (let i = 0; i < N; i++) b[i * r + j] = mt[row * N + i];      // B = M·V_r = U_r·Σ_r
    if (!linv) for (let t = 0; t < K; t++) a[j * K + t] = qt[row * K + t];  // A = V_rᵀ
    else for (let t = 0; t < K; t++) {                                // A = V_rᵀ·L⁻¹
      let acc = 0;
      for (let i = t; i < K; i++) acc += qt[row * K + i] * linv[i * K + t];
      a[j * K + t] = acc;
    }
  }
  return { a, b, r, sigma };
}

/** Lower L with C = L·Lᵀ; adds a growing ridge (relative to the mean diagonal) until C is positive definite. */
function cholesky(c: Float64Array, n: number): Float64Array {
  let mean = 0;
  for (let i = 0; i < n; i++) mean += c[i * n + i] / n;
  if (!(mean > 0)) throw new StreamlmError('the calibration activations are all zero; the whitening statistics are unusable', { field: '--calib' });
  for (let damp = 1e-6; damp <= 1; damp *= 10) {
    const L = new Float64Array(n * n);
    let ok = true;
    for (let j = 0; j < n && ok; j++) {
      let d = c[j * n + j] + damp * mean;
      for (let k = 0; k < j; k++) d -= L[j * n + k] * L[j * n + k];
      if (!(d > 0)) { ok = false; break; }
      const ljj = Math.sqrt(d);
      L[j * n + j] = ljj;
      for (let i = j + 1; i < n; i++) {
        let s = c[i * n + j];
        for (let k = 0; k < j; k++) s -= L[i * n + k] * L[j * n + k];
        L[i * n + j] = s / ljj;
      }
    }
    if (ok) return L;
  }
  throw new StreamlmError('the calibration Gram matrix is not positive definite even with damping', { field: '--calib' });
}

function invertLower(L: Float64Array, n: number): Float64Array {
  const inv = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    inv[j * n + j] = 1 / L[j * n + j];
    for (let i = j + 1; i < n; i++) {
      let s = 0;
      for (let k = j; k < i; k++) s += L[i * n + k] * inv[k * n + j];
      inv[i * n + j] = -s / L[i * n + i];
    }
  }
  return inv;
}

/**
 * Randomized range finder on the wasm GEMM (f32), then the exact factorization of the small
 * projected matrix. Rank r is fixed up front (oversampling p, q power iterations).
 */
export function factorizeRandomized(rt: Runtime, w: Float32Array, N: number, K: number, r: number, p = 8, q = 2, seed = 1): Factors {
  const l = Math.min(r + p, N, K);
  const mark = rt.mark();
  try {
    const W = rt.alloc(N * K * 4), Wt = rt.alloc(N * K * 4);
    rt.f32(W, N * K).set(w);
    const wt = rt.f32(Wt, N * K);
    for (let i = 0; i < N; i++) for (let j = 0; j < K; j++) wt[j * N + i] = w[i * K + j];
    const Om = rt.alloc(l * K * 4), Yt = rt.alloc(l * N * 4), Zt = rt.alloc(l * K * 4);
    const om = rt.f32(Om, l * K);
    let s = seed >>> 0;
    const rnd = (): number => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32; };
    for (let i = 0; i < om.length; i++) om[i] = Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd());
    rt.run('matmul_f32', [Yt, Om, W, 0, l, K, N]);          // Yᵀ = Ωᵀ·Wᵀ: (l, N)
    for (let it = 0; it < q; it++) {
      orthonormalizeRows(rt.f32(Yt, l * N), l, N);
      rt.run('matmul_f32', [Zt, Yt, Wt, 0, l, N, K]);       // Zᵀ = Yᵀ·W: (l, K)
      orthonormalizeRows(rt.f32(Zt, l * K), l, K);
      rt.run('matmul_f32', [Yt, Zt, W, 0, l, K, N]);        // Yᵀ = Zᵀ·Wᵀ
    }
    orthonormalizeRows(rt.f32(Yt, l * N), l, N);            // Qᵀ (l, N)
    rt.run('matmul_f32', [Zt, Yt, Wt, 0, l, N, K]);         // Qᵀ·W: (l, K)
    const qt = Float64Array.from(rt.f32(Yt, l * N)), small = Float64Array.from(rt.f32(Zt, l * K));
    const f = factorize(small, l, K, () => r);              // small ≈ U_r·(U_rᵀ·small)
    const b = new Float32Array(N * r);                      // Q·U_r
    for (let i = 0; i < N; i++) for (let j = 0; j < r; j++) {
      let acc = 0;
      for (let t = 0; t < l; t++) acc += qt[t * N + i] * f.b[t * r + j];
      b[i * r + j] = acc;
    }
    return { a: f.a, b, r, sigma: f.sigma };
  } finally {
    rt.release(mark);
  }
}

/** Modified Gram-Schmidt on the rows of a (rows, n), twice for stability, in f64. */
function orthonormalizeRows(a: Float32Array, rows: number, n: number): void {
  const v = Float64Array.from(a);
  for (let pass = 0; pass < 2; pass++) {
    for (let i = 0; i < rows; i++) {
      const vi = i * n;
      for (let j = 0; j < i; j++) {
        const vj = j * n;
        let d = 0;
        for (let t = 0; t < n; t++) d += v[vi + t] * v[vj + t];
        for (let t = 0; t < n; t++) v[vi + t] -= d * v[vj + t];
      }
      let nn = 0;
      for (let t = 0; t < n; t++) nn += v[vi + t] * v[vi + t];
      const inv = nn > 0 ? 1 / Math.sqrt(nn) : 0;
      for (let t = 0; t < n; t++) v[vi + t] *= inv;
    }
  }
  a.set(v);
}
