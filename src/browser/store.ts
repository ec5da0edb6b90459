// Session snapshots kept in the origin-private file system, so that a conversation's bounded cache
// survives a reload. A snapshot carries the model fingerprint; Model.restoreSession refuses another
// model's.
const DIR = 'streamlm-sessions';

async function dir(): Promise<FileSystemDirectoryHandle> {
  const root = await navigator.storage.getDirectory();
  return root.getDirectoryHandle(DIR, { create: true });
}

function fileName(key: string): string {
  return encodeURIComponent(key) + '.snap';
}

/** Writes `bytes` under `key`, replacing any earlier copy only once the new one is complete. */
export async function saveSnapshot(key: string, bytes: Uint8Array): Promise<void> {
  const d = await dir();
  const h = await d.getFileHandle(fileName(key), { create: true });
  const w = await h.createWritable();
  await w.write(bytes as Uint8Array<ArrayBuffer>);
  await w.close();
}

/** The bytes saved under `key`, or null. */
export async function loadSnapshot(key: string): Promise<Uint8Array | null> {
  try {
    const h = await (await dir()).getFileHandle(fileName(key));
    return new Uint8Array(await (await h.getFile()).arrayBuffer());
  } catch {
    return null;
  }
}

export async function deleteSnapshot(key: string): Promise<void> {
  try {
    await (await dir()).removeEntry(fileName(key));
  } catch {
    // Nothing saved: nothing to delete.
  }
}
