// Every file the CLI reads or writes goes through here, so a filesystem problem is one line that
// names the path and the flag, found before any model is loaded or any token is computed.
import { accessSync, constants, existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { StreamlmError } from '../errors.js';

/** What a filesystem error code means, in words (Node's messages carry the syscall and a stack). */
const ERRNO: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EISDIR: 'is a directory, not a file',
  ENOTDIR: 'a part of the path is not a directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EEXIST: 'already exists',
  EMFILE: 'too many open files',
  ENAMETOOLONG: 'the name is too long',
};

/** A Node filesystem error as a one-line StreamlmError naming the path, or null for other errors. */
export function fsError(e: unknown, field?: string): StreamlmError | null {
  const err = e as NodeJS.ErrnoException;
  if (!(e instanceof Error) || typeof err.code !== 'string' || !(err.code in ERRNO)) return null;
  return new StreamlmError(`${ERRNO[err.code]} (${err.code})`, { file: err.path, field });
}

/**
 * Reads a text file given with `field`, refusing what is not text: a directory, a missing file,
 * NUL bytes (binary formats such as .wasm or .safetensors) or bytes that are not UTF-8.
 */
export function readTextFile(file: string, field: string): string {
  if (!existsSync(file)) throw new StreamlmError('file not found', { file, field });
  if (statSync(file).isDirectory()) throw new StreamlmError('is a directory; give a text file', { file, field });
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw fsError(e, field) ?? e;
  }
  const nul = bytes.indexOf(0);
  if (nul >= 0) throw new StreamlmError(`is not a text file (a NUL byte at offset ${nul}); give UTF-8 text`, { file, field });
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new StreamlmError('is not valid UTF-8 text', { file, field });
  }
}

/**
 * Checks that `path` can be written by `field` before any work starts: its parent is an existing,
 * writable directory and the path itself is not a directory. Returns the resolved path.
 */
export function checkOutputFile(path: string, field: string): string {
  const out = resolve(path);
  if (existsSync(out) && statSync(out).isDirectory()) throw new StreamlmError('is a directory; give a file name', { file: path, field });
  checkWritableDir(dirname(out), field);
  return out;
}

/** `dir` exists, is a directory and can be written (for a new file or directory inside it). */
export function checkWritableDir(dir: string, field: string): void {
  if (!existsSync(dir)) throw new StreamlmError('the directory does not exist', { file: dir, field });
  if (!statSync(dir).isDirectory()) throw new StreamlmError('is not a directory', { file: dir, field });
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw new StreamlmError('the directory is not writable', { file: dir, field });
  }
}

/** Writes through a temporary file in the same directory and renames it: never a half-written file. */
export function writeFileAtomic(path: string, data: string | Uint8Array, field?: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw fsError(e, field) ?? e;
  }
}
