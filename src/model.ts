import { StreamlmError } from './errors.js';
import type { HParams } from './models/config.js';
import { familyOf, parseHParams } from './models/registry.js';
import { Transformer } from './models/transformer.js';
import { WeightLoader, type LoadDType, type LowRankMode } from './models/weights.js';
import { openModelDir } from './runtime/modeldir.js';
import { Runtime } from './runtime/runtime.js';
import { KVCache } from './cache/kvcache.js';
import { parsePolicy } from './cache/policy.js';
import { cacheCapacity, Session, type SessionOptions } from './session.js';
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
}

/** A loaded model: weights in wasm memory, its tokenizer, and the shared forward pass. */
export class Model {
  private sessions = 0;

  private constructor(
    readonly dir: string,
    readonly hparams: HParams,
    readonly tokenizer: TextTokenizer | null,
    readonly generationConfig: Record<string, unknown>,
    readonly net: Transformer,
    /** Bytes of weights held in wasm memory. */
    readonly weightBytes: number,
  ) {}

  /** Loads a Hugging Face model directory (config.json, *.safetensors, tokenizer.json). */
  static async load(dir: string, opts: LoadOptions = {}): Promise<Model> {
    const dtype = opts.dtype ?? 'auto';
    if (!['auto', 'f32', 'q8_0'].includes(dtype)) throw new StreamlmError(`dtype must be auto, f32 or q8_0, got '${dtype}'`, { field: 'dtype' });
    const lowrank = opts.lowrank ?? 'auto';
    if (!['auto', 'materialized', 'streaming'].includes(lowrank)) throw new StreamlmError(`lowrank must be auto, materialized or streaming, got '${lowrank}'`, { field: 'lowrank' });
    const md = openModelDir(dir);
    const hp = parseHParams(md.config, md.configFile, md.tensors);
    const family = familyOf(hp);
    const tokenizer = TextTokenizer.load(dir);
    if (tokenizer) checkTokenizerMatches(tokenizer, hp.vocabSize, dir);
    const rt = await Runtime.create({ threads: opts.threads });
    try {
      const wl = new WeightLoader(rt, md, dtype, lowrank);
      const weights = family.load(hp, wl, md.config);
      return new Model(dir, hp, tokenizer, md.generationConfig ?? {}, new Transformer(rt, hp, weights, lowrank), wl.bytes);
    } catch (e) {
      await rt.close();
      throw e;
    }
  }

  get threads(): number { return this.net.rt.threads; }

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
   * A new stream with its own KV cache. Close sessions in reverse order of creation, unless they
   * run on a cache from `allocCache` (`opts.kv`), which may be closed in any order.
   */
  session(opts: SessionOptions = {}): Session {
    if (opts.kv) return new Session(this.net, () => {}, opts);
    const rt = this.net.rt;
    const mark = rt.mark();
    this.sessions++;
    return new Session(this.net, () => { this.sessions--; rt.release(mark); }, opts);
  }

  /**
   * Allocates a KV cache that lives as long as the model, sized for sessions created with `opts`
   * (finite policies only), to pass as `session({ ...opts, kv })`. Call it before opening sessions
   * without `kv`: their memory is released stack-wise and would take this cache with it.
   */
  allocCache(opts: SessionOptions = {}): KVCache {
    if (this.sessions > 0) throw new StreamlmError(`allocate caches before opening sessions without one (${this.sessions} open)`, { field: 'kv' });
    const policy = parsePolicy(opts.cache ?? 'sink:4+1020', opts);
    if (!Number.isFinite(policy.keep)) throw new StreamlmError(`a shared cache needs a finite policy (window:W or sink:S+W), got '${policy.name}'`, { field: 'cache' });
    const chunk = opts.prefillChunk ?? 64;
    if (!Number.isInteger(chunk) || chunk < 1) throw new StreamlmError(`prefillChunk must be a positive integer, got ${opts.prefillChunk}`, { field: 'prefillChunk' });
    const hp = this.hparams;
    return new KVCache(this.net.rt, hp.numLayers, hp.numKvHeads * hp.headDim, cacheCapacity(policy, chunk, hp.maxPositionEmbeddings));
  }

  /** Text to token ids, with the BOS token when the tokenizer config asks for it. */
  encode(text: string): number[] {
    if (!this.tokenizer) throw new StreamlmError('this model directory has no tokenizer.json, so text cannot be encoded', { file: this.dir, field: 'tokenizer.json' });
    return this.tokenizer.encode(text, { addSpecialTokens: true });
  }

  async close(): Promise<void> { await this.net.rt.close(); }
}

/** Loads a Hugging Face model directory. */
export function loadModel(dir: string, opts: LoadOptions = {}): Promise<Model> {
  return Model.load(dir, opts);
}
