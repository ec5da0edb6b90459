// Latency of spoken chat replies (issue 16) on `streamlm serve`: --turns chat turns streamed with
// modalities ["text", "audio"], each reply up to --max-tokens tokens, timed from the request:
//   first token and first audio as the client receives them (first delta.audio.transcript, first
//   delta.audio.data), first phrase and first audio sample on the server (a wrapper around the
//   synthesizer sees each phrase go in and its first chunk come out), the real-time factor of
//   synthesis (worker busy time / audio seconds), and underruns: playback starts with the first
//   audio chunk, and each later chunk that arrives after the audio before it has played is one.
// The server runs in this process (loopback fetch), so client times include no network.
// Variants, compared turn by turn in one process (one server each, the same prompt and seed in turn):
//   --speculate off|ngram|mctp|auto[,...]  speculative decoding of the replies (default off)
//   --growth 1.5|off[,...]                 the chunker's phrase growth cap (default 1.5, as served)
// Usage: npm run bench:speech -- [--turns 20] [--max-tokens 256] [--model DIR] [--cache sink:4+508] [--threads N]
//        [--speculate off] [--growth 1.5] [--json]
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { SpeculateMode } from '../src/generate/speculate.js';
import { loadModel } from '../src/model.js';
import { CHAT_CHUNKER } from '../src/speech/chunker.js';
import { startServer, type RunningServer } from '../src/server/http.js';
import { loadEspeak } from '../src/speech/espeak.js';
import type { Synthesizer } from '../src/speech/synth.js';
import { benchArgs } from './common.js';

const args = benchArgs(process.argv.slice(2));
const root = join(import.meta.dirname, '..');
const shipped = ['novels-8m-sink', 'novels-8m'].map((d) => join(root, 'models', d)).find((d) => existsSync(join(d, 'config.json')));
const modelDir = args.get('model') ?? shipped ?? join(root, 'test', 'fixtures', 'llama');
const turns = Number(args.get('turns') ?? 20);
const maxTokens = Number(args.get('max-tokens') ?? 256);
const cache = args.get('cache') ?? 'sink:4+508';
const threads = Number(args.get('threads') ?? 1);
const json = args.has('json');
const speculates = (args.get('speculate') ?? 'off').split(',') as SpeculateMode[];
const growths = (args.get('growth') ?? String(CHAT_CHUNKER.growth)).split(',');

const PROMPTS = ['Tell me about the old house.', 'What did she say then?', 'Describe the storm.', 'Who was at the door?', 'Why did he leave?',
  'What happened next?', 'Tell me about the village.', 'How did the letter end?', 'Where did they go?', 'What was in the box?'];

/** Per-phrase timing seen at the synthesizer: when the phrase went in, its first chunk, its end. */
interface PhraseTime { call: number; first: number; done: number; samples: number; words: number }
const phrases: PhraseTime[] = [];

function timed(s: Synthesizer): Synthesizer {
  return {
    name: s.name, sampleRate: s.sampleRate, voices: () => s.voices(), checkVoice: (o) => s.checkVoice(o), close: () => s.close(),
    async synthesize(text, opts, onChunk, signal) {
      const p: PhraseTime = { call: performance.now(), first: NaN, done: NaN, samples: 0, words: text.split(/\s+/).length };
      phrases.push(p);
      await s.synthesize(text, opts, (pcm) => { if (Number.isNaN(p.first)) p.first = performance.now(); p.samples += pcm.length; onChunk(pcm); }, signal);
      p.done = performance.now();
    },
  };
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length ? (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2 : NaN; };
const r1 = (x: number): number => Math.round(x * 10) / 10;

const model = await loadModel(modelDir, { threads });
interface Variant { name: string; speculate: SpeculateMode; growth: string; server: RunningServer; rows: TurnRow[]; gaps: Gap[] }
interface TurnRow { tokens: number; ttft: number; firstPhrase: number; firstAudioServer: number; firstAudioClient: number; audioS: number; underruns: number; busy: number }
/** An underrun: the turn, the chunk that came late, its phrase (0 = first) and whether it opens that phrase. */
interface Gap { turn: number; chunk: number; phrase: number; phrase_words: number; phrase_start: boolean; late_ms: number; at_ms: number }
const variants: Variant[] = [];
for (const speculate of speculates) {
  for (const growth of growths) {
    const server = await startServer(model, {
      port: 0, cache, maxSessions: 1, speech: async () => timed(await loadEspeak()), speculate: { mode: speculate },
      speechChunker: { ...CHAT_CHUNKER, growth: growth === 'off' ? undefined : Number(growth) },
    });
    variants.push({ name: `speculate ${speculate}, growth ${growth}`, speculate, growth, server, rows: [], gaps: [] });
    // Load espeak (about 1 s) before timing, as a running server would have.
    await fetch(`${server.url}/v1/audio/speech`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ model: 'tts-1', voice: 'alloy', input: 'warm up' }) }).then((r) => r.arrayBuffer());
    // And one chat turn: the first forward of a fresh model is slower than any later one.
    await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ model: server.modelId, messages: [{ role: 'user', content: 'Hello.' }], max_tokens: 8 }) }).then((r) => r.arrayBuffer());
  }
}

