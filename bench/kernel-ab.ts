// A/B of two builds of the kernels on one thread, in alternating rounds within one process:
// prefill GEMMs (M = 128) and decode GEMVs (M = 1) at Qwen2.5-0.5B shapes, per weight format
// (f32r4, f16, bf16, q8; f16h4/bf16h4 run the h4 layout where a build has it, else row-major; a GGML
// block type name such as q4_0 or q4_K runs its GGUF-layout kernel on random blocks, activation
// quantization included).
// Reports median CPU milliseconds per call (process.cpuUsage, so time lost to other processes on a
// shared machine is left out) and B/A. Build A first, e.g. from main:
//   git stash; npm run build:kernels; cp build/kernels.wasm /tmp/a.wasm; git stash pop; npm run build:kernels
//   node --import tsx bench/kernel-ab.ts --a /tmp/a.wasm [--b build/kernels.wasm] [--kinds f32r4,f16,q8] [--m 128,1] [--rounds 5] [--json]
import { readFileSync } from 'node:fs';
import { StreamlmError } from '../src/errors.js';
import type { Kernels } from '../src/runtime/kernels.js';
import { QUANT_MATMUL, QUANT_TYPES, rowBytes, type GgmlTypeName } from '../src/runtime/quant/index.js';

const argv = process.argv.slice(2);
const flag = (name: string, dflt: string): string => { const i = argv.indexOf(name); return i >= 0 && argv[i + 1] ? argv[i + 1] : dflt; };
const aPath = flag('--a', ''), bPath = flag('--b', 'build/kernels.wasm');
const ROUNDS = Number(flag('--rounds', '5')), ROUND_MS = 150;
const KINDS = flag('--kinds', 'f32r4,f16,q8').split(','), MS = flag('--m', '128,1').split(',').map(Number);
if (!aPath) throw new StreamlmError('give the baseline build with --a FILE.wasm', { field: '--a' });

interface Inst { k: Kernels; mem: WebAssembly.Memory; top: number; base: number }

async function load(path: string): Promise<Inst> {
  const memory = new WebAssembly.Memory({ initial: 2, maximum: 65536, shared: true });
  const { instance } = await WebAssembly.instantiate(readFileSync(path), { env: { memory } });
  const k = instance.exports as unknown as Kernels;
  memory.grow(4096); // 256 MiB
  const inst = { k, mem: memory, top: (k.heap_base() + 63) & ~63, base: 0 };
  const scratch = alloc(inst, 1 << 20);
  k.set_scratch(scratch, 1 << 20);
  inst.base = inst.top;
  return inst;
}

function alloc(i: Inst, bytes: number): number { const p = i.top; i.top = (i.top + bytes + 63) & ~63; return p; }

function fill(i: Inst, p: number, n: number, seed: number): void {
  const v = new Float32Array(i.mem.buffer, p, n);
  let s = seed;
  for (let j = 0; j < n; j++) { s = (Math.imul(s, 1103515245) + 12345) >>> 0; v[j] = (s / 2 ** 32) * 2 - 1; }
}

