// The low-rank checkpoint format (docs/lowrank.md). A compressed linear `<p>.weight` [N, K] is
// stored as two f32 factors, `<p>.lr_a` [r, K] and `<p>.lr_b` [N, r], with W ≈ B·A, so that
// y = x·Wᵀ = (x·Aᵀ)·Bᵀ. Biases keep their name `<p>.bias`. config.json lists every factored
// linear and its rank under `streamlm_lowrank`; a tensor absent from `ranks` stays dense.
import { StreamlmError } from '../errors.js';
import type { TensorInfo } from '../runtime/safetensors.js';

/** The config.json key of the low-rank section. */
export const LOWRANK_KEY = 'streamlm_lowrank';
/** Format version; readers refuse versions they do not know (append-only, STYLE.md §9). */
const LOWRANK_VERSION = 1;

export type LowRankMethod = 'svd' | 'whiten' | 'random';

/** The parsed `streamlm_lowrank` section. */
export interface LowRankSpec {
  version: number;
  method: LowRankMethod;
  /** Rank as a fraction of min(N, K), when compressed with --rank-ratio. */
  rankRatio: number | null;
  /** Kept fraction of Σσ², when compressed with --energy. */
  energy: number | null;
  /** Rank of each factored linear, keyed by its prefix (the weight name without `.weight`). */
  ranks: Map<string, number>;
}

export const factorA = (prefix: string): string => `${prefix}.lr_a`;
export const factorB = (prefix: string): string => `${prefix}.lr_b`;

/** `model.layers.0.mlp.up_proj.weight` → `model.layers.0.mlp.up_proj`, or null if not a `.weight`. */
export function prefixOf(weightName: string): string | null {
  return weightName.endsWith('.weight') ? weightName.slice(0, -'.weight'.length) : null;
}

/**
 * Reads and checks the section: version, method, ranks, and, when `tensors` is given, that both
 * factors of every listed linear exist with shapes [r, K] and [N, r].
 */
export function parseLowRank(config: Record<string, unknown>, configFile: string, tensors?: Map<string, TensorInfo>): LowRankSpec | null {
  const raw = config[LOWRANK_KEY];
  if (raw === undefined) return null;
  const where = (f: string): { file: string; field: string } => ({ file: configFile, field: `${LOWRANK_KEY}${f}` });
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new StreamlmError('must be an object', where(''));
  const s = raw as Record<string, unknown>;
  if (s.version !== LOWRANK_VERSION) throw new StreamlmError(`version ${JSON.stringify(s.version)} is not supported (this build reads version ${LOWRANK_VERSION})`, where('.version'));
  const method = s.method;
  if (method !== 'svd' && method !== 'whiten' && method !== 'random') throw new StreamlmError(`method must be svd, whiten or random, got ${JSON.stringify(method)}`, where('.method'));
  const frac = (k: string): number | null => {
    const v = s[k];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !(v > 0 && v <= 1)) throw new StreamlmError(`must be a number in (0, 1], got ${JSON.stringify(v)}`, where(`.${k}`));
    return v;
  };
  const ranksRaw = s.ranks;
  if (typeof ranksRaw !== 'object' || ranksRaw === null || Array.isArray(ranksRaw)) throw new StreamlmError('must be an object {linear: rank}', where('.ranks'));
  const ranks = new Map<string, number>();
  for (const [name, r] of Object.entries(ranksRaw)) {
    if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) throw new StreamlmError(`rank must be a positive integer, got ${JSON.stringify(r)}`, where(`.ranks.${name}`));
    ranks.set(name, r);
  }
  if (tensors) {
    for (const [p, r] of ranks) {
      const a = tensors.get(factorA(p)), b = tensors.get(factorB(p));
      if (!a) throw new StreamlmError(`the config lists '${p}' with rank ${r} but the checkpoint has no tensor '${factorA(p)}'`, where(`.ranks.${p}`));
      if (!b) throw new StreamlmError(`the config lists '${p}' with rank ${r} but the checkpoint has no tensor '${factorB(p)}'`, where(`.ranks.${p}`));
      if (a.shape.length !== 2 || a.shape[0] !== r)
        throw new StreamlmError(`tensor '${factorA(p)}' has shape [${a.shape}] but the config's rank ${r} implies [${r}, K]`, { file: a.file, field: factorA(p) });
      if (b.shape.length !== 2 || b.shape[1] !== r)
        throw new StreamlmError(`tensor '${factorB(p)}' has shape [${b.shape}] but the config's rank ${r} implies [N, ${r}]`, { file: b.file, field: factorB(p) });
      if (tensors.has(`${p}.weight`)) throw new StreamlmError(`both '${p}.weight' and its low-rank factors are present; keep one`, { file: a.file, field: `${p}.weight` });
    }
  }
  return { version: LOWRANK_VERSION, method, rankRatio: frac('rank_ratio'), energy: frac('energy'), ranks };
}

/** The section as written to config.json (ranks in checkpoint order). */
export function lowRankSection(spec: Omit<LowRankSpec, 'version'>): Record<string, unknown> {
  return {
    version: LOWRANK_VERSION,
    method: spec.method,
    rank_ratio: spec.rankRatio,
    energy: spec.energy,
    ranks: Object.fromEntries(spec.ranks),
  };
}