const rate = 22050;
async function turn(v: Variant, i: number): Promise<void> {
  const server = v.server;
  phrases.length = 0;
  const t0 = performance.now();
  const res = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: server.modelId, messages: [{ role: 'user', content: PROMPTS[i % PROMPTS.length] }], max_tokens: maxTokens, temperature: 0.8, seed: i, stream: true,
      modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'pcm16' } }),
  });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let ttft = NaN;
  let tokens = 0;
  const arrivals: { t: number; samples: number }[] = [];
  const dec = new TextDecoder();
  let buf = '';
  for await (const part of res.body) {
    const now = performance.now() - t0;
    buf += dec.decode(part, { stream: true });
    let k: number;
    while ((k = buf.indexOf('\n\n')) >= 0) {
      const line = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (!line.startsWith('data: {')) continue;
      const a = (JSON.parse(line.slice(6)) as { choices: { delta?: { audio?: { transcript?: string; data?: string } } }[] }).choices[0]?.delta?.audio;
      if (a?.transcript !== undefined) { tokens++; if (Number.isNaN(ttft)) ttft = now; }
      if (a?.data !== undefined) arrivals.push({ t: now, samples: Buffer.from(a.data, 'base64').length / 2 });
    }
  }
  // Playback from the first chunk's arrival; a chunk is late when the audio before it has run out.
  let underruns = 0;
  let played = 0;
  let start = arrivals[0]?.t ?? NaN;
  // Which phrase each chunk belongs to (by the phrases' sample counts), to say where a gap came from.
  const ends: number[] = [];
  for (const p of phrases) ends.push((ends.at(-1) ?? 0) + p.samples);
  for (const [n, a] of arrivals.entries()) {
    const due = start + (played / rate) * 1000;
    if (a.t > due + 1) {
      underruns++;
      const k = ends.findIndex((e) => e > played);
      v.gaps.push({ turn: i, chunk: n, phrase: k, phrase_words: phrases[k]?.words ?? 0, phrase_start: k > 0 && ends[k - 1] === played, late_ms: r1(a.t - due), at_ms: r1(a.t) });
      start += a.t - due;
    }
    played += a.samples;
  }
  let busy = 0;
  let free = 0;
  for (const p of phrases) { const s = Math.max(p.call, free); busy += p.done - s; free = p.done; }
  v.rows.push({ tokens, ttft, firstPhrase: (phrases[0]?.call ?? NaN) - t0, firstAudioServer: (phrases[0]?.first ?? NaN) - t0, firstAudioClient: arrivals[0]?.t ?? NaN, audioS: played / rate, underruns, busy });
  if (!json) console.error(`${v.name}, turn ${i + 1}: ${tokens} tokens, first token ${ttft.toFixed(0)} ms, first audio ${(arrivals[0]?.t ?? NaN).toFixed(0)} ms, ${(played / rate).toFixed(1)} s audio, ${underruns} underruns`);
}

// Turn by turn, the variants take the same prompt and seed one after another, so load affects them alike.
for (let i = 0; i < turns; i++) for (const v of (i % 2 ? [...variants].reverse() : variants)) await turn(v, i);
for (const v of variants) await v.server.close();
await model.close();

const results = variants.map((v) => {
  const rows = v.rows;
  const audioS = rows.reduce((a, r) => a + r.audioS, 0);
  return {
    model: modelDir, cache, turns, max_tokens: maxTokens, threads, speculate: v.speculate, growth: v.growth,
    tokens_median: median(rows.map((r) => r.tokens)),
    ttft_ms: r1(median(rows.map((r) => r.ttft))),
    first_phrase_ms: r1(median(rows.map((r) => r.firstPhrase))),
    first_audio_server_ms: r1(median(rows.map((r) => r.firstAudioServer))),
    first_audio_client_ms: r1(median(rows.map((r) => r.firstAudioClient))),
    first_audio_after_first_token_ms: r1(median(rows.map((r) => r.firstAudioClient - r.ttft))),
    first_audio_after_first_token_ms_max: r1(Math.max(...rows.map((r) => r.firstAudioClient - r.ttft))),
    audio_s: r1(audioS),
    underruns: rows.reduce((a, r) => a + r.underruns, 0),
    rtf: Math.round(rows.reduce((a, r) => a + r.busy, 0) / 1000 / audioS * 1000) / 1000,
    underrun_detail: v.gaps.slice(0, 40),
  };
});
// One variant: its object, as before; several: an array.
if (json) console.log(JSON.stringify(results.length === 1 ? results[0] : results));
else {
  console.log('| speculate | growth | turns | tokens (median) | first token | first phrase | first audio (server) | first audio (client) | audio after first token | underruns | rtf |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const o of results) {
    console.log(`| ${o.speculate} | ${o.growth} | ${turns} | ${o.tokens_median} | ${o.ttft_ms} ms | ${o.first_phrase_ms} ms | ${o.first_audio_server_ms} ms | ${o.first_audio_client_ms} ms | ${o.first_audio_after_first_token_ms} ms (max ${o.first_audio_after_first_token_ms_max}) | ${o.underruns} | ${o.rtf} |`);
  }
  console.log(JSON.stringify(results.length === 1 ? results[0] : results));
}
