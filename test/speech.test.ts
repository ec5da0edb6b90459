// Spoken replies (issue 16): the espeak-ng synthesizer behind the Synthesizer contract, the
// /v1/audio/speech route and chat with modalities ["text", "audio"], through the official client.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import OpenAI from 'openai';
import { loadModel, type Model } from '../src/model.js';
import { startServer, type RunningServer } from '../src/server/http.js';
import { ESPEAK_PACKAGE, findEspeak, loadEspeak } from '../src/speech/espeak.js';
import { SpeechStream } from '../src/speech/stream.js';
import type { Synthesizer } from '../src/speech/synth.js';
import { fixtureDir } from './helpers/fixtures.js';

const missing = findEspeak() === null;
// The engine is GPL-3.0 and optional (never in package.json); CI installs it (.ci/run), so a skip
// here only happens on a developer's checkout without it, and says so.
const skip = missing ? `${ESPEAK_PACKAGE} is not installed (npm install --no-save ${ESPEAK_PACKAGE})` : false;
if (missing) console.log(`# speech tests skipped: ${skip as string}`);

let model: Model;
let server: RunningServer;
let bare: RunningServer;
let synth: Synthesizer;
let client: OpenAI;

before(async () => {
  model = await loadModel(fixtureDir('llama'), { threads: 1 });
  bare = await startServer(model, { port: 0, cache: 'sink:4+60', maxSessions: 1, speech: () => loadEspeak(() => null) });
  if (missing) return;
  synth = await loadEspeak();
  server = await startServer(model, { port: 0, cache: 'sink:4+60', maxSessions: 1 });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'none', maxRetries: 0 });
});

after(async () => {
  await synth?.close();
  await server?.close();
  await bare.close();
  await model.close();
});

/** The fields of a PCM WAV header, read by hand (a decoder outside the code under test). */
function readWav(b: Uint8Array): { rate: number; channels: number; bits: number; format: number; samples: number } {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const tag = (at: number): string => String.fromCharCode(...b.subarray(at, at + 4));
  assert.equal(tag(0), 'RIFF');
  assert.equal(tag(8), 'WAVE');
  assert.equal(tag(12), 'fmt ');
  assert.equal(tag(36), 'data');
  const declared = v.getUint32(40, true);
  const bytes = b.length - 44;
  // A streamed WAV declares 0xFFFFFFFF ("unknown"); a whole one declares its size exactly.
  if (declared !== 0xffffffff) assert.equal(declared, bytes);
  return { format: v.getUint16(20, true), channels: v.getUint16(22, true), rate: v.getUint32(24, true), bits: v.getUint16(34, true), samples: bytes / 2 };
}

test('espeak-ng speaks a phrase as ~100 ms chunks of 22050 Hz PCM16, and a cancel stops it', { skip }, async () => {
  assert.equal(synth.sampleRate, 22050);
  const chunks: Int16Array[] = [];
  await synth.synthesize('Hello there, this is a test of the speech engine.', { voice: 'alloy' }, (c) => chunks.push(c));
  const n = chunks.reduce((a, c) => a + c.length, 0);
  // Ten words at espeak's 175 words per minute: about 3.4 s of speech; allow pauses either way.
  assert.ok(n / 22050 > 2 && n / 22050 < 5, `duration ${n / 22050} s`);
  assert.ok(chunks.length > 10 && chunks.every((c) => c.length <= 4410), 'chunks of at most 200 ms');
  assert.ok(chunks.some((c) => c.some((x) => Math.abs(x) > 1000)), 'not silence');
  const ac = new AbortController();
  let got = 0;
  await synth.synthesize('This sentence is long enough to be cut off after its very first chunk of audio.', {}, () => { got++; ac.abort(); }, ac.signal);
  assert.ok(got <= 3, `${got} chunks after the cancel`);
  assert.throws(() => synth.checkVoice({ voice: 'klingon-x' }), /voice: unknown voice 'klingon-x'/);
  assert.throws(() => synth.checkVoice({ speed: 9 }), /speed/);
});

test('a speech stream tags every chunk with its phrase span, in order', { skip }, async () => {
  const s = new SpeechStream(synth, {});
  const text = 'Well, yes. Dr. Who arrived at 3.30 pm. Then he left.';
  for (const piece of text.match(/.{1,3}/gs) ?? []) s.push(piece);
  s.end();
  const spans: string[] = [];
  for await (const c of s) if (spans.at(-1) !== c.phrase.text) spans.push(text.slice(c.phrase.start, c.phrase.end));
  assert.deepEqual(spans, ['Well,', 'yes.', 'Dr. Who arrived at 3.30 pm.', 'Then he left.']);
});

test('POST /v1/audio/speech through the openai client gives a WAV that decodes', { skip }, async () => {
  const r = await client.audio.speech.create({ model: 'tts-1', voice: 'alloy', input: 'The quick brown fox jumps over the lazy dog.', response_format: 'wav' });
  const wav = readWav(new Uint8Array(await r.arrayBuffer()));
  assert.deepEqual({ format: wav.format, channels: wav.channels, rate: wav.rate, bits: wav.bits }, { format: 1, channels: 1, rate: 22050, bits: 16 });
  assert.ok(wav.samples / 22050 > 1.5 && wav.samples / 22050 < 6, `duration ${wav.samples / 22050} s`);
});

