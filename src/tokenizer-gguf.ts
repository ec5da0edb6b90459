import { StreamlmError } from './errors.js';
import type { GgufHeader } from './runtime/gguf.js';
import { GgufMeta } from './runtime/gguf-source.js';

/**
 * The tokenizer a GGUF file describes (`tokenizer.ggml.*`), rebuilt as a Hugging Face
 * tokenizer.json object so the same library encodes it (no hand-written BPE):
 *  - `gpt2`: byte-level BPE; tokens and merges are stored as tokenizer.json has them, and
 *    `tokenizer.ggml.pre` names the pre-tokenizer regex.
 *  - `llama`: SentencePiece BPE with scores. SentencePiece merges the adjacent pair whose union has
 *    the highest score; transformers' converter turns that into BPE merges ranked by that score
 *    (every split of every piece into two pieces of the vocabulary), with byte fallback, and so do we.
 * Token types (llama_token_type): 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
 */

type Obj = Record<string, unknown>;

export interface GgufTokenizerSpec {
  /** A tokenizer.json object. */
  json: Obj;
  /** A tokenizer_config.json object: special tokens, add_bos_token, chat_template. */
  config: Obj;
}

const TYPE_UNKNOWN = 2, TYPE_CONTROL = 3, TYPE_USER = 4;

/** Pre-tokenizer regexes by `tokenizer.ggml.pre` (the split patterns of the original tokenizer.json files). */
const LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

function splitThenBytes(regex: string): Obj {
  return {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    ],
  };
}

const BYTE_LEVEL = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };

/** tokenizer.ggml.pre → [pre_tokenizer, ignore_merges]. */
const PRE: Record<string, [Obj, boolean]> = {
  default: [BYTE_LEVEL, false],
  'gpt-2': [BYTE_LEVEL, false],
  'llama-bpe': [splitThenBytes(LLAMA3_REGEX), true],
  llama3: [splitThenBytes(LLAMA3_REGEX), true],
  qwen2: [splitThenBytes(QWEN2_REGEX), false],
};

function addedTokens(tokens: string[], types: Float64Array | null): Obj[] {
  const out: Obj[] = [];
  if (!types) return out;
  for (let i = 0; i < tokens.length; i++) {
    const t = types[i];
    if (t === TYPE_CONTROL || t === TYPE_USER || t === TYPE_UNKNOWN) {
      out.push({ id: i, content: tokens[i], single_word: false, lstrip: false, rstrip: false, normalized: false, special: t !== TYPE_USER });
    }
  }
  return out;
}

/** BPE merges from SentencePiece scores, ranked as transformers' SentencePieceExtractor ranks them. */
export function mergesFromScores(tokens: string[], scores: Float64Array, types: Float64Array | null): [string, string][] {
  const id = new Map<string, number>();
  tokens.forEach((t, i) => { if (!id.has(t)) id.set(t, i); });
  const all: { l: string; r: string; score: number; li: number; ri: number }[] = [];
  for (let i = 0; i < tokens.length; i++) {
    if (types && types[i] !== 1 && types[i] !== TYPE_USER) continue;
    const chars = Array.from(tokens[i]);
    const local: typeof all = [];
    for (let k = 1; k < chars.length; k++) {
      const l = chars.slice(0, k).join(''), r = chars.slice(k).join('');
      const li = id.get(l), ri = id.get(r);
      if (li !== undefined && ri !== undefined) local.push({ l, r, score: scores[i], li, ri });
    }
    local.sort((a, b) => a.li - b.li || a.ri - b.ri);
    all.push(...local);
  }
  all.sort((a, b) => b.score - a.score); // stable: ties keep vocabulary order
  return all.map((m) => [m.l, m.r]);
}

