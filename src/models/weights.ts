import { StreamlmError } from '../errors.js';
import type { Runtime } from '../runtime/runtime.js';
import type { ModelDir } from '../runtime/modeldir.js';
import { readTensorBytes, type TensorInfo } from '../runtime/safetensors.js';
import { dequantizeQ8_0, repackQ8_0 } from '../runtime/ggml-q8.js';
import { chooseOutputType, chooseType, dequantizeRow, quantizeRow, quantType, rowBytes, widenQ5_0, QUANT_MATMUL, type TypeChoice } from '../runtime/quant/index.js';
import { factorA, factorB, parseLowRank, prefixOf, type LowRankSpec } from './lowrank.js';
import type { ConcatLinear, DenseLinear, Linear, LowRankLinear } from './linear.js';
import type { HParams } from './config.js';

/** What the user asks for: keep the checkpoint's dtype, or convert (q8_0 planar, or a GGML block type). */
export type LoadDType = 'auto' | 'f32' | 'q8_0' | BlockLoadDType;
/** Block types a float checkpoint can be quantized to at load, by our own quantizer (src/runtime/quant). */
export type BlockLoadDType = 'q4_0' | 'q4_K' | 'q5_K' | 'q6_K';
const BLOCK_TARGETS: readonly string[] = ['q4_0', 'q4_K', 'q5_K', 'q6_K'] satisfies BlockLoadDType[];
const isBlockTarget = (t: LoadDType): t is BlockLoadDType => BLOCK_TARGETS.includes(t);

/**
 * How low-rank blocks run (docs/lowrank.md): `materialized` through the GEMMs (x·Aᵀ then ·Bᵀ),
 * `streaming` through the FlashSVD kernels (an error where a block cannot), `auto` streaming for
 * prompt chunks of at least STREAM_MIN_TOKENS tokens where a block can.
 */
export type LowRankMode = 'auto' | 'materialized' | 'streaming';

export interface Norm { w: number; b: number } // (K) f32 each, 0 = absent

/** One block's weights, as a family's loader wires them. */
export interface LayerWeights {
  norm1: Norm;
  norm2: Norm | null;  // null when attention and MLP share norm1 (parallel_shared_norm)
  qkv: Linear;         // (qDim + 2·kvDim, hidden): rows are [q heads; k heads; v heads]
  o: Linear;           // (hidden, qDim)
  up: Linear;          // gated: (2·F, hidden) rows [gate; up]; plain: (F, hidden)
  down: Linear;        // (hidden, F)
  /** Attention window W: a query at position q sees keys at q − W < p ≤ q. Absent or 0: the whole cache. */
  window?: number;
  /** Learned per-head sink logits, f32 (numHeads): an extra exp(s_h) in the softmax denominator (gpt-oss). 0 or absent: none. */
  sinks?: number;
}

/** Everything the forward pass reads. */
export interface ModelWeights {
  embed: Embedding;     // (vocab, hidden)
  layers: LayerWeights[];
  finalNorm: Norm;
  lmHead: Linear;       // (vocab, hidden), may share memory with embed
  alibiSlopes: number;  // (numHeads) f32, 0 unless ALiBi
}


/**
 * An embedding table kept in the checkpoint's dtype, gathered row by row to f32: a float dtype, or
 * `block` with the GGML type id `ggmlType` (gathered by the embed_q kernel, rows as the file stores them).
 */
export type Embedding =
  | {
    dtype: 'f32' | 'f16' | 'bf16'; table: number; rows: number; dim: number;
    /** Packed in place for the tied head's GEMV (r4 for f32, h4 for f16/bf16); gathered by embed_packed. */
    packed?: boolean;
  }
  | { dtype: 'block'; ggmlType: number; table: number; rows: number; dim: number };

/** Rows taken from one checkpoint tensor, optionally reordered (fused QKV layouts differ per family). */
export interface RowSource { name: string; rowMap?: Int32Array }

const DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };
const NATIVE: Record<string, 'f32' | 'f16' | 'bf16'> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };

/** The kernel for a GGML block dtype (as TensorInfo spells it), or null for float dtypes and types without one. */
function blockKernel(dtype: string): { type: ReturnType<typeof quantType>; matmul: NonNullable<(typeof QUANT_MATMUL)[keyof typeof QUANT_MATMUL]>['matmul'] } | null {
  if (dtype in DTYPE_BYTES) return null;
  let type;
  try { type = quantType(dtype); } catch { return null; }
  const k = QUANT_MATMUL[type.name];
  return k ? { type, matmul: k.matmul } : null;
}

/** Reads checkpoint tensors into wasm memory, fusing, reordering, converting and quantizing. */
export class WeightLoader {
  /** Weight bytes resident in wasm memory. */
  bytes = 0;

