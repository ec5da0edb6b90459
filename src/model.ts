import { StreamlmError } from './errors.js';
import type { HParams } from './models/config.js';
import { familyOf, parseHParams } from './models/registry.js';
import { Transformer } from './models/transformer.js';
import { MctpHeads } from './models/mctp.js';
import { WeightLoader, type LoadDType, type LowRankMode } from './models/weights.js';
import type { FileSet, Platform } from './platform/types.js';
import { openModelDir, type ModelDir } from './runtime/modeldir.js';
import type { TensorInfo } from './runtime/safetensors.js';
import { ggufFileIn, isGgufPath, openGgufModel } from './runtime/gguf-source.js';
import { ggufTokenizerSpec } from './tokenizer-gguf.js';
import { Runtime } from './runtime/runtime.js';
import { checkCacheFits, type BudgetNames } from './cache/budget.js';
import { KVCache } from './cache/kvcache.js';
import { parsePolicy } from './cache/policy.js';
import { decodeSnapshot } from './cache/snapshot.js';
import { DEFAULT_CACHE, loadDTypeOf, prefillChunkOf } from './defaults.js';
import { fallbackSummary } from './runtime/quant/index.js';
import { modelFingerprint } from './fingerprint.js';
import { Session, type SessionOptions } from './session.js';
import { checkTokenizerMatches, TextTokenizer } from './tokenizer.js';

export interface LoadOptions {
  /** Worker threads including the main one (default: all cores). */
  threads?: number;
  /** Keep the checkpoint's weight dtype (`auto`, default), or convert to `f32` or `q8_0`. */
  dtype?: LoadDType;
  /**
   * How low-rank (compressed) blocks run: `auto` (default) streams prompt chunks of 16+ tokens
   * through the FlashSVD kernels where a block allows it, `materialized` always uses the GEMMs,
   * `streaming` always streams (an error for a block that cannot). No effect on dense models.
   */
  lowrank?: LowRankMode;
  /** Where workers and kernels come from (browsers: set by the streamlm/browser entry). */
  platform?: Platform;
  /** The compiled kernels, when the platform's default location does not hold them. */
  wasm?: BufferSource | WebAssembly.Module;
  /** Which kernels build: `auto` (default: relaxed SIMD where the engine has it), `baseline` or `relaxed` (RuntimeOptions.simd). */
  simd?: 'auto' | 'baseline' | 'relaxed';
}

/** A loaded model: weights in wasm memory, its tokenizer, and the shared forward pass. */
export class Model {
  private sessions = 0;
  private fp: string | null = null;
  /** The checkpoint's tensors (safetensors or GGUF), where the fingerprint samples bytes. */
  private tensors: ReadonlyMap<string, TensorInfo> = new Map();
  /** One line saying what a block `dtype` quantized to (and which tensors fell back), or null. */
  quantSummary: string | null = null;

  private constructor(
    readonly dir: string,
    readonly hparams: HParams,
    readonly tokenizer: TextTokenizer | null,
    readonly generationConfig: Record<string, unknown>,
    readonly net: Transformer,
    /** Bytes of weights held in wasm memory. */
    readonly weightBytes: number,
    /** MCTP draft heads from mctp.safetensors beside the model, or null (see src/models/mctp.ts). */
    readonly mctp: MctpHeads | null = null,
  ) {}

