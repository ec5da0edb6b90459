// Rotary embedding, rotate_half convention (HF Llama/NeoX): pairs (i, i + rotDim/2) of each head.

export function rope(x: usize, rowStride: i32, cos: usize, sin: usize, M: i32, nHeads: i32, headDim: i32, rotDim: i32): void {
  const half = rotDim >> 1;
  const hb = <usize>half << 2;
  for (let m = 0; m < M; m++) {
    const c = cos + <usize>m * hb, s = sin + <usize>m * hb;
    for (let h = 0; h < nHeads; h++) {
      const p = x + ((<usize>m * rowStride + <usize>h * headDim) << 2);
      let i = 0;
      for (; i + 4 <= half; i += 4) {
        const o = <usize>i << 2;
        const x1 = v128.load(p + o), x2 = v128.load(p + hb + o);
        const cv = v128.load(c + o), sv = v128.load(s + o);
        v128.store(p + o, f32x4.sub(f32x4.mul(x1, cv), f32x4.mul(x2, sv)));
        v128.store(p + hb + o, f32x4.add(f32x4.mul(x2, cv), f32x4.mul(x1, sv)));
      }
      for (; i < half; i++) {
        const o = <usize>i << 2;
        const x1 = load<f32>(p + o), x2 = load<f32>(p + hb + o);
        const cv = load<f32>(c + o), sv = load<f32>(s + o);
        store<f32>(p + o, x1 * cv - x2 * sv);
        store<f32>(p + hb + o, x2 * cv + x1 * sv);
      }
    }
  }
}
