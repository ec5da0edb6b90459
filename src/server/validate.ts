import { CHAT_ROLES, type ChatMessage, type ChatRole } from '../chat/template.js';
import { badParam } from './errors.js';

/** Sampling and length settings shared by both endpoints. */
export interface GenerationParams {
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  seed: number | undefined;
  stop: string[];
}

interface Common extends GenerationParams {
  model: string;
  stream: boolean;
  /** `stream_options.include_usage`: a last chunk with usage and no choices. */
  includeUsage: boolean;
  /** Conversation id (extension), or null for a one-off request. */
  session: string | null;
  /** Generate past end-of-sequence tokens (extension, as vLLM's). */
  ignoreEos: boolean;
}

export interface ChatRequest extends Common {
  kind: 'chat';
  messages: ChatMessage[];
  /** `modalities: ["text", "audio"]` with `audio: {voice, format}`: a spoken reply; null for text only. */
  audio: ChatAudio | null;
}

export interface ChatAudio { voice: string; format: 'wav' | 'pcm16' }

/** A POST /v1/audio/speech body. */
export interface SpeechRequest {
  model: string;
  input: string;
  voice: string;
  format: 'wav' | 'pcm';
  speed: number;
  streamFormat: 'audio' | 'sse';
}
export interface CompletionRequest extends Common { kind: 'text'; prompt: string | number[] }
export type ApiRequest = ChatRequest | CompletionRequest;

export interface Limits {
  /** max_tokens when the request gives none (chat); completions default to 16 as OpenAI's. */
  defaultMaxTokens: number;
  /** Largest max_tokens accepted. */
  maxTokens: number;
}

type Obj = Record<string, unknown>;

const SESSION_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/** A session id from the body or the X-Session-Id header: 1-128 of `A-Z a-z 0-9 . _ : -`. */
export function parseSessionId(v: unknown, param: string): string {
  if (typeof v !== 'string' || !SESSION_RE.test(v)) throw badParam(param, `${param} must be a string of 1-128 letters, digits, '.', '_', ':' or '-'`);
  return v;
}

function isObj(v: unknown): v is Obj { return typeof v === 'object' && v !== null && !Array.isArray(v); }

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function checkKeys(o: Obj, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw badParam(where ? `${where}.${k}` : k, `Unrecognized request argument supplied: ${where ? `${where}.${k}` : k}`, 'unknown_parameter');
  }
}

