// `streamlm web`: serves the browser build (dist/browser) and one model folder as static files with
// the cross-origin isolation headers that let the page's workers share memory. Node only serves
// files: the model runs in the page (src/browser/page).
import { num, parseFlags, str } from './args.js';
import { defaultModelDir } from './common.js';
import { startWebServer } from '../server/static.js';

export { startWebServer, type RunningWebServer, type WebServerOptions } from '../server/static.js';

const HELP = `usage: streamlm web [--model DIR|FILE.gguf] [--port 8080] [--host 127.0.0.1] [--no-isolation]
Serves a page that runs the model in the browser (WebAssembly workers; nothing computes in Node):
chat endlessly under a sink:S+W cache with its gauge, or stream a pasted text through several
cache policies and plot perplexity as it goes. The page is cross-origin isolated (headers
Cross-Origin-Opener-Policy: same-origin, Cross-Origin-Embedder-Policy: require-corp) so that its
workers share one wasm memory; --no-isolation leaves the headers out, to see the one-thread fallback.
--model takes an HF model folder or one .gguf file. Default model: the one shipped in models/. Open http://HOST:PORT/ in a browser.`;

export async function runWeb(argv: string[]): Promise<void> {
  const { flags } = parseFlags(argv, {
    model: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' }, 'no-isolation': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  }, 'web');
  if (flags.help) { console.log(HELP); return; }
  const port = num(flags, 'port', { int: true, min: 0, max: 65535 }) ?? 8080;
  const modelDir = str(flags, 'model') ?? defaultModelDir();
  const srv = await startWebServer({ modelDir, port, host: str(flags, 'host'), isolation: !flags['no-isolation'] });
  console.error(`[streamlm] open ${srv.url}/ (model ${modelDir} runs in the page; this process only serves files)`);
  await new Promise<void>((done) => {
    const stop = (): void => { process.off('SIGINT', stop); process.off('SIGTERM', stop); done(); };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await srv.close();
}
