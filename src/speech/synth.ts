/**
 * The synthesizer contract: one phrase of text in, PCM chunks out as they are made. Everything
 * above it (the phrase stream, the server's audio routes, the CLI) sees only this interface, so a
 * neural speech-token model run by this engine (docs/speech.md) can replace espeak-ng here.
 */

/** Options of one synthesis call. */
export interface VoiceOptions {
  /** A voice this synthesizer knows (see `voices`); default its first. */
  voice?: string;
  /** Speaking rate relative to normal, 0.25-4 (default 1). */
  speed?: number;
}

export interface Synthesizer {
  /** What the engine is, for logs and headers (`espeak-ng`). */
  readonly name: string;
  /** Samples per second of every chunk (mono). */
  readonly sampleRate: number;
  /** Voice names accepted by `VoiceOptions.voice`. */
  voices(): readonly string[];
  /** Throws a StreamlmError naming `voice` or `speed` unless this synthesizer can use `opts`. */
  checkVoice(opts: VoiceOptions): void;
  /**
   * Synthesizes `text`, calling `onChunk` with each block of mono 16-bit PCM as soon as it is made
   * (off the caller's thread). Resolves when the phrase is done or `signal` aborted it.
   */
  synthesize(text: string, opts: VoiceOptions, onChunk: (pcm: Int16Array) => void, signal?: AbortSignal): Promise<void>;
  /** Frees the synthesizer's worker. */
  close(): Promise<void>;
}
