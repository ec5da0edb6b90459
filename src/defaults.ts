// Defaults shared by the library, the CLI and the server, each with its one validator, so a default
// or a check is written once.
import { StreamlmError } from './errors.js';
import type { LoadDType } from './models/weights.js';

/** Cache policy of one stream (library sessions, `generate`, `eval-ppl`): StreamingLLM, 4 sinks + 1020 recent. */
export const DEFAULT_CACHE = 'sink:4+1020';
/** Cache policy of a conversation (`serve`, `chat`): a longer window, since turns pile up. */
export const DEFAULT_CHAT_CACHE = 'sink:4+2044';
/** Prompt tokens per forward during prefill; also one scheduling slice of the server. */
export const DEFAULT_PREFILL_CHUNK = 64;
/** New tokens `generate` makes unless told. */
export const DEFAULT_MAX_NEW_TOKENS = 128;
/** Weight dtypes a model can be loaded as: the checkpoint's own, or converted. */
export const LOAD_DTYPES: readonly LoadDType[] = ['auto', 'f32', 'q8_0', 'q6_K', 'q5_K', 'q4_K', 'q4_0'];

/** `value` as a positive integer prefill chunk (the default when undefined). */
export function prefillChunkOf(value: number | undefined, field = 'prefillChunk'): number {
  const n = value ?? DEFAULT_PREFILL_CHUNK;
  if (!Number.isInteger(n) || n < 1) throw new StreamlmError(`prefill chunk must be a positive integer, got ${value}`, { field });
  return n;
}

/** `value` as a load dtype (`auto` when undefined). */
export function loadDTypeOf(value: string | undefined, field = 'dtype'): LoadDType {
  const d = value ?? 'auto';
  if (!(LOAD_DTYPES as readonly string[]).includes(d)) throw new StreamlmError(`expected ${LOAD_DTYPES.join(', ')}, got '${d}'`, { field });
  return d as LoadDType;
}
