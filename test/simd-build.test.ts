// Which kernels build runs (docs/design.md, "Kernels"): relaxed SIMD wherever the engine runs it
// right, the SIMD128 build when asked or where it does not, and one-line errors naming the option.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Runtime } from '../src/runtime/runtime.js';
import { StreamlmError } from '../src/errors.js';
import { nodePlatform } from '../src/platform/node.js';
import { validatesRelaxedSimd } from '../src/platform/relaxed.js';
import type { Platform } from '../src/platform/types.js';

/** Node's platform, except that relaxed SIMD is missing (an engine that lacks or miscomputes it). */
const noRelaxed: Platform = { ...nodePlatform, relaxedSimd: () => false, simdChoice: () => null };

test('Node >= 20 runs the relaxed build by default, and its probe checks the dot product and madd', async () => {
  assert.equal(nodePlatform.relaxedSimd(), true, 'Node 20 with the V8 flag the platform turns on, or Node >= 22');
  assert.equal(validatesRelaxedSimd(), true);
  const prev = process.env.STREAMLM_SIMD;
  delete process.env.STREAMLM_SIMD;
  const rt = await Runtime.create({ threads: 1 });
  try {
    assert.equal(rt.simd, 'relaxed');
  } finally {
    await rt.close();
    if (prev !== undefined) process.env.STREAMLM_SIMD = prev;
  }
});

test('simd: baseline or relaxed is honoured; auto falls back where relaxed does not run; relaxed there is an error', async () => {
  for (const [opts, want] of [[{ simd: 'baseline' }, 'baseline'], [{ simd: 'relaxed' }, 'relaxed'], [{ simd: 'auto', platform: noRelaxed }, 'baseline']] as const) {
    const rt = await Runtime.create({ threads: 1, ...opts });
    try {
      assert.equal(rt.simd, want, JSON.stringify(opts.simd));
    } finally {
      await rt.close();
    }
  }
  await assert.rejects(Runtime.create({ threads: 1, simd: 'relaxed', platform: noRelaxed }),
    (e: unknown) => e instanceof StreamlmError && /simd/.test(e.message) && /relaxed SIMD does not validate/.test(e.message));
  await assert.rejects(Runtime.create({ threads: 1, simd: 'fast' as 'auto' }),
    (e: unknown) => e instanceof StreamlmError && /simd/.test(e.message) && /"fast"/.test(e.message));
  const withWasm = await Runtime.create({ threads: 1, wasm: await nodePlatform.kernels('baseline') });
  try {
    assert.equal(withWasm.simd, null, 'a caller-supplied module is not labelled');
  } finally {
    await withWasm.close();
  }
});

test('STREAMLM_SIMD picks the build in Node, and a bad value names the variable', async () => {
  const prev = process.env.STREAMLM_SIMD;
  try {
    process.env.STREAMLM_SIMD = 'baseline';
    const rt = await Runtime.create({ threads: 1 });
    try {
      assert.equal(rt.simd, 'baseline');
    } finally {
      await rt.close();
    }
    const explicit = await Runtime.create({ threads: 1, simd: 'relaxed' });
    try {
      assert.equal(explicit.simd, 'relaxed', 'the option wins over the variable');
    } finally {
      await explicit.close();
    }
    process.env.STREAMLM_SIMD = 'avx512';
    await assert.rejects(Runtime.create({ threads: 1 }),
      (e: unknown) => e instanceof StreamlmError && /STREAMLM_SIMD/.test(e.message) && /"avx512"/.test(e.message));
  } finally {
    if (prev === undefined) delete process.env.STREAMLM_SIMD;
    else process.env.STREAMLM_SIMD = prev;
  }
});