function num(o: Obj, key: string, def: number, opts: { min: number; max: number; int?: boolean; minOpen?: boolean }): number {
  const v = o[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw badParam(key, `${key} must be a number, got ${typeName(v)}`, 'invalid_type');
  if (opts.int && !Number.isInteger(v)) throw badParam(key, `${key} must be an integer, got ${v}`, 'invalid_type');
  if (v < opts.min || v > opts.max || (opts.minOpen && v === opts.min)) {
    throw badParam(key, `${key} must be ${opts.minOpen ? '>' : '>='} ${opts.min} and <= ${opts.max}, got ${v}`);
  }
  return v;
}

function bool(o: Obj, key: string): boolean {
  const v = o[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw badParam(key, `${key} must be a boolean, got ${typeName(v)}`, 'invalid_type');
  return v;
}

/** A field accepted only at its neutral value, so clients that always send it still work. */
function neutral(o: Obj, key: string, ok: (v: unknown) => boolean, what: string): void {
  const v = o[key];
  if (v !== undefined && v !== null && !ok(v)) throw badParam(key, `${key} is not supported by this server (only ${what})`, 'unsupported_value');
}

function stopList(o: Obj): string[] {
  const v = o.stop;
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length > 4) throw badParam('stop', 'stop must be a string or an array of at most 4 strings');
  for (const s of list) if (typeof s !== 'string' || s.length === 0 || s.length > 256) throw badParam('stop', 'each stop sequence must be a non-empty string of at most 256 characters');
  return list as string[];
}

function common(o: Obj, limits: Limits, defaultMax: number, maxKey: 'max_tokens' | 'max_completion_tokens' | null): Common {
  const model = o.model;
  if (model === undefined || model === null) throw badParam('model', 'you must provide a model parameter', 'missing_required_parameter');
  if (typeof model !== 'string' || model.length === 0) throw badParam('model', `model must be a non-empty string, got ${typeName(model)}`, 'invalid_type');
  let maxTokens = num(o, 'max_tokens', defaultMax, { min: 1, max: limits.maxTokens, int: true });
  if (maxKey === 'max_completion_tokens' && o.max_completion_tokens !== undefined && o.max_completion_tokens !== null) {
    if (o.max_tokens !== undefined && o.max_tokens !== null) throw badParam('max_completion_tokens', 'give max_tokens or max_completion_tokens, not both');
    maxTokens = num(o, 'max_completion_tokens', defaultMax, { min: 1, max: limits.maxTokens, int: true });
  }
  const so = o.stream_options;
  let includeUsage = false;
  const stream = bool(o, 'stream');
  if (so !== undefined && so !== null) {
    if (!isObj(so)) throw badParam('stream_options', `stream_options must be an object, got ${typeName(so)}`, 'invalid_type');
    if (!stream) throw badParam('stream_options', 'stream_options is only allowed when stream is true');
    checkKeys(so, ['include_usage'], 'stream_options');
    includeUsage = bool(so, 'include_usage');
  }
  neutral(o, 'n', (v) => v === 1, 'n = 1');
  neutral(o, 'presence_penalty', (v) => v === 0, '0');
  neutral(o, 'frequency_penalty', (v) => v === 0, '0');
  neutral(o, 'logit_bias', (v) => isObj(v) && Object.keys(v).length === 0, 'an empty object');
  if (o.user !== undefined && o.user !== null && typeof o.user !== 'string') throw badParam('user', `user must be a string, got ${typeName(o.user)}`, 'invalid_type');
  const seed = o.seed === undefined || o.seed === null ? undefined : num(o, 'seed', 0, { min: -(2 ** 53), max: 2 ** 53, int: true });
  return {
    model, stream, includeUsage, maxTokens,
    temperature: num(o, 'temperature', 1, { min: 0, max: 2 }),
    topP: num(o, 'top_p', 1, { min: 0, max: 1, minOpen: true }),
    topK: num(o, 'top_k', 0, { min: 0, max: 1e6, int: true }),
    seed: seed === undefined ? undefined : seed | 0,
    stop: stopList(o),
    session: o.session === undefined || o.session === null ? null : parseSessionId(o.session, 'session'),
    ignoreEos: bool(o, 'ignore_eos'),
  };
}

const COMMON_KEYS = ['model', 'stream', 'stream_options', 'max_tokens', 'temperature', 'top_p', 'top_k', 'n', 'stop', 'seed', 'user',
  'presence_penalty', 'frequency_penalty', 'logit_bias', 'session', 'ignore_eos'];

const CHAT_KEYS = [...COMMON_KEYS, 'messages', 'max_completion_tokens', 'logprobs', 'response_format', 'store', 'metadata', 'modalities', 'audio'];
/** Keys of a response message that clients echo back; accepted when empty. */
const ECHO_KEYS = ['refusal', 'annotations', 'audio', 'function_call', 'tool_calls'];

function content(v: unknown, param: string, role: ChatRole): string {
  if (typeof v === 'string') return v;
  if ((v === null || v === undefined) && role === 'assistant') return '';
  if (Array.isArray(v)) {
    let text = '';
    v.forEach((part, j) => {
      if (!isObj(part) || part.type !== 'text' || typeof part.text !== 'string') {
        throw badParam(`${param}[${j}]`, `only text content parts ({"type": "text", "text": "..."}) are supported, got ${isObj(part) ? JSON.stringify(part.type) : typeName(part)}`, 'unsupported_value');
      }
      checkKeys(part, ['type', 'text'], `${param}[${j}]`);
      text += part.text;
    });
    return text;
  }
  throw badParam(param, `${param} must be a string or an array of text parts, got ${typeName(v)}`, 'invalid_type');
}

/** Validates a POST /v1/chat/completions body. */
export function parseChatRequest(body: unknown, limits: Limits): ChatRequest {
  if (!isObj(body)) throw badParam('', `the request body must be a JSON object, got ${typeName(body)}`, 'invalid_type');
  checkKeys(body, CHAT_KEYS, '');
  const c = common(body, limits, limits.defaultMaxTokens, 'max_completion_tokens');
  neutral(body, 'logprobs', (v) => v === false, 'false');
  neutral(body, 'store', (v) => v === false, 'false');
  neutral(body, 'response_format', (v) => isObj(v) && v.type === 'text' && Object.keys(v).length === 1, '{"type": "text"}');
  if (body.metadata !== undefined && body.metadata !== null && !isObj(body.metadata)) throw badParam('metadata', 'metadata must be an object', 'invalid_type');
  const raw = body.messages;
  if (raw === undefined || raw === null) throw badParam('messages', 'you must provide a messages parameter', 'missing_required_parameter');
  if (!Array.isArray(raw)) throw badParam('messages', `messages must be an array, got ${typeName(raw)}`, 'invalid_type');
  if (raw.length === 0) throw badParam('messages', 'messages must contain at least one message', 'empty_array');
  const messages = raw.map((m, i): ChatMessage => {
    const p = `messages[${i}]`;
    if (!isObj(m)) throw badParam(p, `${p} must be an object, got ${typeName(m)}`, 'invalid_type');
    checkKeys(m, ['role', 'content', 'name', ...ECHO_KEYS], p);
    if (!CHAT_ROLES.includes(m.role as ChatRole)) {
      throw badParam(`${p}.role`, `${p}.role must be one of ${CHAT_ROLES.map((r) => `'${r}'`).join(', ')}, got ${JSON.stringify(m.role)}`, 'invalid_value');
    }
    const role = m.role as ChatRole;
    for (const k of ECHO_KEYS) {
      const v = m[k];
      if (v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0)) throw badParam(`${p}.${k}`, `${p}.${k} is not supported by this server`, 'unsupported_value');
    }
    if (!('content' in m) && role !== 'assistant') throw badParam(`${p}.content`, `${p}.content is required`, 'missing_required_parameter');
    const msg: ChatMessage = { role, content: content(m.content, `${p}.content`, role) };
    if (m.name !== undefined && m.name !== null) {
      if (typeof m.name !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(m.name)) throw badParam(`${p}.name`, `${p}.name must be 1-64 letters, digits, '_' or '-'`);
      msg.name = m.name;
    }
    return msg;
  });
  return { kind: 'chat', ...c, messages, audio: chatAudio(body) };
}

