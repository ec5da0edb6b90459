import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import OpenAI from 'openai';
import { ChatTemplate } from '../src/chat/template.js';
import { loadModel, type Model } from '../src/model.js';
import { startServer, type RunningServer } from '../src/server/http.js';
import { StreamlmError } from '../src/errors.js';
import { fixtureDir, readReference } from './helpers/fixtures.js';

// One model; server A keeps sessions exact (no eviction within a test), server B evicts and drops.
let model: Model;
let A: RunningServer;
let B: RunningServer;
let a: OpenAI;
let b: OpenAI;
const CACHE_A = 'sink:4+508';

before(async () => {
  model = await loadModel(fixtureDir('llama'), { threads: 1 });
  A = await startServer(model, { port: 0, cache: CACHE_A, maxSessions: 4 });
  B = await startServer(model, { port: 0, cache: 'sink:4+28', maxSessions: 2, queueTimeoutMs: 400, maxBodyBytes: 64 * 1024 });
  a = new OpenAI({ baseURL: `${A.url}/v1`, apiKey: 'none', maxRetries: 0 });
  b = new OpenAI({ baseURL: `${B.url}/v1`, apiKey: 'none', maxRetries: 0 });
});

after(async () => {
  await A.close();
  await B.close();
  await model.close();
});

/**
 * Greedy decoding written out plainly, independent of the decode stepper, the streaming
 * detokenizer and the stop matcher the server runs: argmax per step, stop at EOS, and the text
 * decoded once at the end (after the prompt's last 4 tokens, as a streaming decoder shows it).
 */
function reference(promptIds: number[], maxNewTokens: number, cache = CACHE_A): { ids: number[]; text: string } {
  const s = model.session({ cache });
  const eos = new Set(model.eosTokenIds);
  const ids: number[] = [];
  try {
    let logits = s.prefill(promptIds);
    while (ids.length < maxNewTokens) {
      let best = 0;
      for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
      if (eos.has(best)) break;
      ids.push(best);
      logits = s.step(best);
    }
  } finally {
    s.close();
  }
  const tok = model.tokenizer!;
  const ctx = promptIds.slice(-4);
  const text = tok.decode([...ctx, ...ids], { skipSpecialTokens: true }).slice(tok.decode(ctx, { skipSpecialTokens: true }).length);
  return { ids, text };
}

const fallback = (): ChatTemplate => new ChatTemplate(model.tokenizer);

interface SseResult { status: number; headers: Headers; events: string[]; chunks: Record<string, unknown>[]; times: number[] }

/** POSTs and reads a whole SSE body, checking the framing: `data: ...` events split by blank lines. */
async function sse(url: string, body: unknown, headers: Record<string, string> = {}): Promise<SseResult> {
  const r = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const events: string[] = [];
  const times: number[] = [];
  const dec = new TextDecoder();
  let buf = '';
  for await (const part of r.body!) {
    buf += dec.decode(part as Uint8Array, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) { events.push(buf.slice(0, i)); times.push(performance.now()); buf = buf.slice(i + 2); }
  }
  assert.equal(buf, '', 'the stream ends with a complete event');
  for (const e of events) assert.match(e, /^data: /, `every event is one data line: ${e}`);
  const chunks = events.filter((e) => e !== 'data: [DONE]').map((e) => JSON.parse(e.slice(6)) as Record<string, unknown>);
  return { status: r.status, headers: r.headers, events, chunks, times };
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }> {
  const r = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: r.status, json: await r.json() as Record<string, unknown>, headers: r.headers };
}

async function sessionInfo(srv: RunningServer, id: string): Promise<{ status: number; body: { busy: boolean; turns: number; cache: { sinks: number; window: number; tokens: number; seen: number; evicted: number } } }> {
  const r = await fetch(`${srv.url}/v1/sessions/${id}`);
  return { status: r.status, body: await r.json() };
}

async function metric(srv: RunningServer, name: string): Promise<number> {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.split(' ')[0] === name);
  return line ? Number(line.split(' ').pop()) : NaN;
}

