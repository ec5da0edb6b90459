import { createHash } from 'node:crypto';
import { StreamlmError } from '../errors.js';
import type { ChatMessage, ChatTemplate } from './template.js';

/** Messages kept for rendering besides the first: enough context for any template's joins. */
const TAIL = 6;

/** A transcript's state as JSON (see Transcript.state). */
export interface TranscriptState { tail: ChatMessage[]; reply: string | null; count: number; digest: string }

/** What one turn appends to the cache. */
export interface TurnText {
  /** Text to tokenize and append. */
  text: string;
  /** True for the first text of the conversation (the tokenizer may add BOS). */
  first: boolean;
  /** `continued`: the request repeated the conversation so far and only its tail was new. */
  mode: 'continued' | 'appended';
  /** Messages appended this turn. */
  newMessages: number;
}

/**
 * The text side of one conversation whose tokens live in a StreamingLLM cache.
 *
 * The cache holds the rendered conversation, so a new turn must append exactly the text the chat
 * template would add. We render the template twice over a short tail of the conversation (its
 * first message and the last few) — with and without the new messages — and append the
 * difference, minus the assistant reply that is already in the cache as generated tokens. Memory
 * stays bounded however long the conversation runs.
 *
 * A request may repeat the whole conversation (as OpenAI clients do) or send only new messages.
 * A fingerprint of the messages seen so far (roles and contents; assistant contents are not
 * compared, since the cache holds what the model generated) tells the two apart.
 */
export class Transcript {
  /** Messages rendered so far (truncated), ending with the last prompt's messages. */
  private tail: ChatMessage[] = [];
  /** The assistant reply generated after `tail`, or null before the first turn's reply. */
  private reply: string | null = null;
  private count = 0;
  private digest = '';

  constructor(private readonly template: ChatTemplate) {}

  /** Whether any text has been appended. */
  get started(): boolean { return this.count > 0; }

  /** Works out the text a request with `messages` appends, and records the messages. */
  next(messages: readonly ChatMessage[]): TurnText {
    let fresh: readonly ChatMessage[] = messages;
    let mode: TurnText['mode'] = 'appended';
    if (this.count > 0 && messages.length > this.count && fingerprint(messages.slice(0, this.count)) === this.digest) {
      fresh = messages.slice(this.count);
      mode = 'continued';
    }
    const first = this.count === 0;
    let text: string | null = null;
    if (first) {
      text = this.template.render(fresh, true);
    } else if (this.tail.length > 0) {
      const past = this.reply === null ? this.tail : [...this.tail, { role: 'assistant' as const, content: this.reply }];
      const base = this.template.render(this.tail, true);
      const full = this.template.render([...past, ...fresh], true);
      if (full.startsWith(base)) text = this.reply === null ? full.slice(base.length) : stripReply(full.slice(base.length), this.reply);
    }
    if (text === null) {
      // No usable history, or a template that does not render a prefix of the conversation as a
      // prefix: render the new messages alone, without what it puts before the first message (BOS).
      text = this.template.render(fresh, true);
      const lead = this.template.render([], false);
      if (lead && text.startsWith(lead)) text = text.slice(lead.length);
    }
    this.remember(fresh);
    this.tail = truncate(this.reply === null ? [...this.tail, ...fresh] : [...this.tail, { role: 'assistant', content: this.reply }, ...fresh]);
    this.reply = null;
    return { text, first, mode, newMessages: fresh.length };
  }

  /** Records the assistant reply that followed the last `next` (as generated, stop strings excluded). */
  commitReply(text: string): void {
    this.reply = text;
    this.remember([{ role: 'assistant', content: text }]);
  }

  /** Raw text went into the cache: the next turn renders its messages alone. */
  detach(): void {
    this.tail = [];
    this.reply = null;
  }

  /** Everything `next` depends on, as JSON, for a saved conversation. */
  state(): TranscriptState {
    return { tail: this.tail.map((m) => ({ ...m })), reply: this.reply, count: this.count, digest: this.digest };
  }

  /** A transcript from `state()`, checked field by field (it may come from a file). */
  static fromState(template: ChatTemplate, st: unknown): Transcript {
    const s = st as Partial<TranscriptState> | null;
    const ok = s !== null && typeof s === 'object' && Array.isArray(s.tail) && s.tail.every((m) => m && typeof m.role === 'string' && typeof m.content === 'string')
      && (s.reply === null || typeof s.reply === 'string') && Number.isInteger(s.count) && typeof s.digest === 'string';
    if (!ok) throw new StreamlmError('the saved conversation state is not valid', { field: 'snapshot' });
    const t = new Transcript(template);
    t.tail = s.tail!.map((m) => ({ role: m.role, content: m.content, ...(typeof m.name === 'string' ? { name: m.name } : {}) }));
    t.reply = s.reply!;
    t.count = s.count!;
    t.digest = s.digest!;
    return t;
  }

  private remember(msgs: readonly ChatMessage[]): void {
    this.digest = fingerprint(msgs, this.digest);
    this.count += msgs.length;
  }
}

/** Chained hash over (role, content) with assistant contents left out. */
export function fingerprint(msgs: readonly ChatMessage[], from = ''): string {
  let d = from;
  for (const m of msgs) d = createHash('sha256').update(d).update('\0').update(m.role).update('\0').update(m.role === 'assistant' ? '' : m.content).digest('hex');
  return d;
}

/** Removes the reply text that starts `delta` (templates may add space before it or trim it). */
function stripReply(delta: string, reply: string): string {
  if (delta.startsWith(reply)) return delta.slice(reply.length);
  const rest = delta.trimStart();
  for (const r of [reply.trimStart(), reply.trim()]) if (r && rest.startsWith(r)) return rest.slice(r.length);
  let i = 0;
  while (i < delta.length && i < reply.length && delta[i] === reply[i]) i++;
  return delta.slice(i);
}

/** Keeps the first message and the last TAIL or so, dropping an even count to keep role parity. */
function truncate(msgs: ChatMessage[]): ChatMessage[] {
  if (msgs.length <= TAIL + 1) return msgs;
  let drop = msgs.length - 1 - TAIL;
  if (drop % 2) drop--;
  return drop > 0 ? [msgs[0], ...msgs.slice(1 + drop)] : msgs;
}
