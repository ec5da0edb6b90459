import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamlmError } from '../src/errors.js';
import { parsePartialRotaryFactor, parseRope, ropeFrequencies, type RopeConfig } from '../src/models/rope.js';

function close(got: ArrayLike<number>, want: ArrayLike<number>, rel: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const tol = rel * Math.abs(want[i]) + 1e-30;
    assert.ok(Math.abs(got[i] - want[i]) <= tol, `${what}[${i}]: got ${got[i]}, want ${want[i]}`);
  }
}

const rope = (r: Partial<RopeConfig>): RopeConfig => ({ type: 'default', theta: 100, factor: 1, originalMaxPositionEmbeddings: 10, ...r });

test('hand-computed frequencies for every type at dim 4', () => {
  // theta 100, dim 4: 1/100^(0/4), 1/100^(2/4)
  close(ropeFrequencies(rope({}), 4, 1).invFreq, [1, 0.1], 1e-15, 'default');
  close(ropeFrequencies(rope({ type: 'linear', factor: 2 }), 4, 1).invFreq, [0.5, 0.05], 1e-15, 'linear');
  // dynamic at seqLen 20 > 10: base = 100 * (2*20/10 - 1)^(4/2) = 900
  close(ropeFrequencies(rope({ type: 'dynamic', factor: 2 }), 4, 20).invFreq, [1, 1 / 30], 1e-14, 'dynamic long');
  // below the trained length the base is unchanged: (2*10/10 - 1)^2 = 1
  close(ropeFrequencies(rope({ type: 'dynamic', factor: 2 }), 4, 5).invFreq, [1, 0.1], 1e-14, 'dynamic short');
  // llama3, theta 10000, dim 6: wavelengths 2π·[1, 21.54, 464.2] = [6.3, 135.3, 2916.7].
  // With orig 1000, low 1, high 4 the thresholds are 1000 and 250: kept, kept, divided by 8.
  const l3 = ropeFrequencies(rope({ type: 'llama3', theta: 10000, factor: 8, originalMaxPositionEmbeddings: 1000, lowFreqFactor: 1, highFreqFactor: 4 }), 6, 1);
  const inv = [1, 10000 ** (-2 / 6), 10000 ** (-4 / 6)];
  const w1 = (2 * Math.PI) / inv[1]; // 135.3 < 250: high frequency, unchanged
  const w2 = (2 * Math.PI) / inv[2]; // 2916 > 1000: divided by 8
  assert.ok(w1 < 250 && w2 > 1000);
  close(l3.invFreq, [1, inv[1], inv[2] / 8], 1e-14, 'llama3');
  // a medium band: orig 400 gives thresholds 400 and 100, so w1 = 135.3 is blended.
  const s = (400 / w1 - 1) / 3;
  const l3m = ropeFrequencies(rope({ type: 'llama3', theta: 10000, factor: 8, originalMaxPositionEmbeddings: 400, lowFreqFactor: 1, highFreqFactor: 4 }), 6, 1);
  close(l3m.invFreq, [1, (1 - s) * inv[1] / 8 + s * inv[1], inv[2] / 8], 1e-14, 'llama3 medium');
  assert.equal(l3m.attentionScaling, 1);
});

test('yarn by hand: ramp, attention factor, mscale and truncate', () => {
  // dim 8, theta 10000, orig 64, factor 4. correction dim(r) = 8·ln(64/(2πr)) / (2 ln 10000)
  const cd = (r: number): number => (8 * Math.log(64 / (r * 2 * Math.PI))) / (2 * Math.log(10000));
  const y = rope({ type: 'yarn', theta: 10000, factor: 4, originalMaxPositionEmbeddings: 64, betaFast: 2, betaSlow: 0.5, truncate: false });
  const low = Math.max(cd(2), 0);
  const high = Math.min(cd(0.5), 7);
  const ext = [0, 1, 2, 3].map((i) => 10000 ** (-(2 * i) / 8));
  const want = ext.map((e, i) => {
    const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
    return (e / 4) * ramp + e * (1 - ramp);
  });
  const got = ropeFrequencies(y, 8, 1);
  close(got.invFreq, want, 1e-14, 'yarn');
  close([got.attentionScaling], [0.1 * Math.log(4) + 1], 1e-15, 'yarn attention');
  const t = ropeFrequencies({ ...y, truncate: true }, 8, 1).invFreq;
  const lowT = Math.max(Math.floor(cd(2)), 0);
  const highT = Math.min(Math.ceil(cd(0.5)), 7);
  close(t, ext.map((e, i) => { const r = Math.min(1, Math.max(0, (i - lowT) / (highT - lowT))); return (e / 4) * r + e * (1 - r); }), 1e-14, 'yarn truncate');
  const m = ropeFrequencies({ ...y, mscale: 1, mscaleAllDim: 0.5 }, 8, 1).attentionScaling;
  close([m], [(0.1 * Math.log(4) + 1) / (0.05 * Math.log(4) + 1)], 1e-15, 'mscale');
  assert.equal(ropeFrequencies({ ...y, attentionFactor: 1.25 }, 8, 1).attentionScaling, 1.25);
});

