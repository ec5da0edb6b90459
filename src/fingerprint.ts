import { crc32 } from './cache/snapshot.js';
import type { HParams } from './models/config.js';
import { sourceOf, type TensorInfo } from './runtime/safetensors.js';

/** Bytes read per sample of a tensor; three samples (start, middle, end) per tensor. */
const SAMPLE = 32;

/**
 * A cheap 64-bit identity of a loaded model (see Model.fingerprint for what it covers): CRC-32 and
 * FNV-1a over the same bytes, hex. Not a cryptographic hash: it guards against restoring a snapshot
 * into the wrong model by mistake, not against forgery.
 */
export function modelFingerprint(tensors: ReadonlyMap<string, TensorInfo>, hp: HParams, weightBytes: number): string {
  const parts: Uint8Array[] = [];
  const enc = new TextEncoder();
  parts.push(enc.encode(JSON.stringify(hp) + `|${weightBytes}|`));
  for (const t of [...tensors.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    parts.push(enc.encode(`${t.name}:${t.dtype}:${t.shape.join('x')};`));
    const src = sourceOf(t);
    for (const at of [0, Math.floor(t.byteLength / 2), t.byteLength - SAMPLE]) {
      const n = Math.max(0, Math.min(SAMPLE, t.byteLength - Math.max(at, 0)));
      const buf = new Uint8Array(n);
      if (n) src.read(buf, t.offset + Math.max(at, 0));
      parts.push(buf);
    }
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { all.set(p, o); o += p.length; }
  let fnv = 0x811c9dc5;
  for (let i = 0; i < all.length; i++) fnv = Math.imul(fnv ^ all[i], 0x01000193) >>> 0;
  return crc32(all).toString(16).padStart(8, '0') + fnv.toString(16).padStart(8, '0');
}
