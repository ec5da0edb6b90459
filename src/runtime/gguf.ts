import { platform } from '../platform/current.js';
import type { ByteSource } from '../platform/types.js';
import { StreamlmError } from '../errors.js';

/**
 * Reader for GGUF (ggml's docs/gguf.md), versions 2 and 3, little-endian:
 *
 *   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv × (string key, u32 value_type, value)             string = u64 byte length + UTF-8
 *   n_tensors × (string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset)
 *   padding to `general.alignment` (default 32), then the tensor data
 *
 * `ne[0]` is the fastest-varying dimension; `offset` is relative to the data start and aligned.
 * Only the header is read. Every count and length is checked against the bytes left in the file
 * before anything is allocated, so a lying header costs an error, never memory or time.
 */

/** One ggml tensor type: `blockSize` values are stored in `typeSize` bytes. */
export interface GgmlTypeInfo {
  id: number;
  name: string;
  blockSize: number;
  typeSize: number;
}

const QK_K = 256;

/** ggml's type enum (ggml.h; append-only). Ids 4, 5, 31-33 and 36-38 were removed from files. */
const TYPE_LIST: [number, string, number, number][] = [
  [0, 'F32', 1, 4], [1, 'F16', 1, 2], [2, 'Q4_0', 32, 18], [3, 'Q4_1', 32, 20], [6, 'Q5_0', 32, 22],
  [7, 'Q5_1', 32, 24], [8, 'Q8_0', 32, 34], [9, 'Q8_1', 32, 36],
  [10, 'Q2_K', QK_K, 2 + 2 + QK_K / 16 + QK_K / 4], [11, 'Q3_K', QK_K, 2 + QK_K / 4 + QK_K / 8 + 12],
  [12, 'Q4_K', QK_K, 2 + 2 + QK_K / 2 + 12], [13, 'Q5_K', QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12],
  [14, 'Q6_K', QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16], [15, 'Q8_K', QK_K, 4 + QK_K + QK_K / 8],
  [16, 'IQ2_XXS', QK_K, 2 + QK_K / 4], [17, 'IQ2_XS', QK_K, 2 + QK_K / 4 + QK_K / 32],
  [18, 'IQ3_XXS', QK_K, 2 + QK_K / 4 + QK_K / 8], [19, 'IQ1_S', QK_K, 2 + QK_K / 8 + QK_K / 16],
  [20, 'IQ4_NL', 32, 18], [21, 'IQ3_S', QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4],
  [22, 'IQ2_S', QK_K, 2 + QK_K / 4 + QK_K / 16], [23, 'IQ4_XS', QK_K, 2 + 2 + QK_K / 2 + QK_K / 64],
  [24, 'I8', 1, 1], [25, 'I16', 1, 2], [26, 'I32', 1, 4], [27, 'I64', 1, 8], [28, 'F64', 1, 8],
  [29, 'IQ1_M', QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32], [30, 'BF16', 1, 2],
  [34, 'TQ1_0', QK_K, 2 + 4 * 13], [35, 'TQ2_0', QK_K, 2 + 64], [39, 'MXFP4', 32, 17],
];

export const GGML_TYPES: ReadonlyMap<number, GgmlTypeInfo> = new Map(
  TYPE_LIST.map(([id, name, blockSize, typeSize]) => [id, { id, name, blockSize, typeSize }]),
);

/** GGUF metadata value types. */
export const GgufValueType = {
  UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7,
  STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12,
} as const;

/** Numeric arrays stay typed arrays: a vocabulary's scores are 150k floats, not 150k objects. */
export type GgufNumArray =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array
  | BigUint64Array | BigInt64Array | Float64Array;
/** 64-bit integers become numbers when they are safe integers, else bigints. */
export type GgufValue = number | bigint | boolean | string | GgufNumArray | boolean[] | string[] | GgufValue[][];

export interface GgufTensorInfo {
  name: string;
  /** ne order: dims[0] is the fastest dimension (a row's length). */
  dims: number[];
  type: GgmlTypeInfo;
  /** Absolute byte offset in the file. */
  offset: number;
  byteLength: number;
}