/** Builds the tokenizer.json and tokenizer_config.json objects a GGUF file's metadata describes, or null without a vocabulary. */
export function ggufTokenizerSpec(h: GgufHeader): GgufTokenizerSpec | null {
  const m = new GgufMeta(h);
  if (!m.has('tokenizer.ggml.model') && !m.has('tokenizer.ggml.tokens')) return null;
  const kind = m.str('tokenizer.ggml.model');
  const tokens = m.strings('tokenizer.ggml.tokens');
  if (tokens.length === 0) throw new StreamlmError('the vocabulary is empty', { file: h.file, field: 'tokenizer.ggml.tokens' });
  const types = m.has('tokenizer.ggml.token_type') ? m.numbers('tokenizer.ggml.token_type', tokens.length) : null;
  const vocab: Record<string, number> = {};
  for (let i = tokens.length - 1; i >= 0; i--) vocab[tokens[i]] = i; // duplicates: the first id wins
  const idName = (key: string): string | null => {
    const v = m.tokenId(key);
    if (v === null) return null;
    if (v >= tokens.length) throw new StreamlmError(`token id ${v} is outside the ${tokens.length}-token vocabulary`, { file: h.file, field: key });
    return tokens[v];
  };
  const bos = idName('tokenizer.ggml.bos_token_id');
  const eos = idName('tokenizer.ggml.eos_token_id');
  const pad = idName('tokenizer.ggml.padding_token_id');
  const unk = idName('tokenizer.ggml.unknown_token_id');
  const added = addedTokens(tokens, types);

  let json: Obj;
  let addBosDefault: boolean;
  if (kind === 'gpt2') {
    const pre = m.str('tokenizer.ggml.pre', 'default');
    const p = PRE[pre];
    if (!p) throw new StreamlmError(`pre-tokenizer '${pre}' is not supported (${Object.keys(PRE).join(', ')} are)`, { file: h.file, field: 'tokenizer.ggml.pre' });
    const merges = m.strings('tokenizer.ggml.merges').map((s, i) => {
      const at = s.indexOf(' ');
      if (at <= 0 || at === s.length - 1) throw new StreamlmError(`merge ${JSON.stringify(s)} is not two tokens separated by a space`, { file: h.file, field: `tokenizer.ggml.merges[${i}]` });
      return [s.slice(0, at), s.slice(at + 1)];
    });
    json = {
      version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null,
      pre_tokenizer: p[0],
      post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: p[1], vocab, merges },
    };
    addBosDefault = false;
  } else if (kind === 'llama') {
    const scores = m.numbers('tokenizer.ggml.scores', tokens.length);
    const prefix = m.bool('tokenizer.ggml.add_space_prefix', true);
    json = {
      version: '1.0', truncation: null, padding: null, added_tokens: added,
      normalizer: { type: 'Sequence', normalizers: [...(prefix ? [{ type: 'Prepend', prepend: '\u2581' }] : []), { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }] },
      pre_tokenizer: null,
      post_processor: null,
      decoder: {
        type: 'Sequence',
        decoders: [
          { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' },
          ...(prefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
        ],
      },
      model: {
        type: 'BPE', dropout: null, unk_token: unk ?? (types ? tokens[types.indexOf(TYPE_UNKNOWN)] ?? null : null), continuing_subword_prefix: null,
        end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges: mergesFromScores(tokens, scores, types),
      },
    };
    addBosDefault = true; // llama.cpp's default for SentencePiece vocabularies
  } else {
    throw new StreamlmError(`tokenizer model '${kind}' is not supported (llama, gpt2 are)`, { file: h.file, field: 'tokenizer.ggml.model' });
  }
  const config: Obj = {
    bos_token: bos, eos_token: eos, pad_token: pad, unk_token: unk,
    add_bos_token: m.bool('tokenizer.ggml.add_bos_token', addBosDefault && bos !== null),
    add_eos_token: m.bool('tokenizer.ggml.add_eos_token', false),
    clean_up_tokenization_spaces: false,
    chat_template: m.has('tokenizer.chat_template') ? m.str('tokenizer.chat_template') : null,
  };
  return { json, config };
}
