import type { SpeculationStats } from '../generate/stepper.js';
import { parseSpeculateMode, type SpeculateOptions } from '../generate/speculate.js';
import { StreamlmError } from '../errors.js';
import { num, str, type FlagSpec, type Flags } from './args.js';

/** `--speculate` and `--draft`, shared by generate, chat and serve. */
export const SPECULATE_FLAGS: FlagSpec = { speculate: { type: 'string' }, draft: { type: 'string' } };

export const SPECULATE_HELP = `--speculate ngram|mctp|auto|off drafts tokens and verifies them in one forward (default off;
ngram looks them up in the stream's own tokens; auto is mctp when the model has heads, else ngram);
greedy output is unchanged, sampling keeps its distribution. --draft auto (default) drafts at most 4,
as many as pay on this model and machine, none where none does; --draft K drafts up to K each time.`;

/** The speculation options the flags ask for, checked (naming the flag). */
export function speculateFlags(flags: Flags): SpeculateOptions {
  const s = str(flags, 'speculate');
  const d = str(flags, 'draft');
  if (d !== undefined && d !== 'auto' && !/^\d+$/.test(d)) throw new StreamlmError(`expected auto or an integer in 1..64, got '${d}'`, { field: '--draft' });
  const draft = d === 'auto' ? 'auto' : num(flags, 'draft', { int: true, min: 1, max: 64 });
  return { mode: s === undefined ? 'off' : parseSpeculateMode(s), ...(draft !== undefined ? { draft } : {}) };
}

/** ` | spec 2.41 tok/fwd, accept 81% 64% 50% 41%` for a summary line, or '' without speculation. */
export function speculationSummary(sp: SpeculationStats | undefined): string {
  if (!sp) return '';
  const acc = sp.proposed.map((p, i) => `${Math.round((100 * sp.accepted[i]) / Math.max(p, 1))}%`).join(' ');
  return ` | spec ${sp.tokensPerForward.toFixed(2)} tok/fwd${acc ? `, accept ${acc}` : ''}`;
}