export interface GgufHeader {
  file: string;
  version: number;
  alignment: number;
  metadata: Map<string, GgufValue>;
  /** The value type of each key (for arrays: ARRAY); callers check types through this. */
  valueTypes: Map<string, number>;
  tensors: GgufTensorInfo[];
  /** Absolute offset of the tensor data section. */
  dataStart: number;
  fileSize: number;
}

const MAGIC = 0x46554747; // "GGUF" as a little-endian u32
const MAX_DIMS = 4; // GGML_MAX_DIMS
/** Arrays of arrays nest; real files use none, so a deep nest is a damaged file, not a stack overflow. */
const MAX_NESTING = 8;
const CHUNK = 1 << 20;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Buffered little-endian reads over a file descriptor, never past `size`. */
class Cursor {
  pos = 0;
  private buf = new Uint8Array(CHUNK);
  private view = new DataView(this.buf.buffer);
  private bufStart = 0;
  private bufLen = 0;

  constructor(private readonly src: ByteSource, readonly size: number, readonly file: string) {}

  get left(): number { return this.size - this.pos; }

  truncated(what: string, n: number | bigint): StreamlmError {
    return new StreamlmError(`file is truncated: ${what} needs ${n} bytes at offset ${this.pos}, the file has ${this.size}`, { file: this.file });
  }

  /** Makes [pos, pos + n) readable from the buffer; returns its index there. */
  private need(n: number, what: string): number {
    if (n > this.left) throw this.truncated(what, n);
    if (this.pos < this.bufStart || this.pos + n > this.bufStart + this.bufLen) {
      if (n > this.buf.length) {
        this.buf = new Uint8Array(n);
        this.view = new DataView(this.buf.buffer);
      }
      const want = Math.min(this.buf.length, this.left);
      let got = 0;
      while (got < want) {
        const r = this.src.read(this.buf.subarray(got, want), this.pos + got);
        if (r === 0) break;
        got += r;
      }
      this.bufStart = this.pos;
      this.bufLen = got;
      if (got < n) throw this.truncated(what, n);
    }
    const at = this.pos - this.bufStart;
    this.pos += n;
    return at;
  }

  u8(what: string): number { return this.buf[this.need(1, what)]; }
  i8(what: string): number { return (this.u8(what) << 24) >> 24; }
  u16(what: string): number { return this.view.getUint16(this.need(2, what), true); }
  i16(what: string): number { return this.view.getInt16(this.need(2, what), true); }
  u32(what: string): number { return this.view.getUint32(this.need(4, what), true); }
  i32(what: string): number { return this.view.getInt32(this.need(4, what), true); }
  f32(what: string): number { return this.view.getFloat32(this.need(4, what), true); }
  f64(what: string): number { return this.view.getFloat64(this.need(8, what), true); }
  u64(what: string): bigint { return this.view.getBigUint64(this.need(8, what), true); }
  i64(what: string): bigint { return this.view.getBigInt64(this.need(8, what), true); }

  /** A copy of the next n bytes (n already checked against the file size by the caller). */
  bytes(n: number, what: string): Uint8Array {
    const out = new Uint8Array(n);
    for (let done = 0; done < n;) {
      const step = Math.min(CHUNK, n - done);
      const at = this.need(step, what);
      out.set(this.buf.subarray(at, at + step), done);
      done += step;
    }
    return out;
  }

  /** A u64 count of items of at least `minBytes` each, refused if the rest of the file cannot hold them. */
  count(what: string, minBytes: number): number {
    const n = this.u64(what);
    if (n * BigInt(minBytes) > BigInt(this.left)) {
      throw new StreamlmError(`${what} is ${n}, but only ${this.left} bytes remain in the file (truncated, or the count is wrong)`, { file: this.file });
    }
    return Number(n);
  }

  str(what: string): string {
    const n = this.count(`length of ${what}`, 1);
    try {
      return utf8.decode(this.bytes(n, what));
    } catch {
      throw new StreamlmError(`${what} is not valid UTF-8 (at offset ${this.pos - n})`, { file: this.file });
    }
  }
}

const toNum = (v: bigint): number | bigint => (v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v);

