/**
 * espeak-ng (GPL-3.0, compiled to wasm by the Echogarden project) behind the Synthesizer contract.
 * It is an optional dependency the user installs on purpose, so streamlm stays MIT: nothing here
 * imports it statically, and asking for speech without it is a StreamlmError saying how to install.
 *
 * espeak's `synthesize` is synchronous, so it runs in a worker thread: the token loop never waits
 * for it. Chunks (~100 ms, 22050 Hz PCM16) are posted back as espeak makes them; a cancel cannot
 * be a message (the worker is busy inside the call), so it is a shared counter that espeak's
 * per-chunk callback reads, returning 1 (espeak's "stop") once its job was cancelled.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { StreamlmError } from '../errors.js';
import type { Synthesizer, VoiceOptions } from './synth.js';

export const ESPEAK_PACKAGE = '@echogarden/espeak-ng-emscripten';
export const ESPEAK_INSTALL = `the optional espeak-ng engine is not installed (it is GPL-3.0, so streamlm leaves installing it to you): npm install ${ESPEAK_PACKAGE}`;

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

/** Where the optional package is, looked up from the user's directory first, then from streamlm's. */
export function findEspeak(): string | null {
  for (const from of [join(process.cwd(), 'package.json'), import.meta.url]) {
    try { return createRequire(from).resolve(ESPEAK_PACKAGE); } catch { /* not there; try the next */ }
  }
  return null;
}

/** Text synthesized at load so the worker's wasm is optimized before the first reply (about 9 s of audio). */
const WARM_UP = 'It was a dark and stormy night; the rain fell in torrents, except at occasional intervals, when it was checked by a violent gust of wind which swept up the streets.';

const WORKER = `'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const cancelled = new Int32Array(workerData.cancel);
(async () => {
  const { default: init } = await import(workerData.url);
  const m = await init();
  const w = new m.eSpeakNGWorker();
  // V8 runs wasm first as baseline code and compiles hot functions optimized in the background:
  // espeak's first ~15 s of audio cost 10-20x the CPU of later audio (measured in docs/speech.md),
  // enough to starve playback of the first replies. Synthesize a paragraph twice, unheard, before
  // reporting ready, so every reply runs optimized code.
  w.set_voice('en-us');
  for (let i = 0; i < 2; i++) w.synthesize(${JSON.stringify(WARM_UP)}, () => 0);
  let voice = 'en-us';
  parentPort.on('message', (job) => {
    if (job.voice !== voice) {
      if (w.set_voice(job.voice) !== 0) { parentPort.postMessage({ id: job.id, error: 'unknown voice ' + job.voice }); return; }
      voice = job.voice;
    }
    w.set_rate(job.wpm);
    try {
      w.synthesize(job.text, (pcm) => {
        if (Atomics.load(cancelled, 0) >= job.id) return 1;
        const copy = pcm.slice();
        parentPort.postMessage({ id: job.id, pcm: copy }, [copy.buffer]);
        return 0;
      });
      parentPort.postMessage({ id: job.id, done: true });
    } catch (e) {
      parentPort.postMessage({ id: job.id, error: String(e && e.message || e) });
    }
  });
  parentPort.postMessage({ ready: true, rate: w.samplerate, voices: [...new Set(w.list_voices().flatMap((v) => [v.identifier.split('/').pop(), ...v.languages.map((l) => l.name)]).map((n) => n.toLowerCase()))] });
})().catch((e) => parentPort.postMessage({ fatal: String(e && e.message || e) }));
`;

interface Job { onChunk: (pcm: Int16Array) => void; done: () => void; fail: (e: Error) => void }
type Reply = { ready: true; rate: number; voices: string[] } | { fatal: string } | { id: number; pcm?: Int16Array; done?: true; error?: string };

class EspeakSynthesizer implements Synthesizer {
  readonly name = 'espeak-ng';
  private nextId = 1;
  private readonly jobs = new Map<number, Job>();

  constructor(private readonly worker: Worker, private readonly cancel: Int32Array, readonly sampleRate: number, private readonly known: string[]) {
    worker.on('message', (r: Reply) => {
      if (!('id' in r)) return;
      const job = this.jobs.get(r.id);
      if (!job) return;
      if (r.pcm) job.onChunk(r.pcm);
      else if (r.error !== undefined) { this.jobs.delete(r.id); job.fail(new StreamlmError(r.error, { field: 'voice' })); }
      else if (r.done) { this.jobs.delete(r.id); job.done(); }
    });
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
    const run = new Promise<void>((resolve, reject) => {
      if (signal?.aborted) { resolve(); return; }
      const stop = (): void => {
        Atomics.store(this.cancel, 0, Math.max(Atomics.load(this.cancel, 0), id));
      };
      signal?.addEventListener('abort', stop, { once: true });
      const end = (): void => { signal?.removeEventListener('abort', stop); };
      this.jobs.set(id, {
        onChunk: (pcm) => { if (!signal?.aborted) onChunk(pcm); },
        done: () => { end(); resolve(); },
        fail: (e) => { end(); reject(e); },
      });
      // espeak's rate runs 80-450 words per minute; speed 0.25-4 is clamped into it.
      this.worker.postMessage({ id, text, voice, wpm: Math.round(Math.min(450, Math.max(80, BASE_WPM * speed))) });
    });
    // The worker runs jobs one at a time in the order sent, so phrases come out in order.
    await run;
  }

  async close(): Promise<void> {
    Atomics.store(this.cancel, 0, this.nextId);
    for (const j of this.jobs.values()) j.done();
    this.jobs.clear();
    await this.worker.terminate();
  }
}

/**
 * Starts espeak-ng in a worker (about 1 s: it unpacks 24 MB of voice data). Throws a
 * StreamlmError with the install command when the optional package is missing (`find` locates
 * it; tests pass one that finds nothing).
 */
export async function loadEspeak(find: () => string | null = findEspeak): Promise<Synthesizer> {
  const path = find();
  if (path === null) throw new StreamlmError(ESPEAK_INSTALL, { field: 'speech' });
  const cancel = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(WORKER, { eval: true, workerData: { url: pathToFileURL(path).href, cancel: cancel.buffer } });
  worker.unref();
  const ready = await new Promise<{ rate: number; voices: string[] }>((resolve, reject) => {
    const onMsg = (r: Reply): void => {
      if ('ready' in r) { worker.off('message', onMsg); resolve(r); }
      else if ('fatal' in r) reject(new StreamlmError(`espeak-ng failed to start: ${r.fatal}`, { field: 'speech' }));
    };
    worker.on('message', onMsg);
    worker.once('error', (e) => reject(new StreamlmError(`espeak-ng failed to start: ${e.message}`, { field: 'speech' })));
  });
  return new EspeakSynthesizer(worker, cancel, ready.rate, ready.voices);
}
