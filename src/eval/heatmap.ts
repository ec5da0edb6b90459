import type { AttentionMap } from './attention.js';

/** Per-layer heatmaps of head-averaged attention, the paper's Figure 2. Colour is log-scaled. */
export function heatmapSvg(maps: readonly AttentionMap[], T: number, title: string): string {
  const cell = 5, pad = 30, size = T * cell;
  const W = maps.length * (size + pad) + pad, H = size + 2 * pad + 20;
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`, `<text x="${pad}" y="18">${title.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</text>`];
  maps.forEach((m, i) => {
    const x0 = pad + i * (size + pad), y0 = pad + 10;
    out.push(`<text x="${x0}" y="${y0 - 4}">layer ${m.layer}: ${(m.sinkShare * 100).toFixed(1)}% on token 0</text>`);
    out.push(`<rect x="${x0}" y="${y0}" width="${size}" height="${size}" fill="#f7f7f7"/>`);
    for (let q = 0; q < T; q++)
      for (let k = 0; k <= q; k++) {
        const p = m.mean[q * T + k];
        // log scale from 1e-3 to 1 so both the sink column and the diagonal show.
        const v = Math.max(0, Math.min(1, (Math.log10(Math.max(p, 1e-3)) + 3) / 3));
        const c = Math.round(255 * (1 - v));
        out.push(`<rect x="${x0 + k * cell}" y="${y0 + q * cell}" width="${cell}" height="${cell}" fill="rgb(255,${c},${Math.round(c * 0.6)})"/>`);
      }
  });
  out.push('</svg>');
  return out.join('\n');
}
