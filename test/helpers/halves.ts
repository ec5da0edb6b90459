// Random f16/bf16 test data and their exact float values, for the half-precision kernel tests.
import type { Runtime } from '../../src/runtime/runtime.js';

export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  return e === 0 ? s * m * 2 ** -24 : s * 2 ** (e - 15) * (1 + m / 1024);
}
export const bf16ToF32 = (h: number): number => new Float32Array(new Uint32Array([h << 16]).buffer)[0];

export interface HalfRandom {
  rand: () => number;
  /** Non-zero values in ±[0.01, 1). */
  nz: () => number;
  /** Finite non-zero halves with exponents up to 2^1 (subnormals included for f16). */
  randHalves: (n: number, kind: 'f16' | 'bf16') => Uint16Array;
}

/** A seeded generator (an LCG, so every run draws the same data). */
export function halfRandom(seed: number): HalfRandom {
  const rand = (): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed / 2 ** 32; };
  const nz = (): number => { const v = 0.01 + 0.99 * rand(); return rand() < 0.5 ? -v : v; };
  const randHalves = (n: number, kind: 'f16' | 'bf16'): Uint16Array => {
    const a = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      if (kind === 'bf16') { a[i] = new Uint32Array(new Float32Array([nz()]).buffer)[0] >>> 16; continue; }
      let h: number;
      do h = (rand() * 65536) & 0xffff; while ((h & 0x7fff) === 0 || ((h >> 10) & 31) > 16);
      a[i] = h;
    }
    return a;
  };
  return { rand, nz, randHalves };
}

/** Copies `a` into fresh wasm memory; returns its address. */
export function put(rt: Runtime, a: Float32Array | Uint16Array): number {
  const p = rt.alloc(a.byteLength);
  rt.u8(p, a.byteLength).set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return p;
}
