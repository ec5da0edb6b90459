// Shared set-up of the browser tests and bench: a fresh build of the browser bundle, the static
// server of `streamlm web`, and Debian's Chromium through playwright-core.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'];

/** Why browser tests cannot run here, or false. CI installs Chromium and must run them. */
export const browserSkip: string | false = !existsSync(CHROMIUM) && !process.env.CI ? `${CHROMIUM} is absent (apt-get install chromium); set CI=true to make this a failure` : false;

/** Bundles the current sources into a fresh folder (scripts/build-browser.mjs --out, plus `extraArgs`), so tests never see a stale dist/. */
export function buildBrowserBundle(extraArgs: readonly string[] = []): string {
  const out = mkdtempSync(join(tmpdir(), 'streamlm-web-'));
  const r = spawnSync(process.execPath, ['scripts/build-browser.mjs', '--out', out, ...extraArgs], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`build-browser failed: ${r.stderr}`);
  return out;
}

/** Debian's headless Chromium with the flags this machine needs, plus `extraArgs`. */
export function launchChromium(extraArgs: readonly string[] = []): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, ...extraArgs] });
}

/** The page's state object (ui.ts). */
export interface PageState {
  info: { label: string; threads: number; crossOriginIsolated: boolean; fingerprint: string; loadMs: number; mctpSteps: number | null } | null;
  replies: number[][];
  restored: boolean;
  errors: string[];
}

export async function pageState(page: Page): Promise<PageState> {
  return page.evaluate(() => (window as unknown as { streamlm: PageState }).streamlm);
}

/** Waits until the page has loaded its model (or failed); throws on a page error. */
export async function waitLoaded(page: Page, timeout = 120_000): Promise<PageState> {
  await page.waitForFunction(() => {
    const s = (window as unknown as { streamlm?: PageState }).streamlm;
    return s && (s.info || s.errors.length);
  }, null, { timeout });
  const s = await pageState(page);
  if (!s.info) throw new Error(`the page failed to load its model: ${s.errors.join('; ')}`);
  return s;
}

/** Sends one chat turn with the given settings and returns the reply's token ids. */
export async function say(page: Page, text: string, settings: { max: number; cache: string }): Promise<number[]> {
  const n = (await pageState(page)).replies.length;
  await page.fill('#max', String(settings.max));
  await page.fill('#temp', '0');
  await page.fill('#cache', settings.cache);
  await page.fill('#input', text);
  await page.click('#send');
  await page.waitForFunction((k) => {
    const s = (window as unknown as { streamlm: PageState }).streamlm;
    return s.replies.length > k || s.errors.length > 0;
  }, n, { timeout: 120_000 });
  const s = await pageState(page);
  if (s.errors.length) throw new Error(`the page reported: ${s.errors.join('; ')}`);
  return s.replies[n];
}
