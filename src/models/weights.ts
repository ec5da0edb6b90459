import { StreamlmError } from '../errors.js';
import type { Runtime } from '../runtime/runtime.js';
import type { ModelDir } from '../runtime/modeldir.js';
import { readTensorBytes, type TensorInfo } from '../runtime/safetensors.js';
import { factorA, factorB, parseLowRank, prefixOf, type LowRankSpec } from './lowrank.js';
import type { DenseLinear, Linear, LowRankLinear } from './linear.js';
import type { HParams } from './config.js';

/** What the user asks for: keep the checkpoint's dtype, or convert. */
export type LoadDType = 'auto' | 'f32' | 'q8_0';

/**
 * How low-rank blocks run (docs/lowrank.md): `materialized` through the GEMMs (x·Aᵀ then ·Bᵀ),
 * `streaming` through the FlashSVD kernels (an error where a block cannot), `auto` streaming for
 * prompt chunks of at least STREAM_MIN_TOKENS tokens where a block can.
 */
export type LowRankMode = 'auto' | 'materialized' | 'streaming';

export interface Norm { w: number; b: number } // (K) f32 each, 0 = absent

/** An embedding table kept in the checkpoint's dtype, gathered row by row to f32. */
export interface Embedding { dtype: 'f32' | 'f16' | 'bf16'; table: number; rows: number; dim: number }

/** Rows taken from one checkpoint tensor, optionally reordered (fused QKV layouts differ per family). */
export interface RowSource { name: string; rowMap?: Int32Array }

const DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };
const NATIVE: Record<string, 'f32' | 'f16' | 'bf16'> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };

/** Reads checkpoint tensors into wasm memory, fusing, reordering, converting and quantizing. */
export class WeightLoader {
  /** Weight bytes resident in wasm memory. */
  bytes = 0;

  /** The checkpoint's low-rank section, or null for a dense checkpoint. */
  readonly lowrank: LowRankSpec | null;

  constructor(private readonly rt: Runtime, private readonly md: ModelDir, readonly target: LoadDType, private readonly lowrankMode: LowRankMode = 'auto') {
    this.lowrank = parseLowRank(md.config, md.configFile, md.tensors);
  }

  has(name: string): boolean { return this.md.tensors.has(name); }

