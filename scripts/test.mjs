// `npm test`: the lint (layering + typescript-eslint, `npm run lint`), then every test file.
// `node scripts/test.mjs test/a.test.ts ...` runs just those files, without the lint, for iterating.
// Node 20 does not glob .ts test files, so list them here and hand them to node's runner.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function listTests(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) { if (name !== 'fixtures') out.push(...listTests(p)); }
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const only = process.argv.slice(2);
const files = only.length ? only : listTests('test');
if (files.length === 0) { console.error('no test files found under test/'); process.exit(1); }

if (only.length === 0) {
  // CI installs the llama.cpp peer (.ci/run) so test/gguf.test.ts's llama.cpp check runs; without
  // this guard a broken install step would turn that check into a silent skip.
  if (process.env.CI === 'true' && !existsSync('bench/llamacpp/node_modules/node-llama-cpp/package.json')) {
    console.error('CI: node-llama-cpp is not installed (npm --prefix bench/llamacpp install), so the GGUF check against llama.cpp would be skipped');
    process.exit(1);
  }
  const t0 = performance.now();
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const lint = spawnSync(npm, ['run', '-s', 'lint'], { stdio: 'inherit' });
  if (lint.status !== 0) { console.error('lint failed (npm run lint); tests not run'); process.exit(lint.status ?? 1); }
  console.log(`# lint passed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
