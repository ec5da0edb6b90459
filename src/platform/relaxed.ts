// Relaxed SIMD detection, shared by both platforms. An engine without the proposal rejects the probe
// at validation; one that has it must also compute the two instructions the kernels use as the
// kernels expect, since an engine's early implementation can be wrong (Node 20's V8 11.3 gets
// i32x4.relaxed_dot_i8x16_i7x16_add_s wrong: twice the sum, addend dropped; the kernels avoid it).
// The probe, compiled by AssemblyScript (--enable simd,relaxed-simd) from:
//   export function dot(a: i32, b: i32): i32 {
//     return i16x8.extract_lane_s(i16x8.relaxed_dot_i8x16_i7x16_s(i8x16.splat(<i8>a), i8x16.splat(<i8>b)), 0);
//   }
//   export function madd(a: f32, b: f32, c: f32): f32 {
//     return f32x4.extract_lane(f32x4.relaxed_madd(f32x4.splat(a), f32x4.splat(b), f32x4.splat(c)), 0);
//   }
const PROBE_BASE64 = 'AGFzbQEAAAABDgJgA319fQF9YAJ/fwF/AwMCAAEHDgIDZG90AAEEbWFkZAAACigCFAAgAP0TIAH9EyAC/RP9hQL9HwALEQAgAP0PIAH9D/2SAv0YAMEL';

function probeBytes(): Uint8Array<ArrayBuffer> {
  const s = atob(PROBE_BASE64), b = new Uint8Array(new ArrayBuffer(s.length));
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

interface Probe { dot(a: number, b: number): number; madd(a: number, b: number, c: number): number }

/**
 * Whether the relaxed build can run here: the engine validates relaxed SIMD (Chromium >= 114,
 * Node >= 22, Node 20 with its flag) and computes a signed-by-unsigned dot (−3·5 twice: −30, and
 * 127·63 twice: 16002) and a multiply-add (2·3 + 1) correctly.
 */
export function validatesRelaxedSimd(): boolean {
  const bytes = probeBytes();
  if (!WebAssembly.validate(bytes)) return false;
  const p = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports as unknown as Probe;
  return p.dot(-3, 5) === -30 && p.dot(127, 63) === 16002 && p.dot(-128, 63) === -16128 && p.madd(2, 3, 1) === 7;
}