  /** For a block `target`: the type each quantized linear got (with llama.cpp's fallbacks), for the load summary. */
  readonly choices: { name: string; choice: TypeChoice }[] = [];

  /** The checkpoint's low-rank section, or null for a dense checkpoint. */
  readonly lowrank: LowRankSpec | null;

  constructor(private readonly rt: Runtime, private readonly md: ModelDir, readonly target: LoadDType, private readonly lowrankMode: LowRankMode = 'auto') {
    this.lowrank = parseLowRank(md.config, md.configFile, md.tensors);
  }

  has(name: string): boolean { return this.md.tensors.has(name); }

  info(name: string, shape?: number[]): TensorInfo {
    const t = this.md.tensors.get(name);
    if (!t) throw new StreamlmError(`tensor '${name}' is missing from the checkpoint`, { file: this.md.dir, field: name });
    if (!(t.dtype in DTYPE_BYTES) && !blockKernel(t.dtype)) throw new StreamlmError(`tensor '${t.name}' has dtype ${t.dtype}; F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K and Q6_K weights are supported`, { file: t.file, field: t.name });
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
    const block = t.dtype in DTYPE_BYTES ? null : blockKernel(t.dtype);
    if (block && rowBytes(block.type, dim) * rows === t.byteLength) {
      // Kept in its blocks; embed_q dequantizes the gathered rows, and a tied head runs on the block kernel.
      const table = this.rt.alloc(t.byteLength);
      readTensorBytes(t, this.rt.u8(table, t.byteLength));
      this.bytes += t.byteLength;
      return { dtype: 'block', ggmlType: block.type.id, table, rows, dim };
    }
    if (!(t.dtype in DTYPE_BYTES)) {
      // A type with no kernel: the table is expanded once to f32 (exact: d·q fits an f32).
      const table = this.rt.alloc(rows * dim * 4);
      this.rowsToF32(t, table, rows, dim);
      this.bytes += rows * dim * 4;
      return { dtype: 'f32', table, rows, dim };
    }
    const table = this.rt.alloc(t.byteLength);
    readTensorBytes(t, this.rt.u8(table, t.byteLength));
    this.bytes += t.byteLength;
    return { dtype: NATIVE[t.dtype], table, rows, dim };
  }

  /**
   * One matrix from the row-concatenation of `parts` (each [n_i, K]); `biases` likewise, or null.
   * Fusing Q/K/V and gate/up into one matrix halves the thread dispatches per layer.
   */
  linear(parts: RowSource[], K: number, biases: string[] | null, rowsOf: number[], output = false): Linear {
    if (this.lowrank && parts.some((p) => this.lowrank!.ranks.has(prefixOf(p.name) ?? ''))) return this.lowRankLinear(parts, K, biases, rowsOf);
    let lin = this.matrix(parts, K, rowsOf, this.target, output);
    if (lin.kind === 'concat') lin.parts = lin.parts.map((p) => ({ lin: this.packed(p.lin), nOff: p.nOff }));
    else lin = this.packed(lin);
    if (biases) lin.bias = this.biases(parts, biases, rowsOf);
    if (lin.kind === 'concat') for (const p of lin.parts) p.lin.bias = lin.bias ? lin.bias + p.nOff * 4 : 0;
    return lin;
  }

  /**
   * Whole f32 linears go to 4-row groups for the GEMV, f16/bf16 ones to the h4 twin of that layout.
   * Never low-rank factors (the FlashSVD kernels read rows; they come through matrix()) nor a tied
   * head (the embedding gather reads rows).
   */
  private packed(lin: Linear): Linear {
    if (lin.kind === 'dense' && lin.dtype === 'f32' && this.rt.k.pack_f32r4(lin.w, lin.N, lin.K) === 1) {
      return { kind: 'f32r4', w: lin.w, bias: 0, N: lin.N, K: lin.K };
    } else if (lin.kind === 'dense' && lin.dtype !== 'f32' && this.rt.k.pack_h4(lin.w, lin.N, lin.K) === 1) {
      return { kind: 'h4', dtype: lin.dtype, w: lin.w, bias: 0, N: lin.N, K: lin.K };
    }
    return lin;
  }

