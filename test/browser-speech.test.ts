// Speech in the in-browser page (issue 16, item 4): with "speak" ticked, espeak-ng (the optional
// package, copied beside the bundle at build time) runs in a worker of the page and the reply's
// audio reaches the page's AudioWorklet while the text streams; without the package the toggle is
// disabled and says how to install it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import { startWebServer, type RunningWebServer } from '../src/server/static.js';
import { defaultModelDir } from '../src/cli/common.js';
import { ESPEAK_PACKAGE, findEspeak } from '../src/speech/espeak.js';
import { browserSkip, buildBrowserBundle, launchChromium, pageState, say, waitLoaded } from './helpers/browser-page.js';

const skip = browserSkip || (findEspeak() === null ? `${ESPEAK_PACKAGE} is not installed (npm install --no-save ${ESPEAK_PACKAGE})` : false);
if (skip) console.log(`# browser speech test skipped: ${skip}`);

let browser: Browser;
const dists: string[] = [];
const servers: RunningWebServer[] = [];

async function serve(buildArgs: string[] = []): Promise<RunningWebServer> {
  const dist = buildBrowserBundle(buildArgs);
  dists.push(dist);
  const srv = await startWebServer({ modelDir: defaultModelDir(), port: 0, distDir: dist });
  servers.push(srv);
  return srv;
}

before(async () => {
  if (browserSkip) return;
  browser = await launchChromium(['--autoplay-policy=no-user-gesture-required']);
});

after(async () => {
  if (browserSkip) return;
  await browser?.close();
  for (const s of servers) await s.close();
  for (const d of dists) rmSync(d, { recursive: true, force: true });
});

test('with speak ticked, the page\'s reply streams as text and its audio reaches the AudioWorklet', { skip }, async () => {
  const srv = await serve();
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(srv.url + '/');
  await waitLoaded(page);
  assert.equal(await page.isEnabled('#speak'), true);
  await page.check('#speak');
  // A reply of 48 tokens from the shipped novel model: a few phrases of prose.
  const ids = await say(page, 'It was a dark and stormy night', { max: 48, cache: 'sink:4+508' });
  assert.equal(ids.length, 48);
  // espeak-ng speaks at 22050 Hz: at least a tenth of a second of audio reached the worklet.
  await page.waitForFunction(() => Number(document.body.dataset.audioReceived ?? 0) > 2205, undefined, { timeout: 30_000 });
  const received = Number(await page.evaluate(() => document.body.dataset.audioReceived));
  assert.ok(received > 2205, `${received} samples received by the worklet`);
  assert.deepEqual((await pageState(page)).errors, []);
  // Mute: the worklet's queue is cleared and no further audio is sent for the next reply.
  await page.uncheck('#speak');
  await page.waitForTimeout(300);
  const muted = Number(await page.evaluate(() => document.body.dataset.audioReceived));
  await say(page, ' The wind', { max: 16, cache: 'sink:4+508' });
  await page.waitForTimeout(500);
  assert.equal(Number(await page.evaluate(() => document.body.dataset.audioReceived)), muted, 'no audio after muting');
  await ctx.close();
});

test('without espeak-ng beside the bundle the speak toggle is disabled and says how to install it', { skip: browserSkip }, async () => {
  const srv = await serve(['--no-espeak']);
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(srv.url + '/');
  await waitLoaded(page);
  await page.waitForFunction(() => (document.getElementById('speak') as HTMLInputElement).disabled, undefined, { timeout: 10_000 });
  assert.match(await page.getAttribute('#speakLabel', 'title') ?? '', /npm install @echogarden\/espeak-ng-emscripten/);
  await ctx.close();
});