// Reference values printed by transformers 5.17 (ROPE_INIT_FUNCTIONS, float32) on the GPU machine.
const REF = [
  { params: {"rope_type": "default", "rope_theta": 10000.0}, dim: 16, maxPos: 2048, seqLen: 0, att: 1.0, inv: [1, 0.3162278, 0.1, 0.03162278, 0.01, 0.003162278, 0.001, 0.0003162278] },
  { params: {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}, dim: 16, maxPos: 2048, seqLen: 0, att: 1.0, inv: [0.25, 0.07905694, 0.025, 0.007905695, 0.0025, 0.0007905695, 0.00025, 7.905695e-05] },
  { params: {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}, dim: 16, maxPos: 2048, seqLen: 8192, att: 1.0, inv: [1, 0.2394814, 0.05735132, 0.01373457, 0.003289174, 0.0007876959, 0.0001886385, 4.517539e-05] },
  { params: {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}, dim: 16, maxPos: 2048, seqLen: 100, att: 1.0, inv: [1, 0.3162278, 0.1, 0.03162278, 0.01, 0.003162278, 0.001, 0.0003162278] },
  { params: {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}, dim: 64, maxPos: 131072, seqLen: 0, att: 1.0, inv: [1, 0.6636013, 0.4403666, 0.2922278, 0.1939228, 0.1286874, 0.0853971, 0.05666962, 0.03760603, 0.02495541, 0.01656044, 0.01098953, 0.007292665, 0.004839421, 0.003211446, 0.001371894, 0.000524846, 0.0001785078, 7.784655e-05, 5.165907e-05, 3.428102e-05, 2.274893e-05, 1.509622e-05, 1.001787e-05, 6.64787e-06, 4.411535e-06, 2.9275e-06, 1.942693e-06, 1.289173e-06, 8.554969e-07, 5.677088e-07, 3.767323e-07] },
  { params: {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 2048}, dim: 32, maxPos: 8192, seqLen: 0, att: 1.138629436111989, inv: [1, 0.5623413, 0.3162278, 0.1778279, 0.1, 0.05020904, 0.02484647, 0.0120669, 0.005714286, 0.00261087, 0.001129385, 0.0004445699, 0.00025, 0.0001405853, 7.905695e-05, 4.445699e-05] },
  { params: {"rope_type": "yarn", "rope_theta": 150000.0, "factor": 32.0, "original_max_position_embeddings": 4096, "beta_fast": 32.0, "beta_slow": 1.0, "truncate": false}, dim: 64, maxPos: 131072, seqLen: 0, att: 1.3465735902799727, inv: [1, 0.6890443, 0.474782, 0.3271459, 0.225418, 0.155323, 0.1070244, 0.07374457, 0.05081327, 0.0317057, 0.019335, 0.01159205, 0.006794959, 0.003860359, 0.002093793, 0.001052602, 0.0004564839, 0.0001293187, 3.830881e-05, 2.639647e-05, 1.818834e-05, 1.253257e-05, 8.635496e-06, 5.950239e-06, 4.099978e-06, 2.825067e-06, 1.946596e-06, 1.341291e-06, 9.24209e-07, 6.368209e-07, 4.387979e-07, 3.023511e-07] },
  { params: {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 40.0, "original_max_position_embeddings": 4096, "mscale": 1.0, "mscale_all_dim": 0.707}, dim: 64, maxPos: 163840, seqLen: 0, att: 1.0857263992561355, inv: [1, 0.7498942, 0.5623413, 0.4216965, 0.3162278, 0.2371374, 0.1778279, 0.1333521, 0.1, 0.07498942, 0.05623413, 0.03900693, 0.02687936, 0.01837814, 0.01244796, 0.008334509, 0.0055, 0.003561997, 0.002249365, 0.001370513, 0.0007905694, 0.0004149904, 0.0001778279, 3.333803e-05, 2.5e-05, 1.874735e-05, 1.405853e-05, 1.054241e-05, 7.905694e-06, 5.928434e-06, 4.445698e-06, 3.333804e-06] },
  { params: {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 2048, "attention_factor": 1.5, "beta_fast": 16, "beta_slow": 2}, dim: 16, maxPos: 8192, seqLen: 0, att: 1.5, inv: [1, 0.3162278, 0.1, 0.02371708, 0.005, 0.0007905695, 0.00025, 7.905695e-05] },
];

