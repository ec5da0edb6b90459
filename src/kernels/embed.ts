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
