// API keys (issue 17): 401 in OpenAI's error shape without a valid key on /v1 routes, /health open,
// sessions kept apart per key, 429 past the per-key concurrency limit, 400 past the prompt limit.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel, type Model } from '../src/model.js';
import { startServer, type RunningServer } from '../src/server/http.js';
import { parseApiKeys } from '../src/server/auth.js';
import { StreamlmError } from '../src/errors.js';
import { fixtureDir } from './helpers/fixtures.js';

const K1 = 'sk-test-key-number-one';
const K2 = 'sk-test-key-number-two';
let model: Model;
let srv: RunningServer;

before(async () => {
  model = await loadModel(fixtureDir('llama'), { threads: 1 });
  srv = await startServer(model, { port: 0, cache: 'sink:4+60', maxSessions: 4, apiKeys: [K1, K2], maxConcurrentPerKey: 1, maxPromptTokens: 40 });
});
after(async () => { await srv.close(); await model.close(); });

function post(key: string | null, body: object, path = '/v1/completions'): Promise<Response> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (key !== null) headers.Authorization = `Bearer ${key}`;
  return fetch(`${srv.url}${path}`, { method: 'POST', headers, body: JSON.stringify({ model: 'llama', max_tokens: 2, temperature: 0, ...body }) });
}

test('every /v1 route answers 401 in OpenAI error shape without a valid key; /health stays open', async () => {
  const cases: [string, RequestInit, string][] = [
    ['/v1/models', {}, 'missing_api_key'],
    ['/v1/models', { headers: { Authorization: 'Bearer sk-wrong-key-of-some-length' } }, 'invalid_api_key'],
    ['/v1/models', { headers: { Authorization: `Basic ${K1}` } }, 'missing_api_key'],
    ['/v1/sessions/a', {}, 'missing_api_key'],
    ['/v1/completions', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' }, 'missing_api_key'],
    ['/v1/chat/completions', { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${K1}x` }, body: '{}' }, 'invalid_api_key'],
  ];
  for (const [path, init, code] of cases) {
    const r = await fetch(`${srv.url}${path}`, init);
    assert.equal(r.status, 401, path);
    const e = await r.json() as { error: Record<string, unknown> };
    assert.deepEqual(Object.keys(e.error).sort(), ['code', 'message', 'param', 'type']);
    assert.equal(e.error.code, code, path);
    assert.equal(e.error.type, 'invalid_request_error');
  }
  assert.equal((await fetch(`${srv.url}/health`)).status, 200);
  for (const k of [K1, K2]) assert.equal((await fetch(`${srv.url}/v1/models`, { headers: { Authorization: `Bearer ${k}` } })).status, 200);
});

test('session ids are namespaced by key: one key can neither read nor continue another key\'s session', async () => {
  const r1 = await post(K1, { prompt: 'The house', session: 'shared-name' });
  assert.equal(r1.status, 200);
  assert.equal(r1.headers.get('x-session-id'), 'shared-name');   // the client's id, not the internal one
  assert.equal(r1.headers.get('x-session-status'), 'new');
  const body1 = await r1.json() as { session: { id: string } };
  assert.equal(body1.session.id, 'shared-name');
  // The other key, same id: a new, separate session.
  const r2 = await post(K2, { prompt: 'The house', session: 'shared-name' });
  assert.equal(r2.headers.get('x-session-status'), 'new');
  const get2 = await fetch(`${srv.url}/v1/sessions/shared-name`, { headers: { Authorization: `Bearer ${K2}` } });
  assert.equal(((await get2.json()) as { turns: number }).turns, 1);
  const get1 = await fetch(`${srv.url}/v1/sessions/shared-name`, { headers: { Authorization: `Bearer ${K1}` } });
  assert.deepEqual(await get1.json().then((b) => [(b as { id: string }).id, (b as { turns: number }).turns]), ['shared-name', 1]);
  // K2 deletes its own; K1's stays.
  assert.equal((await fetch(`${srv.url}/v1/sessions/shared-name`, { method: 'DELETE', headers: { Authorization: `Bearer ${K2}` } })).status, 200);
  assert.equal((await fetch(`${srv.url}/v1/sessions/shared-name`, { headers: { Authorization: `Bearer ${K2}` } })).status, 404);
  assert.equal((await fetch(`${srv.url}/v1/sessions/shared-name`, { headers: { Authorization: `Bearer ${K1}` } })).status, 200);
  const r3 = await post(K1, { prompt: ' again', session: 'shared-name' });
  assert.equal(r3.headers.get('x-session-status'), 'appended');
});

test('limits: a second running request of one key is a 429; another key still runs; long prompts are a 400', async () => {
  const slow = post(K1, { prompt: 'The house', max_tokens: 400, ignore_eos: true, stream: true });
  const first = await slow;
  assert.equal(first.status, 200);
  const busy = await post(K1, { prompt: 'The house' });
  assert.equal(busy.status, 429);
  assert.equal(((await busy.json()) as { error: { code: string } }).error.code, 'rate_limit_exceeded');
  assert.equal((await post(K2, { prompt: 'The house' })).status, 200);
  await first.body!.cancel();
  // The slot is given back once the first request ends.
  let ok = 0;
  for (let i = 0; i < 50 && ok !== 200; i++) { ok = (await post(K1, { prompt: 'The house' })).status; if (ok !== 200) await new Promise((r) => setTimeout(r, 20)); }
  assert.equal(ok, 200);
  const long = await post(K2, { prompt: Array.from({ length: 41 }, (_, i) => i + 1) });
  assert.equal(long.status, 400);
  assert.equal(((await long.json()) as { error: { code: string } }).error.code, 'prompt_too_long');
  assert.equal((await post(K2, { prompt: Array.from({ length: 40 }, (_, i) => i + 1) })).status, 200);
});

test('--api-key values are checked: short keys and empty entries are refused', () => {
  assert.deepEqual(parseApiKeys(`${K1},${K2}`), [K1, K2]);
  assert.deepEqual(parseApiKeys(undefined), []);
  for (const bad of ['short', `${K1},`, 'has a space in the key!!', '--port']) {
    assert.throws(() => parseApiKeys(bad), (e: unknown) => e instanceof StreamlmError && e.field === '--api-key');
  }
});