  /**
   * The weight matrix alone, in the kind `target` asks for. A block-quantized source (a GGUF
   * Q4_0/Q4_K/... tensor) becomes a `BlockLinear`, rows copied as stored and its kernel taken from
   * the block table in src/runtime/quant/; parts of different types become a `ConcatLinear`.
   */
  private matrix(parts: RowSource[], K: number, rowsOf: number[], target: LoadDType, output = false): Linear {
    const infos = parts.map((p, i) => this.info(p.name, [rowsOf[i], K]));
    const N = rowsOf.reduce((a, b) => a + b, 0);
    if (isBlockTarget(target)) {
      // The same per-tensor rules as `streamlm quantize`: fall back where rows cannot hold the
      // blocks, and the output projection keeps q6_K (chooseOutputType). Fused parts share K.
      const choice = output ? chooseOutputType(target, K) : chooseType(target, K);
      this.choices.push({ name: parts.map((p) => p.name).join('+'), choice });
      const t = choice.type.name;
      if (t === 'q8_0') return this.matrix(parts, K, rowsOf, 'q8_0');
      if (!QUANT_MATMUL[t]) return this.matrix(parts, K, rowsOf, 'f32');
      return this.quantizedMatrix(parts, infos, K, rowsOf, choice.type);
    }
    const same = infos.every((t) => t.dtype === infos[0].dtype);
    if (target === 'auto' && !same) {
      // Fused parts stored in different types (llama.cpp's _M mixes): each part stays in its own
      // type and kernel, instead of one matrix expanded to f32.
      const out: ConcatLinear = { kind: 'concat', parts: [], bias: 0, N, K };
      for (let i = 0, nOff = 0; i < parts.length; nOff += rowsOf[i], i++) out.parts.push({ lin: this.matrix([parts[i]], K, [rowsOf[i]], target), nOff });
      return out;
    }
    let lin: Linear;
    // A file's Q8_0 blocks stay 8-bit (repacked planar) unless f32 is asked for; Q5_0 blocks are
    // widened to the same planar int8 (exact, 36 B per 32 instead of 22; widenQ5_0 in src/runtime/quant/blocks32.ts).
    const fileQ8 = target === 'auto' && same && (infos[0].dtype === 'Q8_0' || infos[0].dtype === 'Q5_0');
    // Other block types stay as the file stores them and run on their own kernel.
    const block = target === 'auto' && same && !fileQ8 ? blockKernel(infos[0].dtype) : null;
    if (block) {
      const rb = rowBytes(block.type, K);
      const w = this.rt.alloc(N * rb);
      for (let i = 0, row = 0; i < parts.length; row += rowsOf[i], i++) this.rowsNative(infos[i], w + row * rb, rowsOf[i], K, parts[i].rowMap);
      this.bytes += N * rb;
      lin = { kind: 'block', type: block.type.name, op: block.matmul, w, bias: 0, N, K };
    } else if ((target === 'q8_0' && K % 32 === 0) || fileQ8) {
      const w = this.rt.alloc(N * K), ws = this.rt.alloc((N * K) / 32 * 4);
      lin = { kind: 'q8_0', w, ws, bias: 0, N, K };
      let row = 0;
      for (let i = 0; i < parts.length; i++) {
        // Quantize in row blocks so the f32 staging buffer stays small.
        const mark = this.rt.mark();
        if (infos[i].dtype === 'Q8_0' || infos[i].dtype === 'Q5_0') {
          this.rowsQ8(infos[i], w + row * K, ws + (row * K) / 32 * 4, rowsOf[i], K, parts[i].rowMap);
        } else {
          const tmp = this.rt.alloc(rowsOf[i] * K * 4);
          this.rowsToF32(infos[i], tmp, rowsOf[i], K, parts[i].rowMap);
          this.rt.k.quantize_q8(w + row * K, ws + (row * K) / 32 * 4, tmp, rowsOf[i], K);
        }
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

  /**
   * Float rows quantized by our own quantizer into `type`'s blocks, part by part through an f32
   * staging buffer (one part at a time, so the peak is one tensor in f32). Load time only. q5_0
   * (where q4_K's narrow rows fall back) is then widened to planar int8, as a file's Q5_0 is (matrix()).
   */
  private quantizedMatrix(parts: RowSource[], infos: TensorInfo[], K: number, rowsOf: number[], type: ReturnType<typeof quantType>): Linear {
    const N = rowsOf.reduce((a, b) => a + b, 0), rb = rowBytes(type, K), widen = type.name === 'q5_0';
    const w = this.rt.alloc(widen ? N * K : N * rb), ws = widen ? this.rt.alloc((N * K) / 32 * 4) : 0;
    for (let i = 0, row = 0; i < parts.length; row += rowsOf[i], i++) {
      const mark = this.rt.mark();
      const tmp = this.rt.alloc(rowsOf[i] * K * 4), blocks = widen ? this.rt.alloc(rowsOf[i] * rb) : w + row * rb;
      this.rowsToF32(infos[i], tmp, rowsOf[i], K, parts[i].rowMap);
      const x = this.rt.f32(tmp, rowsOf[i] * K), out = this.rt.u8(blocks, rowsOf[i] * rb);
      for (let r = 0; r < rowsOf[i]; r++) quantizeRow(type, x.subarray(r * K, (r + 1) * K), out.subarray(r * rb, (r + 1) * rb));
      if (widen) widenQ5_0(out, new Int8Array(out.buffer, w + row * K, rowsOf[i] * K), this.rt.f32(ws + (row * K) / 32 * 4, (rowsOf[i] * K) / 32));
      this.rt.release(mark);
    }
    this.bytes += widen ? N * K + (N * K) / 8 : N * rb;
    return widen ? { kind: 'q8_0', w, ws, bias: 0, N, K } : { kind: 'block', type: type.name, op: QUANT_MATMUL[type.name]!.matmul, w, bias: 0, N, K };
  }

  /** The output projection: its own tensor, or the embedding table reused when tied. */
  lmHead(hp: HParams, embedName: string, headName: string, embed: Embedding): Linear {
    const H = hp.hiddenSize;
    if (!hp.tieWordEmbeddings) return this.linear([{ name: headName }], H, null, [hp.vocabSize], true);
    // A tied head in another dtype than the table needs its own converted copy.
    if (this.target !== 'auto' && this.target !== embed.dtype) return this.linear([{ name: embedName }], H, null, [hp.vocabSize], true);
    if (embed.dtype === 'block') {
      const k = blockKernel(quantType(embed.ggmlType).name)!;
      return { kind: 'block', type: k.type.name, op: k.matmul, w: embed.table, bias: 0, N: hp.vocabSize, K: H };
    }
    const head: DenseLinear = { kind: 'dense', dtype: embed.dtype, w: embed.table, bias: 0, N: hp.vocabSize, K: H };
    // The shared table is packed for the head's GEMV too; the embedding then gathers from the packed rows.
    if (embed.rows !== hp.vocabSize) return head;
    if (embed.dtype === 'f32' ? this.rt.k.pack_f32r4(embed.table, embed.rows, H) === 1 : this.rt.k.pack_h4(embed.table, embed.rows, H) === 1) {
      embed.packed = true;
      return embed.dtype === 'f32' ? { kind: 'f32r4', w: embed.table, bias: 0, N: embed.rows, K: H } : { kind: 'h4', dtype: embed.dtype, w: embed.table, bias: 0, N: embed.rows, K: H };
    }
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

  /** Splits a Q8_0 (or widens a Q5_0) tensor's blocks into planar int8 rows (wq) and f32 scales (ws), reordered by rowMap. */
  private rowsQ8(t: TensorInfo, wq: number, ws: number, rows: number, K: number, rowMap?: Int32Array): void {
    const mark = this.rt.mark();
    const tmp = this.rt.alloc(t.byteLength);
    readTensorBytes(t, this.rt.u8(tmp, t.byteLength));
    const q = new Int8Array(this.rt.u8(wq, rows * K).buffer, wq, rows * K), s = this.rt.f32(ws, (rows * K) / 32);
    (t.dtype === 'Q5_0' ? widenQ5_0 : repackQ8_0)(this.rt.u8(tmp, t.byteLength), q, s);
    this.rt.release(mark);
    if (rowMap) {
      const qc = q.slice(), sc = s.slice(), sb = K / 32;
      for (let r = 0; r < rows; r++) {
        q.set(qc.subarray(rowMap[r] * K, (rowMap[r] + 1) * K), r * K);
        s.set(sc.subarray(rowMap[r] * sb, (rowMap[r] + 1) * sb), r * sb);
      }
    }
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
    } else if (t.dtype === 'Q8_0') {
      const mark = this.rt.mark();
      const tmp = this.rt.alloc(t.byteLength);
      readTensorBytes(t, this.rt.u8(tmp, t.byteLength));
      dequantizeQ8_0(this.rt.u8(tmp, t.byteLength), this.rt.f32(dst, n));
      this.rt.release(mark);
    } else if (!(t.dtype in DTYPE_BYTES)) {
      // Other block types: ggml's dequantization, row by row (load time only, e.g. f32 requested).
      const mark = this.rt.mark();
      const type = quantType(t.dtype), rb = rowBytes(type, K);
      const tmp = this.rt.alloc(t.byteLength);
      readTensorBytes(t, this.rt.u8(tmp, t.byteLength));
      const src = this.rt.u8(tmp, t.byteLength), out = this.rt.f32(dst, n);
      for (let r = 0; r < rows; r++) dequantizeRow(type, src.subarray(r * rb, (r + 1) * rb), K, out.subarray(r * K, (r + 1) * K));
      this.rt.release(mark);
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
