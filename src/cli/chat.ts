import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { ChatMessage } from '../chat/template.js';
import { parsePolicy } from '../cache/policy.js';
import { DEFAULT_CHAT_CACHE } from '../defaults.js';
import { Engine, type TurnResult } from '../server/engine.js';
import type { CacheStats } from '../session.js';
import { loadEspeak } from '../speech/espeak.js';
import { SpeechStream } from '../speech/stream.js';
import { CHAT_CHUNKER } from '../speech/chunker.js';
import type { Synthesizer } from '../speech/synth.js';
import { wavFile } from '../speech/wav.js';
import { num, parseFlags, str } from './args.js';
import { SPECULATE_FLAGS, SPECULATE_HELP, speculateFlags, speculationSummary } from './speculate.js';
import { MODEL_FLAGS, MODEL_HELP, modelFlags, loadCliModel } from './common.js';

const HELP = `usage: streamlm chat [--model DIR] [--system TEXT] [--cache ${DEFAULT_CHAT_CACHE}] [--evict-chunk C] [--max-tokens 256]
                    [--temperature T] [--top-k K] [--top-p P] [--seed S] [--threads N] [--dtype auto|f32|q8_0|q6_K|q5_K|q4_K|q4_0]
                    [--speculate MODE] [--draft K] [--speak] [--voice alloy]
A terminal chat on one StreamingLLM session: each turn appends only the new message to the kept
cache, so the conversation can run forever in bounded memory. After each reply a status line on
stderr shows the cache: sinks | window | evicted. Commands: /reset (new conversation), /exit.
Ctrl-C stops a reply; at the prompt it exits. --speak speaks each reply as it is generated
(espeak-ng, an optional package: npm install @echogarden/espeak-ng-emscripten) into a WAV file
and prints its path (no Node audio output on npm plays sound without a native build).
${SPECULATE_HELP}
${MODEL_HELP}`;

export function statusLine(s: CacheStats, sinkCap: number, windowCap: number, r: TurnResult | null): string {
  const rate = r && r.completionTokens > 1 && r.ttftMs !== null ? ` | ${((r.completionTokens - 1) / ((r.durationMs - r.ttftMs) / 1000)).toFixed(1)} tok/s` : '';
  return `[cache ${s.policy} | sinks ${s.sinks}/${sinkCap} | window ${s.length - s.sinks}/${windowCap} | evicted ${s.evicted} | seen ${s.seen} | KV ${(s.bytes / 1048576).toFixed(1)} MB${rate}]`;
}

export async function runChat(argv: string[]): Promise<void> {
  const { flags } = parseFlags(argv, {
    ...MODEL_FLAGS, system: { type: 'string' }, cache: { type: 'string' }, 'max-tokens': { type: 'string' }, temperature: { type: 'string' },
    'top-k': { type: 'string' }, 'top-p': { type: 'string' }, seed: { type: 'string' }, 'evict-chunk': { type: 'string' },
    ...SPECULATE_FLAGS,
    speak: { type: 'boolean' }, voice: { type: 'string' },
  }, 'chat');
  if (flags.help) { console.log(HELP); return; }
  const m = modelFlags(flags);
  const maxTokens = num(flags, 'max-tokens', { int: true, min: 1 }) ?? 256;
  const sampler = {
    temperature: num(flags, 'temperature', { min: 0 }) ?? 0.7,
    topK: num(flags, 'top-k', { int: true, min: 0 }),
    topP: num(flags, 'top-p', { min: 0, max: 1 }),
    seed: num(flags, 'seed', { int: true }),
  };
  const system = str(flags, 'system');
  const cache = str(flags, 'cache') ?? DEFAULT_CHAT_CACHE;
  const evictChunk = num(flags, 'evict-chunk', { int: true, min: 1 });
  parsePolicy(cache, { evictChunk });
  const speculate = speculateFlags(flags);
  const voice = str(flags, 'voice');
  // The synthesizer loads (or fails with its install command) before the model, not after a turn.
  const synth = flags.speak === true ? await loadEspeak() : null;
  synth?.checkVoice({ voice });
  const wavDir = synth ? mkdtempSync(join(tmpdir(), 'streamlm-speech-')) : '';
  let replies = 0;
  const model = await loadCliModel(m);
  try {
    const engine = new Engine(model, { cache, evictChunk, maxSessions: 1, speculate });
    const sinkCap = engine.cachePolicy.sinks;
    const windowCap = (engine.cachePolicy.keep ?? 0) - sinkCap;
    const tty = process.stdin.isTTY === true;
    const rl = createInterface({ input: process.stdin, output: tty ? process.stdout : undefined, terminal: tty });
    let conversation = 0;
    let first = true;
    let ctrl: AbortController | null = null;
    rl.on('SIGINT', () => { if (ctrl) ctrl.abort(); else rl.close(); });
    console.error(`[streamlm] chat with ${model.dir} | cache ${engine.policy} | chat template: ${engine.template.builtin ? 'the model\'s' : 'plain fallback'} | /reset, /exit`);
    const prompt = (): void => { if (tty) rl.prompt(); };
    prompt();
    for await (const raw of rl) {
      const line = raw.trim();
      if (line === '/exit' || line === '/quit') break;
      if (line === '/reset') { conversation++; first = true; console.error('[streamlm] new conversation'); prompt(); continue; }
      if (!line) { prompt(); continue; }
      // readline decodes stdin as UTF-8 and turns bad bytes into U+FFFD: refuse the line rather than
      // send the model text the user did not write.
      if (line.includes('\uFFFD')) { console.error('streamlm: stdin: the line is not valid UTF-8 (or holds U+FFFD); skipped'); prompt(); continue; }
      const messages: ChatMessage[] = first && system ? [{ role: 'system', content: system }] : [];
      messages.push({ role: 'user', content: line });
      first = false;
      ctrl = new AbortController();
      const turn = await engine.start({ session: `chat-${conversation}`, input: { kind: 'chat', messages }, maxTokens, sampler, stop: [], signal: ctrl.signal });
      const spoken = synth ? speakReply(synth, voice) : null;
      for await (const t of turn) { process.stdout.write(t.text); spoken?.push(t.text); }
      const r = await turn.result;
      ctrl = null;
      process.stdout.write(r.finishReason === 'abort' ? ' [stopped]\n' : '\n');
      if (spoken) console.error(`[streamlm] spoken reply: ${await spoken.save(join(wavDir, `reply-${++replies}.wav`))}`);
      console.error(statusLine(r.cache, sinkCap, windowCap, r) + speculationSummary(r.speculation));
      prompt();
    }
    rl.close();
    engine.close();
  } finally {
    await synth?.close();
    await model.close();
  }
}

/** A reply spoken while it is generated; `save` waits for the last phrase and writes the WAV. */
function speakReply(synth: Synthesizer, voice: string | undefined): { push(text: string): void; save(path: string): Promise<string> } {
  const stream = new SpeechStream(synth, { voice, ...CHAT_CHUNKER });
  const chunks: Int16Array[] = [];
  const pump = (async () => { for await (const c of stream) chunks.push(c.pcm); })();
  pump.catch(() => {});
  return {
    push: (text) => stream.push(text),
    save: async (path) => {
      stream.end();
      await pump;
      // Written beside, then renamed: a reader never sees half a WAV.
      writeFileSync(`${path}.part`, wavFile(synth.sampleRate, chunks));
      renameSync(`${path}.part`, path);
      return path;
    },
  };
}
