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
import { EspeakClient, type EspeakReply } from '../speech/espeak-client.js';
import type { Synthesizer } from '../speech/synth.js';

/** What to install when the page has no espeak-ng beside its bundle. */
export const WEB_ESPEAK_INSTALL = 'speech needs the optional espeak-ng engine (GPL-3.0, so streamlm leaves installing it to you): npm install @echogarden/espeak-ng-emscripten, then npm run build:browser';

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
      worker.onmessage = (e: MessageEvent<EspeakReply>) => {
        const r = e.data;
        if ('ready' in r) resolve(r);
        else if ('fatal' in r) reject(new StreamlmError(`espeak-ng failed to start: ${r.fatal}`, { file: href, field: 'speech' }));
      };
      worker.onerror = (e) => reject(new StreamlmError(`espeak-ng failed to start: ${e.message}`, { file: href, field: 'speech' }));
      worker.postMessage({ init: true, url: href, cancel: cancel.buffer });
    });
    const client = new EspeakClient({ post: (m) => worker.postMessage(m), terminate: () => worker.terminate() }, cancel, ready.rate, ready.voices);
    worker.onmessage = (e: MessageEvent<EspeakReply>) => client.reply(e.data);
    return client;
  } catch (e) {
    worker.terminate();
    throw e;
  } finally {
    URL.revokeObjectURL(blobUrl);
  }
}
