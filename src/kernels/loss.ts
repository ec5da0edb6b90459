// Per-row negative log-likelihood from logits, for long-stream perplexity. The exp-sum runs in f64
// so a 150k-entry vocabulary loses nothing to f32 accumulation.
import { hmax } from './simd';

export function cross_entropy(nll: usize, logits: usize, targets: usize, M: i32, N: i32): void {
  for (let m = 0; m < M; m++) {
    const row = logits + (<usize>m * N << 2);
    let mv = f32x4.splat(-Infinity);
    let n = 0;
    for (; n + 4 <= N; n += 4) mv = f32x4.max(mv, v128.load(row + (<usize>n << 2)));
    let mx = hmax(mv);
    for (; n < N; n++) mx = max<f32>(mx, load<f32>(row + (<usize>n << 2)));
    let s: f64 = 0;
    for (n = 0; n < N; n++) s += Math.exp(<f64>(load<f32>(row + (<usize>n << 2)) - mx));
    const t = load<i32>(targets + (<usize>m << 2));
    store<f32>(nll + (<usize>m << 2), <f32>(Math.log(s) + <f64>mx - <f64>load<f32>(row + (<usize>t << 2))));
  }
}
