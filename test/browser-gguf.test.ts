// A .gguf file in the page (issue 14): the GGUF our exporter writes from the shipped model loads from
// a URL (downloaded into the Cache API with progress, read back in Blob slices) and from a picked
// file, and gives the greedy token ids Node gives on the same file.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { startWebServer, type RunningWebServer } from '../src/server/static.js';
import { defaultModelDir } from '../src/cli/common.js';
import { exportGguf } from '../src/export/gguf.js';
import { generate } from '../src/generate/generate.js';
import { loadModel, type Model } from '../src/model.js';
import { browserSkip as skip, buildBrowserBundle, launchChromium, pageState, say, waitLoaded } from './helpers/browser-page.js';

const CACHE = 'sink:4+508';
const PROMPT = 'It was a dark and stormy night';

let dist: string;
let tmp: string;
let file: string;
let srv: RunningWebServer;
let browser: Browser;
let model: Model;
let expected: number[];

before(async () => {
  if (skip) return;
  dist = buildBrowserBundle();
  tmp = mkdtempSync(join(tmpdir(), 'streamlm-gguf-web-'));
  file = join(tmp, 'novels-q4_K.gguf');
  // q4_K: the kind of file people download, run by the block kernels (with q5/q8 fallbacks on odd rows).
  exportGguf(defaultModelDir(), file, { dtype: 'q4_K' });
  srv = await startWebServer({ modelDir: file, port: 0, distDir: dist });
  browser = await launchChromium();
  model = await loadModel(file, { threads: 1 });
  expected = [];
  for await (const g of generate(model, { prompt: PROMPT, maxNewTokens: 16, cache: CACHE })) if (g.id >= 0) expected.push(g.id);
});

after(async () => {
  if (skip) return;
  await browser?.close();
  await srv?.close();
  await model?.close();
  rmSync(dist, { recursive: true, force: true });
  rmSync(tmp, { recursive: true, force: true });
});

test('a .gguf URL loads in the page with progress and a cache, and gives Node\'s 16 greedy tokens', { skip }, async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(srv.url + '/');
  let state = await waitLoaded(page);
  assert.match(state.info!.label, /novels-q4_K\.gguf$/);
  assert.equal(state.info!.fingerprint, model.fingerprint, 'the page read the same bytes as Node');
  const dl = (await page.evaluate(() => (window as unknown as { streamlm: { downloads: Record<string, { loaded: number; total: number; cached: boolean }> } }).streamlm.downloads))['novels-q4_K.gguf'];
  assert.ok(dl && !dl.cached && dl.total > 0 && dl.loaded === dl.total, JSON.stringify(dl));
  assert.equal(expected.length, 16);
  assert.deepEqual(await say(page, PROMPT, { max: 16, cache: CACHE }), expected);

  // A reload reads the file from the Cache API (the server still reports the same ETag and size).
  await page.evaluate(() => navigator.storage.getDirectory().then((d) => d.removeEntry('streamlm-sessions', { recursive: true })).catch(() => {}));
  await page.reload();
  state = await waitLoaded(page);
  const again = (await page.evaluate(() => (window as unknown as { streamlm: { downloads: Record<string, { cached: boolean }> } }).streamlm.downloads))['novels-q4_K.gguf'];
  assert.equal(again?.cached, true);
  assert.equal(state.info!.fingerprint, model.fingerprint);
  await ctx.close();
});

test('a picked .gguf file loads in the page and gives Node\'s 16 greedy tokens', { skip }, async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(srv.url + '/');
  await waitLoaded(page);
  await page.setInputFiles('#pickGguf', file);
  await page.waitForFunction(() => (window as unknown as { streamlm: { info: { label: string } | null } }).streamlm.info?.label === 'picked files/novels-q4_K.gguf', null, { timeout: 120_000 });
  const state = await pageState(page);
  assert.deepEqual(state.errors, []);
  assert.equal(state.info!.fingerprint, model.fingerprint);
  assert.deepEqual(await say(page, PROMPT, { max: 16, cache: CACHE }), expected);
  await ctx.close();
});