test('matches transformers 5.17, from both the 4.x and 5.x config forms', () => {
  for (const r of REF) {
    const { rope_type, rope_theta, ...rest } = r.params as Record<string, unknown>;
    const v5 = { max_position_embeddings: r.maxPos, rope_parameters: r.params };
    const v4 = { max_position_embeddings: r.maxPos, rope_theta, rope_scaling: rope_type === 'default' ? null : { type: rope_type, ...rest } };
    const a = parseRope(v5, 'config.json', 10000);
    const b = parseRope(v4, 'config.json', 10000);
    assert.deepEqual(a, b, `${rope_type}: both forms parse alike`);
    const f = ropeFrequencies(a, r.dim, r.seqLen);
    close(f.invFreq, r.inv, 2e-6, `${JSON.stringify(r.params)}`);
    close([f.attentionScaling], [r.att], 1e-9, `${rope_type} attention scaling`);
  }
});

test('parseRope defaults, nesting and errors name the key', () => {
  assert.deepEqual(parseRope({ max_position_embeddings: 2048 }, 'c.json', 500), { type: 'default', theta: 500, factor: 1, originalMaxPositionEmbeddings: 2048 });
  assert.equal(parseRope({ rope_theta: 1e6 }, 'c.json', 10000).theta, 1e6);
  const nested = { rope_parameters: { full_attention: { rope_type: 'linear', rope_theta: 7, factor: 2 } } };
  assert.equal(parseRope(nested, 'c.json', 1).factor, 2);
  const yarnDerived = parseRope({ max_position_embeddings: 8192, original_max_position_embeddings: 2048, rope_parameters: { rope_type: 'yarn' } }, 'c.json', 1);
  assert.equal(yarnDerived.factor, 4);
  assert.equal(yarnDerived.originalMaxPositionEmbeddings, 2048);

  const bad = (cfg: Record<string, unknown>, ...parts: string[]): void =>
    assert.throws(() => parseRope(cfg, 'dir/config.json', 10000), (e: unknown) => {
      assert.ok(e instanceof StreamlmError);
      for (const p of ['dir/config.json', ...parts]) assert.ok(e.message.includes(p), `"${e.message}" lacks "${p}"`);
      return true;
    });
  bad({ rope_scaling: { type: 'longrope', factor: 2 } }, 'rope_scaling.type', 'longrope');
  bad({ rope_parameters: { rope_type: 'su' } }, 'rope_parameters.rope_type', 'su');
  bad({ rope_parameters: { full_attention: { rope_type: 'default' }, sliding_attention: { rope_type: 'default' } } }, 'rope_parameters', 'per-attention-type');
  bad({ rope_scaling: { type: 'linear' } }, 'rope_scaling.factor', 'missing');
  bad({ rope_scaling: { type: 'linear', factor: 'x' } }, 'rope_scaling.factor');
  bad({ rope_scaling: { type: 'linear', factor: -1 } }, 'rope_scaling.factor', '> 0');
  bad({ max_position_embeddings: 10, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1 } }, 'rope_scaling.high_freq_factor');
  bad({ rope_scaling: { type: 'dynamic', factor: 2 } }, 'max_position_embeddings');
  bad({ max_position_embeddings: 64, rope_parameters: { rope_type: 'yarn', factor: 2, truncate: 'no' } }, 'truncate');
  bad({ rope_scaling: 3 }, 'rope_scaling');
});

test('partial rotary factor: rope dict, top level, family default', () => {
  assert.equal(parsePartialRotaryFactor({ rope_parameters: { partial_rotary_factor: 0.5 } }, 'c.json', 1), 0.5);
  assert.equal(parsePartialRotaryFactor({ partial_rotary_factor: 0.25 }, 'c.json', 1), 0.25);
  assert.equal(parsePartialRotaryFactor({}, 'c.json', 0.25), 0.25);
  assert.throws(() => parsePartialRotaryFactor({ partial_rotary_factor: 0 }, 'c.json', 1), /partial_rotary_factor/);
  assert.throws(() => ropeFrequencies(rope({}), 3, 1), /rotary/);
});
