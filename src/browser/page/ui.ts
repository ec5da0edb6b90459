// The page's main thread: the UI only. Everything computes in the engine worker (engine.ts).
import type { DownloadProgress } from '../download.js';
import type { ChatSettings, FromEngine, Gauge, ModelInfo, ToEngine, Turn } from './protocol.js';

const $ = <T extends HTMLElement = HTMLInputElement>(id: string): T => document.getElementById(id) as T;
const engine = new Worker(new URL('./engine.js', import.meta.url), { type: 'module' });
const send = (m: ToEngine): void => engine.postMessage(m);

/** What tests and scripts read: the loaded model, and the ids of each finished reply. */
interface PageState {
  info: ModelInfo | null; replies: number[][]; restored: boolean; errors: string[]; done: Extract<FromEngine, { t: 'done' }> | null;
  /** Perplexity so far per policy of the last "stream a text" run. */
  ppl: Record<string, number>;
  /** The last download progress of each file of the model being loaded (cached: read from the Cache API). */
  downloads: Record<string, DownloadProgress>;
}
const state: PageState = { info: null, replies: [], restored: false, errors: [], done: null, ppl: {}, downloads: {} };
(window as unknown as { streamlm: PageState }).streamlm = state;

let bubble: HTMLElement | null = null;

// --- speech: replies play as they stream, through an AudioWorklet (a FIFO the audio thread drains) ---

/** The worklet: Float32 blocks posted by the page, played 128 frames at a time; it reports what it received. */
const PLAYER = `class StreamlmPlayer extends AudioWorkletProcessor {
  constructor() { super(); this.q = []; this.at = 0; this.received = 0; this.played = 0;
    this.port.onmessage = (e) => { if (e.data === 'clear') { this.q = []; this.at = 0; return; } this.q.push(e.data); this.received += e.data.length; this.port.postMessage({ received: this.received }); }; }
  process(_in, outs) {
    const out = outs[0][0];
    for (let i = 0; i < out.length; i++) {
      if (this.q.length === 0) { out[i] = 0; continue; }
      out[i] = this.q[0][this.at++]; this.played++;
      if (this.at >= this.q[0].length) { this.q.shift(); this.at = 0; }
    }
    return true;
  }
}
registerProcessor('streamlm-player', StreamlmPlayer);`;

let audio: { ctx: AudioContext; node: AudioWorkletNode } | null = null;

/** The player at `rate` Hz, made on first use (browsers start audio only after a user gesture). */
async function player(rate: number): Promise<AudioWorkletNode> {
  if (audio && audio.ctx.sampleRate === rate) { await audio.ctx.resume(); return audio.node; }
  await audio?.ctx.close();
  const ctx = new AudioContext({ sampleRate: rate });
  const url = URL.createObjectURL(new Blob([PLAYER], { type: 'text/javascript' }));
  await ctx.audioWorklet.addModule(url);
  URL.revokeObjectURL(url);
  const node = new AudioWorkletNode(ctx, 'streamlm-player');
  node.port.onmessage = (e: MessageEvent<{ received: number }>) => { document.body.dataset.audioReceived = String(e.data.received); };
  node.connect(ctx.destination);
  audio = { ctx, node };
  return node;
}

function play(pcm: Int16Array): void {
  if (!audio || !$('speak').checked) return;
  const f = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) f[i] = pcm[i] / 32768;
  audio.node.port.postMessage(f, [f.buffer]);
}

/** Ticking "speak" starts the player (inside the click, as autoplay rules want) and espeak in the engine; unticking mutes at once. */
$('speak').onchange = () => {
  const on = $('speak').checked;
  if (!on) audio?.node.port.postMessage('clear');
  // espeak-ng speaks at 22050 Hz; speech-ready remakes the player if another synthesizer differs.
  else void player(audio?.ctx.sampleRate ?? 22050).catch((e: unknown) => { console.warn(`streamlm: audio output failed: ${String(e)}`); });
  send({ t: 'speech', on });
};

/** espeak-ng ships beside the bundle only when its optional package was installed at build time. */
void fetch(new URL('./espeak-ng.js', import.meta.url), { method: 'HEAD' }).then((r) => r.ok, () => false).then((ok) => {
  if (ok) return;
  $('speak').disabled = true;
  $('speakLabel').title = 'Speech needs the optional espeak-ng engine (GPL-3.0): npm install @echogarden/espeak-ng-emscripten, then npm run build:browser';
  $('speakLabel').style.opacity = '0.5';
});
const mb = (b: number): string => (b / 1048576).toFixed(1);

