// The page's engine: a dedicated Web Worker that loads the model, keeps the conversation's session
// (saved to OPFS after each turn, restored after a reload) and streams tokens back to the page.
import { CHAT_CHUNKER, generate, loadModel, loadWebEspeak, SpeechStream, type Model, type Session, type Synthesizer } from '../index.js';
import { nll } from '../../eval/ppl.js';
import { deleteSnapshot, loadSnapshot, saveSnapshot } from '../store.js';
import type { ChatSettings, FromEngine, Gauge, ToEngine, Turn } from './protocol.js';

const post = (m: FromEngine): void => postMessage(m);
const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

let model: Model | null = null;
let session: Session | null = null;
let transcript: Turn[] = [];
let abort: AbortController | null = null;
let lastTokS = 0;
/** espeak-ng, started when speech is first switched on; `speaking` is the reply being spoken. */
let synth: Promise<Synthesizer> | null = null;
let speechOn = false;
let speaking: SpeechStream | null = null;
/** Commands run one at a time, in order: a load, a turn, a reset. `stop` alone bypasses the queue. */
let queue: Promise<void> = Promise.resolve();

const SNAP = 'chat';
const TRANSCRIPT = 'chat-transcript';

function gauge(): Gauge {
  const stats = session?.stats() ?? { policy: '', length: 0, sinks: 0, seen: 0, evicted: 0, capacity: 0, bytes: 0 };
  return { ...stats, wasmBytes: model!.net.rt.memory.buffer.byteLength, tokS: lastTokS, workerChunks: model!.net.rt.pool.chunksRun() };
}

async function persist(): Promise<void> {
  if (!session) return;
  await saveSnapshot(SNAP, session.snapshot());
  await saveSnapshot(TRANSCRIPT, new TextEncoder().encode(JSON.stringify(transcript)));
}

async function restore(): Promise<void> {
  const bytes = await loadSnapshot(SNAP);
  if (!bytes || !model) return;
  try {
    session = model.restoreSession(bytes);
    const t = await loadSnapshot(TRANSCRIPT);
    transcript = t ? JSON.parse(new TextDecoder().decode(t)) as Turn[] : [];
    post({ t: 'restored', transcript, gauge: gauge() });
  } catch (e) {
    post({ t: 'warning', message: `the saved conversation was not restored: ${errorText(e)}` });
    await deleteSnapshot(SNAP);
    await deleteSnapshot(TRANSCRIPT);
  }
}

async function load(m: Extract<ToEngine, { t: 'load' }>): Promise<void> {
  const t0 = performance.now();
  session?.close();
  session = null;
  await model?.close();
  model = await loadModel(m.source, { threads: m.threads, dtype: m.dtype, onProgress: (p) => post({ t: 'progress', p }) });
  const rt = model.net.rt;
  post({ t: 'loaded', info: {
    label: model.dir, threads: rt.threads, crossOriginIsolated: globalThis.crossOriginIsolated === true, weightBytes: model.weightBytes,
    layers: model.hparams.numLayers, fingerprint: model.fingerprint, loadMs: performance.now() - t0,
    mctpSteps: model.mctp?.cfg.num_steps ?? null,
  } });
  await restore();
}

async function chat(text: string, s: ChatSettings): Promise<void> {
  if (!model) throw new Error('no model is loaded');
  if (session && session.policy.name !== s.cache) {
    post({ t: 'warning', message: `cache policy changed to ${s.cache}: a new conversation starts` });
    await reset();
  }
  const first = !session;
  session ??= model.session({ cache: s.cache });
  const ids = first ? model.encode(text) : model.tokenizer!.encode(text, { addSpecialTokens: false });
  transcript.push({ role: 'user', text });
  abort = new AbortController();
  const out: number[] = [];
  let reply = '';
  const it = generate(model, {
    session, promptIds: ids, maxNewTokens: s.maxNewTokens, signal: abort.signal,
    sampler: { temperature: s.temperature, topK: s.topK, topP: s.topP, seed: s.seed },
  });
  const voice = speechOn && synth ? speak(await synth) : null;
  let r = await it.next();
  let first1 = 0;
  while (!r.done) {
    if (r.value.id >= 0) out.push(r.value.id);
    reply += r.value.text;
    voice?.push(r.value.text);
    const now = performance.now();
    if (out.length === 1) first1 = now;
    lastTokS = out.length > 1 ? (out.length - 1) / ((now - first1) / 1000) : 0;
    post({ t: 'token', id: r.value.id, text: r.value.text, gauge: gauge() });
    r = await it.next();
  }
  abort = null;
  // A stopped reply stops speaking too; a finished one speaks to its end.
  if (voice) { if (r.value.finishReason === 'abort') voice.cancel(); else voice.end(); }
  const st = r.value;
  transcript.push({ role: 'assistant', text: reply, ids: out });
  await persist();
  post({
    t: 'done', ids: out, finish: st.finishReason, gauge: gauge(),
    prefillTokS: st.promptTokens / (st.prefillMs / 1000), decodeTokS: st.newTokens > 1 ? st.newTokens / (st.decodeMs / 1000) : 0,
  });
}

