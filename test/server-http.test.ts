// Server edges a new user hit (issue 11, item 8): media types, CORS, the favicon, the page's
// display of a reply, and a server started through npx outliving npm.
import { runInNewContext } from 'node:vm';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel, type Model } from '../src/model.js';
import { startServer, type RunningServer } from '../src/server/http.js';
import { chatPage, replyDisplay } from '../src/server/page.js';
import { fixtureDir } from './helpers/fixtures.js';

let model: Model;
let plain: RunningServer;
let listed: RunningServer;
let star: RunningServer;
const APP = 'http://app.example:5173';

before(async () => {
  model = await loadModel(fixtureDir('llama'), { threads: 1 });
  plain = await startServer(model, { port: 0, cache: 'sink:4+60', maxSessions: 1 });
  listed = await startServer(model, { port: 0, cache: 'sink:4+60', maxSessions: 1, corsOrigin: `${APP}, http://other.example` });
  star = await startServer(model, { port: 0, cache: 'sink:4+60', maxSessions: 1, corsOrigin: '*' });
});

after(async () => {
  await plain.close();
  await listed.close();
  await star.close();
  await model.close();
});

const body = JSON.stringify({ model: 'llama', prompt: 'The house', max_tokens: 2 });

test('JSON routes answer 415 in OpenAI error shape unless the body is declared application/json', async () => {
  for (const type of ['application/x-www-form-urlencoded', 'text/plain', null]) {
    const headers: Record<string, string> = type ? { 'Content-Type': type } : {};
    const r = await fetch(`${plain.url}/v1/completions`, { method: 'POST', headers, body: type === null ? new Blob([body]) : body });
    assert.equal(r.status, 415, `Content-Type ${type}`);
    const e = await r.json() as { error: { message: string; type: string; param: null; code: string } };
    assert.deepEqual(Object.keys(e.error).sort(), ['code', 'message', 'param', 'type']);
    assert.equal(e.error.code, 'unsupported_media_type');
    assert.match(e.error.message, /application\/json/);
  }
  // Parameters of the media type are fine.
  const ok = await fetch(`${plain.url}/v1/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json; charset=utf-8' }, body });
  assert.equal(ok.status, 200);
  assert.equal(((await ok.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens, 2);
});

test('CORS is off by default: OPTIONS answers 204 with Allow and no Access-Control headers', async () => {
  const r = await fetch(`${plain.url}/v1/chat/completions`, { method: 'OPTIONS', headers: { Origin: APP, 'Access-Control-Request-Method': 'POST' } });
  assert.equal(r.status, 204);
  assert.equal(r.headers.get('allow'), 'GET, POST, DELETE, OPTIONS');
  assert.equal(r.headers.get('access-control-allow-origin'), null);
  const g = await fetch(`${plain.url}/v1/models`, { headers: { Origin: APP } });
  assert.equal(g.headers.get('access-control-allow-origin'), null);
});

test('--cors-origin: a preflight from a listed origin is allowed, with the headers it asks for', async () => {
  const pre = await fetch(`${listed.url}/v1/chat/completions`, {
    method: 'OPTIONS', headers: { Origin: APP, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type,x-session-id,x-stainless-os' },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), APP);
  assert.equal(pre.headers.get('access-control-allow-methods'), 'GET, POST, DELETE, OPTIONS');
  assert.equal(pre.headers.get('access-control-allow-headers'), 'content-type,x-session-id,x-stainless-os');
  assert.equal(pre.headers.get('vary'), 'Origin');
  // The request itself carries the origin and exposes the session headers to the page.
  const r = await fetch(`${listed.url}/v1/completions`, { method: 'POST', headers: { Origin: APP, 'Content-Type': 'application/json', 'X-Session-Id': 'cors' }, body });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('access-control-allow-origin'), APP);
  assert.match(r.headers.get('access-control-expose-headers')!, /X-Session-Status/);
  assert.equal(r.headers.get('x-session-status'), 'new');
  // Errors carry it too, so the page can read them.
  const e = await fetch(`${listed.url}/v1/models/nope`, { headers: { Origin: APP } });
  assert.equal(e.status, 404);
  assert.equal(e.headers.get('access-control-allow-origin'), APP);
  // An origin that is not listed gets nothing.
  const other = await fetch(`${listed.url}/v1/models`, { method: 'OPTIONS', headers: { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'GET' } });
  assert.equal(other.status, 204);
  assert.equal(other.headers.get('access-control-allow-origin'), null);
  // `*` answers any origin.
  const s = await fetch(`${star.url}/v1/models`, { headers: { Origin: 'http://any.example' } });
  assert.equal(s.headers.get('access-control-allow-origin'), '*');
});

test('/favicon.ico is an empty 204, and the page declares an empty icon', async () => {
  const r = await fetch(`${plain.url}/favicon.ico`);
  assert.equal(r.status, 204);
  assert.equal((await r.arrayBuffer()).byteLength, 0);
  const page = await (await fetch(`${plain.url}/`)).text();
  assert.match(page, /<link rel="icon" href="data:,">/);
});

test('the page shows a reply without the leading space of its first token; the text kept is unchanged', () => {
  assert.equal(replyDisplay(' Hello there'), 'Hello there');
  assert.equal(replyDisplay('\n Hi'), 'Hi');
  assert.equal(replyDisplay('No space '), 'No space ');
  const page = chatPage('m', 'sink:4+60');
  // The page runs the same function on what it displays, and sends back `reply` untrimmed.
  const src = /const shown = (.*);\n/.exec(page)![1];
  const shown = runInNewContext(`(${src})`) as (t: string) => string;
  assert.equal(shown(' Hello'), 'Hello');
  assert.match(page, /out\.textContent = shown\(reply\)/);
  assert.match(page, /messages\.push\(\{ role: 'assistant', content: reply \}\)/);
});

test('a server started through npx (npm exec) exits when npm exec is killed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'streamlm-npx-'));
  const log = join(dir, 'server.log');
  writeFileSync(log, '');
  // The wrapper stands in for `npm exec`: it starts the server with npm's environment and waits.
  const main = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');
  const wrapper = `
    const { spawn } = require('node:child_process');
    const fd = require('node:fs').openSync(${JSON.stringify(log)}, 'a');
    // Through a shell, as npm does: npm exec -> sh -c -> node.
    spawn([process.execPath, '--import', 'tsx', ${JSON.stringify(main)}, 'serve', '--model', ${JSON.stringify(fixtureDir('llama'))},
      '--port', '0', '--threads', '1', '--max-sessions', '1', '--cache', 'sink:4+60'].map((a) => "'" + a + "'").join(' ') + '; true',
      { shell: true, stdio: ['ignore', fd, fd], env: { ...process.env, npm_command: 'exec' } });
    setInterval(() => {}, 1000);`;
  const npm = spawn(process.execPath, ['-e', wrapper], { stdio: 'ignore', cwd: join(import.meta.dirname, '..') });
  const sleep = (ms: number): Promise<void> => new Promise((ok) => setTimeout(ok, ms));
  let url: string | undefined;
  for (let i = 0; i < 300 && !url; i++) {
    await sleep(100);
    url = /serving llama at (http:\/\/\S+?)\/ /.exec(readFileSync(log, 'utf8'))?.[1];
  }
  if (!url) npm.kill('SIGKILL');   // the server, if it started late, then exits by itself
  assert.ok(url, `the server started: ${readFileSync(log, 'utf8')}`);
  assert.equal((await fetch(`${url}/health`)).status, 200);
  npm.kill('SIGKILL');
  let up = true;
  for (let i = 0; i < 100 && up; i++) {
    await sleep(100);
    up = await fetch(`${url}/health`).then(() => true, () => false);
  }
  assert.equal(up, false, 'the server stopped answering after npm exec died');
  assert.match(readFileSync(log, 'utf8'), /npm exec, which started this server, has exited[\s\S]*shutting down/);
});