/** `modalities` and `audio` of a chat request, as OpenAI's audio-out chat takes them. */
function chatAudio(o: Obj): ChatAudio | null {
  const mod = o.modalities;
  let spoken = false;
  if (mod !== undefined && mod !== null) {
    if (!Array.isArray(mod) || mod.some((m) => m !== 'text' && m !== 'audio') || !mod.includes('text')) {
      throw badParam('modalities', 'modalities must be ["text"] or ["text", "audio"]');
    }
    spoken = mod.includes('audio');
  }
  const a = o.audio;
  if (!spoken) {
    if (a !== undefined && a !== null) throw badParam('audio', 'audio is only allowed when modalities includes "audio"');
    return null;
  }
  if (!isObj(a)) throw badParam('audio', 'modalities includes "audio", so audio must be an object {"voice", "format"}', 'missing_required_parameter');
  checkKeys(a, ['voice', 'format'], 'audio');
  if (typeof a.voice !== 'string' || a.voice.length === 0) throw badParam('audio.voice', 'audio.voice must be a voice name such as "alloy"', 'missing_required_parameter');
  if (a.format !== 'wav' && a.format !== 'pcm16') throw badParam('audio.format', `audio.format must be 'wav' or 'pcm16', got ${JSON.stringify(a.format)}`, 'unsupported_value');
  if (a.format === 'wav' && o.stream === true) throw badParam('audio.format', "streamed audio must be 'pcm16' (as OpenAI's); 'wav' is for stream: false", 'unsupported_value');
  return { voice: a.voice, format: a.format };
}