function addTurn(t: Turn): HTMLElement {
  const el = document.createElement('div');
  el.className = t.role;
  el.textContent = t.text;
  if (t.role === 'assistant') { el.dataset.finished = 'true'; el.dataset.ids = JSON.stringify(t.ids ?? []); }
  $('log').appendChild(el);
  $('log').scrollTop = 1e9;
  return el;
}

function showGauge(g: Gauge): void {
  const el = $('gauge');
  const window = g.length - g.sinks;
  Object.assign(el.dataset, { sinks: g.sinks, window, evicted: g.evicted, seen: g.seen });
  const cap = Math.max(1, g.capacity);
  el.textContent = `${g.policy} | sinks ${g.sinks} | window ${window} | evicted ${g.evicted} (of ${g.seen} seen)`;
  (document.querySelector('#bar .sinks') as HTMLElement).style.width = `${(100 * g.sinks) / cap}%`;
  (document.querySelector('#bar .window') as HTMLElement).style.width = `${(100 * window) / cap}%`;
  $('mem').textContent = `session KV ${mb(g.bytes)} MB · wasm memory ${mb(g.wasmBytes)} MB`;
  $('mem').dataset.wasm = String(g.wasmBytes);
  $('speed').textContent = `${g.tokS.toFixed(1)} tok/s · chunks per thread ${g.workerChunks.join('/')}`;
  $('speed').dataset.chunks = JSON.stringify(g.workerChunks);
}

function settings(): ChatSettings {
  const n = (id: string): number => Number($(id).value);
  return { cache: $('cache').value.trim(), maxNewTokens: n('max'), temperature: n('temp'), topK: n('topk'), topP: n('topp'), seed: n('seed') };
}

function busy(on: boolean): void {
  $('send').toggleAttribute('disabled', on);
  $('run').toggleAttribute('disabled', on);
  $('stop').toggleAttribute('disabled', !on);
}

function chat(): void {
  const text = $('input').value;
  if (!text.trim() || !state.info) return;
  $('input').value = '';
  addTurn({ role: 'user', text });
  bubble = addTurn({ role: 'assistant', text: '' });
  bubble.dataset.finished = 'false';
  busy(true);
  send({ t: 'chat', text, settings: settings() });
}

const series = new Map<string, number[]>();
const COLORS = ['#2e86de', '#c0392b', '#27ae60', '#8e44ad', '#e67e22'];