test('the WAV streams: its first chunk arrives long before the end, and its length matches the reported duration', { skip }, async () => {
  const input = Array.from({ length: 12 }, (_, i) => `This is sentence number ${i + 1} of a long passage, read aloud.`).join(' ');
  const body = JSON.stringify({ model: 'tts-1', voice: 'nova', input, response_format: 'wav' });
  const t0 = performance.now();
  const got = await new Promise<{ first: number; last: number; bytes: Buffer; trailers: NodeJS.Dict<string> }>((resolve, reject) => {
    const req = request(`${server.url}/v1/audio/speech`, { method: 'POST', headers: { 'Content-Type': 'application/json' } }, (res) => {
      const parts: Buffer[] = [];
      let first = 0;
      res.on('data', (d: Buffer) => { if (parts.length === 0) first = performance.now() - t0; parts.push(d); });
      res.on('end', () => resolve({ first, last: performance.now() - t0, bytes: Buffer.concat(parts), trailers: res.trailers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
  const wav = readWav(got.bytes);
  assert.equal(wav.samples, Number(got.trailers['x-audio-samples']));
  assert.ok(Math.abs(wav.samples / wav.rate - Number(got.trailers['x-audio-duration'])) < 1e-3);
  assert.ok(wav.samples / wav.rate > 20, `${wav.samples / wav.rate} s of audio`);
  assert.ok(got.first < got.last / 2, `first bytes at ${got.first.toFixed(0)} ms, last at ${got.last.toFixed(0)} ms`);
});

test('stream_format sse sends speech.audio.delta events and a done event with the sample count', { skip }, async () => {
  const r = await fetch(`${server.url}/v1/audio/speech`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ model: 'tts-1', voice: 'alloy', input: 'One. Two. Three.', response_format: 'pcm', stream_format: 'sse' }) });
  assert.equal(r.status, 200);
  const events = (await r.text()).split('\n\n').filter(Boolean).map((l) => JSON.parse(l.slice('data: '.length)) as { type: string; audio?: string; samples?: number });
  assert.equal(events.at(-1)?.type, 'speech.audio.done');
  const deltas = events.slice(0, -1);
  assert.ok(deltas.length > 3 && deltas.every((e) => e.type === 'speech.audio.delta'));
  const bytes = deltas.reduce((a, e) => a + Buffer.from(e.audio ?? '', 'base64').length, 0);
  assert.equal(bytes / 2, events.at(-1)?.samples);
});

test('chat with modalities text+audio streams transcript and audio deltas in order, transcript equal to the text reply', { skip }, async () => {
  const messages = [{ role: 'user' as const, content: 'Tell me a story.' }];
  const plain = await client.chat.completions.create({ model: 'llama', messages, max_tokens: 24, temperature: 0 });
  const text = plain.choices[0].message.content ?? '';
  const stream = await client.chat.completions.create({ model: 'llama', messages, max_tokens: 24, temperature: 0, stream: true, modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'pcm16' } });
  const order: string[] = [];
  let transcript = '';
  let bytes = 0;
  let finish: string | null = null;
  for await (const ch of stream) {
    const d = ch.choices[0]?.delta as { audio?: { transcript?: string; data?: string } } | undefined;
    if (d?.audio?.transcript !== undefined) { transcript += d.audio.transcript; order.push('t'); }
    if (d?.audio?.data !== undefined) { bytes += Buffer.from(d.audio.data, 'base64').length; order.push('a'); }
    finish = ch.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(transcript, text);
  assert.equal(finish, plain.choices[0].finish_reason);
  assert.equal(order[0], 't', 'text comes first');
  if (/[\p{L}\p{N}]/u.test(text)) assert.ok(bytes > 0 && order.includes('a'), 'audio deltas follow');
  const whole = await client.chat.completions.create({ model: 'llama', messages, max_tokens: 24, temperature: 0, modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'wav' } });
  const audio = whole.choices[0].message.audio;
  assert.ok(audio);
  assert.equal(audio.transcript, text);
  assert.equal(readWav(Buffer.from(audio.data, 'base64')).rate, 22050);
});

test('bad audio requests are 400s naming the field', { skip }, async () => {
  const post = async (path: string, b: unknown): Promise<{ status: number; param: string; message: string }> => {
    const r = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(b) });
    const e = await r.json() as { error: { param: string; message: string } };
    return { status: r.status, param: e.error.param, message: e.error.message };
  };
  assert.deepEqual((await post('/v1/audio/speech', { model: 'tts-1', voice: 'klingon-x', input: 'hi' })).status, 400);
  assert.equal((await post('/v1/audio/speech', { model: 'tts-1', voice: 'klingon-x', input: 'hi' })).param, 'voice');
  assert.equal((await post('/v1/audio/speech', { model: 'tts-1', voice: 'alloy', input: 'hi', response_format: 'mp3' })).param, 'response_format');
  assert.equal((await post('/v1/audio/speech', { model: 'tts-1', voice: 'alloy', input: '' })).param, 'input');
  assert.equal((await post('/v1/chat/completions', { model: 'llama', messages: [{ role: 'user', content: 'x' }], modalities: ['text', 'audio'] })).param, 'audio');
  assert.equal((await post('/v1/chat/completions', { model: 'llama', stream: true, messages: [{ role: 'user', content: 'x' }], modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'wav' } })).param, 'audio.format');
});

test('without the optional engine, audio requests are a 400 saying how to install it, and the server lives on', async () => {
  for (const [path, b] of [
    ['/v1/audio/speech', { model: 'tts-1', voice: 'alloy', input: 'hello' }],
    ['/v1/chat/completions', { model: 'llama', messages: [{ role: 'user', content: 'x' }], modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'pcm16' }, stream: true }],
  ] as const) {
    const r = await fetch(`${bare.url}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(b) });
    assert.equal(r.status, 400, path);
    const e = await r.json() as { error: { message: string } };
    assert.match(e.error.message, /npm install @echogarden\/espeak-ng-emscripten/);
  }
  assert.equal((await fetch(`${bare.url}/health`)).status, 200);
});