/** Element size of each fixed-size value type; strings and arrays are at least 8 bytes (their u64 length). */
const FIXED: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

function readScalar(c: Cursor, type: number, what: string): number | bigint | boolean | string {
  switch (type) {
    case 0: return c.u8(what);
    case 1: return c.i8(what);
    case 2: return c.u16(what);
    case 3: return c.i16(what);
    case 4: return c.u32(what);
    case 5: return c.i32(what);
    case 6: return c.f32(what);
    case 7: return c.u8(what) !== 0;
    case 8: return c.str(what);
    case 10: return toNum(c.u64(what));
    case 11: return toNum(c.i64(what));
    case 12: return c.f64(what);
    default: throw new StreamlmError(`unknown value type ${type}`, { file: c.file, field: what });
  }
}

function readArray(c: Cursor, what: string, depth: number): GgufValue {
  if (depth > MAX_NESTING) throw new StreamlmError(`arrays nested deeper than ${MAX_NESTING}`, { file: c.file, field: what });
  const itemType = c.u32(`${what}: array item type`);
  if (itemType !== GgufValueType.STRING && itemType !== GgufValueType.ARRAY && !(itemType in FIXED)) {
    throw new StreamlmError(`unknown array item type ${itemType}`, { file: c.file, field: what });
  }
  const n = c.count(`${what}: array length`, FIXED[itemType] ?? 8);
  if (itemType === GgufValueType.STRING) {
    const out = new Array<string>(n);
    for (let i = 0; i < n; i++) out[i] = c.str(`${what}[${i}]`);
    return out;
  }
  if (itemType === GgufValueType.ARRAY) {
    const out = new Array<GgufValue>(n);
    for (let i = 0; i < n; i++) out[i] = readArray(c, `${what}[${i}]`, depth + 1);
    return out as GgufValue[][];
  }
  const raw = c.bytes(n * FIXED[itemType], what);
  const b = raw.buffer;
  switch (itemType) {
    case 0: return raw;
    case 1: return new Int8Array(b);
    case 2: return new Uint16Array(b);
    case 3: return new Int16Array(b);
    case 4: return new Uint32Array(b);
    case 5: return new Int32Array(b);
    case 6: return new Float32Array(b);
    case 7: return Array.from(raw, (x) => x !== 0);
    case 10: return new BigUint64Array(b);
    case 11: return new BigInt64Array(b);
    default: return new Float64Array(b);
  }
}

/** Little-endian typed arrays above assume a little-endian host, as every wasm host is. */
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Reads and validates a GGUF file's header; tensor data is left where it is. `src` defaults to the
 * file at `path` through the platform (Node); a page passes a Blob-backed source.
 */
export function readGgufHeader(path: string, src?: ByteSource): GgufHeader {
  if (!HOST_LE) throw new StreamlmError('GGUF reading needs a little-endian host', { file: path });
  const bytes = src ?? platform.file(path);
  return parse(new Cursor(bytes, bytes.size, path));
}

