import { StreamlmError } from '../errors.js';

/**
 * Rotary position embedding parameters, read from either config.json form:
 *  - transformers 4.x: top-level `rope_theta` plus `rope_scaling: {type | rope_type, factor, ...}`;
 *  - transformers 5.x: `rope_parameters: {rope_type, rope_theta, factor, ...}`.
 * Frequencies follow transformers' modeling_rope_utils.py (5.17).
 */

export type RopeType = 'default' | 'linear' | 'dynamic' | 'llama3' | 'yarn';

export interface RopeConfig {
  type: RopeType;
  theta: number;
  /** 1 for 'default'. */
  factor: number;
  /** The trained context the scaling is relative to. For 'dynamic' this is max_position_embeddings, as in transformers. */
  originalMaxPositionEmbeddings: number;
  lowFreqFactor?: number;
  highFreqFactor?: number;
  betaFast?: number;
  betaSlow?: number;
  /** Explicit yarn attention factor; when absent it is derived from factor, mscale and mscaleAllDim. */
  attentionFactor?: number;
  mscale?: number;
  mscaleAllDim?: number;
  truncate?: boolean;
}

const TYPES: readonly RopeType[] = ['default', 'linear', 'dynamic', 'llama3', 'yarn'];

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Where the rope fields of `config` live, and under which key (for messages). */
function ropeSource(config: Obj, file: string): { params: Obj; key: string } {
  // transformers gives rope_scaling priority over rope_parameters when both are present.
  for (const key of ['rope_scaling', 'rope_parameters']) {
    const v = config[key];
    if (v === undefined || v === null) continue;
    if (!isObj(v)) throw new StreamlmError(`expected an object, got ${JSON.stringify(v)}`, { file, field: key });
    const nested = Object.keys(v).filter((k) => isObj(v[k]));
    if (nested.length === 0) return { params: v, key };
    // 5.x nests one dict per attention type; a lone full_attention entry is the flat form in disguise.
    if (nested.length === 1 && nested[0] === 'full_attention' && Object.keys(v).length === 1) {
      return { params: v.full_attention as Obj, key: `${key}.full_attention` };
    }
    throw new StreamlmError(`per-attention-type RoPE parameters (${nested.join(', ')}) are not supported`, { file, field: key });
  }
  return { params: {}, key: 'rope_parameters' };
}

function num(o: Obj, name: string, file: string, key: string): number | undefined {
  const v = o[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new StreamlmError(`expected a number, got ${JSON.stringify(v)}`, { file, field: `${key}.${name}` });
  }
  return v;
}

function positive(v: number | undefined, name: string, file: string, key: string): number | undefined {
  if (v !== undefined && !(v > 0)) throw new StreamlmError(`must be > 0, got ${v}`, { file, field: `${key}.${name}` });
  return v;
}

function required(o: Obj, name: string, file: string, key: string, type: string): number {
  const v = positive(num(o, name, file, key), name, file, key);
  if (v === undefined) throw new StreamlmError(`missing; rope type '${type}' needs it`, { file, field: `${key}.${name}` });
  return v;
}

/**
 * Parses the RoPE settings of an HF config. `defaultTheta` applies when neither form gives a theta
 * (families name it differently, e.g. GPT-NeoX's rotary_emb_base); `defaultMaxPositionEmbeddings`
 * is the family's default for an absent max_position_embeddings.
 */
