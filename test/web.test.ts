import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { loadModel, type Model } from '../src/model.js';
import { startServer, type RunningServer } from '../src/server/http.js';
import { browserSkip, launchChromium } from './helpers/browser-page.js';
import { fixtureDir } from './helpers/fixtures.js';

// Debian's chromium (Playwright's own download cannot be fetched here). CI installs it and must run this.
const skip = browserSkip;

let model: Model;
let srv: RunningServer;
let browser: Browser;

before(async () => {
  if (skip) return;
  model = await loadModel(fixtureDir('llama'), { threads: 1 });
  srv = await startServer(model, { port: 0, cache: 'sink:4+60', maxSessions: 2 });
  browser = await launchChromium();
});

after(async () => {
  if (skip) return;
  await browser?.close();
  await srv?.close();
  await model?.close();
});

interface Gauge { sinks: number; window: number; evicted: number; seen: number }

async function gauge(page: Page): Promise<Gauge> {
  const d = await page.locator('#gauge').evaluate((el) => ({ ...(el as HTMLElement).dataset }));
  return { sinks: Number(d.sinks), window: Number(d.window), evicted: Number(d.evicted), seen: Number(d.seen) };
}

async function say(page: Page, text: string, n: number): Promise<string> {
  await page.fill('#input', text);
  await page.click('#send');
  const bubble = page.locator('.assistant').nth(n - 1);
  await bubble.and(page.locator('[data-finished="true"]')).waitFor({ timeout: 30_000 });
  return bubble.innerText();
}

test('the web chat streams a reply and shows the session cache gauge and memory', { skip }, async () => {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(srv.url + '/');
  assert.equal(await page.title(), 'streamlm · llama');
  const sid = await page.locator('#sid').innerText();
  assert.match(sid, /^web-[0-9a-f]{18}$/);

  // Count DOM updates of the reply and of the gauge while the reply streams.
  await page.evaluate(() => {
    const w = window as unknown as { updates: number; gauges: number };
    w.updates = 0; w.gauges = 0;
    new MutationObserver(() => { w.updates++; }).observe(document.getElementById('log')!, { subtree: true, childList: true, characterData: true });
    new MutationObserver(() => { w.gauges++; }).observe(document.getElementById('gauge')!, { attributes: true });
  });
  await page.fill('#max', '150');
  await page.fill('#temp', '0');
  const reply1 = await say(page, 'Hello from the browser', 1);
  assert.ok(reply1.length > 0);
  const counts = await page.evaluate(() => { const w = window as unknown as { updates: number; gauges: number }; return { updates: w.updates, gauges: w.gauges }; });
  // Mutation records coalesce when many SSE events arrive in one network read, so count the
  // events the page applied one by one instead; DOM updates only need to show it was live.
  const chunks = Number(await page.locator('.assistant').nth(0).getAttribute('data-chunks'));
  assert.ok(chunks > 10, `the reply arrived in pieces (${chunks} SSE chunks applied)`);
  assert.ok(counts.updates >= 1, `the reply was rendered (${counts.updates} DOM updates)`);
  assert.ok(counts.gauges >= 1);

  // The gauge shows exactly what the server holds for this session.
  const info = srv.engine.session(sid)!;
  let g = await gauge(page);
  assert.deepEqual(g, { sinks: 4, window: info.cache.length - 4, evicted: info.cache.evicted, seen: info.cache.seen });
  assert.ok(g.evicted > 0, 'a 150-token reply overflows a 64-token cache');
  assert.equal(g.window, 60);
  assert.match(await page.locator('#gauge').innerText(), /^sinks 4\/4 \| window 60\/60 \| evicted \d+ \(of \d+ seen\)$/);
  assert.match(await page.locator('#mem').innerText(), /session KV [\d.]+ MB · all KV [\d.]+ MB · wasm [\d.]+ MB · server RSS [\d.]+ MB/);
  const bar = await page.locator('#bar .window').evaluate((el) => (el as HTMLElement).style.width);
  assert.match(bar, /^9[0-9.]+%$/);

  // A second turn continues the same session (the page sends the whole history).
  const before = g.seen;
  await say(page, 'And a second message', 2);
  g = await gauge(page);
  assert.ok(g.seen > before);
  assert.equal(srv.engine.session(sid)!.turns, 2);

  // Stop cancels the generation on the server. The test adds ignore_eos so that the random
  // fixture cannot end the reply by itself.
  await page.route('**/v1/chat/completions', (route) => route.continue({ postData: JSON.stringify({ ...route.request().postDataJSON(), ignore_eos: true }) }));
  await page.fill('#max', '100000');
  await page.fill('#input', 'Now go on forever');
  await page.click('#send');
  await page.waitForFunction(() => (document.querySelectorAll('.assistant')[2]?.textContent ?? '').length > 20);
  await page.click('#stop');
  await page.locator('.assistant').nth(2).and(page.locator('[data-finished="true"]')).waitFor({ timeout: 10_000 });
  for (let i = 0; i < 50 && srv.engine.runningTurns > 0; i++) await new Promise((ok) => setTimeout(ok, 20));
  assert.equal(srv.engine.runningTurns, 0);
  assert.equal(srv.engine.session(sid)!.busy, false);
  assert.deepEqual(errors, []);
  await page.close();
});
