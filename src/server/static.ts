// The static file server behind `streamlm web`: the browser build and one model folder, with the
// COOP/COEP headers that make the page cross-origin isolated (shared wasm memory for the workers).
// Node only serves files here; the engine runs in the page.
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { basename, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StreamlmError } from '../errors.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.wasm': 'application/wasm',
  '.json': 'application/json', '.safetensors': 'application/octet-stream', '.gguf': 'application/octet-stream',
};

export interface WebServerOptions {
  /** HF-layout model folder served at /model/, or a .gguf file served as /model/NAME.gguf. */
  modelDir: string;
  port?: number;
  host?: string;
  /** Send COOP/COEP (default true). */
  isolation?: boolean;
  /** The browser build; default dist/browser of this package. */
  distDir?: string;
}

export interface RunningWebServer { url: string; server: Server; close(): Promise<void> }

/** Starts the static server; resolves once it listens. */
export async function startWebServer(opts: WebServerOptions): Promise<RunningWebServer> {
  const dist = opts.distDir ?? fileURLToPath(new URL('../../dist/browser/', import.meta.url));
  if (!existsSync(join(dist, 'engine.js'))) throw new StreamlmError('the browser build is missing; run `npm run build:browser`', { file: dist });
  const modelDir = opts.modelDir;
  const gguf = /\.gguf$/i.test(modelDir);
  if (gguf ? !existsSync(modelDir) || !statSync(modelDir).isFile() : !existsSync(join(modelDir, 'config.json'))) {
    throw new StreamlmError(gguf ? 'no such .gguf file' : 'not an HF model folder with config.json, nor a .gguf file', { file: modelDir, field: '--model' });
  }
  // Only the files at the top of the two folders are served, looked up by exact name: no path walks.
  const files = new Map<string, string>();
  for (const f of readdirSync(dist)) files.set('/' + f, join(dist, f));
  if (gguf) files.set('/model/' + basename(modelDir), modelDir);
  else for (const f of readdirSync(modelDir)) if (statSync(join(modelDir, f)).isFile()) files.set('/model/' + f, join(modelDir, f));
  // The page loads the URL in its model box: the folder, or the one .gguf file.
  const modelUrl = gguf ? 'model/' + encodeURIComponent(basename(modelDir)) : 'model/';
  const index = readFileSync(join(dist, 'index.html'), 'utf8').replace('value="model/"', `value="${modelUrl}"`);
  files.set('/', join(dist, 'index.html'));
  const isolation = opts.isolation ?? true;

  const server = createServer((req, res) => {
    let file: string | undefined;
    try {
      file = files.get(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    } catch {
      file = undefined;   // a malformed %-escape is a 404, never a crash
    }
    if (isolation) {
      res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
      res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
    }
    res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405, { Allow: 'GET, HEAD' }).end(); return; }
    if (!file) { res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n'); return; }
    if (file === files.get('/')) {
      res.writeHead(200, { 'Content-Type': TYPES['.html'], 'Content-Length': Buffer.byteLength(index), 'Cache-Control': 'no-cache' });
      res.end(req.method === 'HEAD' ? undefined : index);
      return;
    }
    const st = statSync(file);
    res.writeHead(200, {
      'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Content-Length': st.size,
      ETag: `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`, 'Cache-Control': 'no-cache',
    });
    if (req.method === 'HEAD') { res.end(); return; }
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new StreamlmError(e.code === 'EADDRINUSE' ? `port ${opts.port} is in use` : e.message, { field: '--port' })));
    server.listen(opts.port ?? 8080, opts.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  return {
    url: `http://${opts.host ?? '127.0.0.1'}:${port}`, server,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