  /**
   * Loads a Hugging Face model directory (config.json, *.safetensors, tokenizer.json) as a path or a
   * FileSet, or a .gguf file by path or as the one file of a FileSet without config.json.
   */
  static async load(source: string | FileSet, opts: LoadOptions = {}): Promise<Model> {
    const dtype = loadDTypeOf(opts.dtype);
    const lowrank = opts.lowrank ?? 'auto';
    if (!['auto', 'materialized', 'streaming'].includes(lowrank)) throw new StreamlmError(`lowrank must be auto, materialized or streaming, got '${lowrank}'`, { field: 'lowrank' });
    const ggufName = typeof source === 'string' ? null : ggufFileIn(source);
    const dir = typeof source === 'string' ? source : ggufName ? source.path(ggufName) : source.label;
    const gguf = typeof source === 'string'
      ? (isGgufPath(source) ? openGgufModel(source) : null)
      : (ggufName ? openGgufModel(source.path(ggufName), { files: source, name: ggufName }) : null);
    const md: ModelDir = gguf ?? openModelDir(source);
    const hp = parseHParams(md.config, md.configFile, md.tensors);
    const family = familyOf(hp);
    const tokenizer = gguf ? ggufTokenizer(gguf) : TextTokenizer.load(md.files);
    if (tokenizer) checkTokenizerMatches(tokenizer, hp.vocabSize, md.files);
    const rt = await Runtime.create({ threads: opts.threads, platform: opts.platform, wasm: opts.wasm, simd: opts.simd });
    try {
      const wl = new WeightLoader(rt, md, dtype, lowrank);
      const weights = family.load(hp, wl, md.config);
      const net = new Transformer(rt, hp, weights, lowrank);
      const mctp = gguf ? null : MctpHeads.load(rt, net, md);
      const model = new Model(dir, hp, tokenizer, md.generationConfig ?? {}, net, wl.bytes, mctp);
      model.tensors = md.tensors;
      if (wl.choices.length && dtype !== 'auto') model.quantSummary = `quantized at load: ${fallbackSummary(dtype, wl.choices)}`;
      return model;
    } catch (e) {
      await rt.close();
      throw e;
    }
  }

  get threads(): number { return this.net.rt.threads; }

  /** The kernels build running: 'relaxed' (relaxed SIMD) or 'baseline' (SIMD128); null with a caller's own `wasm`. */
  get simd(): 'baseline' | 'relaxed' | null { return this.net.rt.simd; }

  /** Tokens that end generation: generation_config.json's eos_token_id, else config.json's. */
  get eosTokenIds(): number[] {
    const g = this.generationConfig.eos_token_id;
    const ids = new Set<number>(this.hparams.eosTokenIds);
    if (typeof g === 'number') ids.add(g);
    if (Array.isArray(g)) for (const x of g) if (typeof x === 'number') ids.add(x);
    for (const x of this.tokenizer?.eosTokenIds ?? []) ids.add(x);
    return [...ids];
  }

  /**
   * Identifies the computation a snapshot's K/V came from, so a snapshot is never restored into
   * another model. A 64-bit hash (two 32-bit ones) over the parsed hparams, the bytes of weights in
   * wasm memory (so a q8_0 or f32 load differs from the checkpoint's dtype), and every checkpoint
   * tensor's name, dtype and shape plus 96 of its bytes (start, middle, end). Computed once, on
   * first use: it reads only safetensors headers and a few bytes per tensor.
   */
  get fingerprint(): string {
    this.fp ??= modelFingerprint(this.tensors, this.hparams, this.weightBytes);
    return this.fp;
  }

  /**
   * A new stream with its own KV cache. Close sessions in reverse order of creation, unless they
   * run on a cache from `allocCache` (`opts.kv`), which may be closed in any order.
   */
  session(opts: SessionOptions = {}): Session {
    const fingerprint = (): string => this.fingerprint;
    const mctp = this.mctp;
    if (opts.kv) return new Session({ net: this.net, release: () => {}, fingerprint, mctp }, opts);
    const rt = this.net.rt;
    const mark = rt.mark();
    this.sessions++;
    try {
      return new Session({ net: this.net, release: () => { this.sessions--; rt.release(mark); }, fingerprint, mctp }, opts);
    } catch (e) {
      this.sessions--;
      rt.release(mark);
      throw e;
    }
  }

