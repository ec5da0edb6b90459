import type { HParams } from '../config.js';
import type { LayerWeights, ModelWeights } from '../transformer.js';
import type { WeightLoader } from '../weights.js';
import { lmHead } from './llama.js';

/** MPT: ALiBi instead of rotary, LayerNorm (bias only when present), plain GELU MLP, tied head. */
export function loadMpt(hp: HParams, w: WeightLoader): ModelWeights {
  const H = hp.hiddenSize, F = hp.intermediateSize;
  const b = (name: string) => (hp.qkvBias || hp.mlpBias) && w.has(name) ? [name] : null;
  const layers: LayerWeights[] = [];
  for (let i = 0; i < hp.numLayers; i++) {
    const p = `transformer.blocks.${i}.`;
    layers.push({
      norm1: w.norm(`${p}norm_1.weight`, `${p}norm_1.bias`, H),
      norm2: w.norm(`${p}norm_2.weight`, `${p}norm_2.bias`, H),
      qkv: w.linear([{ name: `${p}attn.Wqkv.weight` }], H, b(`${p}attn.Wqkv.bias`), [3 * H]),
      o: w.linear([{ name: `${p}attn.out_proj.weight` }], H, b(`${p}attn.out_proj.bias`), [H]),
      up: w.linear([{ name: `${p}ffn.up_proj.weight` }], H, b(`${p}ffn.up_proj.bias`), [F]),
      down: w.linear([{ name: `${p}ffn.down_proj.weight` }], F, b(`${p}ffn.down_proj.bias`), [H]),
    });
  }
  const embed = w.embedding('transformer.wte.weight', hp.vocabSize, H);
  const biasMax = hp.position.kind === 'alibi' ? hp.position.biasMax : 8;
  return {
    embed, layers,
    finalNorm: w.norm('transformer.norm_f.weight', 'transformer.norm_f.bias', H),
    lmHead: lmHead(w, hp, 'transformer.wte.weight', 'lm_head.weight', embed),
    alibiSlopes: w.constant(mptAlibiSlopes(hp.numHeads, biasMax)),
  };
}

/**
 * ALiBi slopes 2^(−biasMax·i/n) for a power-of-two head count n; other counts interleave the
 * slopes of the next power of two, odd ones first, as MPT does.
 */
export function mptAlibiSlopes(nHeads: number, biasMax: number): Float32Array {
  const n2 = 2 ** Math.ceil(Math.log2(nHeads));
  const s: number[] = [];
  for (let i = 1; i <= n2; i++) s.push(1 / 2 ** (i * (biasMax / n2)));
  const order = n2 === nHeads ? s : [...s.filter((_, i) => i % 2 === 1), ...s.filter((_, i) => i % 2 === 0)];
  return Float32Array.from(order.slice(0, nHeads));
}
