import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { StreamlmError } from '../../errors.js';
import type { SessionStore } from './types.js';

/**
 * Snapshots as files `<sha256(namespace|id)>.snap` in one directory. A write goes to a temp file
 * that is fsynced and renamed over the old one, so a crash mid-write leaves the old file or the
 * new one, never a torn one (rename is atomic within a directory on POSIX). The namespace (the
 * model fingerprint and cache settings) keeps another model's files apart.
 */
export class DirStore implements SessionStore {
  readonly name: string;

  constructor(readonly dir: string, private readonly namespace: string) {
    this.name = `dir:${dir}`;
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new StreamlmError(`cannot create the session directory '${dir}': ${(e as Error).message}`, { field: '--session-store' });
    }
  }

  private file(id: string): string {
    return join(this.dir, createHash('sha256').update(`${this.namespace}|${id}`).digest('hex') + '.snap');
  }

  async get(id: string): Promise<Uint8Array | null> {
    try {
      return new Uint8Array(await readFile(this.file(id)));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async put(id: string, bytes: Uint8Array): Promise<void> {
    const final = this.file(id);
    const tmp = `${final}.${randomBytes(6).toString('hex')}.tmp`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, final);
    } catch (e) {
      await unlink(tmp).catch(() => {});
      throw e;
    }
  }

  async delete(id: string): Promise<void> {
    await unlink(this.file(id)).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e; });
  }

  lock(): Promise<() => Promise<void>> { return Promise.resolve(() => Promise.resolve()); }

  close(): Promise<void> { return Promise.resolve(); }
}
