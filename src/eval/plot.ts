import type { StreamEvalResult } from './ppl.js';

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];

function esc(s: string): string { return s.replace(/&/g, '&amp;').replace(/</g, '&lt;'); }

/** Log-perplexity against tokens, one line per policy: the paper's Figure 3. */
export function pplPlotSvg(results: readonly StreamEvalResult[], title: string, bucket = 1000): string {
  const W = 720, H = 400, L = 60, R = 160, T = 36, B = 48;
  const all = results.flatMap((r) => r.nll_per_1k).filter(Number.isFinite);
  const lo = Math.min(...all), hi = Math.max(...all);
  const yMin = Math.floor(lo * 10) / 10, yMax = Math.max(Math.ceil(hi * 10) / 10, yMin + 0.1);
  const xMax = Math.max(...results.map((r) => r.nll_per_1k.length)) * bucket;
  const sx = (x: number) => L + (x / xMax) * (W - L - R);
  const sy = (y: number) => T + (1 - (y - yMin) / (yMax - yMin)) * (H - T - B);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`);
  out.push(`<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`);
  for (let i = 0; i <= 4; i++) {
    const y = yMin + ((yMax - yMin) * i) / 4;
    out.push(`<text x="${L - 6}" y="${sy(y) + 4}" text-anchor="end">${y.toFixed(2)}</text>`);
    const x = (xMax * i) / 4;
    out.push(`<text x="${sx(x)}" y="${H - B + 16}" text-anchor="middle">${Math.round(x)}</text>`);
  }
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 10}" text-anchor="middle">tokens</text>`);
  out.push(`<text x="16" y="${(T + H - B) / 2}" transform="rotate(-90 16 ${(T + H - B) / 2})" text-anchor="middle">log perplexity (mean NLL per ${bucket} tokens)</text>`);
  results.forEach((r, i) => {
    const c = COLORS[i % COLORS.length];
    const pts = r.nll_per_1k.map((y, j) => `${sx((j + 1) * bucket).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts}"/>`);
    out.push(`<rect x="${W - R + 12}" y="${T + i * 20}" width="14" height="3" fill="${c}"/><text x="${W - R + 32}" y="${T + i * 20 + 5}">${esc(r.cache)} (${r.ppl.toFixed(2)})</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}