function parse(c: Cursor): GgufHeader {
  const file = c.file;
  if (c.size < 4) throw new StreamlmError(`file is ${c.size} bytes, too short for a GGUF header`, { file });
  const magic = c.u32('magic');
  if (magic !== MAGIC) throw new StreamlmError(`bad magic 0x${magic.toString(16).padStart(8, '0')}: not a GGUF file`, { file });
  const version = c.u32('version');
  if (version !== 2 && version !== 3) {
    // A big-endian file has its version byte-swapped: 3 reads as 0x03000000.
    const swapped = ((version & 0xff) << 24 | (version & 0xff00) << 8 | (version >>> 8) & 0xff00 | version >>> 24) >>> 0;
    if (swapped === 2 || swapped === 3) throw new StreamlmError('big-endian GGUF files are not supported', { file });
    throw new StreamlmError(`GGUF version ${version} is not supported (2 and 3 are)`, { file });
  }
  // Smallest tensor info: empty name (8) + n_dims (4) + one dim (8) + type (4) + offset (8).
  const nTensors = c.count('tensor count', 32);
  // Smallest key/value: empty key (8) + type (4) + a u8 (1).
  const nKv = c.count('metadata key count', 13);

  const metadata = new Map<string, GgufValue>();
  const valueTypes = new Map<string, number>();
  for (let i = 0; i < nKv; i++) {
    const key = c.str(`metadata key #${i}`);
    if (metadata.has(key)) throw new StreamlmError('duplicate metadata key', { file, field: key });
    const type = c.u32(`${key}: value type`);
    const value = type === GgufValueType.ARRAY ? readArray(c, key, 1) : readScalar(c, type, key);
    metadata.set(key, value);
    valueTypes.set(key, type);
  }

  let alignment = 32;
  if (metadata.has('general.alignment')) {
    const a = metadata.get('general.alignment');
    if (valueTypes.get('general.alignment') !== GgufValueType.UINT32 || typeof a !== 'number' || a === 0 || (a & (a - 1)) !== 0) {
      throw new StreamlmError(`must be a power of two stored as uint32, got ${String(a)}`, { file, field: 'general.alignment' });
    }
    alignment = a;
  }

  const infos: { name: string; dims: number[]; type: GgmlTypeInfo; rel: number; byteLength: number }[] = [];
  const names = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = c.str(`tensor name #${i}`);
    const field = `tensor ${name}`;
    if (names.has(name)) throw new StreamlmError('duplicate tensor name', { file, field });
    names.add(name);
    const nDims = c.u32(`${field}: n_dims`);
    if (nDims < 1 || nDims > MAX_DIMS) throw new StreamlmError(`has ${nDims} dimensions (1 to ${MAX_DIMS} are allowed)`, { file, field });
    const dims: number[] = [];
    let elements = 1n;
    for (let d = 0; d < nDims; d++) {
      const ne = c.u64(`${field}: ne[${d}]`);
      if (ne === 0n || ne > BigInt(Number.MAX_SAFE_INTEGER)) throw new StreamlmError(`dimension ne[${d}] = ${ne} is not a positive size`, { file, field });
      elements *= ne;
      dims.push(Number(ne));
    }
    const typeId = c.u32(`${field}: type`);
    const type = GGML_TYPES.get(typeId);
    if (!type) throw new StreamlmError(`unknown ggml type ${typeId}`, { file, field });
    if (dims[0] % type.blockSize !== 0) {
      throw new StreamlmError(`row length ${dims[0]} is not a multiple of ${type.name}'s block size ${type.blockSize}`, { file, field });
    }
    const bytes = (elements / BigInt(type.blockSize)) * BigInt(type.typeSize);
    if (bytes > BigInt(c.size)) throw new StreamlmError(`${type.name}[${dims.join(', ')}] needs ${bytes} bytes, more than the whole file (${c.size})`, { file, field });
    const off = c.u64(`${field}: offset`);
    if (off > BigInt(c.size)) throw new StreamlmError(`data offset ${off} lies past the end of the ${c.size}-byte file`, { file, field });
    const rel = Number(off);
    if (rel % alignment !== 0) throw new StreamlmError(`data offset ${rel} is not a multiple of general.alignment ${alignment}`, { file, field });
    infos.push({ name, dims, type, rel, byteLength: Number(bytes) });
  }

  const dataStart = Math.ceil(c.pos / alignment) * alignment;
  const dataSize = c.size - dataStart;
  const tensors: GgufTensorInfo[] = [];
  for (const t of infos) {
    if (t.rel + t.byteLength > dataSize) {
      throw new StreamlmError(`data [${t.rel}, ${t.rel + t.byteLength}) lies past the end of the ${Math.max(0, dataSize)} data bytes (file truncated?)`, { file, field: `tensor ${t.name}` });
    }
    tensors.push({ name: t.name, dims: t.dims, type: t.type, offset: dataStart + t.rel, byteLength: t.byteLength });
  }
  const spans = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i].offset < spans[i - 1].offset + spans[i - 1].byteLength) {
      throw new StreamlmError(`data overlaps tensor ${spans[i - 1].name}`, { file, field: `tensor ${spans[i].name}` });
    }
  }
  return { file, version, alignment, metadata, valueTypes, tensors, dataStart, fileSize: c.size };
}