/** Sets up one case in an instance and returns the call to time. */
function setup(i: Inst, kind: string, M: number, K: number, N: number): () => void {
  const x = alloc(i, M * K * 4), out = alloc(i, M * N * 4), w = alloc(i, N * K * 4);
  fill(i, x, M * K, 1); fill(i, w, N * K, 2);
  if (kind === 'f32r4') { i.k.pack_f32r4(w, N, K); return () => i.k.matmul_f32r4(out, x, w, 0, M, K, N, 0, 1); }
  if (kind.startsWith('f16') || kind.startsWith('bf16')) {
    const h = alloc(i, N * K * 2), f = new Float32Array(i.mem.buffer, w, N * K), u = new Uint16Array(i.mem.buffer, h, N * K);
    const b = new DataView(new ArrayBuffer(4));
    for (let j = 0; j < N * K; j++) { b.setFloat32(0, f[j]); u[j] = b.getUint32(0) >>> 16; }
    const bf = kind.startsWith('bf16');
    if (!bf) for (let j = 0; j < N * K; j++) u[j] &= 0xbbff; // bf16 bits read as f16, exponent capped: finite halves
    // f16h4/bf16h4: the h4 layout where this build has it (what a model loads), else row-major.
    if (kind.endsWith('h4') && 'pack_h4' in i.k && i.k.pack_h4(h, N, K) === 1) {
      return bf ? () => i.k.matmul_bf16h4(out, x, h, 0, M, K, N, 0, 1) : () => i.k.matmul_f16h4(out, x, h, 0, M, K, N, 0, 1);
    }
    return bf ? () => i.k.matmul_bf16(out, x, h, 0, M, K, N, 0, 1) : () => i.k.matmul_f16(out, x, h, 0, M, K, N, 0, 1);
  }
  const bk = QUANT_MATMUL[kind as GgmlTypeName];
  if (bk) {
    // Random block bytes, every f16 field (d, dmin, q6_K's d) a small normal value.
    const t = QUANT_TYPES[kind as GgmlTypeName], bytes = N * rowBytes(t, K), wb = alloc(i, bytes), v = new Uint8Array(i.mem.buffer, wb, bytes);
    let s = 7;
    for (let j = 0; j < bytes; j++) { s = (Math.imul(s, 1103515245) + 12345) >>> 0; v[j] = s >>> 24; }
    const f16At = kind === 'q6_K' ? [208] : ['q4_1', 'q5_1', 'q4_K', 'q5_K'].includes(kind) ? [0, 2] : [0];
    for (let b = 0; b < bytes; b += t.blockBytes) for (const o of f16At) { v[b + o] = 0; v[b + o + 1] = 0x20; }
    const bxq = alloc(i, bk.xqBytes(M, K)), bxs = alloc(i, bk.xsBytes(M, K));
    // wasm exports are plain functions with no `this`; the union of every kernel's signature is too wide here.
    // eslint-disable-next-line @typescript-eslint/unbound-method, @typescript-eslint/no-unnecessary-type-assertion
    const q = i.k[bk.quantize], mm = i.k[bk.matmul] as unknown as (...a: number[]) => void;
    return () => { q(bxq, bxs, x, M, K); mm(out, bxq, bxs, wb, 0, M, K, N, 0, 1); };
  }
  const wq = alloc(i, N * K), ws = alloc(i, N * K / 8), xq = alloc(i, M * K), xs = alloc(i, M * K / 8);
  i.k.quantize_q8(wq, ws, w, N, K);
  return () => { i.k.quantize_q8(xq, xs, x, M, K); i.k.matmul_q8(out, xq, xs, wq, ws, 0, M, K, N, 0, 1); };
}

function cpuMs(fn: () => void): number {
  const c0 = process.cpuUsage();
  let n = 0;
  for (const t0 = performance.now(); performance.now() - t0 < ROUND_MS; n++) fn();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000 / n;
}

const median = (v: number[]): number => [...v].sort((p, q) => p - q)[v.length >> 1];

const SHAPES: [string, number, number][] = [['qkv 896->1152', 896, 1152], ['gate_up 896->9728', 896, 9728], ['down 4864->896', 4864, 896]];
const A = await load(aPath), B = await load(bPath);
const rows: { case: string; a_ms: number; b_ms: number; ratio: number }[] = [];
for (const kind of KINDS) for (const M of MS) for (const [label, K, N] of SHAPES) {
  if (K % (QUANT_MATMUL[kind as GgmlTypeName]?.blockElems ?? 1) !== 0) continue; // 896 holds no q4_K super-blocks
  const fa = setup(A, kind, M, K, N), fb = setup(B, kind, M, K, N);
  for (const t0 = performance.now(); performance.now() - t0 < 300;) { fa(); fb(); } // tier-up
  const ta: number[] = [], tb: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    if (r % 2) { tb.push(cpuMs(fb)); ta.push(cpuMs(fa)); } else { ta.push(cpuMs(fa)); tb.push(cpuMs(fb)); }
  }
  const a = median(ta), b = median(tb);
  rows.push({ case: `${kind} M=${M} ${label}`, a_ms: a, b_ms: b, ratio: b / a });
  A.top = A.base; B.top = B.base; // the next case reuses the memory
}
if (argv.includes('--json')) for (const r of rows) process.stdout.write(JSON.stringify(r) + '\n');
process.stderr.write(`A ${aPath}  B ${bPath}  1 thread, median CPU ms per call of ${ROUNDS} alternating rounds\n`);
for (const r of rows) process.stderr.write(`${r.case.padEnd(32)} A ${r.a_ms.toFixed(3).padStart(9)}  B ${r.b_ms.toFixed(3).padStart(9)}  B/A ${r.ratio.toFixed(3)}\n`);
