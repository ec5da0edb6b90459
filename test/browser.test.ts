// The engine in headless Chromium (issue 14): the page of `streamlm web` loads the shipped model,
// runs on Web Workers over one shared memory, and gives the token ids Node gives; a conversation
// survives a reload through its OPFS snapshot; without isolation headers it runs on one thread.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { startWebServer, type RunningWebServer } from '../src/server/static.js';
import { defaultModelDir } from '../src/cli/common.js';
import { evalStream } from '../src/eval/ppl.js';
import { generate } from '../src/generate/generate.js';
import { loadModel, type Model } from '../src/model.js';
import type { Session } from '../src/session.js';
import { browserSkip as skip, buildBrowserBundle, launchChromium, say, waitLoaded } from './helpers/browser-page.js';

const CACHE = 'sink:4+508';
const MODEL = defaultModelDir();

let dist: string;
let srv: RunningWebServer;
let browser: Browser;
let model: Model;

before(async () => {
  if (skip) return;
  dist = buildBrowserBundle();
  srv = await startWebServer({ modelDir: MODEL, port: 0, distDir: dist });
  browser = await launchChromium();
  model = await loadModel(MODEL, { threads: 1 });
});

after(async () => {
  if (skip) return;
  await browser?.close();
  await srv?.close();
  await model?.close();
  rmSync(dist, { recursive: true, force: true });
});

/** Greedy ids from Node for one turn after another on one session: the uninterrupted reference. */
async function nodeTurns(turns: { text: string; max: number }[]): Promise<number[][]> {
  const out: number[][] = [];
  let s: Session | null = null;
  try {
    for (const t of turns) {
      const first: boolean = s === null;
      s ??= model.session({ cache: CACHE });
      const promptIds = first ? model.encode(t.text) : model.tokenizer!.encode(t.text, { addSpecialTokens: false });
      const ids: number[] = [];
      for await (const g of generate(model, { session: s, promptIds, maxNewTokens: t.max })) if (g.id >= 0) ids.push(g.id);
      out.push(ids);
    }
  } finally {
    s?.close();
  }
  return out;
}

test('the page loads the shipped model on shared-memory workers and gives Node\'s 64 greedy tokens', { skip }, async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(srv.url + '/');
  const state = await waitLoaded(page);
  assert.equal(await page.evaluate(() => globalThis.crossOriginIsolated), true);
  assert.equal(state.info!.crossOriginIsolated, true, 'the engine worker is isolated too');
  assert.equal(state.info!.threads, Math.min(2, await page.evaluate(() => navigator.hardwareConcurrency)));
  assert.equal(state.info!.fingerprint, model.fingerprint, 'the page read the same bytes as Node');
  assert.equal(state.info!.mctpSteps, 4, 'the page fetched the MCTP heads (mctp.safetensors) as Node loads them');
  assert.equal(model.mctp?.cfg.num_steps, 4);

  const prompt = 'It was a dark and stormy night';
  const ids = await say(page, prompt, { max: 64, cache: CACHE });
  const [expected] = await nodeTurns([{ text: prompt, max: 64 }]);
  assert.equal(ids.length, 64);
  assert.deepEqual(ids, expected);
  // Every thread took chunks: the pool ran on Web Workers, not on the engine thread alone.
  const chunks = JSON.parse((await page.locator('#speed').getAttribute('data-chunks'))!) as number[];
  assert.equal(chunks.length, state.info!.threads);
  if (state.info!.threads > 1) assert.ok(chunks.slice(1).every((c) => c > 0), `chunks per thread ${chunks}`);
  const g = await page.locator('#gauge').evaluate((el) => ({ ...(el as HTMLElement).dataset }));
  assert.deepEqual({ sinks: Number(g.sinks), seen: Number(g.seen) }, { sinks: 4, seen: model.encode(prompt).length + 63 });
  if (process.env.STREAMLM_SCREENSHOT === '1') {
    await page.setViewportSize({ width: 1100, height: 700 });
    await page.screenshot({ path: join('docs', 'img', 'browser-chat.png') });
  }
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('a conversation survives a reload: the next reply equals an uninterrupted session\'s', { skip }, async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(srv.url + '/');
  await waitLoaded(page);
  const turns = [{ text: 'The old house stood', max: 24 }, { text: ' and then the rain came', max: 24 }];
  const first = await say(page, turns[0].text, { max: turns[0].max, cache: CACHE });
  await page.reload();
  const state = await waitLoaded(page);
  await page.waitForFunction(() => (window as unknown as { streamlm: { restored: boolean } }).streamlm.restored, null, { timeout: 30_000 });
  assert.deepEqual((await page.evaluate(() => (window as unknown as { streamlm: { replies: number[][] } }).streamlm.replies)), [first], 'the transcript came back');
  assert.ok(state.info);
  const second = await say(page, turns[1].text, { max: turns[1].max, cache: CACHE });
  const expected = await nodeTurns(turns);
  assert.deepEqual(first, expected[0]);
  assert.deepEqual(second, expected[1]);
  await ctx.close();
});

test('"stream a text" gives eval-ppl\'s perplexity per policy and plots it', { skip }, async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(srv.url + '/');
  await waitLoaded(page);
  const text = readFileSync('README.md', 'utf8');
  const tokens = 160;
  await page.click('#tab-stream');
  await page.fill('#text', text);
  await page.fill('#policies', 'window:32,sink:4+28');
  await page.fill('#tokens', String(tokens));
  await page.click('#run');
  await page.locator('#pplTable[data-finished="true"]').waitFor({ timeout: 120_000 });
  const shown = await page.evaluate(() => (window as unknown as { streamlm: { ppl: Record<string, number> } }).streamlm.ppl);
  const ids = model.encode(text).slice(0, tokens);
  for (const cache of ['window:32', 'sink:4+28']) {
    const ref = evalStream(model, ids, { cache, afterWindow: 32 });
    assert.ok(Math.abs(shown[cache] - ref.ppl) <= 1e-9 * ref.ppl, `${cache}: page ${shown[cache]}, Node ${ref.ppl}`);
  }
  assert.equal(await page.locator('#plot polyline').count(), 2);
  await ctx.close();
});

test('without isolation headers the page runs on one thread and says which headers are missing', { skip }, async () => {
  const plain = await startWebServer({ modelDir: MODEL, port: 0, distDir: dist, isolation: false });
  const ctx = await browser.newContext();
  try {
    const page = await ctx.newPage();
    const warnings: string[] = [];
    page.on('console', (m) => { if (m.type() === 'warning') warnings.push(m.text()); });
    await page.goto(plain.url + '/');
    const state = await waitLoaded(page);
    assert.equal(state.info!.crossOriginIsolated, false);
    assert.equal(state.info!.threads, 1);
    assert.ok(warnings.some((w) => w.includes('Cross-Origin-Opener-Policy: same-origin') && w.includes('Cross-Origin-Embedder-Policy: require-corp')), warnings.join('\n'));
    const ids = await say(page, 'It was', { max: 8, cache: CACHE });
    assert.deepEqual(ids, (await nodeTurns([{ text: 'It was', max: 8 }]))[0]);
  } finally {
    await ctx.close();
    await plain.close();
  }
});
