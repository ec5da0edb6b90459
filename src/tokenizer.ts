import * as hf from '@huggingface/tokenizers';
import { StreamlmError } from './errors.js';
import { platform } from './platform/current.js';
import type { FileSet } from './platform/types.js';

type Obj = Record<string, unknown>;

/**
 * The part of @huggingface/tokenizers 0.2.0 used here, typed by hand: its .d.ts files import
 * without file extensions, which NodeNext resolution cannot follow, so TypeScript would see `any`.
 */
interface Tokenizer {
  get_vocab(withAddedTokens?: boolean): Map<string, number>;
  token_to_id(token: string): number | undefined;
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] };
  decode(ids: number[], options?: { skip_special_tokens?: boolean }): string;
}
const Tokenizer = hf.Tokenizer as unknown as new (tokenizerJson: Obj, tokenizerConfig: Obj) => Tokenizer;

function readJson(fs: FileSet, name: string): Obj {
  const file = fs.path(name);
  let json: unknown;
  try {
    json = JSON.parse(fs.text(name));
  } catch (e) {
    throw new StreamlmError(`not valid JSON: ${(e as Error).message}`, { file });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new StreamlmError('expected a JSON object', { file });
  return json as Obj;
}

/** tokenizer_config.json writes special tokens as a string or as an AddedToken object `{content, ...}`. */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as Obj).content === 'string') return (v as Obj).content as string;
  return null;
}

/** chat_template is a string, or a list of `{name, template}` where 'default' is the one used without a name. */
function chatTemplateOf(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (!Array.isArray(v)) return null;
  const named = (v as unknown[]).filter(
    (t): t is { name: string; template: string } => typeof (t as Obj)?.name === 'string' && typeof (t as Obj)?.template === 'string',
  );
  return (named.find((t) => t.name === 'default') ?? named[0])?.template ?? null;
}

/** A Hugging Face tokenizer.json (+ tokenizer_config.json) on @huggingface/tokenizers. */
export class TextTokenizer {
  /** One more than the largest token id, added tokens included. */
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  /** From tokenizer_config.json; the model's config/generation_config may list more. */
  readonly eosTokenIds: number[];
  /** Whether encode(text, {addSpecialTokens: true}) starts with bosTokenId. */
  readonly addBosToken: boolean;
  readonly chatTemplate: string | null;
  /** Whether tokenizer.json's post-processor itself inserts BOS; addBosToken may override it. */
  private readonly templateAddsBos: boolean;