export function parseRope(config: Record<string, unknown>, file: string, defaultTheta: number, defaultMaxPositionEmbeddings?: number): RopeConfig {
  const { params, key } = ropeSource(config, file);
  const rawType = params.rope_type ?? params.type ?? 'default';
  if (typeof rawType !== 'string' || !(TYPES as readonly string[]).includes(rawType)) {
    const field = `${key}.${params.rope_type !== undefined ? 'rope_type' : 'type'}`;
    throw new StreamlmError(`RoPE type ${JSON.stringify(rawType)} is not supported (supported: ${TYPES.join(', ')})`, { file, field });
  }
  const type = rawType as RopeType;
  const theta =
    positive(num(params, 'rope_theta', file, key), 'rope_theta', file, key) ??
    positive(num(config, 'rope_theta', file, 'config'), 'rope_theta', file, 'config') ??
    defaultTheta;
  const maxPos = num(config, 'max_position_embeddings', file, 'config') ?? defaultMaxPositionEmbeddings;
  const topOrig = num(config, 'original_max_position_embeddings', file, 'config');

  const rope: RopeConfig = { type, theta, factor: 1, originalMaxPositionEmbeddings: maxPos ?? 0 };
  if (type === 'linear' || type === 'dynamic' || type === 'llama3') rope.factor = required(params, 'factor', file, key, type);
  if (type === 'llama3' || type === 'yarn') {
    // transformers 5.x: a top-level original_max_position_embeddings wins (Phi-3 style), then the rope dict, then max_position_embeddings.
    const orig = topOrig ?? num(params, 'original_max_position_embeddings', file, key) ?? maxPos;
    if (orig === undefined || !(orig > 0)) {
      throw new StreamlmError(`missing; rope type '${type}' needs it (or max_position_embeddings)`, { file, field: `${key}.original_max_position_embeddings` });
    }
    rope.originalMaxPositionEmbeddings = orig;
  }
  if (type === 'llama3') {
    rope.lowFreqFactor = required(params, 'low_freq_factor', file, key, type);
    rope.highFreqFactor = required(params, 'high_freq_factor', file, key, type);
    if (rope.highFreqFactor <= rope.lowFreqFactor) {
      throw new StreamlmError(`must exceed low_freq_factor (${rope.lowFreqFactor})`, { file, field: `${key}.high_freq_factor` });
    }
  }
  if (type === 'yarn') {
    const factor = positive(num(params, 'factor', file, key), 'factor', file, key);
    if (factor === undefined && maxPos === undefined) {
      throw new StreamlmError("missing; rope type 'yarn' needs it (or max_position_embeddings)", { file, field: `${key}.factor` });
    }
    rope.factor = factor ?? maxPos! / rope.originalMaxPositionEmbeddings;
    // transformers treats 0 like absent here (`or 32`).
    rope.betaFast = num(params, 'beta_fast', file, key) || 32;
    rope.betaSlow = num(params, 'beta_slow', file, key) || 1;
    const af = positive(num(params, 'attention_factor', file, key), 'attention_factor', file, key);
    if (af !== undefined) rope.attentionFactor = af;
    const ms = num(params, 'mscale', file, key);
    if (ms !== undefined) rope.mscale = ms;
    const msa = num(params, 'mscale_all_dim', file, key);
    if (msa !== undefined) rope.mscaleAllDim = msa;
    const tr = params.truncate ?? true;
    if (typeof tr !== 'boolean') throw new StreamlmError(`expected true or false, got ${JSON.stringify(tr)}`, { file, field: `${key}.truncate` });
    rope.truncate = tr;
  }
  if (type === 'dynamic' && maxPos === undefined) {
    throw new StreamlmError("missing; rope type 'dynamic' needs it", { file, field: 'max_position_embeddings' });
  }
  return rope;
}

/**
 * partial_rotary_factor from the rope dict or the top level, else `dflt`. Families with their own
 * key (GPT-NeoX's rotary_pct) pass it as `dflt`.
 */
export function parsePartialRotaryFactor(config: Record<string, unknown>, file: string, dflt: number): number {
  const { params, key } = ropeSource(config, file);
  const v = num(params, 'partial_rotary_factor', file, key) ?? num(config, 'partial_rotary_factor', file, 'config') ?? dflt;
  if (!(v > 0 && v <= 1)) throw new StreamlmError(`must be in (0, 1], got ${v}`, { file, field: 'partial_rotary_factor' });
  return v;
}