function plot(total: number): void {
  const svg = $<HTMLElement>('plot');
  const W = 640, H = 260, P = 36;
  const all = [...series.values()].flat().filter(Number.isFinite);
  if (!all.length) return;
  const lo = Math.log(Math.min(...all)), hi = Math.log(Math.max(...all)) + 1e-9;
  const y = (v: number): number => H - P - ((Math.log(v) - lo) / (hi - lo)) * (H - 2 * P);
  const bucket = Math.max(1, Math.floor(total / 50));
  let out = `<text x="4" y="14" font-size="11">perplexity per ${bucket} tokens (log scale), ${Math.exp(lo).toFixed(1)}–${Math.exp(hi).toFixed(1)}</text>`;
  [...series.entries()].forEach(([name, s], i) => {
    const pts = s.map((v, j) => `${(P + ((j + 1) * bucket / total) * (W - 2 * P)).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    out += `<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="1.5" points="${pts}"/>`;
    out += `<text x="${W - 150}" y="${20 + 14 * i}" font-size="11" fill="${COLORS[i % COLORS.length]}">${name}</text>`;
  });
  svg.innerHTML = out;
}

engine.onmessage = (e: MessageEvent<FromEngine>): void => {
  const m = e.data;
  switch (m.t) {
    case 'progress': {
      const p = m.p;
      state.downloads[p.file] = p;
      $<HTMLProgressElement>('progress').value = p.total ? p.loaded / p.total : 0;
      $('status').textContent = `${p.cached ? 'from cache' : 'downloading'} ${p.file} ${mb(p.loaded)} MB`;
      break;
    }
    case 'loaded': {
      state.info = m.info;
      $('status').textContent = `${m.info.label} · ${m.info.layers} layers · ${mb(m.info.weightBytes)} MB weights · ${m.info.threads} threads · crossOriginIsolated ${m.info.crossOriginIsolated} · loaded in ${m.info.loadMs.toFixed(0)} ms`;
      $<HTMLProgressElement>('progress').value = 1;
      document.title = `streamlm · ${m.info.label}`;
      busy(false);
      break;
    }
    case 'restored':
      $('log').textContent = '';
      for (const t of m.transcript) addTurn(t);
      state.replies = m.transcript.filter((t) => t.role === 'assistant').map((t) => t.ids ?? []);
      state.restored = true;
      showGauge(m.gauge);
      break;
    case 'token':
      if (bubble) { bubble.textContent += m.text; bubble.dataset.chunks = String(Number(bubble.dataset.chunks ?? 0) + 1); }
      showGauge(m.gauge);
      break;
    case 'done':
      if (bubble) { bubble.dataset.finished = 'true'; bubble.dataset.ids = JSON.stringify(m.ids); bubble.dataset.finish = m.finish; }
      bubble = null;
      state.replies.push(m.ids);
      state.done = m;
      showGauge(m.gauge);
      $('speed').textContent += ` · last reply: prefill ${m.prefillTokS.toFixed(0)} tok/s, decode ${m.decodeTokS.toFixed(1)} tok/s`;
      busy(false);
      break;
    case 'ppl':
      series.set(m.policy, m.series);
      state.ppl[m.policy] = m.ppl;
      plot(m.total);
      $('pplTable').innerHTML = [...series.keys()].map((k) => `${k}: ${k === m.policy ? `${m.ppl.toFixed(2)} after ${m.done}/${m.total}` : 'done'}`).join('<br>');
      $('pplTable').dataset.last = JSON.stringify({ policy: m.policy, ppl: m.ppl, done: m.done });
      break;
    case 'ppl-done':
      $('pplTable').dataset.finished = 'true';
      busy(false);
      break;
    case 'speech-ready':
      void player(m.sampleRate).catch((e: unknown) => { console.warn(`streamlm: audio output failed: ${String(e)}`); });
      break;
    case 'audio':
      play(m.pcm);
      break;
    case 'warning':
      console.warn(`streamlm: ${m.message}`);
      $('status').textContent = m.message;
      break;
    case 'error':
      if (m.message.includes('espeak')) { $('speak').checked = false; $('speakLabel').title = m.message; }
      state.errors.push(m.message);
      $('status').textContent = `error: ${m.message}`;
      if (bubble) { bubble.dataset.finished = 'true'; bubble = null; }
      busy(false);
      break;
  }
};

function load(source: string | File[]): void {
  state.info = null;
  state.restored = false;
  state.downloads = {};
  $('send').setAttribute('disabled', '');
  $('status').textContent = 'loading…';
  const q = new URLSearchParams(location.search);
  send({ t: 'load', source, threads: q.has('threads') ? Number(q.get('threads')) : undefined });
}

$('load').onclick = () => load($('url').value);
$('pick').onchange = () => { const f = $('pick').files; if (f?.length) load(Array.from(f)); };
$('pickGguf').onchange = () => { const f = $('pickGguf').files; if (f?.length) load(Array.from(f)); };
const drop = $('drop');
drop.ondragover = (e) => { e.preventDefault(); drop.classList.add('over'); };
drop.ondragleave = () => drop.classList.remove('over');
drop.ondrop = (e) => { e.preventDefault(); drop.classList.remove('over'); const f = e.dataTransfer?.files; if (f?.length) load(Array.from(f)); };
$('send').onclick = chat;
$('input').onkeydown = (e) => { if (e.key === 'Enter') chat(); };
$('stop').onclick = () => send({ t: 'stop' });
$('reset').onclick = () => { $('log').textContent = ''; state.replies = []; send({ t: 'reset' }); };
$('run').onclick = () => {
  series.clear();
  state.ppl = {};
  delete $('pplTable').dataset.finished;
  busy(true);
  send({ t: 'ppl', text: $<HTMLTextAreaElement>('text').value, policies: $('policies').value.split(',').map((s) => s.trim()).filter(Boolean), tokens: Number($('tokens').value) });
};
$<HTMLTextAreaElement>('text').ondrop = (e) => {
  const f = e.dataTransfer?.files?.[0];
  if (!f) return;
  e.preventDefault();
  void f.text().then((t) => { $<HTMLTextAreaElement>('text').value = t; });
};
for (const tab of ['chat', 'stream']) {
  $(`tab-${tab}`).onclick = () => {
    for (const t of ['chat', 'stream']) { $(t).classList.toggle('on', t === tab); $(`tab-${t}`).classList.toggle('on', t === tab); }
  };
}
if (!globalThis.crossOriginIsolated) console.warn('streamlm: the page is not cross-origin isolated (needs Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp); the engine runs on one thread');
load(new URLSearchParams(location.search).get('model') ?? $('url').value);
