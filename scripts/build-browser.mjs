// Bundles the browser build into dist/browser/ with esbuild: streamlm.js (the library,
// `streamlm/browser`), and the web page (index.html, page.js, engine.js) that `streamlm web` serves,
// with kernels.wasm beside them. platform/current.js is swapped for current-web.ts here, so Node's
// platform (node:fs, node:worker_threads, ...) never enters a bundle; test/browser-bundle.test.ts checks.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// --out DIR: build elsewhere (tests build a fresh copy of the current sources).
const at = process.argv.indexOf('--out');
const out = at > 0 ? process.argv[at + 1] : join(root, 'dist', 'browser');
mkdirSync(out, { recursive: true });

const webPlatform = {
  name: 'streamlm-web-platform',
  setup(b) {
    b.onResolve({ filter: /platform\/current\.js$/ }, () => ({ path: join(root, 'src', 'platform', 'current-web.ts') }));
  },
};

const common = {
  bundle: true, format: 'esm', platform: 'browser', target: 'es2022', sourcemap: false, logLevel: 'warning',
  plugins: [webPlatform], absWorkingDir: root,
};
await Promise.all([
  build({ ...common, entryPoints: ['src/browser/index.ts'], outfile: join(out, 'streamlm.js') }),
  build({ ...common, entryPoints: ['src/browser/page/engine.ts'], outfile: join(out, 'engine.js') }),
  build({ ...common, entryPoints: ['src/browser/page/ui.ts'], outfile: join(out, 'page.js') }),
]);
for (const f of ['kernels.wasm', 'kernels-relaxed.wasm']) copyFileSync(join(root, 'build', f), join(out, f));
copyFileSync(join(root, 'src', 'browser', 'page', 'index.html'), join(out, 'index.html'));
// Speech: the optional espeak-ng (GPL-3.0) goes beside the bundle, never into it, and only when the
// user installed it; the page then offers "speak". --no-espeak leaves it out (tests of its absence).
let espeak = null;
if (!process.argv.includes('--no-espeak')) {
  try {
    espeak = dirname(createRequire(join(root, 'package.json')).resolve('@echogarden/espeak-ng-emscripten'));
  } catch {
    espeak = null;
  }
}
if (espeak) for (const f of ['espeak-ng.js', 'espeak-ng.data']) copyFileSync(join(espeak, f), join(out, f));
console.log(`${out}/{streamlm,engine,page}.js, index.html, kernels{,-relaxed}.wasm${espeak ? ', espeak-ng.{js,data}' : ' (no espeak-ng: speech off)'}`);
