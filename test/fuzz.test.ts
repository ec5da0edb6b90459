// Fuzzing (issue 17): a few thousand generated cases over the parsers that read untrusted bytes or
// JSON; the only outcomes are a result or a one-line StreamlmError/ApiError. bench/fuzz.ts runs
// the same properties with ten times the cases.
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { loadModel, type Model } from '../src/model.js';
import { ChatTemplate } from '../src/chat/template.js';
import { configProperty, ggufProperty, onlyCleanErrors, requestProperty, safetensorsProperty, snapshotProperty } from './helpers/fuzz-props.js';
import { fixtureDir } from './helpers/fixtures.js';

// A fixed seed keeps `npm test` reproducible; bench/fuzz.ts draws fresh seeds.
const RUN = { seed: 17, numRuns: 600 };
let model: Model;
let real: Uint8Array;

before(async () => {
  model = await loadModel(fixtureDir('llama'), { threads: 1 });
  const s = model.session({ cache: 'sink:4+28' });
  s.prefill([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33]);
  real = s.snapshot({ extra: { kind: 'fuzz' } });
  s.close();
});
after(async () => { await model.close(); });

test('safetensors headers: random and structured bytes give a header or a StreamlmError', () => { fc.assert(safetensorsProperty, RUN); });
test('GGUF headers: random bytes after the magic give a header or a StreamlmError', () => { fc.assert(ggufProperty, RUN); });
test('config.json: random field values give hparams or a StreamlmError', () => { fc.assert(configProperty, RUN); });
test('snapshots: mutated real snapshots and random bytes are refused with a StreamlmError', () => { fc.assert(snapshotProperty(model, real), { ...RUN, numRuns: 400 }); });
test('HTTP request bodies: any JSON gives a request or a 4xx ApiError', () => { fc.assert(requestProperty, { ...RUN, numRuns: 1000 }); });
test('chat templates: any roles and contents render or give a StreamlmError', () => {
  const tpl = new ChatTemplate(model.tokenizer, {});
  fc.assert(fc.property(fc.array(fc.record({ role: fc.oneof(fc.constantFrom('user', 'system', 'assistant'), fc.string()), content: fc.string() }), { maxLength: 4 }), fc.boolean(),
    (messages, gen) => { onlyCleanErrors(() => tpl.render(messages as never, gen)); }), { ...RUN, numRuns: 300 });
});