  /**
   * Brings back a session from `Session.snapshot()`, bit-identically: the next tokens equal those
   * the original session would have given. Refuses (StreamlmError) a snapshot of another model, of
   * another format version, or a corrupt or truncated one. `opts.kv` restores into a cache from
   * `allocCache` (it must have at least the snapshot's slots).
   */
  restoreSession(bytes: Uint8Array, opts: { kv?: KVCache; draftHeads?: boolean } = {}): Session {
    const snap = decodeSnapshot(bytes);
    const h = snap.header;
    if (h.model !== this.fingerprint) throw new StreamlmError(`the snapshot was taken with another model (fingerprint ${String(h.model)}, this model's is ${this.fingerprint})`, { field: 'snapshot' });
    const hp = this.hparams;
    if (h.numLayers !== hp.numLayers || h.kvDim !== hp.numKvHeads * hp.headDim) throw new StreamlmError('not a usable session snapshot: its cache shape does not match the model', { field: 'snapshot' });
    if (!Number.isInteger(h.capacity) || h.capacity < 1) throw new StreamlmError('not a usable session snapshot: bad capacity', { field: 'snapshot' });
    const s = this.session({ cache: h.policy, evictChunk: h.evictChunk, prefillChunk: h.prefillChunk, maxTokens: h.capacity, kv: opts.kv, draftHeads: opts.draftHeads });
    try {
      if (!opts.kv && s.cache.capacity !== h.capacity) throw new StreamlmError(`not a usable session snapshot: ${h.policy} has ${s.cache.capacity} slots here, ${h.capacity} in the snapshot`, { field: 'snapshot' });
      s.restore(snap);
    } catch (e) {
      s.close();
      throw e;
    }
    return s;
  }

  /**
   * Throws a StreamlmError naming the option (or the CLI flag in `names`) and the largest value that
   * fits, unless `count` caches for sessions with `opts` fit in wasm memory beside the weights and
   * one forward's activations. Sessions and allocCache check this themselves; the CLI and the server
   * call it first to blame their own flags.
   */
  checkCacheFits(opts: SessionOptions = {}, count = 1, names: BudgetNames = {}): void {
    const policy = parsePolicy(opts.cache ?? DEFAULT_CACHE, opts);
    const prefillChunk = prefillChunkOf(opts.prefillChunk);
    const hp = this.hparams;
    const capacity = policy.capacity(prefillChunk, opts.maxTokens ?? hp.maxPositionEmbeddings);
    checkCacheFits({ hp, policy, prefillChunk, capacity, count, allocated: this.net.rt.bytesAllocated, threads: this.threads }, names);
  }

  /**
   * Allocates a KV cache that lives as long as the model, sized for sessions created with `opts`
   * (bounded policies only), to pass as `session({ ...opts, kv })`. Call it before opening sessions
   * without `kv`: their memory is released stack-wise and would take this cache with it.
   */
  allocCache(opts: SessionOptions = {}): KVCache {
    if (this.sessions > 0) throw new StreamlmError(`allocate caches before opening sessions without one (${this.sessions} open)`, { field: 'kv' });
    const policy = parsePolicy(opts.cache ?? DEFAULT_CACHE, opts);
    if (!policy.bounded) throw new StreamlmError(`a shared cache needs a bounded policy (window:W, sink:S+W or recompute:W), got '${policy.name}'`, { field: 'cache' });
    const chunk = prefillChunkOf(opts.prefillChunk);
    const hp = this.hparams;
    const capacity = policy.capacity(chunk, hp.maxPositionEmbeddings);
    this.checkCacheFits(opts);
    return new KVCache(this.net.rt, hp.numLayers, hp.numKvHeads * hp.headDim, capacity);
  }

  /** Text to token ids, with the BOS token when the tokenizer config asks for it. */
  encode(text: string): number[] {
    if (!this.tokenizer) throw new StreamlmError('this model directory has no tokenizer.json, so text cannot be encoded', { file: this.dir, field: 'tokenizer.json' });
    return this.tokenizer.encode(text, { addSpecialTokens: true });
  }

  async close(): Promise<void> { await this.net.rt.close(); }
}

/** The tokenizer stored in a GGUF file's metadata, or null when it has none. */
function ggufTokenizer(md: ReturnType<typeof openGgufModel>): TextTokenizer | null {
  const spec = ggufTokenizerSpec(md.gguf);
  return spec && TextTokenizer.fromObjects(spec.json, spec.config, (spec.config.chat_template as string | null) ?? null, md.dir);
}

/** Loads a Hugging Face model directory or a .gguf file. */
export function loadModel(dir: string | FileSet, opts: LoadOptions = {}): Promise<Model> {
  return Model.load(dir, opts);
}