function yarnMscale(scale: number, m = 1): number {
  return scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1;
}

/**
 * Inverse frequencies for the `rotaryDim` rotated dims (rotaryDim/2 of them) and the factor that
 * transformers multiplies cos and sin by. `seqLen` matters only for 'dynamic', which rescales
 * the base once the sequence outgrows the trained context.
 */
export function ropeFrequencies(rope: RopeConfig, rotaryDim: number, seqLen: number): { invFreq: Float64Array; attentionScaling: number } {
  if (!Number.isInteger(rotaryDim) || rotaryDim < 2 || rotaryDim % 2 !== 0) {
    throw new StreamlmError(`rotary dimension must be an even integer >= 2, got ${rotaryDim}`, { field: 'rotaryDim' });
  }
  const dim = rotaryDim;
  const half = dim / 2;
  let base = rope.theta;
  if (rope.type === 'dynamic') {
    const orig = rope.originalMaxPositionEmbeddings;
    const len = Math.max(seqLen, orig);
    base = base * ((rope.factor * len) / orig - (rope.factor - 1)) ** (dim / (dim - 2));
  }
  const invFreq = new Float64Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = 1 / base ** ((2 * i) / dim);

  switch (rope.type) {
    case 'default':
    case 'dynamic':
      return { invFreq, attentionScaling: 1 };
    case 'linear':
      for (let i = 0; i < half; i++) invFreq[i] /= rope.factor;
      return { invFreq, attentionScaling: 1 };
    case 'llama3':
      llama3(invFreq, rope);
      return { invFreq, attentionScaling: 1 };
    case 'yarn':
      return { invFreq: yarn(invFreq, rope, dim), attentionScaling: yarnAttentionFactor(rope) };
  }
}

/** Llama 3.1: low frequencies are divided by factor, high ones kept, a smooth blend between. */
function llama3(inv: Float64Array, rope: RopeConfig): void {
  const orig = rope.originalMaxPositionEmbeddings;
  const lo = rope.lowFreqFactor!;
  const hi = rope.highFreqFactor!;
  const lowFreqWavelen = orig / lo;
  const highFreqWavelen = orig / hi;
  for (let i = 0; i < inv.length; i++) {
    const wavelen = (2 * Math.PI) / inv[i];
    if (wavelen > lowFreqWavelen) inv[i] /= rope.factor;
    else if (wavelen >= highFreqWavelen) {
      const smooth = (orig / wavelen - lo) / (hi - lo);
      inv[i] = (1 - smooth) * (inv[i] / rope.factor) + smooth * inv[i];
    }
  }
}

function yarnAttentionFactor(rope: RopeConfig): number {
  if (rope.attentionFactor !== undefined) return rope.attentionFactor;
  if (rope.mscale && rope.mscaleAllDim) return yarnMscale(rope.factor, rope.mscale) / yarnMscale(rope.factor, rope.mscaleAllDim);
  return yarnMscale(rope.factor);
}

/** YaRN: interpolate (divide by factor) below the beta_slow rotation count, extrapolate above beta_fast, ramp between. */
function yarn(extrapolated: Float64Array, rope: RopeConfig, dim: number): Float64Array {
  const orig = rope.originalMaxPositionEmbeddings;
  const correctionDim = (rotations: number): number =>
    (dim * Math.log(orig / (rotations * 2 * Math.PI))) / (2 * Math.log(rope.theta));
  let low = correctionDim(rope.betaFast ?? 32);
  let high = correctionDim(rope.betaSlow ?? 1);
  if (rope.truncate ?? true) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001;
  const out = new Float64Array(extrapolated.length);
  for (let i = 0; i < out.length; i++) {
    const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
    const interpolated = extrapolated[i] / rope.factor;
    out[i] = interpolated * ramp + extrapolated[i] * (1 - ramp);
  }
  return out;
}
