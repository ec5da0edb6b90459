/**
 * The server's audio: POST /v1/audio/speech, and the spoken half of a chat reply with
 * `modalities: ["text", "audio"]`, both as OpenAI's API shapes them. The synthesizer is loaded on
 * the first audio request (so a server that never speaks never needs the optional engine), and a
 * failed load is a 400 with the install command that is retried on the next request.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { loadEspeak } from '../speech/espeak.js';
import { CHAT_CHUNKER, type ChunkerOptions } from '../speech/chunker.js';
import { SpeechStream } from '../speech/stream.js';
import type { Synthesizer } from '../speech/synth.js';
import { pcmBytes, wavFile, wavHeader } from '../speech/wav.js';
import type { ChatAudio, SpeechRequest } from './validate.js';

/** Loads the synthesizer once, on first use; a failure is not cached (the user may install it). */
export class SpeechService {
  private loading: Promise<Synthesizer> | null = null;

  constructor(private readonly load: () => Promise<Synthesizer> = loadEspeak) {}

  get(): Promise<Synthesizer> {
    this.loading ??= this.load().catch((e: unknown) => { this.loading = null; throw e; });
    return this.loading;
  }

  async close(): Promise<void> {
    const s = this.loading;
    this.loading = null;
    if (s) await s.then((x) => x.close(), () => {});
  }
}

const b64 = (pcm: Int16Array): string => Buffer.from(pcmBytes(pcm)).toString('base64');

/**
 * Streams /v1/audio/speech as it is synthesized: a WAV (header with unknown length, as OpenAI's
 * streamed WAV) or raw PCM16 body with the sample count in a trailer, or SSE events
 * `speech.audio.delta` / `speech.audio.done`.
 */
export async function speak(r: SpeechRequest, synth: Synthesizer, res: ServerResponse): Promise<void> {
  const stream = new SpeechStream(synth, { voice: r.voice, speed: r.speed });
  res.on('close', () => { if (!res.writableFinished) stream.cancel(); });
  stream.push(r.input);
  stream.end();
  const rate = synth.sampleRate;
  const meta = { 'X-Sample-Rate': String(rate), 'X-Speech-Engine': synth.name, 'Cache-Control': 'no-store' };
  let samples = 0;
  const t0 = performance.now();
  if (r.streamFormat === 'sse') {
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'X-Accel-Buffering': 'no', ...meta });
    let first = r.format === 'wav';
    for await (const c of stream) {
      const bytes = first ? Buffer.concat([wavHeader(rate), pcmBytes(c.pcm)]) : Buffer.from(pcmBytes(c.pcm));
      first = false;
      samples += c.pcm.length;
      res.write(`data: ${JSON.stringify({ type: 'speech.audio.delta', audio: bytes.toString('base64') })}\n\n`);
    }
    const tokens = r.input.length;
    res.end(`data: ${JSON.stringify({ type: 'speech.audio.done', samples, duration_s: samples / rate, usage: { input_tokens: tokens, output_tokens: samples, total_tokens: tokens + samples } })}\n\n`);
    return;
  }
  res.writeHead(200, { 'Content-Type': r.format === 'wav' ? 'audio/wav' : 'audio/pcm', Trailer: 'X-Audio-Samples, X-Audio-Duration, X-Synthesis-Ms', ...meta });
  if (r.format === 'wav') res.write(wavHeader(rate));
  for await (const c of stream) {
    samples += c.pcm.length;
    res.write(pcmBytes(c.pcm));
  }
  res.addTrailers({ 'X-Audio-Samples': String(samples), 'X-Audio-Duration': (samples / rate).toFixed(4), 'X-Synthesis-Ms': (performance.now() - t0).toFixed(1) });
  res.end();
}

/** OpenAI's `audio` object of a chat reply: an id, and for how long it may be referred to. */
function audioId(): { id: string; expires_at: number } {
  return { id: `audio_${randomBytes(12).toString('hex')}`, expires_at: Math.floor(Date.now() / 1000) + 3600 };
}


/**
 * The spoken half of a streamed chat reply. Text goes in token by token (`say`), each becoming a
 * `delta.audio.transcript`; audio chunks go out as `delta.audio.data` (base64 PCM16) as soon as
 * they are made, interleaved with the text, as OpenAI's stream does.
 */
export class ChatVoice {
  readonly id = audioId();
  private readonly stream: SpeechStream;
  private readonly pump: Promise<void>;

  constructor(synth: Synthesizer, audio: ChatAudio, private readonly send: (delta: Record<string, unknown>) => void, chunker: ChunkerOptions = CHAT_CHUNKER) {
    const stream = new SpeechStream(synth, { voice: audio.voice, ...chunker });
    this.stream = stream;
    this.pump = (async () => {
      for await (const c of stream) send({ audio: { id: this.id.id, data: b64(c.pcm) } });
    })();
    // Awaited in finish(); marked handled so a reply that fails first leaves no stray rejection.
    this.pump.catch(() => {});
  }

  say(text: string): void {
    this.send({ audio: { id: this.id.id, transcript: text } });
    this.stream.push(text);
  }

  /** The reply ended: speaks the rest, then sends the closing audio delta. */
  async finish(): Promise<void> {
    this.stream.end();
    await this.pump;
    this.send({ audio: { id: this.id.id, expires_at: this.id.expires_at } });
  }

  cancel(): void { this.stream.cancel(); }
}

/** The `message.audio` of a non-streamed chat reply: the whole reply spoken, base64. */
export async function chatAudioMessage(synth: Synthesizer, audio: ChatAudio, text: string): Promise<Record<string, unknown>> {
  const stream = new SpeechStream(synth, { voice: audio.voice });
  stream.push(text);
  stream.end();
  const chunks: Int16Array[] = [];
  for await (const c of stream) chunks.push(c.pcm);
  const data = audio.format === 'wav' ? Buffer.from(wavFile(synth.sampleRate, chunks)) : Buffer.concat(chunks.map((c) => pcmBytes(c)));
  const { id, expires_at } = audioId();
  return { id, data: data.toString('base64'), expires_at, transcript: text };
}