/** Validates a POST /v1/audio/speech body. `model` names the speech engine and is not checked. */
export function parseSpeechRequest(body: unknown): SpeechRequest {
  if (!isObj(body)) throw badParam('', `the request body must be a JSON object, got ${typeName(body)}`, 'invalid_type');
  checkKeys(body, ['model', 'input', 'voice', 'response_format', 'speed', 'stream_format', 'instructions'], '');
  const { model, input, voice } = body;
  if (typeof model !== 'string' || model.length === 0) throw badParam('model', 'you must provide a model parameter (a string)', 'missing_required_parameter');
  if (typeof input !== 'string' || input.trim().length === 0) throw badParam('input', 'input must be a non-empty string', 'missing_required_parameter');
  if (input.length > 4096) throw badParam('input', `input must be at most 4096 characters, got ${input.length}`);
  if (typeof voice !== 'string' || voice.length === 0) throw badParam('voice', 'you must provide a voice parameter such as "alloy"', 'missing_required_parameter');
  const format = body.response_format ?? 'wav';
  if (format !== 'wav' && format !== 'pcm') throw badParam('response_format', `response_format must be 'wav' or 'pcm' (no mp3/opus/aac/flac encoder here), got ${JSON.stringify(format)}`, 'unsupported_value');
  const streamFormat = body.stream_format ?? 'audio';
  if (streamFormat !== 'audio' && streamFormat !== 'sse') throw badParam('stream_format', `stream_format must be 'audio' or 'sse', got ${JSON.stringify(streamFormat)}`, 'unsupported_value');
  if (body.instructions !== undefined && body.instructions !== null && typeof body.instructions !== 'string') throw badParam('instructions', 'instructions must be a string', 'invalid_type');
  return { model, input, voice, format, streamFormat, speed: num(body, 'speed', 1, { min: 0.25, max: 4 }) };
}

const COMPLETION_KEYS = [...COMMON_KEYS, 'prompt', 'echo', 'logprobs', 'suffix', 'best_of'];

/** Validates a POST /v1/completions body. `prompt` is a string, one string in an array, or token ids. */
export function parseCompletionRequest(body: unknown, limits: Limits): CompletionRequest {
  if (!isObj(body)) throw badParam('', `the request body must be a JSON object, got ${typeName(body)}`, 'invalid_type');
  checkKeys(body, COMPLETION_KEYS, '');
  const c = common(body, limits, Math.min(16, limits.maxTokens), null);
  neutral(body, 'echo', (v) => v === false, 'false');
  neutral(body, 'logprobs', (v) => v === 0, 'null');
  neutral(body, 'suffix', () => false, 'null');
  neutral(body, 'best_of', (v) => v === 1, '1');
  let p = body.prompt;
  if (p === undefined || p === null) throw badParam('prompt', 'you must provide a prompt parameter', 'missing_required_parameter');
  if (Array.isArray(p) && p.length === 1 && (typeof p[0] === 'string' || Array.isArray(p[0]))) p = p[0];
  let prompt: string | number[];
  if (typeof p === 'string') prompt = p;
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => Number.isInteger(x) && (x as number) >= 0)) prompt = p as number[];
  else throw badParam('prompt', 'prompt must be a string, an array of one string, or a non-empty array of token ids (batches are not supported)', 'invalid_type');
  if (prompt.length === 0) throw badParam('prompt', 'prompt must not be empty');
  return { kind: 'text', ...c, prompt };
}
