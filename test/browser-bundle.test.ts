import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { defaultModelDir } from '../src/cli/common.js';
import { startWebServer } from '../src/server/static.js';
import { buildBrowserBundle } from './helpers/browser-page.js';

test('the browser bundles contain no Node-only import', () => {
  // Without the optional espeak-ng copy: it is emscripten output placed beside the bundles, not one of them.
  const out = buildBrowserBundle(['--no-espeak']);
  try {
    const js = readdirSync(out).filter((f) => f.endsWith('.js'));
    assert.deepEqual(js.sort(), ['engine.js', 'page.js', 'streamlm.js']);
    for (const f of js) {
      const src = readFileSync(join(out, f), 'utf8');
      // Any mention of a node: specifier (import, require, dynamic import, or worker source text).
      assert.deepEqual([...new Set(src.match(/\bnode:[a-z_/]+/g) ?? [])], [], `${f} mentions Node built-ins`);
      for (const bare of ['"fs"', '"path"', '"os"', '"worker_threads"', '"crypto"', '"child_process"']) {
        assert.ok(!src.includes(`from ${bare}`) && !src.includes(`require(${bare})`), `${f} imports ${bare}`);
      }
    }
    // The engine worker carries the whole engine: kernels loader, pool and models.
    const engine = readFileSync(join(out, 'engine.js'), 'utf8');
    for (const marker of ['FileReaderSync', 'crossOriginIsolated', 'Cross-Origin-Embedder-Policy: require-corp', 'matmul_f32']) {
      assert.ok(engine.includes(marker), `engine.js lacks ${marker}`);
    }
    assert.ok(readFileSync(join(out, 'kernels.wasm')).subarray(0, 4).equals(Buffer.from([0, 0x61, 0x73, 0x6d])), 'kernels.wasm is a wasm module');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('streamlm web serves the page and the model folder with the isolation headers, and nothing else', async () => {
  const out = buildBrowserBundle();
  const srv = await startWebServer({ modelDir: defaultModelDir(), port: 0, distDir: out });
  try {
    const page = await fetch(srv.url + '/');
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('cross-origin-opener-policy'), 'same-origin');
    assert.equal(page.headers.get('cross-origin-embedder-policy'), 'require-corp');
    assert.match(await page.text(), /<script type="module" src="page.js">/);
    const wasm = await fetch(srv.url + '/kernels.wasm');
    assert.equal(wasm.headers.get('content-type'), 'application/wasm');
    const cfg = await fetch(srv.url + '/model/config.json', { method: 'HEAD' });
    assert.equal(cfg.status, 200);
    assert.ok(cfg.headers.get('etag'));
    assert.deepEqual(JSON.parse(await (await fetch(srv.url + '/model/config.json')).text()), JSON.parse(readFileSync(join(defaultModelDir(), 'config.json'), 'utf8')));
    for (const bad of ['/model/../package.json', '/../package.json', '/model/', '/src/cli/web.ts', '/%2e%2e/package.json']) {
      assert.equal((await fetch(srv.url + bad)).status, 404, bad);
    }
    assert.equal((await fetch(srv.url + '/', { method: 'POST' })).status, 405);
    await assert.rejects(startWebServer({ modelDir: 'no/such/dir', port: 0, distDir: out }), /no\/such\/dir: --model: not an HF model folder with config\.json/);
  } finally {
    await srv.close();
    rmSync(out, { recursive: true, force: true });
  }
});
