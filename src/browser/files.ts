// Model files in a page: downloaded from an HF-layout folder URL, or picked by the user.
import { StreamlmError } from '../errors.js';
import { blobFiles } from '../platform/web.js';
import type { FileSet } from '../platform/types.js';
import { download, type DownloadOptions } from './download.js';

const REQUIRED = ['config.json'];
const OPTIONAL = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json'];

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

/** Files the user picked (a folder picker's FileList, or dropped files): by base name. */
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
  if (!files.has('config.json')) throw new StreamlmError('the picked files have no config.json; pick the model folder itself', { file: folder || 'picked files' });
  return blobFiles(folder || 'picked files', files);
}
