// Replicas as separate processes (issue 17): two `streamlm serve` children on one Redis carry a
// conversation turn by turn; one is SIGKILLed while a turn streams, and the next turn, on the other
// replica, continues from the last completed turn with exactly the tokens of the same conversation
// (without the killed turn) run in-process with no store, greedy. The restarted replica then takes
// the next turn from Redis. Starts its own redis-server on a free port; skips when it is absent.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { loadModel } from '../src/model.js';
import { startServer, type RunningServer } from '../src/server/http.js';
import { fixtureDir } from './helpers/fixtures.js';

const ROOT = join(import.meta.dirname, '..');
const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const MODEL = fixtureDir('llama');
const CACHE = 'sink:4+28';
const LOCK_MS = 1000;
const TURNS = ['The house', ' stood on', ' a hill and', ' the road', ' went down', ' to the sea'];
/** This turn streams on replica A when A is killed; it never completes. */
const KILLED = 3;
const haveRedis = spawnSync('redis-server', ['--version']).status === 0;
if (!haveRedis) console.log('# skipping the multi-process replica test: redis-server is not installed (apt-get install redis-server)');

let redis: ChildProcess | undefined;
let url = '';
const children: ChildProcess[] = [];

async function freePort(): Promise<number> {
  return new Promise((done) => { const s = createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => done(p)); }); });
}

/** Starts `streamlm serve` as a user would and resolves with its base URL once it listens. */
function replica(): Promise<{ proc: ChildProcess; base: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', MAIN, 'serve', '--model', MODEL, '--port', '0', '--cache', CACHE, '--threads', '1',
    '--max-sessions', '2', '--session-store', url, '--session-lock-ms', String(LOCK_MS)], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(proc);
  return new Promise((done, fail) => {
    let err = '';
    proc.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /serving .* at (http:\/\/[\d.]+:\d+)\//.exec(err);
      if (m) done({ proc, base: m[1] });
    });
    proc.on('exit', (code) => fail(new Error(`serve exited with ${code}: ${err}`)));
  });
}

interface TurnReply { code: number; text: string; turns: string | null; error?: string }

async function turn(base: string, session: string | null, prompt: string): Promise<TurnReply> {
  const r = await fetch(`${base}/v1/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'llama', prompt, max_tokens: 6, temperature: 0, ignore_eos: true, ...(session ? { session } : {}) }),
  });
  const body = await r.json() as { choices?: { text: string }[]; error?: { code: string } };
  return { code: r.status, text: body.choices?.[0].text ?? '', turns: r.headers.get('x-session-turns'), error: body.error?.code };
}

/** A turn after a crash: the dead replica's lock lives LOCK_MS at most, so 409s end by then. */
async function turnAfterCrash(base: string, session: string, prompt: string): Promise<TurnReply> {
  const t0 = Date.now();
  for (;;) {
    const r = await turn(base, session, prompt);
    if (r.code !== 409 || Date.now() - t0 > LOCK_MS + 3000) return r;
    await new Promise((ok) => setTimeout(ok, 100));
  }
}

before(async () => {
  if (!haveRedis) return;
  const port = await freePort();
  url = `redis://127.0.0.1:${port}/0`;
  redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
});

after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  redis?.kill();
});

test('a conversation moves between two serve processes on one Redis and survives one being killed mid-turn', { skip: !haveRedis, timeout: 120_000 }, async () => {
  // Reference: the same turns, the killed one left out, in this process with no store.
  const model = await loadModel(MODEL, { threads: 1 });
  const ref: string[] = [];
  try {
    const srv: RunningServer = await startServer(model, { port: 0, cache: CACHE, maxSessions: 1 });
    for (let i = 0; i < TURNS.length; i++) if (i !== KILLED) ref.push((await turn(srv.url, 'ref', TURNS[i])).text);
    await srv.close();
  } finally {
    await model.close();
  }

  const both = await Promise.all([replica(), replica()]);
  let a = both[0];
  const b = both[1];
  const got: string[] = [];
  for (let i = 0; i < KILLED; i++) {
    const r = await turn(i % 2 ? b.base : a.base, 'conv', TURNS[i]);
    assert.deepEqual([r.code, r.turns], [200, String(i)], `turn ${i}`);
    got.push(r.text);
  }

  // Turn KILLED streams on A, which dies after its first tokens: that turn never completes.
  const res = await fetch(`${a.base}/v1/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'llama', prompt: TURNS[KILLED], max_tokens: 100_000, temperature: 0, ignore_eos: true, stream: true, session: 'conv' }),
  });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  assert.ok((await reader.read()).value, 'a first streamed chunk');
  const exited = new Promise((ok) => a.proc.once('exit', ok));
  a.proc.kill('SIGKILL');
  await exited;
  await reader.read().then(() => {}, () => {});   // the stream ends or breaks; either is fine

  // The next turn on B starts from the last completed turn (KILLED turns before it).
  const next = await turnAfterCrash(b.base, 'conv', TURNS[KILLED + 1]);
  assert.deepEqual([next.code, next.turns], [200, String(KILLED)], `turn after the crash: ${next.error ?? ''}`);
  got.push(next.text);

  // A comes back empty and takes the following turn from Redis.
  a = await replica();
  for (let i = KILLED + 2; i < TURNS.length; i++) {
    const r = await turn(a.base, 'conv', TURNS[i]);
    assert.deepEqual([r.code, r.turns], [200, String(i - 1)], `turn ${i} on the restarted replica`);
    got.push(r.text);
  }
  assert.deepEqual(got, ref);
  assert.ok(new Set(ref).size > 1, 'the turns differ from each other');
  for (const c of [a, b]) c.proc.kill('SIGTERM');
  await Promise.all([a, b].map((c) => new Promise((ok) => { if (c.proc.exitCode !== null) ok(null); else c.proc.once('exit', ok); })));
});
