// The session snapshot format: everything a session needs to continue bit-identically, in one
// self-describing, versioned, checksummed byte string.
//
//   0   8 bytes  magic "SLMSNAP\0"
//   8   u32      format version (append-only: a reader refuses versions it does not know)
//   12  u32      header length H
//   16  H bytes  header, JSON (SnapshotHeader): model fingerprint, policy, counters, book order, ...
//   ..  zero padding to a multiple of 8
//   ..  sections named in the header, each at its offset from the body start, 8-byte aligned
//   end u32      CRC-32 (IEEE) of every byte before it
// Integers are little-endian.
import { StreamlmError } from '../errors.js';

export const SNAPSHOT_MAGIC = 'SLMSNAP\0';
export const SNAPSHOT_VERSION = 1;

export interface SnapshotSection { name: string; offset: number; bytes: number }

/** The JSON header. Append fields only; renaming or re-typing one needs a new version. */
export interface SnapshotHeader {
  /** What wrote it, for a person reading a hex dump. */
  format: 'streamlm-session';
  /** Model.fingerprint of the model whose K/V these are. */
  model: string;
  policy: string;
  evictChunk: number;
  prefillChunk: number;
  /** Slots of the cache the session ran on, and its shape. */
  capacity: number;
  numLayers: number;
  kvDim: number;
  /** [stream index of the next token, tokens seen]. */
  counters: [number, number];
  /** The slot book: physical slots in logical order, the free stack (top last), the high-water mark. */
  order: number[];
  free: number[];
  high: number;
  /** Tokens accepted but not yet fed (a reply's last token, an interrupted prompt's rest). */
  pending: number[];
  /** Length of the `logits` section in floats: the logits of the last forward, 0 if none. */
  vocab: number;
  /** Binary sections: `stream` f64, `token` i32, `group` i32 (capacity each), `logits` f32, `kv` f32. */
  sections: SnapshotSection[];
  /** The caller's own JSON (the server keeps a conversation's transcript here); null if none. */
  extra: unknown;
}

/** Eight 256-entry tables: table k advances the CRC over a byte followed by k zero bytes. */
let CRC_TABLES: Uint32Array | null = null;

function crcTables(): Uint32Array {
  const t = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  for (let k = 1; k < 8; k++)
    for (let n = 0; n < 256; n++) { const p = t[(k - 1) * 256 + n]; t[k * 256 + n] = (p >>> 8) ^ t[p & 0xff]; }
  return t;
}

/**
 * CRC-32 (IEEE 802.3, as zlib and PNG compute it), so a snapshot can be checked by any tool. Eight
 * bytes per iteration (slicing-by-8): a snapshot of a 2k-token cache is tens of MiB.
 */
export function crc32(bytes: Uint8Array): number {
  const t = (CRC_TABLES ??= crcTables());
  let c = 0xffffffff;
  let i = 0;
  const n8 = bytes.length - (bytes.length % 8);
  for (; i < n8; i += 8) {
    const lo = (c ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24))) >>> 0;
    const hi = bytes[i + 4] | (bytes[i + 5] << 8) | (bytes[i + 6] << 16) | (bytes[i + 7] << 24);
    c = t[1792 + (lo & 0xff)] ^ t[1536 + ((lo >>> 8) & 0xff)] ^ t[1280 + ((lo >>> 16) & 0xff)] ^ t[1024 + (lo >>> 24)]
      ^ t[768 + (hi & 0xff)] ^ t[512 + ((hi >>> 8) & 0xff)] ^ t[256 + ((hi >>> 16) & 0xff)] ^ t[(hi >>> 24) & 0xff];
  }
  for (; i < bytes.length; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const align8 = (n: number): number => Math.ceil(n / 8) * 8;

/** A section written in place: big ones (the K/V) are not built separately and then copied. */
export interface SectionWriter { bytes: number; write(dst: Uint8Array): void }

/** Lays out `header` (its `sections` are filled in here) and the binary parts into one byte string. */
export function encodeSnapshot(header: Omit<SnapshotHeader, 'sections'>, parts: Record<string, Uint8Array | SectionWriter>): Uint8Array {
  const sections: SnapshotSection[] = [];
  let off = 0;
  for (const [name, p] of Object.entries(parts)) {
    const bytes = p instanceof Uint8Array ? p.length : p.bytes;
    sections.push({ name, offset: off, bytes });
    off = align8(off + bytes);
  }
  const json = new TextEncoder().encode(JSON.stringify({ ...header, sections }));
  const body = align8(16 + json.length);
  const out = new Uint8Array(body + off + 4);
  const dv = new DataView(out.buffer);
  out.set(new TextEncoder().encode(SNAPSHOT_MAGIC), 0);
  dv.setUint32(8, SNAPSHOT_VERSION, true);
  dv.setUint32(12, json.length, true);
  out.set(json, 16);
  Object.values(parts).forEach((p, i) => {
    const at = body + sections[i].offset;
    if (p instanceof Uint8Array) out.set(p, at); else p.write(out.subarray(at, at + p.bytes));
  });
  dv.setUint32(out.length - 4, crc32(out.subarray(0, out.length - 4)), true);
  return out;
}

export interface DecodedSnapshot {
  header: SnapshotHeader;
  /** A copy of the section, so typed views on it are aligned. */
  section(name: string): Uint8Array;
  /** The section in place, for byte copies. */
  view(name: string): Uint8Array;
}

const bad = (why: string): StreamlmError => new StreamlmError(`not a usable session snapshot: ${why}`, { field: 'snapshot' });

/** Checks magic, version, checksum and layout; the caller checks the fingerprint and the contents. */
export function decodeSnapshot(bytes: Uint8Array): DecodedSnapshot {
  if (!(bytes instanceof Uint8Array)) throw bad('expected a Uint8Array');
  if (bytes.length < 20 || new TextDecoder().decode(bytes.subarray(0, 8)) !== SNAPSHOT_MAGIC) throw bad('it does not start with the streamlm snapshot magic number');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint32(8, true);
  if (version !== SNAPSHOT_VERSION) throw bad(`format version ${version}; this streamlm reads version ${SNAPSHOT_VERSION}`);
  const want = dv.getUint32(bytes.length - 4, true);
  if (crc32(bytes.subarray(0, bytes.length - 4)) !== want) throw bad('checksum mismatch (truncated or corrupted)');
  const hlen = dv.getUint32(12, true);
  if (16 + hlen > bytes.length - 4) throw bad('header runs past the end');
  let header: SnapshotHeader;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + hlen))) as SnapshotHeader;
  } catch {
    throw bad('header is not JSON');
  }
  if (header?.format !== 'streamlm-session' || !Array.isArray(header.sections)) throw bad('header is not a session header');
  const body = align8(16 + hlen);
  const view = (name: string): Uint8Array => {
    const s = header.sections.find((x) => x.name === name);
    if (!s) throw bad(`section '${name}' is missing`);
    const start = body + s.offset;
    if (!Number.isInteger(s.offset) || !Number.isInteger(s.bytes) || s.offset < 0 || s.bytes < 0 || start + s.bytes > bytes.length - 4) throw bad(`section '${name}' runs past the end`);
    return bytes.subarray(start, start + s.bytes);
  };
  const section = (name: string): Uint8Array => view(name).slice();
  return { header, section, view };
}