test('pooled caches: sessions on them match fresh sessions and close in any order', () => {
  const opts = { cache: 'sink:4+28', prefillChunk: 16 };
  const ids = model.encode('It was a dark and stormy night; the rain fell in torrents.');
  const ref = model.session(opts);
  const want = ref.prefill(ids);
  const wantStep = ref.step(7);
  ref.close();
  const c1 = model.allocCache(opts), c2 = model.allocCache(opts);
  const s1 = model.session({ ...opts, kv: c1 }), s2 = model.session({ ...opts, kv: c2 });
  s2.prefill([5, 6, 7]);
  assert.deepEqual(s1.prefill(ids), want);
  s1.close();  // first created, closed first
  const s3 = model.session({ ...opts, kv: c1 });  // reused: reset, same result
  assert.equal(s3.stats().seen, 0);
  assert.deepEqual(s3.prefill(ids), want);
  assert.deepEqual(s3.step(7), wantStep);
  s2.close(); s3.close();
  assert.throws(() => model.session({ cache: 'sink:4+60', prefillChunk: 16, kv: c1 }), (e: unknown) => e instanceof StreamlmError && /slots/.test(e.message));
  assert.throws(() => model.allocCache({ cache: 'dense' }), /bounded policy/);
  const open = model.session(opts);
  assert.throws(() => model.allocCache(opts), /before opening sessions/);
  open.close();
});

test('the first greedy token of a token-id prompt is the argmax of the Hugging Face reference logits', async () => {
  const ref = readReference('llama');
  const last = ref.logitsFull.subarray((ref.inputIds.length - 1) * ref.vocab, ref.inputIds.length * ref.vocab);
  let want = 0;
  for (let i = 1; i < last.length; i++) if (last[i] > last[want]) want = i;
  const r = await a.completions.create({ model: 'llama', prompt: ref.inputIds, max_tokens: 1, temperature: 0 });
  const ctx = ref.inputIds.slice(-4);
  const tok = model.tokenizer!;
  assert.equal(r.choices[0].text, tok.decode([...ctx, want], { skipSpecialTokens: true }).slice(tok.decode(ctx, { skipSpecialTokens: true }).length));
  assert.equal(r.usage?.completion_tokens, model.eosTokenIds.includes(want) ? 0 : 1);
});

test('GET /v1/models, /health, and the openai client lists the model', async () => {
  const list = await a.models.list();
  assert.deepEqual(list.data.map((m) => m.id), ['llama']);
  assert.equal((await a.models.retrieve('llama')).id, 'llama');
  const h = await (await fetch(`${A.url}/health`)).json() as { status: string; max_sessions: number; cache: string };
  assert.deepEqual([h.status, h.max_sessions, h.cache], ['ok', 4, CACHE_A]);
});

