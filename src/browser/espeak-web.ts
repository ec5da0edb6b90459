/**
 * espeak-ng (the optional, GPL-3.0 `@echogarden/espeak-ng-emscripten`) behind the Synthesizer
 * contract of src/speech/synth.ts, in a page. Its `synthesize` is synchronous, so it runs in a Web
 * Worker of its own, started from the engine worker only when speech is switched on: the token
 * loop never waits for it. The bundle does not contain espeak: `scripts/build-browser.mjs` copies
 * `espeak-ng.js` and its 24 MB voice data beside the bundle when the package is installed, and the
 * worker imports it from there. A cancel cannot be a message (the worker is busy inside the call),
 * so it is a counter in shared memory that espeak's per-chunk callback reads (when the page is not
 * cross-origin isolated there is no shared memory, and a cancel takes effect at the next phrase).
 */
import { StreamlmError } from '../errors.js';
import type { Synthesizer, VoiceOptions } from '../speech/synth.js';

/** What to install when the page has no espeak-ng beside its bundle. */
export const WEB_ESPEAK_INSTALL = 'speech needs the optional espeak-ng engine (GPL-3.0, so streamlm leaves installing it to you): npm install @echogarden/espeak-ng-emscripten, then npm run build:browser';

/** espeak's normal rate, words per minute; `speed` scales it into espeak's 80-450. */
const BASE_WPM = 175;

const WORKER = `
let cancelled = null, w = null, voice = '';
self.onmessage = async (e) => {
  const job = e.data;
  if (job.init) {
    cancelled = new Int32Array(job.cancel);
    try {
      const { default: init } = await import(job.url);
      const m = await init();
      w = new m.eSpeakNGWorker();
      const voices = [...new Set(w.list_voices().flatMap((v) => [v.identifier.split('/').pop(), ...v.languages.map((l) => l.name)]).map((n) => n.toLowerCase()))];
      postMessage({ ready: true, rate: w.samplerate, voices });
    } catch (err) {
      postMessage({ fatal: String(err && err.message || err) });
    }
    return;
  }
  if (Atomics.load(cancelled, 0) >= job.id) { postMessage({ id: job.id, done: true }); return; }
  if (job.voice !== voice) {
    if (w.set_voice(job.voice) !== 0) { postMessage({ id: job.id, error: 'unknown voice ' + job.voice }); return; }
    voice = job.voice;
  }
  w.set_rate(job.wpm);
  try {
    w.synthesize(job.text, (pcm) => {
      if (Atomics.load(cancelled, 0) >= job.id) return 1;
      const copy = pcm.slice();
      postMessage({ id: job.id, pcm: copy }, [copy.buffer]);
      return 0;
    });
    postMessage({ id: job.id, done: true });
  } catch (err) {
    postMessage({ id: job.id, error: String(err && err.message || err) });
  }
};
`;

interface Job { onChunk: (pcm: Int16Array) => void; done: () => void; fail: (e: Error) => void }
type Reply = { ready: true; rate: number; voices: string[] } | { fatal: string } | { id: number; pcm?: Int16Array; done?: true; error?: string };

class WebEspeak implements Synthesizer {
  readonly name = 'espeak-ng';
  private nextId = 1;
  private readonly jobs = new Map<number, Job>();

  constructor(private readonly worker: Worker, private readonly cancel: Int32Array, readonly sampleRate: number, private readonly known: string[]) {
    worker.onmessage = (e: MessageEvent<Reply>) => {
      const r = e.data;
      if (!('id' in r)) return;
      const job = this.jobs.get(r.id);
      if (!job) return;
      if (r.pcm) job.onChunk(r.pcm);
      else if (r.error !== undefined) { this.jobs.delete(r.id); job.fail(new StreamlmError(r.error, { field: 'voice' })); }
      else if (r.done) { this.jobs.delete(r.id); job.done(); }
    };
  }

  voices(): readonly string[] { return this.known; }

  checkVoice(opts: VoiceOptions): void {
    const v = opts.voice ?? 'en-us';
    if (!this.known.includes(v.split('+')[0].toLowerCase())) throw new StreamlmError(`unknown voice '${v}'; use an espeak-ng voice such as en-us, en-us+f3, fr`, { field: 'voice' });
    const speed = opts.speed ?? 1;
    if (!(speed >= 0.25 && speed <= 4)) throw new StreamlmError(`speed must be in [0.25, 4], got ${speed}`, { field: 'speed' });
  }

  async synthesize(text: string, opts: VoiceOptions, onChunk: (pcm: Int16Array) => void, signal?: AbortSignal): Promise<void> {
    this.checkVoice(opts);
    const id = this.nextId++;
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
      const wpm = Math.round(Math.min(450, Math.max(80, BASE_WPM * (opts.speed ?? 1))));
      this.worker.postMessage({ id, text, voice: opts.voice ?? 'en-us', wpm });
    });
  }

  close(): Promise<void> {
    Atomics.store(this.cancel, 0, this.nextId);
    for (const j of this.jobs.values()) j.done();
    this.jobs.clear();
    this.worker.terminate();
    return Promise.resolve();
  }
}

/** True when `url` (espeak-ng.js beside the bundle) is served. */
export async function espeakAvailable(url: string | URL): Promise<boolean> {
  try {
    return (await fetch(url, { method: 'HEAD' })).ok;
  } catch {
    return false;
  }
}

/**
 * Starts espeak-ng from `url` in its own Web Worker (a second or so: it fetches and unpacks 24 MB of
 * voice data). A StreamlmError saying how to install it when the page has no copy.
 */
export async function loadWebEspeak(url: string | URL): Promise<Synthesizer> {
  const href = new URL(String(url), (globalThis as { location?: { href: string } }).location?.href).href;
  if (!await espeakAvailable(href)) throw new StreamlmError(WEB_ESPEAK_INSTALL, { file: href, field: 'speech' });
  // Shared only where the page is cross-origin isolated; otherwise cancel waits for the next phrase.
  const cancel = new Int32Array(typeof SharedArrayBuffer === 'function' ? new SharedArrayBuffer(4) : new ArrayBuffer(4));
  const blobUrl = URL.createObjectURL(new Blob([WORKER], { type: 'text/javascript' }));
  const worker = new Worker(blobUrl, { type: 'module', name: 'streamlm speech' });
  try {
    const ready = await new Promise<{ rate: number; voices: string[] }>((resolve, reject) => {
      worker.onmessage = (e: MessageEvent<Reply>) => {
        const r = e.data;
        if ('ready' in r) resolve(r);
        else if ('fatal' in r) reject(new StreamlmError(`espeak-ng failed to start: ${r.fatal}`, { file: href, field: 'speech' }));
      };
      worker.onerror = (e) => reject(new StreamlmError(`espeak-ng failed to start: ${e.message}`, { file: href, field: 'speech' }));
      worker.postMessage({ init: true, url: href, cancel: cancel.buffer });
    });
    return new WebEspeak(worker, cancel, ready.rate, ready.voices);
  } catch (e) {
    worker.terminate();
    throw e;
  } finally {
    URL.revokeObjectURL(blobUrl);
  }
}
