import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { buildBrowserBundle } from './helpers/browser-page.js';

test('the browser bundles contain no Node-only import', () => {
  const out = buildBrowserBundle();
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
