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
import { EspeakClient, type EspeakReply } from './espeak-client.js';
import type { Synthesizer } from './synth.js';

export const ESPEAK_PACKAGE = '@echogarden/espeak-ng-emscripten';
export const ESPEAK_INSTALL = `the optional espeak-ng engine is not installed (it is GPL-3.0, so streamlm leaves installing it to you): npm install ${ESPEAK_PACKAGE}`;

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
    const onMsg = (r: EspeakReply): void => {
      if ('ready' in r) { worker.off('message', onMsg); resolve(r); }
      else if ('fatal' in r) reject(new StreamlmError(`espeak-ng failed to start: ${r.fatal}`, { field: 'speech' }));
    };
    worker.on('message', onMsg);
    worker.once('error', (e) => reject(new StreamlmError(`espeak-ng failed to start: ${e.message}`, { field: 'speech' })));
  });
  const client = new EspeakClient({ post: (m) => worker.postMessage(m), terminate: () => worker.terminate() }, cancel, ready.rate, ready.voices);
  worker.on('message', (r: EspeakReply) => client.reply(r));
  return client;
}