/** A spoken reply: its audio blocks go to the page as espeak makes them, in order. */
function speak(s: Synthesizer): SpeechStream {
  speaking?.cancel();
  const stream = new SpeechStream(s, CHAT_CHUNKER);
  speaking = stream;
  void (async () => {
    try {
      for await (const c of stream) {
        if (!speechOn || speaking !== stream) break;
        (self as unknown as Worker).postMessage({ t: 'audio', pcm: c.pcm, text: c.phrase.text } satisfies FromEngine, [c.pcm.buffer]);
      }
    } catch (e) {
      post({ t: 'warning', message: `speech failed: ${errorText(e)}` });
    }
  })();
  return stream;
}

async function setSpeech(on: boolean): Promise<void> {
  speechOn = on;
  if (!on) { speaking?.cancel(); speaking = null; return; }
  synth ??= loadWebEspeak(new URL('./espeak-ng.js', import.meta.url));
  try {
    post({ t: 'speech-ready', sampleRate: (await synth).sampleRate });
  } catch (e) {
    synth = null;
    speechOn = false;
    throw e;
  }
}

async function reset(): Promise<void> {
  session?.close();
  session = null;
  transcript = [];
  await deleteSnapshot(SNAP);
  await deleteSnapshot(TRANSCRIPT);
}

/** Streams `text` through each policy token by token, posting the running perplexity (the paper's evaluation). */
async function ppl(text: string, policies: string[], tokens: number): Promise<void> {
  if (!model) throw new Error('no model is loaded');
  const ids = model.encode(text).slice(0, tokens);
  if (ids.length < 2) throw new Error('the text needs at least 2 tokens');
  const bucket = Math.max(1, Math.floor(ids.length / 50));
  // The chat session keeps its memory; each policy's session comes and goes above it.
  for (const policy of policies) {
    const s = model.session({ cache: policy, maxTokens: ids.length + 1, prefillChunk: 1 });
    try {
      let sum = 0, bSum = 0, bN = 0;
      const series: number[] = [];
      // Each step's logits are read before the next, so one array takes them all: a fresh
      // vocab-sized array per token costs Chromium's workers ~10-20% of a step (docs/benchmarks.md).
      let logits: Float32Array | undefined;
      for (let t = 0; t + 1 < ids.length; t++) {
        logits = s.step(ids[t], logits ? { into: logits } : {});
        const l = nll(logits, ids[t + 1]);
        sum += l; bSum += l; bN++;
        if (bN === bucket) { series.push(Math.exp(bSum / bN)); bSum = 0; bN = 0; }
        if ((t + 1) % bucket === 0 || t + 2 === ids.length) {
          post({ t: 'ppl', policy, done: t + 1, total: ids.length - 1, ppl: Math.exp(sum / (t + 1)), series });
          await new Promise<void>((r) => setTimeout(r, 0));
        }
      }
    } finally {
      s.close();
    }
  }
  post({ t: 'ppl-done' });
}

self.onmessage = (e: MessageEvent<ToEngine>): void => {
  const m = e.data;
  if (m.t === 'stop') { abort?.abort(); return; }
  // Muting acts at once, not after the reply being generated.
  if (m.t === 'speech' && !m.on) { void setSpeech(false); return; }
  queue = queue.then(async () => {
    try {
      if (m.t === 'load') await load(m);
      else if (m.t === 'chat') await chat(m.text, m.settings);
      else if (m.t === 'reset') await reset();
      else if (m.t === 'ppl') await ppl(m.text, m.policies, m.tokens);
      else if (m.t === 'speech') await setSpeech(m.on);
    } catch (err) {
      post({ t: 'error', message: errorText(err) });
    }
  });
};
