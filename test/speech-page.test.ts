// The web chat speaks (issue 16): with "speak" ticked, a reply's audio deltas reach the page's
// AudioWorklet while the text streams, in headless Chromium (Debian's; CI installs it).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import { loadModel, type Model } from '../src/model.js';
import { startServer, type RunningServer } from '../src/server/http.js';
import { ESPEAK_PACKAGE, findEspeak } from '../src/speech/espeak.js';
import { CHROMIUM, launchChromium } from './helpers/browser-page.js';
import { fixtureDir } from './helpers/fixtures.js';

const skip = !existsSync(CHROMIUM) ? `${CHROMIUM} is absent (apt-get install chromium)`
  : findEspeak() === null ? `${ESPEAK_PACKAGE} is not installed (npm install --no-save ${ESPEAK_PACKAGE})` : false;
if (skip) console.log(`# speech page test skipped: ${skip}`);

let model: Model;
let srv: RunningServer;
let browser: Browser;

before(async () => {
  if (skip) return;
  model = await loadModel(fixtureDir('llama'), { threads: 1 });
  srv = await startServer(model, { port: 0, cache: 'sink:4+60', maxSessions: 1 });
  browser = await launchChromium(['--autoplay-policy=no-user-gesture-required']);
});

after(async () => {
  if (skip) return;
  await browser?.close();
  await srv?.close();
  await model?.close();
});

test('with speak ticked, the reply streams as text and its audio reaches the AudioWorklet', { skip }, async () => {
  const page = await browser.newPage();
  await page.goto(srv.url);
  await page.check('#speak');
  await page.fill('#input', 'Tell me a story.');
  await page.click('#send');
  const bubble = page.locator('.assistant').first();
  await bubble.and(page.locator('[data-finished="true"]')).waitFor({ timeout: 60_000 });
  const text = await bubble.textContent() ?? '';
  assert.ok(text.length > 0 && !(await bubble.getAttribute('class'))?.includes('error'), `reply: ${text}`);
  // The worklet reports what it received; every phrase with a letter in it has some audio.
  await page.waitForFunction(() => Number(document.body.dataset.audioReceived ?? 0) > 0, undefined, { timeout: 20_000 });
  const received = Number(await page.evaluate(() => document.body.dataset.audioReceived));
  assert.ok(received > 2205, `${received} samples received by the worklet`);
  await page.close();
});
