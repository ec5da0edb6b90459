// Sessions kept in a directory (issue 17): a conversation restored after an eviction or a server
// restart continues with exactly the tokens an uninterrupted one gives (greedy); a corrupt or
// foreign snapshot starts the session fresh with X-Session-Dropped: true; writes are atomic.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel, type Model } from '../src/model.js';
import { startServer, type RunningServer } from '../src/server/http.js';
import { DirStore } from '../src/server/store/dir.js';
import { parseStoreSpec } from '../src/server/store/open.js';
import { StreamlmError } from '../src/errors.js';
import { fixtureDir } from './helpers/fixtures.js';

const CACHE = 'sink:4+28';   // small, so the four turns below evict and the restored cache must carry that
const TURNS = ['The house', ' stood on', ' a hill and', ' the road'];
let model: Model;
let reference: string[];

interface Reply { text: string; status: string | null; dropped: string | null; code: number }

async function turn(srv: RunningServer, session: string, prompt: string): Promise<Reply> {
  const r = await fetch(`${srv.url}/v1/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'llama', prompt, max_tokens: 6, temperature: 0, session, ignore_eos: true }),
  });
  const body = await r.json() as { choices?: { text: string }[] };
  return { text: body.choices?.[0].text ?? '', status: r.headers.get('x-session-status'), dropped: r.headers.get('x-session-dropped'), code: r.status };
}

function serve(store?: DirStore, cache = CACHE, maxSessions = 2): Promise<RunningServer> {
  return startServer(model, { port: 0, cache, maxSessions, store });
}

before(async () => {
  model = await loadModel(fixtureDir('llama'), { threads: 1 });
  // The reference: one uninterrupted conversation on a server without a store.
  const srv = await serve();
  reference = [];
  for (const p of TURNS) reference.push((await turn(srv, 'ref', p)).text);
  await srv.close();
  assert.ok(reference.every((t) => t.length > 0));
});

after(async () => { await model.close(); });

const NS = 'test-namespace';

test('a conversation continues exactly after a server restart on the same directory', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'streamlm-store-'));
  const a = await serve(new DirStore(dir, NS));
  assert.equal((await turn(a, 'c', TURNS[0])).text, reference[0]);
  assert.equal((await turn(a, 'c', TURNS[1])).text, reference[1]);
  await a.close();
  const b = await serve(new DirStore(dir, NS));
  for (let i = 2; i < TURNS.length; i++) {
    const r = await turn(b, 'c', TURNS[i]);
    assert.deepEqual([r.code, r.text, r.status, r.dropped], [200, reference[i], 'appended', 'false'], `turn ${i}`);
  }
  await b.close();
  // One file per session, no temp files left behind.
  assert.deepEqual(readdirSync(dir).filter((f) => !f.endsWith('.snap')), []);
});

test('an evicted session is saved, not dropped: it comes back from the store', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'streamlm-store-'));
  const srv = await serve(new DirStore(dir, NS), CACHE, 1);
  const out: string[] = [];
  for (let i = 0; i < TURNS.length; i++) {
    const r = await turn(srv, 'x', TURNS[i]);
    assert.equal(r.dropped, 'false');
    out.push(r.text);
    await turn(srv, `other-${i}`, 'Evicts x');   // one cache: x is evicted every time
  }
  assert.deepEqual(out, reference);
  await srv.close();
});

test('a corrupt or foreign snapshot is refused: the session starts fresh with X-Session-Dropped: true', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'streamlm-store-'));
  const a = await serve(new DirStore(dir, NS));
  await turn(a, 'bad', TURNS[0]);
  await a.close();
  const [file] = readdirSync(dir);
  const good = readFileSync(join(dir, file));
  const cases: [string, Uint8Array][] = [
    ['garbage', new TextEncoder().encode('not a snapshot at all')],
    ['flipped byte', (() => { const b = new Uint8Array(good); b[b.length >> 1] ^= 0x55; return b; })()],
    ['truncated', good.subarray(0, good.length - 7)],
  ];
  for (const [what, bytes] of cases) {
    writeFileSync(join(dir, file), bytes);
    const b = await serve(new DirStore(dir, NS));
    const r = await turn(b, 'bad', TURNS[0]);
    assert.deepEqual([r.code, r.status, r.dropped, r.text], [200, 'new', 'true', reference[0]], what);
    // The fresh session was saved over the bad one: the next turn continues it.
    const r2 = await turn(b, 'bad', TURNS[1]);
    assert.deepEqual([r2.text, r2.dropped], [reference[1], 'false'], what);
    await b.close();
  }
  // Other cache settings (a store shared by mistake): refused, not misread.
  writeFileSync(join(dir, file), good);
  const other = await serve(new DirStore(dir, NS), 'sink:4+60');
  const r = await turn(other, 'bad', TURNS[0]);
  assert.deepEqual([r.code, r.status, r.dropped], [200, 'new', 'true']);
  await other.close();
});

test('a leftover temp file of a torn write is never read; DELETE removes the stored session', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'streamlm-store-'));
  const store = new DirStore(dir, NS);
  await store.put('s', new Uint8Array([1, 2, 3]));
  const [file] = readdirSync(dir);
  writeFileSync(join(dir, `${file}.abc.tmp`), new Uint8Array([9]));   // a crash between write and rename
  assert.deepEqual([...(await store.get('s'))!], [1, 2, 3]);
  await store.put('s', new Uint8Array([4]));
  assert.deepEqual([...(await store.get('s'))!], [4]);
  assert.equal(await new DirStore(dir, 'another-model').get('s'), null);
  const srv = await serve(new DirStore(dir, NS));
  await turn(srv, 'gone', TURNS[0]);
  await srv.close();
  const srv2 = await serve(new DirStore(dir, NS));
  assert.equal((await fetch(`${srv2.url}/v1/sessions/gone`, { method: 'DELETE' })).status, 200);
  assert.equal((await fetch(`${srv2.url}/v1/sessions/gone`, { method: 'DELETE' })).status, 404);
  assert.equal((await turn(srv2, 'gone', TURNS[0])).status, 'new');
  await srv2.close();
});

test('--session-store is checked before the model loads', () => {
  assert.deepEqual(parseStoreSpec('dir:/tmp/x'), { kind: 'dir', path: '/tmp/x' });
  for (const bad of ['dir:', '/tmp/x', 'file:/x', '']) {
    assert.throws(() => parseStoreSpec(bad), (e: unknown) => e instanceof StreamlmError && e.field === '--session-store' && /dir:PATH/.test(e.message));
  }
});

test('a turn the store fails to save is a 503, and the next turn continues from the last saved one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'streamlm-store-'));
  // A store whose writes fail while `down` (Redis restarting, a full disk).
  class Flaky extends DirStore { down = false; override put(id: string, b: Uint8Array): Promise<void> { return this.down ? Promise.reject(new Error('store down')) : super.put(id, b); } }
  const store = new Flaky(dir, NS);
  const srv = await serve(store);
  assert.equal((await turn(srv, 'f', TURNS[0])).text, reference[0]);
  store.down = true;
  const r = await fetch(`${srv.url}/v1/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'llama', prompt: ' never kept', max_tokens: 6, temperature: 0, session: 'f', ignore_eos: true }),
  });
  assert.deepEqual([r.status, ((await r.json()) as { error: { code: string } }).error.code], [503, 'store_unavailable']);
  store.down = false;
  // The unsaved turn is gone from memory too: the conversation goes on as if it had never been sent.
  const next = await turn(srv, 'f', TURNS[1]);
  assert.deepEqual([next.code, next.text], [200, reference[1]]);
  await srv.close();
});
