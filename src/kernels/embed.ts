// Row gather from an embedding table [V, K] into f32 out[M, K]; ids: i32[M].
import { h2f1, loadF16x4, loadBf16x4 } from './simd';

export function embed_f32(out: usize, table: usize, ids: usize, M: i32, K: i32): void {
  const row = <usize>K << 2;
  for (let m = 0; m < M; m++) {
    memory.copy(out + <usize>m * row, table + <usize>load<i32>(ids + (<usize>m << 2)) * row, row);
  }
}

export function embed_f16(out: usize, table: usize, ids: usize, M: i32, K: i32): void {
  for (let m = 0; m < M; m++) {
    const src = table + (<usize>load<i32>(ids + (<usize>m << 2)) * K << 1);
    const dst = out + (<usize>m * K << 2);
    let k = 0;
    for (; k + 4 <= K; k += 4) v128.store(dst + (<usize>k << 2), loadF16x4(src + (<usize>k << 1)));
    for (; k < K; k++) store<f32>(dst + (<usize>k << 2), h2f1(<u32>load<u16>(src + (<usize>k << 1))));
  }
}

export function embed_bf16(out: usize, table: usize, ids: usize, M: i32, K: i32): void {
  for (let m = 0; m < M; m++) {
    const src = table + (<usize>load<i32>(ids + (<usize>m << 2)) * K << 1);
    const dst = out + (<usize>m * K << 2);
    let k = 0;
    for (; k + 4 <= K; k += 4) v128.store(dst + (<usize>k << 2), loadBf16x4(src + (<usize>k << 1)));
    for (; k < K; k++) store<u32>(dst + (<usize>k << 2), <u32>load<u16>(src + (<usize>k << 1)) << 16);
  }
}

/**
 * Row gather from a table packed for the GEMV (a tied output head): f32 in the r4 layout
 * (matmul_r4.ts, kind 0) or f16/bf16 in the h4 layout (matmul_h4.ts, kind 1/2). Rows of the groups
 * of 4 below N & ~3 are gathered from their 64-byte blocks; the rows after stay row-major.
 */
export function embed_packed(out: usize, table: usize, ids: usize, M: i32, K: i32, N: i32, kind: i32): void {
  const full = N & ~3;
  for (let m = 0; m < M; m++) {
    const n = load<i32>(ids + (<usize>m << 2));
    const dst = out + (<usize>m * K << 2);
    if (n >= full) {
      const one = ids + (<usize>m << 2);
      if (kind == 0) embed_f32(dst, table, one, 1, K);
      else if (kind == 1) embed_f16(dst, table, one, 1, K);
      else embed_bf16(dst, table, one, 1, K);
      continue;
    }
    const r = <usize>(n & 3) << 4;
    if (kind == 0) {
      const g = table + (<usize>(n >> 2) * K << 4);
      for (let j = 0; j < K; j += 4) v128.store(dst + (<usize>j << 2), v128.load(g + (<usize>j << 4) + r));
    } else {
      const g = table + (<usize>(n >> 2) * K << 3);
      for (let j = 0; j < K; j += 8) {
        const p = g + (<usize>j << 3) + r, d = dst + (<usize>j << 2);
        if (kind == 1) { v128.store(d, loadF16x4(p)); v128.store(d, loadF16x4(p + 8), 16); }
        else { v128.store(d, loadBf16x4(p)); v128.store(d, loadBf16x4(p + 8), 16); }
      }
    }
  }
}