test('chat completion through the openai client equals plain greedy decoding of the rendered prompt, streamed and not', async () => {
  const messages = [{ role: 'system' as const, content: 'You are terse.' }, { role: 'user' as const, content: 'Tell me about the sea.' }];
  const ids = model.tokenizer!.encode(fallback().render(messages, true), { addSpecialTokens: true });
  const want = reference(ids, 12);
  const r = await a.chat.completions.create({ model: 'llama', messages, max_tokens: 12, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, want.text);
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.deepEqual(r.usage && [r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens], [ids.length, 12, ids.length + 12]);

  const stream = await a.chat.completions.create({ model: 'llama', messages, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
  let text = '';
  const finish: (string | null)[] = [];
  let usage: OpenAI.CompletionUsage | null | undefined = null;
  let first = true;
  for await (const c of stream) {
    assert.equal(c.object, 'chat.completion.chunk');
    if (first) assert.equal(c.choices[0].delta.role, 'assistant');
    first = false;
    for (const ch of c.choices) { text += ch.delta.content ?? ''; finish.push(ch.finish_reason); }
    if (c.usage) usage = c.usage;
  }
  assert.equal(text, want.text);
  assert.equal(finish.at(-1), 'length');
  assert.ok(finish.slice(0, -1).every((f) => f === null));
  assert.equal(usage?.completion_tokens, 12);
});

test('completions, streamed and not, equal plain greedy decoding; token-id prompts work', async () => {
  const prompt = 'Once upon a time';
  const want = reference(model.encode(prompt), 10);
  const r = await a.completions.create({ model: 'llama', prompt, max_tokens: 10, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].text, want.text);
  assert.equal(r.usage?.completion_tokens, 10);
  let text = '';
  for await (const c of await a.completions.create({ model: 'llama', prompt, max_tokens: 10, temperature: 0, stream: true })) text += c.choices[0]?.text ?? '';
  assert.equal(text, want.text);
  const byIds = await a.completions.create({ model: 'llama', prompt: model.encode(prompt), max_tokens: 10, temperature: 0 });
  assert.equal(byIds.choices[0].text, want.text);
});

test('SSE framing is exactly OpenAI chunks ending with data: [DONE]', async () => {
  const r = await sse(`${A.url}/v1/chat/completions`, { model: 'llama', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, temperature: 0, stream: true, stream_options: { include_usage: true } });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type')!, /^text\/event-stream/);
  assert.equal(r.events.at(-1), 'data: [DONE]');
  const id = r.chunks[0].id;
  assert.match(String(id), /^chatcmpl-/);
  for (const c of r.chunks) {
    assert.deepEqual(Object.keys(c).sort(), ['choices', 'created', 'id', 'model', 'object', 'system_fingerprint', 'usage']);
    assert.equal(c.id, id);
    assert.equal(c.object, 'chat.completion.chunk');
    assert.equal(c.model, 'llama');
  }
  const body = r.chunks.slice(0, -1);
  for (const c of body) {
    const [ch] = c.choices as { index: number; delta: Record<string, unknown>; logprobs: null; finish_reason: string | null }[];
    assert.deepEqual(Object.keys(ch).sort(), ['delta', 'finish_reason', 'index', 'logprobs']);
    assert.equal(c.usage, null);
  }
  const last = r.chunks.at(-1)!;
  assert.deepEqual(last.choices, []);
  assert.deepEqual(Object.keys(last.usage as object).sort(), ['completion_tokens', 'prompt_tokens', 'total_tokens']);
  const fin = r.chunks.at(-2)!.choices as { delta: object; finish_reason: string }[];
  assert.deepEqual(fin[0].delta, {});
  assert.equal(fin[0].finish_reason, 'length');

  const t = await sse(`${A.url}/v1/completions`, { model: 'llama', prompt: 'Hi', max_tokens: 4, temperature: 0, stream: true });
  assert.equal(t.events.at(-1), 'data: [DONE]');
  for (const c of t.chunks) {
    assert.deepEqual(Object.keys(c).sort(), ['choices', 'created', 'id', 'model', 'object', 'system_fingerprint']);
    assert.equal(c.object, 'text_completion');
  }
});

test('a session keeps its cache across turns: the next turn appends only the new messages', async () => {
  const m1 = [{ role: 'user' as const, content: 'The first question is about ships.' }];
  const ids1 = model.tokenizer!.encode(fallback().render(m1, true), { addSpecialTokens: true });
  const want1 = reference(ids1, 8);
  const { data: r1, response: h1 } = await a.chat.completions.create({ model: 'llama', messages: m1, max_tokens: 8, temperature: 0 }, { headers: { 'X-Session-Id': 'turns' } }).withResponse();
  assert.equal(r1.choices[0].message.content, want1.text);
  assert.equal(h1.headers.get('x-session-status'), 'new');

  // Full history, as OpenAI clients send it: only the new user message is rendered and appended.
  const m2 = [...m1, { role: 'assistant' as const, content: r1.choices[0].message.content! }, { role: 'user' as const, content: 'And the second?' }];
  const delta = model.tokenizer!.encode('\n\nUser: And the second?\n\nAssistant:', { addSpecialTokens: false });
  // The cache holds ids1 and the first 7 replies; the 8th was sampled but not fed, so it goes first.
  const want2 = reference([...ids1, ...want1.ids, ...delta], 8);
  const body2 = { model: 'llama', messages: m2, max_tokens: 8, temperature: 0, session: 'turns' };
  const { data: r2, response: h2 } = await a.chat.completions.create(body2 as OpenAI.ChatCompletionCreateParamsNonStreaming).withResponse();
  assert.equal(h2.headers.get('x-session-status'), 'continued');
  // A reply cut by max_tokens leaves its last token to be fed with the next prompt; one ended by EOS does not feed EOS.
  const carried = (r: { finish_reason: string }): number => (r.finish_reason === 'length' ? 1 : 0);
  assert.equal(r2.usage?.prompt_tokens, delta.length + carried(r1.choices[0]));
  assert.equal(r2.choices[0].message.content, want2.text);
  const info = await sessionInfo(A, 'turns');
  assert.equal(info.body.cache.seen, ids1.length + want1.ids.length + delta.length + r2.usage!.completion_tokens - carried(r2.choices[0]));
  assert.equal(info.body.turns, 2);

  // Only the new message (not the history): appended the same way.
  const r3 = await post(`${A.url}/v1/chat/completions`, { model: 'llama', messages: [{ role: 'user', content: 'Third.' }], max_tokens: 4, temperature: 0, session: 'turns' });
  assert.equal(r3.status, 200);
  assert.equal(r3.headers.get('x-session-status'), 'appended');
  const s = r3.json.session as { status: string; cache: { seen: number } };
  const delta3 = model.tokenizer!.encode('\n\nUser: Third.\n\nAssistant:', { addSpecialTokens: false });
  const u3 = r3.json.usage as { prompt_tokens: number; completion_tokens: number };
  const c3 = (r3.json.choices as { finish_reason: string }[])[0];
  assert.equal(u3.prompt_tokens, carried(r2.choices[0]) + delta3.length);
  assert.equal(s.cache.seen, info.body.cache.seen + u3.prompt_tokens + u3.completion_tokens - carried(c3));
});

test('eviction across turns keeps the cache bounded; long prompts are prefilled through it', async () => {
  const sess = 'evict';
  let seen = 0;
  for (let turn = 0; turn < 4; turn++) {
    const r = await b.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: `Turn ${turn}: tell me more about the lighthouse keeper.` }], max_tokens: 10, temperature: 0 }, { headers: { 'X-Session-Id': sess } });
    assert.ok(r.usage!.completion_tokens <= 10 && r.usage!.completion_tokens === (r.choices[0].finish_reason === 'length' ? 10 : r.usage!.completion_tokens));
    const info = (await sessionInfo(B, sess)).body.cache;
    assert.ok(info.seen > seen);
    seen = info.seen;
    assert.ok(info.tokens <= 32 && info.sinks === 4, JSON.stringify(info));
    assert.equal(info.evicted, info.seen - info.tokens);
  }
  assert.ok(seen > 100);
  const long = 'the quick brown fox jumps over the lazy dog '.repeat(20);
  const r = await b.completions.create({ model: 'llama', prompt: long, max_tokens: 20, temperature: 0 }, { headers: { 'X-Session-Id': sess } });
  assert.ok(r.usage!.prompt_tokens > 300);
  const info = (await sessionInfo(B, sess)).body.cache;
  assert.deepEqual([info.tokens, info.sinks, info.window], [32, 4, 28]);
  assert.equal(info.seen, seen + r.usage!.prompt_tokens + r.usage!.completion_tokens - (r.choices[0].finish_reason === 'length' ? 1 : 0));
});

