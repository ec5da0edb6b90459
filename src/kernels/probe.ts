// A parallel op with a visible side effect per element, so tests can prove that the pool runs
// every chunk of a dispatch exactly once: each call adds 1 to its share of counts[0..n).
// `work` only tells the pool how finely to cut (see parallelWork in src/runtime/kernels.ts).

export function pool_probe(counts: usize, n: i32, work: i32, tid: i32, nth: i32): void {
  const i0 = <i32>(<i64>n * tid / nth);
  const i1 = <i32>(<i64>n * (tid + 1) / nth);
  for (let i = i0; i < i1; i++) {
    const p = counts + (<usize>i << 2);
    store<i32>(p, load<i32>(p) + 1);
  }
}
