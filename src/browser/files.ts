// Model files in a page: downloaded from an HF-layout folder URL, or picked by the user.
import { StreamlmError } from '../errors.js';
import { blobFiles } from '../platform/web.js';
import type { FileSet } from '../platform/types.js';
import { download, type DownloadOptions } from './download.js';

const REQUIRED = ['config.json'];
// The MCTP draft heads (src/models/mctp.ts) load when mctp.safetensors is there; their config is
// config.json's `mctp` entry or mctp_config.json.
const OPTIONAL = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'mctp.safetensors', 'mctp_config.json'];

/** Downloads (or takes from the cache) the files of the HF-layout folder at `url`. */
export async function filesFromUrl(url: string, opts: DownloadOptions = {}): Promise<FileSet> {
  const base = url.endsWith('/') ? url : url + '/';
  const files = new Map<string, Blob>();
  const get = async (name: string, optional: boolean): Promise<void> => {
    const b = await download(base + name, optional, opts);
    if (b) files.set(name, b);
  };
  for (const name of REQUIRED) await get(name, false);
  await Promise.all(OPTIONAL.map((n) => get(n, true)));
  await get('model.safetensors.index.json', true);
  const index = files.get('model.safetensors.index.json');
  if (index) {
    let map: unknown;
    try {
      map = (JSON.parse(await index.text()) as { weight_map?: unknown }).weight_map;
    } catch (e) {
      throw new StreamlmError(`not valid JSON: ${(e as Error).message}`, { file: base + 'model.safetensors.index.json' });
    }
    if (typeof map !== 'object' || map === null) throw new StreamlmError('weight_map is missing or not an object', { file: base + 'model.safetensors.index.json', field: 'weight_map' });
    const shards = [...new Set(Object.values(map as Record<string, unknown>))];
    for (const s of shards) {
      if (typeof s !== 'string' || s.includes('/')) throw new StreamlmError(`shard ${JSON.stringify(s)} is not a file name`, { file: base + 'model.safetensors.index.json', field: 'weight_map' });
      await get(s, false);
    }
  } else {
    await get('model.safetensors', false);
  }
  return blobFiles(base, files);
}

/**
 * Downloads (or takes from the cache) one .gguf file: a FileSet holding only it, which loadModel
 * reads as GGUF. The download streams to disk in the Cache API; the Blob is then read in slices.
 */
export async function ggufFromUrl(url: string, opts: DownloadOptions = {}): Promise<FileSet> {
  const name = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '');
  const blob = (await download(url, false, opts))!;
  return blobFiles(url.slice(0, url.length - url.split('/').pop()!.length), new Map([[name, blob]]));
}

/** Files the user picked (a folder picker's FileList, dropped files, or one .gguf file): by base name. */
export function filesFromPicked(picked: Iterable<File> | ArrayLike<File>): FileSet {
  const files = new Map<string, Blob>();
  let folder = '';
  for (const f of Array.from(picked as ArrayLike<File>)) {
    const rel = (f as File & { webkitRelativePath?: string }).webkitRelativePath ?? '';
    if (rel.includes('/')) folder ||= rel.slice(0, rel.indexOf('/'));
    // Sub-folders of a picked folder (e.g. .git) hold nothing a model needs.
    if (rel.split('/').length > 2) continue;
    files.set(f.name, f);
  }
  const ggufs = [...files.keys()].filter((n) => /\.gguf$/i.test(n));
  if (!files.has('config.json') && ggufs.length === 1) return blobFiles(folder || 'picked files', new Map([[ggufs[0], files.get(ggufs[0])!]]));
  if (!files.has('config.json')) {
    const why = ggufs.length > 1 ? `${ggufs.length} .gguf files; pick one` : 'no config.json and no .gguf file; pick the model folder itself or one .gguf file';
    throw new StreamlmError(`the picked files have ${why}`, { file: folder || 'picked files' });
  }
  return blobFiles(folder || 'picked files', files);
}
