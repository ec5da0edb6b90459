/**
 * The `tokenizer.ggml.*` metadata for a GGUF file, from a Hugging Face tokenizer.json (+
 * tokenizer_config.json): byte-level BPE tokenizers become llama.cpp's `gpt2` model (tokens,
 * merges, token types, pre-tokenizer name). Other tokenizer kinds are refused by name rather than
 * written as a vocabulary that would encode differently.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StreamlmError } from '../errors.js';

export interface GgufVocab {
  model: 'gpt2';
  /** Token strings by id, padded to the model's vocabulary with unused tokens. */
  tokens: string[];
  /** llama_token_type: 1 normal, 3 control, 4 user-defined, 5 unused. */
  types: Int32Array;
  merges: string[];
  pre: string;
  bos: number | null;
  eos: number | null;
  pad: number | null;
  addBos: boolean;
  chatTemplate: string | null;
}

type Obj = Record<string, unknown>;

function readJson(file: string): Obj {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Obj;
  } catch (e) {
    throw new StreamlmError(`not valid JSON (${(e as Error).message})`, { file });
  }
}

const content = (v: unknown): string | null =>
  typeof v === 'string' ? v : typeof v === 'object' && v !== null && typeof (v as Obj).content === 'string' ? (v as Obj).content as string : null;

/** The pre-tokenizer's llama.cpp name: plain GPT-2 byte-level splitting is the one we write. */
function preName(pre: Obj | null, file: string): string {
  if (pre && pre.type === 'ByteLevel' && pre.use_regex !== false && pre.add_prefix_space !== true) return 'gpt-2';
  throw new StreamlmError(`pre-tokenizer ${JSON.stringify(pre?.type ?? null)} is not exported to GGUF (only GPT-2 byte-level BPE is)`, { file, field: 'pre_tokenizer' });
}

/** Whether a TemplateProcessing post-processor starts every sequence with a special token (BOS). */
function templateAddsBos(pp: unknown): boolean {
  const single = (pp as Obj | null)?.single;
  return (pp as Obj | null)?.type === 'TemplateProcessing' && Array.isArray(single) && typeof single[0] === 'object' && single[0] !== null && 'SpecialToken' in single[0];
}

/** Vocabulary metadata for `hfDir`, or null when it has no tokenizer.json. */
export function vocabFromHf(hfDir: string, vocabSize: number, config: Obj): GgufVocab | null {
  const file = join(hfDir, 'tokenizer.json');
  if (!existsSync(file)) return null;
  const tj = readJson(file);
  const model = tj.model as Obj | undefined;
  if (!model || model.type !== 'BPE' || model.byte_fallback === true) {
    throw new StreamlmError(`model type ${JSON.stringify(model?.type)} is not exported to GGUF (byte-level BPE is)`, { file, field: 'model.type' });
  }
  const pre = preName((tj.pre_tokenizer ?? null) as Obj | null, file);
  const tokens = new Array<string | undefined>(vocabSize);
  const types = new Int32Array(vocabSize).fill(1);
  const place = (tok: string, id: number): void => {
    if (!Number.isSafeInteger(id) || id < 0 || id >= vocabSize) throw new StreamlmError(`token ${JSON.stringify(tok)} has id ${id}, outside the model's ${vocabSize} embeddings`, { file });
    tokens[id] = tok;
  };
  for (const [tok, id] of Object.entries(model.vocab as Record<string, number>)) place(tok, id);
  for (const a of (tj.added_tokens ?? []) as Obj[]) {
    place(a.content as string, a.id as number);
    types[a.id as number] = a.special === true ? 3 : 4;
  }
  for (let i = 0; i < vocabSize; i++) if (tokens[i] === undefined) { tokens[i] = `<unused_${i}>`; types[i] = 5; }
  const merges = ((model.merges ?? []) as (string | string[])[]).map((m) => (Array.isArray(m) ? m.join(' ') : m));

  const cfgFile = join(hfDir, 'tokenizer_config.json');
  const tc = existsSync(cfgFile) ? readJson(cfgFile) : {};
  const ids = new Map((tokens as string[]).map((t, i) => [t, i]));
  const idOf = (key: string, cfgKey: string): number | null => {
    const c = content(tc[key]);
    if (c !== null && ids.has(c)) return ids.get(c)!;
    const v = config[cfgKey];
    return typeof v === 'number' ? v : Array.isArray(v) && typeof v[0] === 'number' ? v[0] : null;
  };
  let template = typeof tc.chat_template === 'string' ? tc.chat_template : null;
  const jinja = join(hfDir, 'chat_template.jinja');
  if (template === null && existsSync(jinja)) template = readFileSync(jinja, 'utf8');
  return {
    model: 'gpt2', tokens: tokens as string[], types, merges, pre,
    bos: idOf('bos_token', 'bos_token_id'), eos: idOf('eos_token', 'eos_token_id'), pad: idOf('pad_token', 'pad_token_id'),
    addBos: typeof tc.add_bos_token === 'boolean' ? tc.add_bos_token : templateAddsBos(tj.post_processor), chatTemplate: template,
  };
}
