// Load on `streamlm serve` over loopback, as OpenAI clients talk to it.
//  1. --sessions S conversations at once, --turns T turns each, every turn streamed: p50/p99 time to
//     first token, aggregate tok/s, errors. --endpoint completions (default) appends new text to each
//     session; --endpoint chat sends the whole history each turn, as OpenAI chat clients do.
//  2. One conversation grown to --history tokens in turns of --turn-tokens new tokens: time to first
//     token per turn stays flat, while a server that re-prefills the history (same request without a
//     session) gets slower with every turn.
// The server runs in a child process, so the load generator does not share its event loop.
// Usage: npm run bench:serve -- [--sessions 16 --turns 20 --max-tokens 32] [--history 100000 --turn-tokens 4000]
//        [--endpoint completions|chat] [--model DIR] [--cache POLICY] [--threads N] [--max-seconds 300] [--json]
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { benchArgs, longevalText } from './common.js';

const args = benchArgs(process.argv.slice(2));
const root = join(import.meta.dirname, '..');
const shipped = ['novels-8m-sink', 'novels-8m'].map((d) => join(root, 'models', d)).find((d) => existsSync(join(d, 'config.json')));
const modelDir = args.get('model') ?? shipped ?? join(root, 'test', 'fixtures', 'llama');
const sessions = Number(args.get('sessions') ?? 16);
const turns = Number(args.get('turns') ?? 20);
const maxTokens = Number(args.get('max-tokens') ?? 32);
const history = Number(args.get('history') ?? 100_000);
const turnTokens = Number(args.get('turn-tokens') ?? 4000);
// The test fixture was trained on 128 positions; a shipped model gets a serving-size cache.
const cache = args.get('cache') ?? (modelDir.includes(join('test', 'fixtures')) ? 'sink:4+252' : 'sink:4+508');
const threads = args.get('threads') ?? '1';
const maxSeconds = Number(args.get('max-seconds') ?? 300);
const json = args.has('json');
const endpoint = args.get('endpoint') ?? 'completions';
if (endpoint !== 'chat' && endpoint !== 'completions') throw new Error(`--endpoint must be chat or completions, got ${endpoint}`);
const log = (s: string): void => { if (!json) console.error(s); };

let corpus = '';
try { corpus = longevalText(4_000_000); } catch { corpus = 'It was the best of times, it was the worst of times, it was the age of wisdom. '.repeat(50_000); }
let cursor = 0;
/** The next `chars` characters of the corpus: every message is new text. */
function text(chars: number): string {
  if (cursor + chars > corpus.length) cursor = 0;
  const t = corpus.slice(cursor, cursor + chars);
  cursor += chars;
  return t;
}

async function startServer(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src', 'cli', 'main.ts'), 'serve', '--model', modelDir, '--port', '0',
    '--model-id', 'bench', '--cache', cache, '--max-sessions', String(sessions + 2), '--threads', threads, '--max-body-bytes', String(64 << 20)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const url = await new Promise<string>((ok, fail) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /serving \S+ at (http:\/\/[^\s/]+)\//.exec(err);
      if (m) ok(m[1]);
    });
    child.on('exit', (code) => fail(new Error(`server exited (${code}): ${err}`)));
  });
  return { url, child };
}

interface Msg { role: 'system' | 'user' | 'assistant'; content: string }
interface TurnStat { ok: boolean; ttftMs: number; tokens: number; promptTokens: number; error?: string }

type Payload = { messages: Msg[] } | { prompt: string };

