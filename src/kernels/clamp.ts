// clamp(x, n, lo, hi): MPT's clip_qkv bounds the fused QKV activations before attention.
export function clamp(x: usize, n: i32, lo: f32, hi: f32): void {
  const vlo = f32x4.splat(lo), vhi = f32x4.splat(hi);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const p = x + (<usize>i << 2);
    v128.store(p, f32x4.max(vlo, f32x4.min(vhi, v128.load(p))));
  }
  for (; i < n; i++) {
    const p = x + (<usize>i << 2);
    store<f32>(p, max(lo, min(hi, load<f32>(p))));
  }
}
