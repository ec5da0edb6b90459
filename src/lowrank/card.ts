// The model card (README.md) that `streamlm compress` writes into its output directory: what the
// directory holds, how it was made, and the numbers before and after. The source's own card, with
// its training data and licence, stays with the source and is linked, not copied.
import { basename, resolve } from 'node:path';
import type { CompressReport } from './compress.js';

/** A perplexity above this multiple of the source's is reported as a warning. */
export const PPL_WARN_RATIO = 1.1;

export function modelCard(r: CompressReport, ctx: { source: string; command?: string; date?: Date }): string {
  const src = basename(resolve(ctx.source));
  const ranks = Object.values(r.ranks);
  const m = r.model;
  const pct = (a: number, b: number): string => `${(100 * a / b).toFixed(1)}%`;
  const rows = [
    `| parameters (all tensors) | ${m.paramsBefore.toLocaleString('en-US')} | ${m.paramsAfter.toLocaleString('en-US')} (${pct(m.paramsAfter, m.paramsBefore)}) |`,
    `| parameters of the factored linears | ${r.denseParams.toLocaleString('en-US')} | ${r.factorParams.toLocaleString('en-US')} (${pct(r.factorParams, r.denseParams)}) |`,
    `| weight bytes | ${m.bytesBefore.toLocaleString('en-US')} | ${m.bytesAfter.toLocaleString('en-US')} (${pct(m.bytesAfter, m.bytesBefore)}) |`,
  ];
  if (r.ppl) rows.push(`| perplexity, first ${r.ppl.tokens} tokens of ${r.ppl.text} (dense cache) | ${r.ppl.before.toFixed(3)} | ${r.ppl.after.toFixed(3)} (${r.ppl.after >= r.ppl.before ? '+' : ''}${pct(r.ppl.after - r.ppl.before, r.ppl.before)}) |`);
  return `# ${basename(r.out)}

A low-rank compression of \`${src}\` (${resolve(ctx.source)}), written by \`streamlm compress\` on
${(ctx.date ?? new Date()).toISOString().slice(0, 10)}. It loads with \`--model\` wherever streamlm takes a model directory.
${ctx.command ? `\n\`\`\`sh\n${ctx.command}\n\`\`\`\n` : ''}
Every linear layer inside the blocks, W (N×K), is stored as two factors B (N×r) and A (r×K) with
W ≈ B·A (tensors \`<name>.lr_b\` and \`<name>.lr_a\`, ${r.factorDtype} like the source), found by
${r.method === 'whiten' ? 'SVD-LLM (an SVD of W whitened by calibration activations)' : 'a truncated SVD'}. Ranks: ${Math.min(...ranks)} to ${Math.max(...ranks)}
over ${ranks.length} linears, listed in \`config.json\` under \`streamlm_lowrank\`. Embeddings, norms and the
output head are the source's. See docs/lowrank.md of streamlm for the format.

| | ${src} | this model |
|---|---|---|
${rows.join('\n')}
${r.warnings.length ? `\n**Warnings.**\n\n${r.warnings.map((w) => `- ${w}`).join('\n')}\n` : ''}
The source model's card (its training data, licence and measurements) is \`README.md\` in
${resolve(ctx.source)}; its licence applies to these weights too. The source's measurements
(metrics.json, ref_ppl.json) are not copied: they do not describe this model.
`;
}