/** One streamed turn: time to the first chunk with text, tokens from the usage chunk. */
async function turn(url: string, payload: Payload, session: string | null, maxNew: number): Promise<TurnStat & { reply: string }> {
  const t0 = performance.now();
  let ttft = -1, reply = '', tokens = 0, promptTokens = 0, done = false;
  const path = 'messages' in payload ? 'chat/completions' : 'completions';
  try {
    const r = await fetch(`${url}/v1/${path}`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', ...(session ? { 'X-Session-Id': session } : {}) },
      // ignore_eos: every reply runs to max_tokens, so tok/s does not depend on when a model says EOS.
      body: JSON.stringify({ model: 'bench', ...payload, max_tokens: maxNew, ignore_eos: true, temperature: 0.8, seed: 1, stream: true, stream_options: { include_usage: true } }),
    });
    if (r.status !== 200) return { ok: false, ttftMs: 0, tokens: 0, promptTokens: 0, reply, error: `HTTP ${r.status}: ${await r.text()}` };
    const dec = new TextDecoder();
    let buf = '';
    for await (const part of r.body!) {
      buf += dec.decode(part, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const ev = buf.slice(6, i);
        buf = buf.slice(i + 2);
        if (ev === '[DONE]') { done = true; continue; }
        const c = JSON.parse(ev) as { choices: { delta?: { content?: string }; text?: string }[]; usage?: { completion_tokens: number; prompt_tokens: number } | null; error?: { message: string } };
        if (c.error) return { ok: false, ttftMs: 0, tokens: 0, promptTokens: 0, reply, error: c.error.message };
        const piece = c.choices[0]?.delta?.content ?? c.choices[0]?.text ?? '';
        if (piece && ttft < 0) ttft = performance.now() - t0;
        reply += piece;
        if (c.usage) { tokens = c.usage.completion_tokens; promptTokens = c.usage.prompt_tokens; }
      }
    }
  } catch (e) {
    return { ok: false, ttftMs: 0, tokens: 0, promptTokens: 0, reply, error: (e as Error).message };
  }
  // A reply may be all EOS or undecodable bytes; then the end of the stream is its first token.
  if (ttft < 0) ttft = performance.now() - t0;
  return { ok: done, ttftMs: ttft, tokens, promptTokens, reply, error: done ? undefined : 'no [DONE]' };
}

/**
 * A conversation as a client keeps it. Chat sends the whole history every turn (the server appends
 * only the new message); completions sends only the new text, which the session appends.
 * `full()` is the request a server without sessions would need: the whole history again.
 */
class Conversation {
  private msgs: Msg[] = endpoint === 'chat' ? [{ role: 'system', content: 'You are a storyteller.' }] : [];
  private raw = '';
  add(user: string): Payload {
    if (endpoint === 'chat') { this.msgs.push({ role: 'user', content: user }); return { messages: this.msgs }; }
    this.raw += user;
    return { prompt: user };
  }
  full(): Payload { return endpoint === 'chat' ? { messages: this.msgs } : { prompt: this.raw }; }
  reply(text: string): void {
    if (endpoint === 'chat') this.msgs.push({ role: 'assistant', content: text });
    else this.raw += text;
  }
}

const pct = (xs: number[], p: number): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN; };

interface LoadStats {
  sessions: number; turns_per_session: number; requests: number; errors: number; first_errors: string[];
  ttft_ms_p50: number; ttft_ms_p99: number; completion_tokens: number; prompt_tokens: number; wall_s: number; aggregate_tok_s: number;
}

async function load(url: string): Promise<LoadStats> {
  const stats: TurnStat[] = [];
  const errors: string[] = [];
  const deadline = performance.now() + maxSeconds * 500;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: sessions }, async (_, s) => {
    const conv = new Conversation();
    for (let t = 0; t < turns && performance.now() < deadline; t++) {
      const r = await turn(url, conv.add(text(200)), `bench-${s}`, maxTokens);
      stats.push(r);
      if (!r.ok) errors.push(r.error ?? 'error');
      conv.reply(r.reply);
    }
  }));
  const wall = (performance.now() - t0) / 1000;
  const ok = stats.filter((s) => s.ok);
  const tokens = ok.reduce((a, s) => a + s.tokens, 0);
  const ttft = ok.map((s) => s.ttftMs);
  return {
    sessions, turns_per_session: turns, requests: stats.length, errors: errors.length, first_errors: errors.slice(0, 3),
    ttft_ms_p50: pct(ttft, 50), ttft_ms_p99: pct(ttft, 99), completion_tokens: tokens, prompt_tokens: ok.reduce((a, s) => a + s.promptTokens, 0),
    wall_s: wall, aggregate_tok_s: tokens / wall,
  };
}

