/**
 * bench:fuzz — the properties of test/fuzz.test.ts with many more cases and fresh seeds: tens of
 * thousands of generated safetensors headers, GGUF headers, config.json objects, snapshots and
 * HTTP request bodies. Any outcome other than a result or a one-line StreamlmError/ApiError fails.
 *
 *   npm run bench:fuzz -- [--json] [--runs 10000] [--seed N]
 *
 * Output: a table on stderr and, with --json, one JSON line on stdout:
 * {"seed","runs":{"safetensors",...},"failures":[...],"seconds":{...}}.
 */
import { parseArgs } from 'node:util';
import fc from 'fast-check';
import { loadModel } from '../src/model.js';
import { configProperty, ggufProperty, requestProperty, safetensorsProperty, snapshotProperty } from '../test/helpers/fuzz-props.js';
import { fixtureDir } from '../test/helpers/fixtures.js';

const { values } = parseArgs({ options: { json: { type: 'boolean' }, runs: { type: 'string' }, seed: { type: 'string' } } });
const runs = Number(values.runs ?? 10_000);
const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed);
if (!Number.isInteger(runs) || runs < 1) { console.error('--runs must be a positive integer'); process.exit(2); }

const model = await loadModel(fixtureDir('llama'), { threads: 1 });
const s = model.session({ cache: 'sink:4+28' });
s.prefill(Array.from({ length: 40 }, (_, i) => i + 1));
const real = s.snapshot({ extra: { kind: 'fuzz' } });
s.close();

const props: [string, fc.IRawProperty<unknown>, number][] = [
  ['safetensors', safetensorsProperty, runs],
  ['gguf', ggufProperty, runs],
  ['config', configProperty, runs],
  ['snapshot', snapshotProperty(model, real), Math.ceil(runs / 2)],
  ['request', requestProperty, runs * 2],
];
const failures: { property: string; report: string }[] = [];
const seconds: Record<string, number> = {};
const done: Record<string, number> = {};
for (const [name, prop, n] of props) {
  const t = performance.now();
  const r = await fc.check(prop, { seed, numRuns: n });
  seconds[name] = +((performance.now() - t) / 1000).toFixed(2);
  done[name] = n;
  if (r.failed) failures.push({ property: name, report: fc.defaultReportMessage(r) ?? 'failed' });
  console.error(`${name.padEnd(12)} ${String(n).padStart(7)} cases  ${seconds[name].toFixed(2).padStart(7)} s  ${r.failed ? 'FAILED' : 'ok'}`);
}
await model.close();
if (values.json) console.log(JSON.stringify({ seed, runs: done, failures, seconds }));
for (const f of failures) console.error(`\n${f.property}:\n${f.report}`);
process.exit(failures.length ? 1 : 0);
