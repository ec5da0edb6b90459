// Sessions in Redis (issue 17): two replicas on one Redis continue one conversation turn by turn
// with exactly the tokens of an uninterrupted one (greedy), also after a replica restarts; the
// per-session lock makes the other replica answer 409 session_busy; keys expire with the TTL.
// Starts its own redis-server (Debian's package) on a free loopback port; skips when it is absent.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { loadModel, type Model } from '../src/model.js';
import { startServer, type RunningServer } from '../src/server/http.js';
import { Redis } from 'ioredis';
import { RedisStore } from '../src/server/store/redis.js';
import { fixtureDir } from './helpers/fixtures.js';

const CACHE = 'sink:4+28';
const TURNS = ['The house', ' stood on', ' a hill and', ' the road', ' went down'];
const NS = 'redis-test';
const haveRedis = spawnSync('redis-server', ['--version']).status === 0;
if (!haveRedis) console.log('# skipping the Redis store tests: redis-server is not installed (apt-get install redis-server)');

let model: Model;
let redis: ChildProcess;
let url: string;
let reference: string[];
const stores: RedisStore[] = [];

async function freePort(): Promise<number> {
  return new Promise((done) => { const s = createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => done(p)); }); });
}

async function store(ttlS?: number): Promise<RedisStore> {
  const s = new RedisStore(url, NS, { ttlS });
  await s.connect();
  stores.push(s);
  return s;
}

async function turn(srv: RunningServer, session: string, prompt: string): Promise<{ code: number; text: string; status: string | null; error?: string }> {
  const r = await fetch(`${srv.url}/v1/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'llama', prompt, max_tokens: 6, temperature: 0, session, ignore_eos: true }),
  });
  const body = await r.json() as { choices?: { text: string }[]; error?: { code: string } };
  return { code: r.status, text: body.choices?.[0].text ?? '', status: r.headers.get('x-session-status'), error: body.error?.code };
}

before(async () => {
  if (!haveRedis) return;
  const port = await freePort();
  url = `redis://127.0.0.1:${port}/0`;
  redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    try { await (await store()).close(); stores.pop(); break; } catch { await new Promise((r) => setTimeout(r, 50)); }
  }
  model = await loadModel(fixtureDir('llama'), { threads: 1 });
  const srv = await startServer(model, { port: 0, cache: CACHE, maxSessions: 1 });
  reference = [];
  for (const p of TURNS) reference.push((await turn(srv, 'ref', p)).text);
  await srv.close();
});

after(async () => {
  for (const s of stores) await s.close();
  await model?.close();
  redis?.kill();
});

test('two replicas on one Redis continue a conversation turn by turn, also after one restarts', { skip: !haveRedis }, async () => {
  let a = await startServer(model, { port: 0, cache: CACHE, maxSessions: 2, store: await store() });
  const b = await startServer(model, { port: 0, cache: CACHE, maxSessions: 2, store: await store() });
  const got: string[] = [];
  for (let i = 0; i < TURNS.length; i++) {
    if (i === 3) { await a.close(); a = await startServer(model, { port: 0, cache: CACHE, maxSessions: 2, store: await store() }); }   // a replica restarts
    const r = await turn(i % 2 ? b : a, 'conv', TURNS[i]);
    assert.deepEqual([r.code, r.status], [200, i === 0 ? 'new' : 'appended'], `turn ${i}`);
    got.push(r.text);
  }
  assert.deepEqual(got, reference);
  await a.close();
  await b.close();
});

test('the per-session lock: while another replica holds it, a request is a 409 session_busy', { skip: !haveRedis }, async () => {
  const srv = await startServer(model, { port: 0, cache: CACHE, maxSessions: 2, store: await store() });
  const other = await store();
  const release = await other.lock('locked');
  assert.ok(release);
  assert.equal(await other.lock('locked'), null);
  const r = await turn(srv, 'locked', TURNS[0]);
  assert.deepEqual([r.code, r.error], [409, 'session_busy']);
  await release();
  assert.equal((await turn(srv, 'locked', TURNS[0])).code, 200);
  // Released after the turn: the other replica can take it now.
  const again = await other.lock('locked');
  assert.ok(again);
  await again();
  await srv.close();
});

test('--session-ttl expires stored sessions; another namespace never sees them', { skip: !haveRedis }, async () => {
  const s = await store(1);
  await s.put('t', new Uint8Array([1, 2, 3]));
  assert.deepEqual([...(await s.get('t'))!], [1, 2, 3]);
  const foreign = new RedisStore(url, 'another-model');
  await foreign.connect();
  stores.push(foreign);
  assert.equal(await foreign.get('t'), null);
  await new Promise((r) => setTimeout(r, 1300));
  assert.equal(await s.get('t'), null);
});

test('a write whose lock expired lands only if no other replica wrote the session meanwhile', { skip: !haveRedis }, async () => {
  const raw = new Redis(url, { lazyConnect: true });
  await raw.connect();
  // The lock vanishes as if it had expired while its holder stalled.
  const expire = async (id: string): Promise<void> => { for (const k of await raw.keys(`streamlm:*{${id}}:lock`)) await raw.del(k); };
  const a = await store(), b = await store();
  const relA = (await a.lock('g'))!;
  await expire('g');
  await a.put('g', new Uint8Array([1]));                // nobody else took it: the turn is kept
  assert.deepEqual([...(await b.get('g'))!], [1]);
  await relA();
  const relA2 = (await a.lock('g'))!;
  await expire('g');
  const relB = (await b.lock('g'))!;                    // another replica runs a turn meanwhile
  await b.put('g', new Uint8Array([2]));
  await relB();
  await assert.rejects(a.put('g', new Uint8Array([3])), /not saved/);
  assert.deepEqual([...(await a.get('g'))!], [2]);
  await relA2();
  raw.disconnect();
});