async function longSession(url: string): Promise<Record<string, unknown>> {
  const conv = new Conversation();
  const rows: { turn: number; history_tokens: number; prompt_tokens: number; ttft_ms: number; reprefill_ttft_ms: number | null }[] = [];
  let seen = 0;
  let charsPerToken = 1.3;
  let msPerToken = 0;
  // Re-prefill points: the first turn, then as the history passes each quarter, and the last turn.
  const marks = [0.25, 0.5, 0.75];
  const deadline = performance.now() + maxSeconds * 500;
  for (let t = 0; seen < history && performance.now() < deadline; t++) {
    const chars = Math.round(turnTokens * charsPerToken);
    const payload = conv.add(text(chars));
    let reprefill: number | null = null;
    const last = seen + 1.25 * turnTokens >= history;
    let due = t === 0 || last;
    while (marks.length && seen >= marks[0] * history) { marks.shift(); due = true; }
    // Skipped when it would eat more than half of the time left: it costs the whole history's prefill.
    if (due && seen * msPerToken > (deadline - performance.now()) / 2) due = false;
    if (due) {
      // What a server without kept sessions does: re-read the whole history for the first token.
      const r = await turn(url, conv.full(), null, 1);
      if (!r.ok) throw new Error(`re-prefill request failed: ${r.error}`);
      reprefill = r.ttftMs;
    }
    const r = await turn(url, payload, 'long', 4);
    if (!r.ok) throw new Error(`turn ${t} failed: ${r.error}`);
    if (t === 0) { charsPerToken = chars / r.promptTokens; msPerToken = r.ttftMs / r.promptTokens; }
    seen += r.promptTokens + r.tokens;
    rows.push({ turn: t, history_tokens: seen, prompt_tokens: r.promptTokens, ttft_ms: r.ttftMs, reprefill_ttft_ms: reprefill });
    conv.reply(r.reply);
    log(`  turn ${String(t).padStart(3)}: history ${String(seen).padStart(7)} tok, new ${r.promptTokens} tok, TTFT ${r.ttftMs.toFixed(0)} ms` +
      (reprefill !== null ? ` | re-prefill of the whole history: ${reprefill.toFixed(0)} ms` : ''));
  }
  const t = rows.map((r) => r.ttft_ms);
  const q = Math.max(1, Math.floor(t.length / 4));
  return {
    turn_tokens: turnTokens, turns: rows.length, history_tokens: seen,
    ttft_ms_first_quarter_median: pct(t.slice(0, q), 50), ttft_ms_last_quarter_median: pct(t.slice(-q), 50), rows,
  };
}

const { url, child } = await startServer();
try {
  log(`[bench:serve] ${modelDir} | cache ${cache} | ${threads} thread(s) | /v1/${endpoint === 'chat' ? 'chat/' : ''}completions | server ${url}`);
  log(`load: ${sessions} sessions x ${turns} turns, ${maxTokens} tokens per reply`);
  const loadRes = await load(url);
  log(`  ${loadRes.requests} requests, ${loadRes.errors} errors | TTFT p50 ${loadRes.ttft_ms_p50.toFixed(1)} ms, p99 ${loadRes.ttft_ms_p99.toFixed(1)} ms | ${loadRes.aggregate_tok_s.toFixed(1)} tok/s aggregate`);
  log(`long session: up to ${history} tokens in turns of ~${turnTokens}`);
  const longRes = await longSession(url);
  const out = { model: modelDir, cache, threads: Number(threads), endpoint, load: loadRes, long_session: longRes };
  if (json) console.log(JSON.stringify(out));
  else log(`  TTFT median, first quarter of turns ${(longRes.ttft_ms_first_quarter_median as number).toFixed(0)} ms, last quarter ${(longRes.ttft_ms_last_quarter_median as number).toFixed(0)} ms`);
  if (loadRes.errors > 0) process.exitCode = 1;
} finally {
  child.kill('SIGTERM');
}
