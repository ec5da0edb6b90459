/**
 * Row map from a family's fused QKV layout to ours, [q heads; k heads; v heads].
 * `qkvStart(h)` gives, for query head h, the source rows where its q, k and v start; k and v are
 * taken from the heads that own them (every head for MHA; the group's for GQA/MQA).
 */
export function qkvRowMap(nHeads: number, headDim: number, qkvStart: (h: number) => [number, number, number], nKv = nHeads, kvOwner: (j: number) => number = (j) => j): Int32Array {
  const map = new Int32Array((nHeads + 2 * nKv) * headDim);
  for (let h = 0; h < nHeads; h++)
    for (let d = 0; d < headDim; d++) map[h * headDim + d] = qkvStart(h)[0] + d;
  for (let j = 0; j < nKv; j++) {
    const [, k, v] = qkvStart(kvOwner(j));
    for (let d = 0; d < headDim; d++) {
      map[(nHeads + j) * headDim + d] = k + d;
      map[(nHeads + nKv + j) * headDim + d] = v + d;
    }
  }
  return map;
}
