/**
 * The caller's side of an espeak-ng worker, shared by Node (worker_threads, src/speech/espeak.ts)
 * and pages (Web Workers, src/browser/espeak-web.ts): voice names, one job per phrase, chunks routed
 * back by job id, and cancel through a shared counter (the worker is busy inside espeak's synchronous
 * call, so a cancel cannot be a message: espeak's per-chunk callback reads the counter instead).
 * No platform imports: each side starts its worker and feeds its messages to `reply`.
 */
import { StreamlmError } from '../errors.js';
import type { Synthesizer, VoiceOptions } from './synth.js';

/**
 * OpenAI's voice names mapped onto espeak-ng voice variants, so clients that send `alloy` work.
 * espeak's own names (`en-us`, `en-us+f3`, `fr`) are accepted too.
 */
const OPENAI_VOICES: Record<string, string> = {
  alloy: 'en-us', ash: 'en-us+m3', ballad: 'en-us+m2', coral: 'en-us+f2', echo: 'en-us+m1', fable: 'en-us+m4',
  onyx: 'en-us+m7', nova: 'en-us+f3', sage: 'en-us+f4', shimmer: 'en-us+f5', verse: 'en-us+m5', marin: 'en-us+f1', cedar: 'en-us+m6',
};

/** espeak's normal rate, words per minute; OpenAI's speed scales it. */
const BASE_WPM = 175;

/** What an espeak worker posts back: ready (or fatal) once, then chunks, done or error per job. */
export type EspeakReply = { ready: true; rate: number; voices: string[] } | { fatal: string } | { id: number; pcm?: Int16Array; done?: true; error?: string };

/** The worker as the client needs it. */
export interface EspeakPort { post(msg: { id: number; text: string; voice: string; wpm: number }): void; terminate(): unknown }

interface Job { onChunk: (pcm: Int16Array) => void; done: () => void; fail: (e: Error) => void }

export class EspeakClient implements Synthesizer {
  readonly name = 'espeak-ng';
  private nextId = 1;
  private readonly jobs = new Map<number, Job>();

  constructor(private readonly port: EspeakPort, private readonly cancel: Int32Array, readonly sampleRate: number, private readonly known: string[]) {}

  /** Routes one message of the worker to its job. */
  reply(r: EspeakReply): void {
    if (!('id' in r)) return;
    const job = this.jobs.get(r.id);
    if (!job) return;
    if (r.pcm) job.onChunk(r.pcm);
    else if (r.error !== undefined) { this.jobs.delete(r.id); job.fail(new StreamlmError(r.error, { field: 'voice' })); }
    else if (r.done) { this.jobs.delete(r.id); job.done(); }
  }

  voices(): readonly string[] { return [...Object.keys(OPENAI_VOICES), ...this.known]; }

  /** The espeak voice for a name, or a StreamlmError naming the voice field. */
  voiceFor(name: string | undefined): string {
    if (name === undefined) return OPENAI_VOICES.alloy;
    const v = OPENAI_VOICES[name.toLowerCase()] ?? name;
    if (!this.known.includes(v.split('+')[0].toLowerCase())) {
      throw new StreamlmError(`unknown voice '${name}'; use one of ${Object.keys(OPENAI_VOICES).join(', ')} or an espeak-ng voice such as en-us, en-us+f3, fr`, { field: 'voice' });
    }
    return v;
  }

  checkVoice(opts: VoiceOptions): void {
    this.voiceFor(opts.voice);
    const speed = opts.speed ?? 1;
    if (!(speed >= 0.25 && speed <= 4)) throw new StreamlmError(`speed must be in [0.25, 4], got ${speed}`, { field: 'speed' });
  }

  async synthesize(text: string, opts: VoiceOptions, onChunk: (pcm: Int16Array) => void, signal?: AbortSignal): Promise<void> {
    this.checkVoice(opts);
    const voice = this.voiceFor(opts.voice);
    const speed = opts.speed ?? 1;
    const id = this.nextId++;
    // The worker runs jobs one at a time in the order sent, so phrases come out in order.
    await new Promise<void>((resolve, reject) => {
      if (signal?.aborted) { resolve(); return; }
      const stop = (): void => { Atomics.store(this.cancel, 0, Math.max(Atomics.load(this.cancel, 0), id)); };
      signal?.addEventListener('abort', stop, { once: true });
      const end = (): void => { signal?.removeEventListener('abort', stop); };
      this.jobs.set(id, {
        onChunk: (pcm) => { if (!signal?.aborted) onChunk(pcm); },
        done: () => { end(); resolve(); },
        fail: (e) => { end(); reject(e); },
      });
      // espeak's rate runs 80-450 words per minute; speed 0.25-4 is clamped into it.
      this.port.post({ id, text, voice, wpm: Math.round(Math.min(450, Math.max(80, BASE_WPM * speed))) });
    });
  }

  async close(): Promise<void> {
    Atomics.store(this.cancel, 0, this.nextId);
    for (const j of this.jobs.values()) j.done();
    this.jobs.clear();
    await this.port.terminate();
  }
}