  info(name: string, shape?: number[]): TensorInfo {
    const t = this.md.tensors.get(name);
    if (!t) throw new StreamlmError(`tensor '${name}' is missing from the checkpoint`, { file: this.md.dir, field: name });
    if (!(t.dtype in DTYPE_BYTES)) throw new StreamlmError(`tensor '${name}' has dtype ${t.dtype}; only F32, F16 and BF16 weights are supported`, { file: t.file, field: name });
    if (shape && (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])))
      throw new StreamlmError(`tensor '${name}' has shape [${t.shape}] but the config implies [${shape}]`, { file: t.file, field: name });
    return t;
  }

  /** A 1-D f32 vector (norm weights, biases). */
  vector(name: string, len: number): number {
    const ptr = this.rt.alloc(len * 4);
    this.rowsToF32(this.info(name, [len]), ptr, 1, len);
    this.bytes += len * 4;
    return ptr;
  }

  /** A small f32 table computed from the config (e.g. ALiBi slopes). */
  constant(values: Float32Array): number {
    const ptr = this.rt.alloc(values.length * 4);
    this.rt.f32(ptr, values.length).set(values);
    return ptr;
  }

  norm(weight: string, bias: string | null, dim: number): Norm {
    return { w: this.vector(weight, dim), b: bias && this.has(bias) ? this.vector(bias, dim) : 0 };
  }

  embedding(name: string, rows: number, dim: number): Embedding {
    const t = this.info(name, [rows, dim]);
    const table = this.rt.alloc(t.byteLength);
    readTensorBytes(t, this.rt.u8(table, t.byteLength));
    this.bytes += t.byteLength;
    return { dtype: NATIVE[t.dtype], table, rows, dim };
  }

  /**
   * One matrix from the row-concatenation of `parts` (each [n_i, K]); `biases` likewise, or null.
   * Fusing Q/K/V and gate/up into one matrix halves the thread dispatches per layer.
   */
  linear(parts: RowSource[], K: number, biases: string[] | null, rowsOf: number[]): Linear {
    if (this.lowrank && parts.some((p) => this.lowrank!.ranks.has(prefixOf(p.name) ?? ''))) return this.lowRankLinear(parts, K, biases, rowsOf);
    const lin = this.matrix(parts, K, rowsOf, this.target);
    if (biases) lin.bias = this.biases(parts, biases, rowsOf);
    return lin;
  }

  /**
   * The weight matrix alone, in the kind `target` asks for. A block-quantized source (a GGUF
   * Q4_0/Q4_K/... tensor) would become a `BlockLinear` here, rows copied as stored and its kernel
   * taken from the block table in src/runtime/quant/; the forward pass needs no change for it.
   */
  private matrix(parts: RowSource[], K: number, rowsOf: number[], target: LoadDType): Linear {
    const infos = parts.map((p, i) => this.info(p.name, [rowsOf[i], K]));
    const N = rowsOf.reduce((a, b) => a + b, 0);
    const same = infos.every((t) => t.dtype === infos[0].dtype);
    let lin: Linear;
    if (target === 'q8_0' && K % 32 === 0) {
      const w = this.rt.alloc(N * K), ws = this.rt.alloc((N * K) / 32 * 4);
      lin = { kind: 'q8_0', w, ws, bias: 0, N, K };
      let row = 0;
      for (let i = 0; i < parts.length; i++) {
        // Quantize in row blocks so the f32 staging buffer stays small.
        const mark = this.rt.mark();
        const tmp = this.rt.alloc(rowsOf[i] * K * 4);
        this.rowsToF32(infos[i], tmp, rowsOf[i], K, parts[i].rowMap);
        this.rt.k.quantize_q8(w + row * K, ws + (row * K) / 32 * 4, tmp, rowsOf[i], K);
        this.rt.release(mark);
        row += rowsOf[i];
      }
      this.bytes += N * K + (N * K) / 8;
    } else {
      const dtype = target === 'auto' && same ? NATIVE[infos[0].dtype] : 'f32';
      const eb = dtype === 'f32' ? 4 : 2;
      const w = this.rt.alloc(N * K * eb);
      lin = { kind: 'dense', dtype, w, bias: 0, N, K };
      let row = 0;
      for (let i = 0; i < parts.length; i++) {
        const dst = w + row * K * eb;
        if (dtype === 'f32') this.rowsToF32(infos[i], dst, rowsOf[i], K, parts[i].rowMap);
        else this.rowsNative(infos[i], dst, rowsOf[i], K, parts[i].rowMap);
        row += rowsOf[i];
      }
      this.bytes += N * K * eb;
    }
    return lin;
  }

  /** The output projection: its own tensor, or the embedding table reused when tied. */
  lmHead(hp: HParams, embedName: string, headName: string, embed: Embedding): Linear {
    const H = hp.hiddenSize;
    if (!hp.tieWordEmbeddings) return this.linear([{ name: headName }], H, null, [hp.vocabSize]);
    // A tied head in another dtype than the table needs its own converted copy.
    if (this.target !== 'auto' && this.target !== embed.dtype) return this.linear([{ name: embedName }], H, null, [hp.vocabSize]);
    const head: DenseLinear = { kind: 'dense', dtype: embed.dtype, w: embed.table, bias: 0, N: hp.vocabSize, K: H };
    return head;
  }

  /** The fused bias (N) f32 of `parts`, each part's rows reordered like its weight. */
  private biases(parts: RowSource[], biases: string[], rowsOf: number[]): number {
    const N = rowsOf.reduce((a, b) => a + b, 0);
    const ptr = this.rt.alloc(N * 4);
    for (let i = 0, row = 0; i < biases.length; row += rowsOf[i], i++) {
      this.rowsToF32(this.info(biases[i], [rowsOf[i]]), ptr + row * 4, 1, rowsOf[i]);
      const map = parts[i].rowMap;
      if (map) this.permuteF32(ptr + row * 4, map, 1);
    }
    this.bytes += N * 4;
    return ptr;
  }

  /**
   * The factored form of `linear`: one stacked A, one B per part, biases as for a dense linear.
   * Factors stored as f16/bf16 are widened to f32 when `target` is auto (the FlashSVD kernels read f32).
   */
  private lowRankLinear(parts: RowSource[], K: number, biases: string[] | null, rowsOf: number[]): Linear {
    const ranks = this.lowrank!.ranks;
    const prefixes = parts.map((p) => prefixOf(p.name) ?? '');
    const missing = prefixes.find((p) => !ranks.has(p));
    if (missing !== undefined) throw new StreamlmError(`'${missing}' is fused with low-rank linears (${prefixes.join(', ')}) and must be low-rank too`, { file: this.md.configFile, field: `streamlm_lowrank.ranks` });
    const rs = prefixes.map((p) => ranks.get(p)!);
    // The FlashSVD kernels read f32 factors: widen f16/bf16 ones unless only the GEMMs will run them.
    const t = this.target === 'auto' && this.lowrankMode !== 'materialized' ? 'f32' : this.target;
    const factor = (src: RowSource[], k: number, rows: number[]): Linear => this.matrix(src, k, rows, t);
    const a = factor(prefixes.map((p) => ({ name: factorA(p) })), K, rs);
    const N = rowsOf.reduce((x, y) => x + y, 0);
    const lin: LowRankLinear = { kind: 'lowrank', a, parts: [], R: a.N, bias: 0, N, K };
    if (biases) lin.bias = this.biases(parts, biases, rowsOf);
    let pOff = 0, nOff = 0;
    for (let i = 0; i < parts.length; i++) {
      lin.parts.push({ b: factor([{ name: factorB(prefixes[i]), rowMap: parts[i].rowMap }], rs[i], [rowsOf[i]]), r: rs[i], pOff, nOff });
      pOff += rs[i];
      nOff += rowsOf[i];
    }
    return lin;
  }

  /** Copies a tensor's rows in its own dtype, reordered by rowMap (dst row r = src row rowMap[r]). */
  private rowsNative(t: TensorInfo, dst: number, rows: number, K: number, rowMap?: Int32Array): void {
    if (!rowMap) { readTensorBytes(t, this.rt.u8(dst, t.byteLength)); return; }
    const mark = this.rt.mark();
    const tmp = this.rt.alloc(t.byteLength);
    readTensorBytes(t, this.rt.u8(tmp, t.byteLength));
    const rb = t.byteLength / rows;
    const src = this.rt.u8(tmp, t.byteLength);
    const out = this.rt.u8(dst, t.byteLength);
    for (let r = 0; r < rows; r++) out.set(src.subarray(rowMap[r] * rb, (rowMap[r] + 1) * rb), r * rb);
    this.rt.release(mark);
  }

  /** Reads `rows × K` values of any float dtype into f32 at dst, reordered by rowMap. */
  private rowsToF32(t: TensorInfo, dst: number, rows: number, K: number, rowMap?: Int32Array): void {
    const n = rows * K;
    if (t.dtype === 'F32') {
      readTensorBytes(t, this.rt.u8(dst, n * 4));
    } else {
      const mark = this.rt.mark();
      const tmp = this.rt.alloc(t.byteLength);
      readTensorBytes(t, this.rt.u8(tmp, t.byteLength));
      // The embed kernels gather rows to f32; gathering rows 0..n/K-1 in order is a plain conversion.
      const chunk = 4096;
      const ids = this.rt.alloc(chunk * 4);
      const rowLen = K;
      const total = n / rowLen;
      for (let r0 = 0; r0 < total; r0 += chunk) {
        const m = Math.min(chunk, total - r0);
        const idv = this.rt.i32(ids, m);
        for (let i = 0; i < m; i++) idv[i] = r0 + i;
        const conv = t.dtype === 'F16' ? this.rt.k.embed_f16 : this.rt.k.embed_bf16;
        conv(dst + r0 * rowLen * 4, tmp, ids, m, rowLen);
      }
      this.rt.release(mark);
    }
    if (rowMap) this.permuteF32(dst, rowMap, K);
  }

  private permuteF32(ptr: number, rowMap: Int32Array, K: number): void {
    const rows = rowMap.length;
    const v = this.rt.f32(ptr, rows * K);
    const copy = v.slice();
    for (let r = 0; r < rows; r++) v.set(copy.subarray(rowMap[r] * K, (rowMap[r] + 1) * K), r * K);
  }
}