test('bad requests get OpenAI-style errors and the server keeps serving', async () => {
  const url = `${B.url}/v1/chat/completions`;
  const ok = { model: 'llama', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };
  const cases: [unknown, number, string | null][] = [
    [{ ...ok, model: 'gpt-9' }, 404, 'model'],
    [{ messages: ok.messages }, 400, 'model'],
    [{ ...ok, messages: [] }, 400, 'messages'],
    [{ ...ok, messages: 'hi' }, 400, 'messages'],
    [{ ...ok, messages: [{ role: 'wizard', content: 'x' }] }, 400, 'messages[0].role'],
    [{ ...ok, messages: [{ role: 'user' }] }, 400, 'messages[0].content'],
    [{ ...ok, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 400, 'messages[0].content[0]'],
    [{ ...ok, temperature: 3 }, 400, 'temperature'],
    [{ ...ok, temperature: '0.5' }, 400, 'temperature'],
    [{ ...ok, top_p: 0 }, 400, 'top_p'],
    [{ ...ok, max_tokens: 0 }, 400, 'max_tokens'],
    [{ ...ok, max_tokens: 2.5 }, 400, 'max_tokens'],
    [{ ...ok, max_tokens: 1e9 }, 400, 'max_tokens'],
    [{ ...ok, n: 2 }, 400, 'n'],
    [{ ...ok, stop: ['a', 'b', 'c', 'd', 'e'] }, 400, 'stop'],
    [{ ...ok, stop: [''] }, 400, 'stop'],
    [{ ...ok, stream: 'yes' }, 400, 'stream'],
    [{ ...ok, stream_options: { include_usage: true } }, 400, 'stream_options'],
    [{ ...ok, tools: [] }, 400, 'tools'],
    [{ ...ok, session: 'has spaces' }, 400, 'session'],
    [{ ...ok, presence_penalty: 1 }, 400, 'presence_penalty'],
    [{ ...ok, ignore_eos: 'yes' }, 400, 'ignore_eos'],
    [[1, 2], 400, null],
    [null, 400, null],
  ];
  for (const [body, status, param] of cases) {
    const r = await post(url, body);
    assert.equal(r.status, status, JSON.stringify(body));
    const e = r.json.error as { message: string; type: string; param: string | null; code: string | null };
    assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'param', 'type'], JSON.stringify(r.json));
    assert.equal(typeof e.message, 'string');
    assert.equal(e.type, 'invalid_request_error');
    if (param !== null) assert.equal(e.param, param, JSON.stringify(body));
  }
  const comp = `${B.url}/v1/completions`;
  for (const [body, param] of [[{ model: 'llama' }, 'prompt'], [{ model: 'llama', prompt: ['a', 'b'] }, 'prompt'], [{ model: 'llama', prompt: '' }, 'prompt'],
    [{ model: 'llama', prompt: [1, 99999] }, 'prompt'], [{ model: 'llama', prompt: 'x', echo: true }, 'echo'], [{ model: 'llama', prompt: 'x', suffix: 'y' }, 'suffix']] as const) {
    const r = await post(comp, body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal((r.json.error as { param: string }).param, param);
  }
  assert.equal((await post(url, '{"model": "llama", ')).status, 400);
  assert.equal((await post(url, '')).status, 400);
  const big = await post(url, { ...ok, messages: [{ role: 'user', content: 'x'.repeat(100_000) }] });
  assert.equal(big.status, 413);
  assert.equal((big.json.error as { code: string }).code, 'request_too_large');
  assert.equal((await post(url, ok, { 'X-Session-Id': 'one' }).then(() => post(url, { ...ok, session: 'two' }, { 'X-Session-Id': 'one' }))).status, 400);
  assert.equal((await fetch(url)).status, 405);
  assert.equal((await fetch(`${B.url}/v2/nothing`)).status, 404);
  assert.equal((await fetch(`${B.url}/v1/sessions/never-made`)).status, 404);

  await assert.rejects(b.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: 'x' }], temperature: 5 }),
    (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'temperature');
  await assert.rejects(b.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }),
    (e: unknown) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found');
  const h = await fetch(`${B.url}/health`);
  assert.equal(h.status, 200);
  assert.ok(await metric(B, 'streamlm_http_requests_total{endpoint="chat_completions",status="400"}') >= 20);
});

