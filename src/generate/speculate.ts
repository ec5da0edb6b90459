import { StreamlmError } from '../errors.js';
import type { HiddenLog } from '../models/hidden-log.js';
import type { MctpHeads } from '../models/mctp.js';
import { AutoDrafter, MctpDrafter } from './mctp.js';
import { NgramDrafter, type Drafter } from './ngram.js';

/** `ngram`: prompt lookup in the stream's own tokens; `mctp`: the model's MCTP heads; `auto`: mctp when the model has heads, else ngram. */
export type SpeculateMode = 'ngram' | 'mctp' | 'auto' | 'off';
export const SPECULATE_MODES: readonly SpeculateMode[] = ['ngram', 'mctp', 'auto', 'off'];
/** The most tokens `draft: 'auto'` drafts at once. */
export const DEFAULT_DRAFT = 4;

export interface SpeculateOptions {
  /** Default `off`. */
  mode?: SpeculateMode;
  /**
   * Tokens drafted per backbone forward: at most this many, or `auto` (the default): at most 4, as
   * many as pay on this model and machine, 0 (a plain step) when none does (draft-length.ts). A fixed
   * draft can make decoding slower where each verified row costs about a step (the shipped 8M models).
   */
  draft?: number | 'auto';
  /** A drafter of your own instead of the mode's (tests, experiments); its proposals are verified like any other. */
  drafter?: Drafter;
}

/** A session's MCTP heads and the hidden states they draft from (Session.mctp). */
export interface MctpSource { heads: MctpHeads; log: HiddenLog }

/**
 * Checks the options (naming the flag) and builds the drafter, or null for `off`. `mctp`: the
 * session's heads, or `true`/`false` to check the options only (whether the model has heads).
 */
export function makeDrafter(opts: SpeculateOptions | undefined, mctp: MctpSource | boolean | null = null): { drafter: Drafter; draft: number; tune: boolean } | null {
  const hasHeads = mctp === true || (typeof mctp === 'object' && mctp !== null);
  const mode = opts?.mode ?? 'off';
  if (!SPECULATE_MODES.includes(mode)) throw new StreamlmError(`--speculate must be one of ${SPECULATE_MODES.join(', ')}, got '${String(mode)}'`, { field: 'speculate' });
  const tune = (opts?.draft ?? 'auto') === 'auto';
  const draft = tune ? DEFAULT_DRAFT : opts?.draft ?? DEFAULT_DRAFT;
  if (typeof draft !== 'number' || !Number.isInteger(draft) || draft < 1 || draft > 64) throw new StreamlmError(`--draft must be auto or an integer in 1..64, got ${String(opts?.draft)}`, { field: 'draft' });
  if (opts?.drafter) return { drafter: opts.drafter, draft, tune };
  if (mode === 'off') return null;
  if (mode === 'mctp' && !hasHeads) throw new StreamlmError('--speculate mctp needs MCTP heads (mctp.safetensors and an mctp entry in config.json) beside the model; this model has none (use ngram or auto)', { field: 'speculate' });
  const heads = typeof mctp === 'object' && mctp !== null ? new MctpDrafter(mctp.heads, mctp.log) : null;
  if (mode === 'mctp' && heads) return { drafter: heads, draft, tune };
  if (mode === 'auto' && heads) return { drafter: new AutoDrafter(new NgramDrafter(), heads), draft, tune };
  return { drafter: new NgramDrafter(), draft, tune };
}

/** Whether these options draft with MCTP heads when the model has them (the session must then keep hidden states). */
export function draftsWithHeads(opts: SpeculateOptions | undefined): boolean {
  return !opts?.drafter && (opts?.mode === 'mctp' || opts?.mode === 'auto');
}

/** Parses the CLI's `--speculate` value. */
export function parseSpeculateMode(v: string): SpeculateMode {
  if (!(SPECULATE_MODES as readonly string[]).includes(v)) throw new StreamlmError(`--speculate must be one of ${SPECULATE_MODES.join(', ')}, got '${v}'`, { field: 'speculate' });
  return v as SpeculateMode;
}
