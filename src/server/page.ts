/**
 * The web chat served at GET /: one self-contained page. It streams a reply from
 * /v1/chat/completions (SSE over fetch) and polls /v1/sessions/:id for a live gauge of the
 * session's cache (sinks | window | evicted) and the server's memory. With "speak" on, it asks for
 * a spoken reply (modalities text+audio) and plays the audio deltas as they arrive through an
 * AudioWorklet (a queue the audio thread drains), so speech starts with the first phrase.
 */

/**
 * The AudioWorklet processor: a FIFO of Float32 blocks posted by the page, drained 128 frames at a
 * time; it reports the samples it received and played so the page (and its test) can tell.
 */
const PLAYER = `class StreamlmPlayer extends AudioWorkletProcessor {
  constructor() { super(); this.q = []; this.at = 0; this.received = 0; this.played = 0;
    this.port.onmessage = (e) => { if (e.data === 'clear') { this.q = []; this.at = 0; return; } this.q.push(e.data); this.received += e.data.length; this.port.postMessage({ received: this.received, played: this.played }); }; }
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

function html(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON for a <script> block: `<` escaped so no string can close the tag. */
function js(v: unknown): string {
  return JSON.stringify(v).replace(/</g, '\\u003c');
}

/**
 * The reply as the page displays it. A reply usually begins with the space its first token
 * carries ("Hello" is " Hello" after "Assistant:"), which shows as a stray indent; the page trims
 * it, while the API and the conversation the page sends back keep the text as generated. Runs in
 * the browser: the page embeds this function's source.
 */
export function replyDisplay(text: string): string {
  return text.replace(/^\s+/, '');
}

export function chatPage(modelId: string, policy: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>streamlm · ${html(modelId)}</title><link rel="icon" href="data:,">
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; display: flex; flex-direction: column; height: 100vh; background: #f6f6f4; color: #222; }
  header { padding: 8px 14px; background: #20242a; color: #eee; display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
  header b { font-weight: 600; }
  #log { flex: 1; overflow-y: auto; padding: 14px; }
  .msg { max-width: 760px; margin: 0 auto 10px; padding: 8px 12px; border-radius: 8px; white-space: pre-wrap; word-wrap: break-word; }
  .user { background: #dde8f7; } .assistant { background: #fff; border: 1px solid #ddd; } .error { background: #fbe3e3; }
  #status { padding: 6px 14px; background: #fff; border-top: 1px solid #ddd; font: 13px ui-monospace, monospace; }
  #bar { display: flex; height: 12px; background: #eee; border-radius: 3px; overflow: hidden; margin: 4px 0; max-width: 760px; }
  #bar .sinks { background: #c0392b; } #bar .window { background: #2e86c1; }
  form { display: flex; gap: 8px; padding: 10px 14px; background: #fff; border-top: 1px solid #ddd; }
  textarea { flex: 1; font: inherit; padding: 6px; resize: vertical; min-height: 2.4em; }
  label { font-size: 13px; } input[type=number] { width: 5em; }
</style></head>
<body>
<header><b>streamlm</b><span>model <code id="model">${html(modelId)}</code></span><span>cache <code>${html(policy)}</code></span>
  <span>session <code id="sid"></code></span>
  <label>max tokens <input id="max" type="number" min="1" value="128"></label>
  <label>temperature <input id="temp" type="number" min="0" max="2" step="0.1" value="0.7"></label>
  <label title="speak replies as they stream (needs the optional espeak-ng engine on the server)"><input id="speak" type="checkbox"> speak</label></header>
<div id="log"></div>
<div id="status">
  <div id="bar" title="sinks | window | free"><div class="sinks" style="width:0"></div><div class="window" style="width:0"></div></div>
  <span id="gauge" data-sinks="0" data-window="0" data-evicted="0" data-seen="0">sinks 0 | window 0 | evicted 0</span> ·
  <span id="mem">memory —</span>
</div>
<form id="form"><textarea id="input" placeholder="Say something (Enter sends, Shift+Enter for a new line)"></textarea>
  <button id="send" type="submit">Send</button><button id="stop" type="button" disabled>Stop</button></form>
<script>
const MODEL = ${js(modelId)};
const sid = 'web-' + Array.from(crypto.getRandomValues(new Uint8Array(9)), (b) => b.toString(16).padStart(2, '0')).join('');
document.getElementById('sid').textContent = sid;
const log = document.getElementById('log'), input = document.getElementById('input');
const sendBtn = document.getElementById('send'), stopBtn = document.getElementById('stop');
const messages = [];
let ctrl = null, polling = null;
const speakBox = document.getElementById('speak');
let audio = null;
/** The player node, started on first use (browsers allow audio only after a user gesture). */
async function player(rate) {
  if (audio && audio.ctx.sampleRate === rate) { await audio.ctx.resume(); return audio.node; }
  const ctx = new AudioContext({ sampleRate: rate });
  await ctx.audioWorklet.addModule(URL.createObjectURL(new Blob([${js(PLAYER)}], { type: 'text/javascript' })));
  const node = new AudioWorkletNode(ctx, 'streamlm-player');
  node.port.onmessage = (e) => { document.body.dataset.audioReceived = String(e.data.received); };
  node.connect(ctx.destination);
  audio = { ctx, node };
  return node;
}
/** Mute: unticking "speak" silences the reply being played, not only the next one. */
speakBox.addEventListener('change', () => { if (!speakBox.checked && audio) audio.node.port.postMessage('clear'); });
function pcm16(b64) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const s = new Int16Array(bytes.buffer, 0, bytes.length >> 1), f = new Float32Array(s.length);
  for (let i = 0; i < s.length; i++) f[i] = s[i] / 32768;
  return f;
}

function bubble(cls, text) {
  const d = document.createElement('div'); d.className = 'msg ' + cls; d.textContent = text; log.appendChild(d);
  log.scrollTop = log.scrollHeight; return d;
}
const shown = ${replyDisplay.toString()};
const mb = (n) => (n / 1048576).toFixed(1) + ' MB';

async function refreshGauge() {
  const r = await fetch('/v1/sessions/' + sid).catch(() => null);
  if (!r || !r.ok) return;
  const s = await r.json(), c = s.cache, keep = c.sink_capacity + c.window_capacity;
  const g = document.getElementById('gauge');
  Object.assign(g.dataset, { sinks: c.sinks, window: c.window, evicted: c.evicted, seen: c.seen });
  g.textContent = 'sinks ' + c.sinks + '/' + c.sink_capacity + ' | window ' + c.window + '/' + c.window_capacity + ' | evicted ' + c.evicted + ' (of ' + c.seen + ' seen)';
  const bar = document.getElementById('bar');
  bar.querySelector('.sinks').style.width = (100 * c.sinks / keep) + '%';
  bar.querySelector('.window').style.width = (100 * c.window / keep) + '%';
  document.getElementById('mem').textContent = 'memory: session KV ' + mb(s.memory.kv_session_bytes) + ' · all KV ' + mb(s.memory.kv_reserved_bytes) +
    ' · wasm ' + mb(s.memory.wasm_bytes) + ' · server RSS ' + mb(s.memory.rss_bytes);
}

async function send(text) {
  messages.push({ role: 'user', content: text });
  bubble('user', text);
  const out = bubble('assistant', '');
  ctrl = new AbortController();
  sendBtn.disabled = true; stopBtn.disabled = false;
  polling = setInterval(refreshGauge, 250);
  let reply = '';
  // Draw at most once per frame: redrawing the whole reply and forcing a layout for every token
  // would keep the page's main thread busy at high token rates, and Stop would not respond.
  let frame = 0;
  const draw = () => { frame = 0; out.textContent = shown(reply); log.scrollTop = log.scrollHeight; };
  const render = () => { if (!frame) frame = requestAnimationFrame(draw); };
  const spoken = speakBox.checked;
  try {
    const node = spoken ? await player(22050).catch(() => null) : null;
    const r = await fetch('/v1/chat/completions', {
      method: 'POST', signal: ctrl.signal,
      headers: { 'Content-Type': 'application/json', 'X-Session-Id': sid },
      body: JSON.stringify({ model: MODEL, messages, stream: true,
        max_tokens: Number(document.getElementById('max').value) || 128, temperature: Number(document.getElementById('temp').value) || 0,
        ...(spoken ? { modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'pcm16' } } : {}) }),
    });
    if (!r.ok) { const e = await r.json().catch(() => ({})); throw new Error((e.error && e.error.message) || r.statusText); }
    const rate = Number(r.headers.get('X-Sample-Rate'));
    const play = node && rate ? await player(rate) : null;
    const reader = r.body.getReader(), dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\\n\\n')) >= 0) {
        const ev = buf.slice(0, i); buf = buf.slice(i + 2);
        if (!ev.startsWith('data: ')) continue;
        const data = ev.slice(6);
        if (data === '[DONE]') { out.dataset.done = 'true'; continue; }
        const j = JSON.parse(data);
        if (j.error) throw new Error(j.error.message);
        const d = j.choices[0] && j.choices[0].delta;
        if (d && d.audio && d.audio.data && play && speakBox.checked) play.port.postMessage(pcm16(d.audio.data));
        if (d && d.audio && d.audio.transcript) d.content = d.audio.transcript;
        if (d && d.content) { reply += d.content; out.dataset.chunks = String(Number(out.dataset.chunks || 0) + 1); render(); }
      }
    }
  } catch (e) {
    if (frame) { cancelAnimationFrame(frame); draw(); }
    if (e.name !== 'AbortError') { out.className = 'msg error'; out.textContent = shown(reply) + ' [' + e.message + ']'; }
  } finally {
    if (frame) { cancelAnimationFrame(frame); draw(); }
    messages.push({ role: 'assistant', content: reply });
    clearInterval(polling); ctrl = null;
    await refreshGauge();
    sendBtn.disabled = false; stopBtn.disabled = true;
    out.dataset.finished = 'true';
  }
}

document.getElementById('form').addEventListener('submit', (e) => {
  e.preventDefault();
  const t = input.value.trim();
  if (!t || ctrl) return;
  input.value = '';
  send(t);
});
input.addEventListener('keydown', (e) => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); document.getElementById('form').requestSubmit(); } });
stopBtn.addEventListener('click', () => ctrl && ctrl.abort());
</script>
</body></html>
`;
}
