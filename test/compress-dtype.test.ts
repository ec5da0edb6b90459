// Factors are stored in the source linear's dtype (issue 11, item 4): f32 -> bf16 / f16 rounding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFloats } from '../src/lowrank/compress.js';

const u16 = (b: Uint8Array): number[] => Array.from(new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2));

test('bf16: round to nearest, ties to even; NaN stays NaN; infinities and zeros kept', () => {
  // Bit patterns from the IEEE definitions: bf16 is the top 16 bits of an f32.
  const x = new Float32Array([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, -2, 0, -0, Infinity, -Infinity, NaN, 3.4028234663852886e38]);
  assert.deepEqual(u16(encodeFloats(x, 'BF16')), [
    0x3f80,  // 1
    0x3f80,  // halfway between 0x3f80 and 0x3f81: to the even one
    0x3f82,  // halfway between 0x3f81 and 0x3f82: to the even one
    0x3f81,  // just above halfway: up
    0xc000, 0x0000, 0x8000, 0x7f80, 0xff80,
    0x7fc0,  // quiet NaN
    0x7f80,  // f32 max rounds to infinity in bf16, as numpy/torch do
  ]);
});

test('f16 and f32: f16 uses IEEE half rounding; f32 is the bytes as they are', () => {
  const x = new Float32Array([1, 0.5, -2, 65504, 1 + 2 ** -11, 2 ** -24]);
  assert.deepEqual(u16(encodeFloats(x, 'F16')), [0x3c00, 0x3800, 0xc000, 0x7bff, 0x3c00, 0x0001]);
  const f = encodeFloats(x, 'F32');
  assert.deepEqual(Array.from(new Float32Array(f.buffer, f.byteOffset, x.length)), Array.from(x));
  assert.throws(() => encodeFloats(x, 'I8'), /cannot store factors as I8/);
});
