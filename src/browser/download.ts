// Downloads of model files, kept in the Cache API so that a reload reads them from disk instead of
// the network. A cached copy is used while the server still reports the same ETag and size (one
// HEAD request per file), or when the server cannot be reached at all.
import { StreamlmError } from '../errors.js';

/** Progress of one file: bytes so far of `total` (0 when the server sends no length). */
export interface DownloadProgress { file: string; loaded: number; total: number; cached: boolean }

export interface DownloadOptions {
  onProgress?: (p: DownloadProgress) => void;
  /** Cache API bucket; null turns the cache off. Default 'streamlm-models'. */
  cacheName?: string | null;
  signal?: AbortSignal;
}

/** Response header on cached copies: the ETag and size the server gave when the copy was made. */
const TAG = 'x-streamlm-source';

function tagOf(res: Response): string {
  return `${res.headers.get('etag') ?? ''}|${res.headers.get('content-length') ?? ''}`;
}

async function openCache(name: string | null): Promise<Cache | null> {
  if (name === null || typeof caches === 'undefined') return null;
  try {
    return await caches.open(name);
  } catch {
    return null;
  }
}

/**
 * The file at `url` as a Blob (disk-backed for large files), or null when the server answers 404
 * and `optional` is set. The body streams into the cache in chunks: no file is ever one buffer.
 */
export async function download(url: string, optional: boolean, opts: DownloadOptions = {}): Promise<Blob | null> {
  const cache = await openCache(opts.cacheName === undefined ? 'streamlm-models' : opts.cacheName);
  const name = url.slice(url.lastIndexOf('/') + 1);
  const hit = await cache?.match(url);
  if (hit) {
    let fresh = true;
    try {
      const head = await fetch(url, { method: 'HEAD', signal: opts.signal });
      fresh = head.ok && tagOf(head) === hit.headers.get(TAG);
    } catch {
      // Offline: the cached copy is all there is.
    }
    if (fresh) {
      const blob = await hit.blob();
      opts.onProgress?.({ file: name, loaded: blob.size, total: blob.size, cached: true });
      return blob;
    }
  }
  let res: Response;
  try {
    res = await fetch(url, { signal: opts.signal });
  } catch (e) {
    throw new StreamlmError(`cannot download: ${(e as Error).message}`, { file: url });
  }
  if (res.status === 404 && optional) return null;
  if (!res.ok || !res.body) throw new StreamlmError(`HTTP ${res.status} ${res.statusText}`.trim(), { file: url });
  const total = Number(res.headers.get('content-length') ?? 0);
  let loaded = 0;
  const counted = res.body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, ctl) {
      loaded += chunk.byteLength;
      opts.onProgress?.({ file: name, loaded, total, cached: false });
      ctl.enqueue(chunk);
    },
  }));
  const headers = { 'content-type': res.headers.get('content-type') ?? 'application/octet-stream', [TAG]: tagOf(res) };
  if (!cache) return new Response(counted, { headers }).blob();
  await cache.put(url, new Response(counted, { headers }));
  const stored = await cache.match(url);
  if (!stored) throw new StreamlmError('the download vanished from the Cache API right after it was stored', { file: url });
  const blob = await stored.blob();
  if (total && blob.size !== total) throw new StreamlmError(`download is ${blob.size} bytes, the server announced ${total}`, { file: url });
  return blob;
}
