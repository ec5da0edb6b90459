import { StreamlmError } from '../errors.js';
import { platform } from '../platform/current.js';
import type { ByteSource } from '../platform/types.js';

/**
 * Reader for the safetensors format: an 8-byte little-endian header length N, N bytes of JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`, then the data.
 * Offsets are relative to the first byte after the header.
 */

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'F64' | 'I8' | 'U8';

export const DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = {
  F32: 4, F16: 2, BF16: 2, I32: 4, I64: 8, F64: 8, I8: 1, U8: 1,
};

/** GGML block-quantized types a GGUF file may hold (src/runtime/gguf.ts); blocks run along a row. */
export type BlockDtype = 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q5_1' | 'Q8_0' | 'Q2_K' | 'Q3_K' | 'Q4_K' | 'Q5_K' | 'Q6_K' | 'Q8_K';

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDtype | BlockDtype;
  /** Logical shape, slowest dimension first (HF order), also for block types. */
  shape: number[];
  file: string;
  /** Absolute byte offset of the first element in `file`. */
  offset: number;
  byteLength: number;
  /**
   * Rows stored out of order (GGUF's llama q/k and fused QKV layouts): logical row r is stored
   * row rowMap[r]. readTensorBytes returns logical order.
   */
  rowMap?: Int32Array;
  /** Where the bytes are read from; without it, the path `file` through the platform (Node). */
  src?: ByteSource;
}

export interface SafetensorsHeader {
  tensors: TensorInfo[];
  metadata: Record<string, string>;
}

/** The format's own reference reader refuses headers above 100 MB; so do we, before allocating. */
const MAX_HEADER_BYTES = 100_000_000;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isDtype(v: unknown): v is SafetensorsDtype {
  return typeof v === 'string' && Object.hasOwn(DTYPE_BYTES, v);
}

function readExactly(src: ByteSource, dest: Uint8Array, position: number, file: string, what: string): void {
  const done = src.read(dest, position);
  if (done < dest.byteLength) {
    throw new StreamlmError(
      `file is truncated: ${what} needs ${dest.byteLength} bytes at offset ${position}, only ${done} could be read`,
      { file },
    );
  }
}

/**
 * Reads and validates the header of a .safetensors file without touching the tensor data: a path
 * (Node), or any ByteSource with `path` its name for messages. The tensors keep `src` for reading.
 */
export function readSafetensorsHeader(path: string, source?: ByteSource): SafetensorsHeader {
  const src = source ?? platform.file(path);
  const size = src.size;
  if (size < 8) throw new StreamlmError(`file is ${size} bytes, too short for a safetensors header`, { file: path });
  const lenBytes = new Uint8Array(8);
  readExactly(src, lenBytes, 0, path, 'header length');
  const len64 = new DataView(lenBytes.buffer).getBigUint64(0, true);
  if (len64 > BigInt(size - 8)) {
    throw new StreamlmError(`header length ${len64} is larger than the file (${size} bytes); not a safetensors file?`, { file: path });
  }
  const headerLen = Number(len64);
  if (headerLen > MAX_HEADER_BYTES) {
    throw new StreamlmError(`header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`, { file: path });
  }
  const headerBytes = new Uint8Array(headerLen);
  readExactly(src, headerBytes, 8, path, 'header');
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (e) {
    throw new StreamlmError(`header is not valid JSON: ${(e as Error).message}`, { file: path });
  }
  return parseHeader(json, path, 8 + headerLen, size, src);
}

function parseHeader(json: unknown, file: string, dataStart: number, fileSize: number, src: ByteSource): SafetensorsHeader {
  if (!isRecord(json)) throw new StreamlmError('header JSON is not an object', { file });
  const dataSize = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  const spans: { name: string; begin: number; end: number }[] = [];

  for (const [name, entry] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isRecord(entry)) throw new StreamlmError('__metadata__ is not an object', { file, field: '__metadata__' });
      // The spec says string values; other writers put numbers here, which carry no meaning for us.
      for (const [k, v] of Object.entries(entry)) metadata[k] = typeof v === 'string' ? v : JSON.stringify(v);
      continue;
    }
    const where = { file, field: `tensor ${name}` };
    if (!isRecord(entry)) throw new StreamlmError('entry is not an object', where);
    const { dtype, shape, data_offsets: offs } = entry;
    if (!isDtype(dtype)) {
      throw new StreamlmError(`unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`, where);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new StreamlmError(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`, where);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw new StreamlmError(`data_offsets ${JSON.stringify(offs)} is not a pair of non-negative integers`, where);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end || end > dataSize) {
      throw new StreamlmError(`data_offsets [${begin}, ${end}] lie outside the ${dataSize} data bytes of the file`, where);
    }
    const dims = shape as number[];
    const expected = dims.reduce((a, d) => a * d, 1) * DTYPE_BYTES[dtype];
    if (end - begin !== expected) {
      throw new StreamlmError(`data_offsets span ${end - begin} bytes, but ${dtype}[${dims.join(', ')}] needs ${expected}`, where);
    }
    tensors.push({ name, dtype, shape: [...dims], file, offset: dataStart + begin, byteLength: end - begin, src });
    if (end > begin) spans.push({ name, begin, end });
  }

  spans.sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i].begin < spans[i - 1].end) {
      throw new StreamlmError(`data overlaps tensor ${spans[i - 1].name}`, { file, field: `tensor ${spans[i].name}` });
    }
  }
  return { tensors, metadata };
}

/**
 * Reads a tensor's raw bytes straight into `dest` (typically a view of wasm memory, possibly on a
 * SharedArrayBuffer), without an intermediate copy.
 */
export function readTensorBytes(info: TensorInfo, dest: Uint8Array): void {
  if (dest.byteLength !== info.byteLength) {
    throw new StreamlmError(`destination holds ${dest.byteLength} bytes, tensor has ${info.byteLength}`, {
      file: info.file,
      field: `tensor ${info.name}`,
    });
  }
  const src = sourceOf(info);
  const map = info.rowMap;
  if (!map) {
    readExactly(src, dest, info.offset, info.file, `tensor ${info.name}`);
    return;
  }
  // Stored rows are whole blocks for block types too, so reordering bytes row by row is exact.
  const stored = new Uint8Array(info.byteLength);
  readExactly(src, stored, info.offset, info.file, `tensor ${info.name}`);
  const rb = info.byteLength / map.length;
  for (let r = 0; r < map.length; r++) dest.set(stored.subarray(map[r] * rb, (map[r] + 1) * rb), r * rb);
}

/** The bytes behind a tensor: its `src`, or its file through the platform. */
export function sourceOf(info: TensorInfo): ByteSource {
  return info.src ?? platform.file(info.file);
}
