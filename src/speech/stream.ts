/**
 * A spoken reply: text goes in as it is generated, audio chunks come out, each tagged with the
 * phrase (and its span in the reply) it belongs to. The chunker decides when a phrase is ready;
 * every phrase is handed to the synthesizer at once (it runs them in order off this thread), so
 * the next phrase is already queued when the previous one's audio ends.
 */
import { PhraseChunker, type ChunkerOptions, type Phrase } from './chunker.js';
import type { Synthesizer, VoiceOptions } from './synth.js';

/** One block of audio and the phrase it speaks. */
export interface SpokenChunk {
  /** Mono 16-bit PCM at `sampleRate`. */
  pcm: Int16Array;
  sampleRate: number;
  phrase: Phrase;
}

export interface SpeechStreamOptions extends VoiceOptions, ChunkerOptions {
  /** Called when a phrase is cut (before its audio), e.g. to time the chunker. */
  onPhrase?: (p: Phrase) => void;
}

export class SpeechStream implements AsyncIterable<SpokenChunk> {
  private readonly chunker: PhraseChunker;
  private readonly ac = new AbortController();
  private readonly queue: SpokenChunk[] = [];
  private wake: (() => void) | null = null;
  private running = 0;
  private ended = false;
  private error: Error | null = null;

  constructor(private readonly synth: Synthesizer, private readonly opts: SpeechStreamOptions = {}) {
    synth.checkVoice(opts);
    this.chunker = new PhraseChunker(opts);
  }

  /** Adds reply text (a token's worth or more). */
  push(text: string): void {
    if (this.ended) return;
    for (const p of this.chunker.push(text)) this.say(p);
  }

  /** The reply is complete: the rest of the text is spoken and the stream then ends. */
  end(): void {
    if (this.ended) return;
    for (const p of this.chunker.flush()) this.say(p);
    this.ended = true;
    this.notify();
  }

  /** Stops synthesis now; the iterator ends after the chunks already made. */
  cancel(): void {
    this.ac.abort();
    this.ended = true;
    this.notify();
  }

  private say(p: Phrase): void {
    this.opts.onPhrase?.(p);
    this.running++;
    this.synth.synthesize(p.text, this.opts, (pcm) => {
      this.queue.push({ pcm, sampleRate: this.synth.sampleRate, phrase: p });
      this.notify();
    }, this.ac.signal).catch((e: unknown) => { this.error ??= e instanceof Error ? e : new Error(String(e)); }).finally(() => { this.running--; this.notify(); });
  }

  private notify(): void { const w = this.wake; this.wake = null; w?.(); }

  async *[Symbol.asyncIterator](): AsyncIterator<SpokenChunk> {
    for (;;) {
      while (this.queue.length > 0) yield this.queue.shift() as SpokenChunk;
      if (this.error !== null) throw this.error;
      if (this.ended && this.running === 0) return;
      if (this.ac.signal.aborted && this.queue.length === 0) return;
      await new Promise<void>((resolve) => { this.wake = resolve; });
    }
  }
}