  private constructor(private readonly tok: Tokenizer, cfg: Obj, chatTemplate: string | null, file: string) {
    let maxId = -1;
    for (const id of tok.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    const idOf = (key: string): number | null => {
      const content = tokenContent(cfg[key]);
      if (content === null) return null;
      const id = tok.token_to_id(content);
      if (id === undefined) throw new StreamlmError(`token ${JSON.stringify(content)} is not in tokenizer.json`, { file, field: key });
      return id;
    };
    this.bosTokenId = idOf('bos_token');
    const eos = idOf('eos_token');
    this.eosTokenIds = eos === null ? [] : [eos];
    this.chatTemplate = chatTemplate;
    const probe = (special: boolean): number[] => tok.encode('a', { add_special_tokens: special }).ids;
    this.templateAddsBos = this.bosTokenId !== null && probe(true)[0] === this.bosTokenId && probe(false)[0] !== this.bosTokenId;
    // transformers rebuilds the post-processor from add_bos_token when the config sets it, so it wins over tokenizer.json.
    this.addBosToken = typeof cfg.add_bos_token === 'boolean' && this.bosTokenId !== null ? cfg.add_bos_token : this.templateAddsBos;
  }

  /** Loads `dir/tokenizer.json` and, if present, tokenizer_config.json and chat_template.jinja; null without tokenizer.json. */
  static load(dir: string | FileSet): TextTokenizer | null {
    const fs = typeof dir === 'string' ? platform.dir(dir) : dir;
    if (!fs.has('tokenizer.json')) return null;
    const file = fs.path('tokenizer.json');
    const json = readJson(fs, 'tokenizer.json');
    const cfgFile = fs.path('tokenizer_config.json');
    const cfg = fs.has('tokenizer_config.json') ? readJson(fs, 'tokenizer_config.json') : {};
    const template = chatTemplateOf(cfg.chat_template) ?? (fs.has('chat_template.jinja') ? fs.text('chat_template.jinja') : null);
    return TextTokenizer.fromObjects(json, cfg, template, file, cfgFile);
  }

  /** Builds from tokenizer.json and tokenizer_config.json objects (e.g. made from a GGUF file's vocabulary). */
  static fromObjects(json: Obj, cfg: Obj, chatTemplate: string | null, file: string, cfgFile = file): TextTokenizer {
    // The JS library cleans up spaces unless told not to; transformers 5 defaults to leaving them alone.
    const libCfg = { ...cfg, clean_up_tokenization_spaces: cfg.clean_up_tokenization_spaces === true };
    let tok: Tokenizer;
    try {
      tok = new Tokenizer({ normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [], ...json }, libCfg);
    } catch (e) {
      throw new StreamlmError(`cannot build the tokenizer: ${(e as Error).message}`, { file });
    }
    return new TextTokenizer(tok, cfg, chatTemplate, cfgFile);
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    const special = opts.addSpecialTokens ?? true;
    const ids = this.tok.encode(text, { add_special_tokens: special }).ids;
    if (!special || this.addBosToken === this.templateAddsBos) return ids;
    if (this.addBosToken) return [this.bosTokenId!, ...ids];
    return ids[0] === this.bosTokenId ? ids.slice(1) : ids;
  }

  /** Ids outside the tokenizer (a model's padded vocabulary rows) decode to nothing. */
  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    const known = ids.filter((id) => Number.isInteger(id) && id >= 0 && id < this.vocabSize);
    if (known.length === 0) return '';
    return this.tok.decode(known, { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  tokenId(token: string): number | null {
    return this.tok.token_to_id(token) ?? null;
  }
}

/**
 * Turns a stream of token ids into text that never changes once emitted. Byte-level tokens can
 * split a UTF-8 character (the partial decode ends in U+FFFD), and sentencepiece decoders drop the
 * leading space of a run's first token, so each step decodes `context + new` and emits what the
 * new tokens added beyond `context` (the approach of text-generation-inference).
 */
export class StreamDecoder {
  /** Ids from the context start on; ids[0..readAt) were emitted, ids[0..prefixAt) only give context. */
  private ids: number[] = [];
  private prefixAt = 0;
  private readAt = 0;
  private readonly skip: boolean;

  /**
   * `context`: ids already shown (e.g. the prompt's last few), so that the first pushed token keeps
   * its leading space under sentencepiece decoders. `skipSpecialTokens` defaults to true.
   */
  constructor(private readonly tok: TextTokenizer, opts: { skipSpecialTokens?: boolean; context?: number[] } = {}) {
    this.skip = opts.skipSpecialTokens ?? true;
    this.ids = [...(opts.context ?? [])];
    this.readAt = this.ids.length;
  }

  /** Adds one id; returns the text that became final (often ''). */
  push(id: number): string {
    this.ids.push(id);
    const prefix = this.decode(this.ids.slice(this.prefixAt, this.readAt));
    const full = this.decode(this.ids.slice(this.prefixAt));
    // A UTF-8 character spans at most 4 bytes, so past that a trailing U+FFFD is real output, not a split.
    const split = full.endsWith('\uFFFD') && this.ids.length - this.readAt < 4;
    if (full.length <= prefix.length || split) return '';
    this.prefixAt = this.readAt;
    this.readAt = this.ids.length;
    this.ids = this.ids.slice(this.prefixAt);
    this.readAt -= this.prefixAt;
    this.prefixAt = 0;
    return full.slice(prefix.length);
  }

  /** An independent copy (same tokenizer), for looking ahead without changing this decoder. */
  clone(): StreamDecoder {
    const c = new StreamDecoder(this.tok, { skipSpecialTokens: this.skip });
    c.ids = [...this.ids];
    c.prefixAt = this.prefixAt;
    c.readAt = this.readAt;
    return c;
  }

  /** Emits whatever is held back and starts afresh. */
  flush(): string {
    const prefix = this.decode(this.ids.slice(this.prefixAt, this.readAt));
    const full = this.decode(this.ids.slice(this.prefixAt));
    this.ids = [];
    this.prefixAt = this.readAt = 0;
    return full.length > prefix.length ? full.slice(prefix.length) : '';
  }

  private decode(ids: number[]): string {
    return this.tok.decode(ids, { skipSpecialTokens: this.skip });
  }
}

/** Refuses a tokenizer that can produce ids the model has no embedding for. */
export function checkTokenizerMatches(tok: TextTokenizer, vocabSize: number, dir: string | FileSet): void {
  if (tok.vocabSize > vocabSize) {
    throw new StreamlmError(
      `tokenizer.json has ${tok.vocabSize} tokens but config.json vocab_size is ${vocabSize}; they belong to different models`,
      { file: typeof dir === 'string' ? platform.dir(dir).path('tokenizer.json') : dir.path('tokenizer.json'), field: 'vocab_size' },
    );
  }
}
