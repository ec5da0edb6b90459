import { StreamlmError } from '../errors.js';
import { parsePartialRotaryFactor, parseRope, type RopeConfig, type RopeType } from './rope.js';

export type { RopeConfig, RopeType };

// Shared pieces of config.json parsing. Each family's parser lives in its file (families/*.ts) and
// registry.ts picks it by `architectures`.

/**
 * One normalized set of hyperparameters for every family, parsed from an HF config.json (4.x or 5.x).
 * Defaults are transformers 5.17's. Anything we do not implement is an error naming the key,
 * never a silently different model.
 */
export interface HParams {
  /** architectures[0] (mosaicml's MPTForCausalLM becomes MptForCausalLM) */
  architecture: string;
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Trained context (MPT: max_seq_len). */
  maxPositionEmbeddings: number;
  norm: 'rms' | 'layer';
  normEps: number;
  normBias: boolean;
  act: 'silu' | 'gelu' | 'gelu_tanh';
  gatedMlp: boolean;
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
  /**
   * sequential: x += attn(norm1 x); x += mlp(norm2 x).
   * parallel: x += attn(norm1 x) + mlp(norm2 x).
   * parallel_shared_norm: h = norm1 x; x += attn(h) + mlp(h)  (Falcon-7B style).
   */
  residual: 'sequential' | 'parallel' | 'parallel_shared_norm';
  /**
   * ALiBi slopes are those of MPT/BLOOM with `biasMax` (8 for Falcon). Falcon adds its bias before
   * the 1/sqrt(headDim) scaling, so its effective slopes are the standard ones / sqrt(headDim).
   */
  position: { kind: 'rope'; rope: RopeConfig; rotaryDim: number } | { kind: 'alibi'; biasMax: number };
  /** MPT: q, k and v are clamped to [-clipQkv, clipQkv] after the fused projection. */
  clipQkv: number | null;
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
  padTokenId: number | null;
  /**
   * Mistral's trained attention window W, or null when the model attends to its whole context. The
   * family gives it to every layer (LayerWeights.window): a query at cache position q sees keys at
   * q − W < p ≤ q, as transformers masks them.
   */
  slidingWindow: number | null;
}

export type Obj = Record<string, unknown>;

/** Typed field access on one config object, with errors naming the file and the key. */
export class Fields {
  constructor(readonly o: Obj, readonly file: string, readonly prefix = '') {}

  private where(key: string): { file: string; field: string } {
    return { file: this.file, field: this.prefix + key };
  }

  has(key: string): boolean {
    return this.o[key] !== undefined && this.o[key] !== null;
  }

  num(key: string, dflt?: number): number {
    const v = this.o[key];
    if (v === undefined || v === null) {
      if (dflt === undefined) throw new StreamlmError('missing required number', this.where(key));
      return dflt;
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new StreamlmError(`expected a number, got ${JSON.stringify(v)}`, this.where(key));
    return v;
  }

  /** A positive integer (sizes, counts). */
  int(key: string, dflt?: number): number {
    const v = this.num(key, dflt);
    if (!Number.isSafeInteger(v) || v <= 0) throw new StreamlmError(`expected a positive integer, got ${v}`, this.where(key));
    return v;
  }

  bool(key: string, dflt: boolean): boolean {
    const v = this.o[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') throw new StreamlmError(`expected true or false, got ${JSON.stringify(v)}`, this.where(key));
    return v;
  }

  str(key: string, dflt: string): string {
    const v = this.o[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'string') throw new StreamlmError(`expected a string, got ${JSON.stringify(v)}`, this.where(key));
    return v;
  }

  tokenId(key: string, dflt: number | null): number | null {
    const v = this.o[key];
    if (v === undefined) return dflt;
    if (v === null) return null;
    if (!Number.isSafeInteger(v) || (v as number) < 0) throw new StreamlmError(`expected a token id, got ${JSON.stringify(v)}`, this.where(key));
    return v as number;
  }

  /** eos_token_id: an id or a list of ids. */
  tokenIds(key: string, dflt: number | null): number[] {
    const v = this.o[key] === undefined ? dflt : this.o[key];
    if (v === null) return [];
    const list = Array.isArray(v) ? v : [v];
    if (!list.every((x) => Number.isSafeInteger(x) && x >= 0)) {
      throw new StreamlmError(`expected a token id or a list of them, got ${JSON.stringify(v)}`, this.where(key));
    }
    return [...new Set(list as number[])];
  }

  /** Errors unless the key is absent or equal to one of `ok`. */
  only(key: string, ok: unknown[], why: string): void {
    if (!this.has(key)) return;
    if (!ok.includes(this.o[key])) throw new StreamlmError(`${JSON.stringify(this.o[key])} is not supported: ${why}`, this.where(key));
  }

  unsupported(key: string, why: string): never {
    throw new StreamlmError(`${JSON.stringify(this.o[key])} is not supported: ${why}`, this.where(key));
  }
}

const ACTS: Record<string, HParams['act']> = {
  silu: 'silu',
  swish: 'silu',
  gelu: 'gelu',
  gelu_new: 'gelu_tanh',
  gelu_fast: 'gelu_tanh',
  gelu_pytorch_tanh: 'gelu_tanh',
};

export function activation(f: Fields, key: string, dflt: string): HParams['act'] {
  const name = f.str(key, dflt);
  const act = ACTS[name];
  if (!act) f.unsupported(key, `supported activations: ${Object.keys(ACTS).join(', ')}`);
  return act;
}

export type Common = Pick<HParams, 'architecture' | 'modelType' | 'bosTokenId' | 'eosTokenIds' | 'padTokenId'>;

export function common(f: Fields, architecture: string, bos: number | null, eos: number | null): Common {
  return {
    architecture,
    modelType: f.str('model_type', ''),
    bosTokenId: f.tokenId('bos_token_id', bos),
    eosTokenIds: f.tokenIds('eos_token_id', eos),
    padTokenId: f.tokenId('pad_token_id', null),
  };
}

export function rope(f: Fields, headDim: number, maxPos: number, defaultTheta: number, defaultPartial: number): HParams['position'] {
  const r = parseRope(f.o, f.file, defaultTheta, maxPos);
  const rotaryDim = Math.floor(headDim * parsePartialRotaryFactor(f.o, f.file, defaultPartial));
  if (rotaryDim < 2 || rotaryDim % 2 !== 0) {
    throw new StreamlmError(`gives ${rotaryDim} rotary dims of ${headDim}; an even number >= 2 is needed`, { file: f.file, field: 'partial_rotary_factor' });
  }
  return { kind: 'rope', rope: r, rotaryDim };
}

export function heads(f: Fields, hidden: number, numHeads: number, headDimKey: string | null): number {
  if (headDimKey && f.has(headDimKey)) return f.int(headDimKey);
  if (hidden % numHeads !== 0) {
    throw new StreamlmError(`hidden size ${hidden} is not divisible by ${numHeads} heads`, { file: f.file, field: 'num_attention_heads' });
  }
  return hidden / numHeads;
}

export function kvHeads(f: Fields, key: string, numHeads: number): number {
  const kv = f.int(key, numHeads);
  if (numHeads % kv !== 0) throw new StreamlmError(`${numHeads} attention heads are not a multiple of ${kv} kv heads`, { file: f.file, field: key });
  return kv;
}

