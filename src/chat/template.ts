import { Template } from '@huggingface/jinja';
import { StreamlmError } from '../errors.js';
import type { TextTokenizer } from '../tokenizer.js';

export type ChatRole = 'system' | 'developer' | 'user' | 'assistant';
export const CHAT_ROLES: readonly ChatRole[] = ['system', 'developer', 'user', 'assistant'];

export interface ChatMessage {
  role: ChatRole;
  content: string;
  /** Optional participant name, passed to the template as `message.name`. */
  name?: string;
}

/**
 * Used when the model has no chat template (no `chat_template` in tokenizer_config.json and no
 * chat_template.jinja): a play script, which base models trained on prose continue well. Each
 * message is `Role: content` (role capitalized, content trimmed) and a blank line; the generation
 * prompt is `Assistant:`. Generation also stops at `\nUser:`, where the model starts the next turn.
 */
export const FALLBACK_TEMPLATE =
  "{% for m in messages %}{{ m.role | capitalize }}: {{ m.content | trim }}\n\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}";
export const FALLBACK_STOP = ['\nUser:'];

/** A chat template (the model's own, or the plain fallback) rendered with @huggingface/jinja. */
export class ChatTemplate {
  /** True when the template came from the model directory. */
  readonly builtin: boolean;
  /** Stop strings implied by the template (the fallback's next header). */
  readonly stop: readonly string[];
  readonly source: string;
  private readonly tpl: Template;
  private readonly bos: string;
  private readonly eos: string;

  constructor(tokenizer: TextTokenizer | null, opts: { template?: string } = {}) {
    const own = opts.template ?? tokenizer?.chatTemplate ?? null;
    this.builtin = own !== null;
    this.source = own ?? FALLBACK_TEMPLATE;
    this.stop = own === null ? FALLBACK_STOP : [];
    try {
      this.tpl = new Template(this.source);
    } catch (e) {
      throw new StreamlmError(`cannot parse the chat template: ${(e as Error).message}`, { field: 'chat_template' });
    }
    const text = (id: number | null | undefined): string => (tokenizer && id !== null && id !== undefined ? tokenizer.decode([id], { skipSpecialTokens: false }) : '');
    this.bos = text(tokenizer?.bosTokenId);
    this.eos = text(tokenizer?.eosTokenIds[0]);
  }

  /** Renders `messages`; with `addGenerationPrompt` the text ends where the assistant's reply begins. */
  render(messages: readonly ChatMessage[], addGenerationPrompt: boolean): string {
    try {
      return this.tpl.render({
        messages: messages.map((m) => (m.name === undefined ? { role: m.role, content: m.content } : { ...m })),
        add_generation_prompt: addGenerationPrompt,
        bos_token: this.bos,
        eos_token: this.eos,
      });
    } catch (e) {
      throw new StreamlmError(`the chat template rejected the messages: ${(e as Error).message}`, { field: 'messages' });
    }
  }
}