test('the server never crashes on input: every field replaced by every JSON type', async () => {
  const values: unknown[] = [null, true, -1, 0, 0.5, 1e12, '', 'x', [], [1], ['a'], {}, { a: 1 }, [{}]];
  const base = (): Record<string, unknown> => ({ model: 'llama', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, session: 'fuzz' });
  const setters: [string, (b: Record<string, unknown>, v: unknown) => void][] = [
    ...['model', 'messages', 'max_tokens', 'temperature', 'top_p', 'top_k', 'stop', 'stream', 'seed', 'session', 'n', 'user', 'stream_options', 'logit_bias']
      .map((k): [string, (b: Record<string, unknown>, v: unknown) => void] => [k, (b, v) => { b[k] = v; }]),
    ['messages[0]', (b, v) => { b.messages = [v]; }],
    ['messages[0].role', (b, v) => { b.messages = [{ role: v, content: 'hi' }]; }],
    ['messages[0].content', (b, v) => { b.messages = [{ role: 'user', content: v }]; }],
  ];
  const statuses = new Set<number>();
  for (const [name, set] of setters) {
    for (const v of values) {
      const body = base();
      set(body, v);
      const r = await fetch(`${B.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      const text = await r.text();
      statuses.add(r.status);
      assert.ok([200, 400, 404].includes(r.status), `${name} = ${JSON.stringify(v)}: ${r.status} ${text}`);
      if (r.status !== 200) assert.ok((JSON.parse(text) as { error: { message: string } }).error.message.length > 0);
      else if (body.stream === true) assert.ok(text.endsWith('data: [DONE]\n\n'));
      else assert.equal((JSON.parse(text) as { object: string }).object, 'chat.completion');
    }
  }
  assert.deepEqual([...statuses].sort(), [200, 400, 404]);
  assert.equal((await fetch(`${B.url}/v1/sessions/%E0%A4%A`)).status, 400);
  assert.equal((await fetch(`${B.url}/health`)).status, 200);
});

test('a client that disconnects cancels its generation; the session stays usable', async () => {
  const aborted0 = await metric(A, 'streamlm_turns_total{finish="abort"}') || 0;
  const ac = new AbortController();
  const r = await fetch(`${A.url}/v1/chat/completions`, {
    method: 'POST', signal: ac.signal, headers: { 'Content-Type': 'application/json', 'X-Session-Id': 'gone' },
    body: JSON.stringify({ model: 'llama', messages: [{ role: 'user', content: 'Go on forever.' }], max_tokens: 100000, ignore_eos: true, temperature: 0.8, stream: true }),
  });
  const reader = r.body!.getReader();
  let got = 0;
  while (got < 5) { const { value } = await reader.read(); got += (new TextDecoder().decode(value).match(/"content"/g) ?? []).length; }
  ac.abort();
  let info = await sessionInfo(A, 'gone');
  for (let i = 0; i < 50 && info.body.busy; i++) { await new Promise((ok) => setTimeout(ok, 20)); info = await sessionInfo(A, 'gone'); }
  assert.equal(info.body.busy, false);
  const seen = info.body.cache.seen;
  assert.ok(seen < 1000, `generation stopped early (${seen} tokens seen)`);
  await new Promise((ok) => setTimeout(ok, 100));
  assert.equal((await sessionInfo(A, 'gone')).body.cache.seen, seen, 'nothing runs after the abort');
  assert.equal(await metric(A, 'streamlm_turns_total{finish="abort"}'), aborted0 + 1);
  assert.equal(A.engine.runningTurns, 0);

  // Unstreamed requests are cancelled the same way.
  const ac2 = new AbortController();
  const p = fetch(`${A.url}/v1/completions`, { method: 'POST', signal: ac2.signal, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ model: 'llama', prompt: 'x', max_tokens: 100000, ignore_eos: true }) });
  await new Promise((ok) => setTimeout(ok, 150));
  ac2.abort();
  await assert.rejects(p);
  for (let i = 0; i < 50 && A.engine.runningTurns > 0; i++) await new Promise((ok) => setTimeout(ok, 20));
  assert.equal(A.engine.runningTurns, 0);
  assert.equal(await metric(A, 'streamlm_turns_total{finish="abort"}'), aborted0 + 2);

  const next = await post(`${A.url}/v1/chat/completions`, { model: 'llama', messages: [{ role: 'user', content: 'Again.' }], max_tokens: 3, session: 'gone' });
  assert.equal(next.status, 200);
  assert.equal(next.headers.get('x-session-status'), 'appended');
});

test('concurrent turns interleave token by token; a busy session answers 409', async () => {
  const body = (s: string): Record<string, unknown> => ({ model: 'llama', messages: [{ role: 'user', content: `Session ${s} speaks.` }], max_tokens: 400, ignore_eos: true, temperature: 0, stream: true, session: s });
  const p1 = sse(`${A.url}/v1/chat/completions`, body('fair-1'));
  const p2 = sse(`${A.url}/v1/chat/completions`, body('fair-2'));
  await new Promise((ok) => setTimeout(ok, 30));
  const busy = await post(`${A.url}/v1/chat/completions`, { ...body('fair-1'), stream: false });
  assert.equal(busy.status, 409);
  assert.equal((busy.json.error as { code: string }).code, 'session_busy');
  const [r1, r2] = await Promise.all([p1, p2]);
  for (const r of [r1, r2]) assert.equal(r.events.at(-1), 'data: [DONE]');
  // Each got its whole answer, and the second started before the first finished.
  assert.ok(r2.times[1] < r1.times.at(-1)! && r1.times[1] < r2.times.at(-1)!);
});

test('a saved conversation, loaded under another id, continues exactly as the original', async () => {
  const eng = A.engine;
  const turn = async (session: string, messages: { role: 'user' | 'assistant'; content: string }[]): Promise<{ text: string; status: string }> => {
    const t = await eng.start({ session, input: { kind: 'chat', messages }, maxTokens: 10, sampler: {}, stop: [] });
    let text = '';
    for await (const x of t) text += x.text;
    await t.result;
    return { text, status: t.info.status };
  };
  const m1 = [{ role: 'user' as const, content: 'Tell me about ships.' }];
  const r1 = await turn('orig', m1);
  const bytes = eng.saveSession('orig')!;
  await eng.loadSession('copy', bytes);
  assert.deepEqual(eng.session('copy')!.cache, eng.session('orig')!.cache);
  assert.equal(eng.session('copy')!.turns, 1);
  // The client resends the whole conversation: the loaded transcript recognises it, as the original does.
  const m2 = [...m1, { role: 'assistant' as const, content: r1.text }, { role: 'user' as const, content: 'And then?' }];
  const copy = await turn('copy', m2), orig = await turn('orig', m2);
  assert.deepEqual(copy, orig);
  assert.equal(copy.status, 'continued');
  // Another server's cache settings, or a snapshot without a conversation, are refused.
  await assert.rejects(B.engine.loadSession('x', bytes), (e: unknown) => e instanceof StreamlmError && /this server runs/.test(e.message));
  const plain = model.session({ cache: CACHE_A });
  plain.prefill([5, 6]);
  const bare = plain.snapshot();
  plain.close();
  await assert.rejects(eng.loadSession('x', bare), (e: unknown) => e instanceof StreamlmError && /no saved conversation/.test(e.message));
  assert.equal(eng.saveSession('nobody'), null);
  eng.deleteSession('orig');
  eng.deleteSession('copy');
});

test('max sessions: the least recently used idle session is dropped and the client is told', async () => {
  for (const id of ['x', 'y']) {
    assert.equal((await post(`${B.url}/v1/completions`, { model: 'llama', prompt: 'a b c', max_tokens: 2, session: id })).status, 200);
  }
  const dropped0 = await metric(B, 'streamlm_sessions_dropped_total');
  await post(`${B.url}/v1/completions`, { model: 'llama', prompt: 'a b c', max_tokens: 2, session: 'x' });  // x is now the most recent
  const z = await post(`${B.url}/v1/completions`, { model: 'llama', prompt: 'a b c', max_tokens: 2, session: 'z' });
  assert.equal(z.status, 200);
  assert.equal(await metric(B, 'streamlm_sessions_dropped_total'), dropped0 + 1);
  assert.equal((await sessionInfo(B, 'y')).status, 404);
  assert.equal((await sessionInfo(B, 'x')).status, 200);
  const y = await post(`${B.url}/v1/completions`, { model: 'llama', prompt: 'a b c', max_tokens: 2, session: 'y' });
  assert.equal(y.status, 200);
  assert.deepEqual([y.headers.get('x-session-status'), y.headers.get('x-session-dropped')], ['new', 'true']);
  assert.deepEqual([(y.json.session as { dropped: boolean }).dropped, (y.json.session as { status: string }).status], [true, 'new']);

  // Every cache busy: a new session waits, then gets a clean 503.
  const ac = new AbortController();
  const hold = ['h1', 'h2'].map((s) => fetch(`${B.url}/v1/completions`, { method: 'POST', signal: ac.signal, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ model: 'llama', prompt: 'go', max_tokens: 100000, ignore_eos: true, stream: true, session: s }) }));
  await Promise.all(hold);
  const full = await post(`${B.url}/v1/completions`, { model: 'llama', prompt: 'a', max_tokens: 2 });
  assert.equal(full.status, 503);
  assert.equal((full.json.error as { code: string }).code, 'server_overloaded');
  ac.abort();
  for (let i = 0; i < 50 && B.engine.runningTurns > 0; i++) await new Promise((ok) => setTimeout(ok, 20));
  assert.equal((await post(`${B.url}/v1/completions`, { model: 'llama', prompt: 'a', max_tokens: 2 })).status, 200);
  // The one-off request took the cache of h1, the least recently used; h2 is deleted by hand.
  assert.equal((await sessionInfo(B, 'h1')).status, 404);
  const del = await fetch(`${B.url}/v1/sessions/h2`, { method: 'DELETE' });
  assert.equal(del.status, 200);
  assert.equal((await sessionInfo(B, 'h2')).status, 404);
});

test('metrics are Prometheus text with token counters, cache occupancy and latency histograms', async () => {
  const text = await (await fetch(`${A.url}/metrics`)).text();
  for (const name of ['streamlm_prompt_tokens_total', 'streamlm_generated_tokens_total', 'streamlm_sessions', 'streamlm_sessions_max',
    'streamlm_cache_tokens', 'streamlm_cache_evicted_tokens', 'streamlm_memory_bytes', 'streamlm_time_to_first_token_seconds', 'streamlm_inter_token_seconds']) {
    assert.match(text, new RegExp(`^# TYPE ${name} (counter|gauge|histogram)$`, 'm'), name);
  }
  for (const line of text.trim().split('\n')) {
    if (!line.startsWith('#')) assert.match(line, /^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [-+0-9.eInf]+$/, line);
  }
  assert.ok(await metric(A, 'streamlm_generated_tokens_total') > 50);
  assert.ok(await metric(A, 'streamlm_time_to_first_token_seconds_count') > 5);
  assert.equal(await metric(A, 'streamlm_sessions_max'), 4);
  assert.match(text, /^streamlm_time_to_first_token_seconds_bucket\{le="\+Inf"\} \d+$/m);
  assert.match(text, /^streamlm_cache_tokens\{part="sinks"\} \d+$/m);
});

test('streamlm serve: starts, answers, shuts down on SIGTERM; bad flags are one-line errors', async () => {
  const main = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', main, 'serve', '--model', fixtureDir('llama'), '--port', '0', '--threads', '1', '--cache', 'window:32', '--max-sessions', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const url = await new Promise<string>((ok, fail) => {
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); const m = /at (http:\/\/[^\s/]+)\//.exec(err); if (m) ok(m[1]); });
    child.on('exit', () => fail(new Error(err)));
  });
  assert.match(err, /serving llama at .* cache window:32, 1 sessions, [\d.]+ MB of KV reserved/);
  const h = await (await fetch(`${url}/health`)).json() as { cache: string; max_sessions: number };
  assert.deepEqual([h.cache, h.max_sessions], ['window:32', 1]);
  const page = await fetch(`${url}/`);
  assert.match(await page.text(), /<title>streamlm · llama<\/title>/);
  const code = await new Promise<number | null>((ok) => { child.on('exit', (c) => ok(c)); child.kill('SIGTERM'); });
  assert.equal(code, 0, err);
  for (const [args, want] of [[['--cache', 'dense'], /--cache: serving needs a bounded cache.*'dense'/], [['--cache', 'recompute:16'], /bounded cache/],
    [['--max-sessions', '0'], /--max-sessions: expected an integer >= 1/], [['--port', 'http'], /--port: expected an integer/],
    [['--chat-template', '/nonexistent.jinja'], /nonexistent.jinja: --chat-template: file not found/], [['--bogus'], /Unknown option '--bogus'/]] as const) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', main, 'serve', '--model', fixtureDir('llama'), '--threads', '1', ...args], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, want);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
  const busy = spawnSync(process.execPath, ['--import', 'tsx', main, 'serve', '--model', fixtureDir('llama'), '--threads', '1', '--port', String(A.port)], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(busy.status, 1);
  assert.match(busy.stderr, new RegExp(`--port: port ${A.port} is already in use`));
});
