import { writeFileSync } from 'node:fs';
import { f32ToF16Bits } from '../../src/export/gguf.js';

/** Tensor for writeSafetensors. Float32Array data is converted to `dtype`; Uint8Array is written as is. */
export interface TensorToWrite {
  name: string;
  dtype: 'F32' | 'F16' | 'BF16' | 'I32';
  shape: number[];
  data: Uint8Array | Float32Array | Int32Array;
}

const BYTES = { F32: 4, F16: 2, BF16: 2, I32: 4 } as const;

/** Round-to-nearest-even float32 → IEEE half (the GGUF exporter's conversion). */
export const f32ToF16 = f32ToF16Bits;

/** Round-to-nearest-even float32 → bfloat16 (NaN kept quiet). */
export function f32ToBf16(x: number): number {
  const u = new Uint32Array(new Float32Array([x]).buffer)[0];
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x40;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

function encode(t: TensorToWrite): Uint8Array {
  if (t.data instanceof Uint8Array) return t.data;
  const n = t.data.length;
  if (t.dtype === 'F32') return new Uint8Array(Float32Array.from(t.data).buffer);
  if (t.dtype === 'I32') return new Uint8Array(Int32Array.from(t.data).buffer);
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = t.dtype === 'F16' ? f32ToF16(t.data[i]) : f32ToBf16(t.data[i]);
  return new Uint8Array(out.buffer);
}

/**
 * Writes a .safetensors file in the layout the Python writer uses: tensors in the given order,
 * header padded with spaces to a multiple of 8 bytes. Throws if data length does not match shape.
 */
export function writeSafetensors(path: string, tensors: TensorToWrite[], metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const blobs: Uint8Array[] = [];
  let pos = 0;
  for (const t of tensors) {
    const bytes = encode(t);
    const want = t.shape.reduce((a, d) => a * d, 1) * BYTES[t.dtype];
    if (bytes.byteLength !== want) {
      throw new Error(`writeSafetensors: ${t.name}: ${bytes.byteLength} bytes for ${t.dtype}[${t.shape}], want ${want}`);
    }
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [pos, pos + bytes.byteLength] };
    blobs.push(bytes);
    pos += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((new TextEncoder().encode(json).byteLength + 8) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.byteLength + pos);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.byteLength;
  for (const b of blobs) {
    out.set(b, at);
    at += b.byteLength;
  }
  writeFileSync(path, out);
}
