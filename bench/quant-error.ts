// Quantization error per GGML type: our quantizer (scale search + least-squares refit) against
// plain round-to-nearest at the block's extreme (ggml's quantize_row_*_ref rule for the 32-blocks,
// and the same rule per sub-block for the k-quants). Relative RMSE (RMSE / row RMS) on Gaussian
// rows, with and without outliers (every 97th value x6), and on a real checkpoint's linear weights
// when --model DIR is given (bf16/f16/f32 safetensors).
// Run: node --import tsx bench/quant-error.ts [--model models/novels-8m-sink]
import { dequantizeRow, quantizeRow, type GgmlTypeName } from '../src/runtime/quant/index.js';
import { searchMode } from '../src/runtime/quant/search.js';
import { readSafetensorsHeader, readTensorBytes } from '../src/runtime/safetensors.js';
import { bf16BitsToF32, f16BitsToF32 } from '../src/runtime/quant/f16.js';
import { join } from 'node:path';
import { readdirSync } from 'node:fs';

const TYPES: GgmlTypeName[] = ['q8_0', 'q6_K', 'q5_K', 'q5_1', 'q5_0', 'q4_K', 'q4_1', 'q4_0'];

let seed = 1;
const rand = (): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed / 2 ** 32; };
const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());

/** Rows whose width is a multiple of 256 (so every type applies), as [rows, K]. */
function relRmse(type: GgmlTypeName, rows: Float32Array[], plain: boolean): number {
  searchMode.plain = plain;
  let se = 0, ss = 0;
  for (const row of rows) {
    const y = dequantizeRow(type, quantizeRow(type, row), row.length);
    for (let i = 0; i < row.length; i++) { se += (y[i] - row[i]) ** 2; ss += row[i] ** 2; }
  }
  searchMode.plain = false;
  return Math.sqrt(se / ss);
}

function gaussRows(outliers: boolean): Float32Array[] {
  return Array.from({ length: 32 }, () => {
    const r = Float32Array.from({ length: 4096 }, gauss);
    if (outliers) for (let i = 0; i < r.length; i += 97) r[i] *= 6;
    return r;
  });
}

function modelRows(dir: string): Float32Array[] {
  const rows: Float32Array[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.safetensors')).map((f) => join(dir, f))) {
    for (const t of readSafetensorsHeader(file).tensors) {
      if (t.shape.length !== 2 || t.shape[1] % 256 !== 0 || /embed|norm/.test(t.name)) continue;
      const raw = new Uint8Array(t.byteLength);
      readTensorBytes(t, raw);
      const n = t.shape[0] * t.shape[1];
      const f = t.dtype === 'F32' ? new Float32Array(raw.buffer) : Float32Array.from(new Uint16Array(raw.buffer),
        t.dtype === 'BF16' ? bf16BitsToF32 : f16BitsToF32);
      for (let r = 0; r < t.shape[0]; r++) rows.push(f.subarray(r * t.shape[1], (r + 1) * t.shape[1]));
      if (f.length !== n) throw new Error(`${t.name}: size`);
    }
  }
  return rows;
}

const sets: [string, Float32Array[]][] = [['gauss', gaussRows(false)], ['gauss+outliers', gaussRows(true)]];
const mi = process.argv.indexOf('--model');
if (mi > 0) sets.push([process.argv[mi + 1], modelRows(process.argv[mi + 1])]);
const out: Record<string, Record<string, { ours: number; plain: number }>> = {};
for (const [name, rows] of sets) {
  out[name] = {};
  for (const t of TYPES) out[name][t] = { ours: relRmse(t, rows, false), plain: relRmse(t, rows, true) };
}
console.log(JSON.stringify({ bench: 'quant-error', date: new Date().toISOString(), results: out }));
console.log(`| type | ${sets.map(([n]) => `${n}: ours | plain RTN`).join(' | ')} |`);
console.log(`|---|${sets.map(() => '---|---|').join('')}`);
for (const t of TYPES) {
  console.log(`| ${t} | ${sets.map(([n]) => `${(100 * out[n][t].ours).toFixed(2)}% | ${(100 * out[n][t].plain).toFixed(2)}%`).join(' | ')} |`);
}
