import { existsSync, readFileSync } from 'node:fs';
import { parsePolicy } from '../cache/policy.js';
import { DEFAULT_CHAT_CACHE } from '../defaults.js';
import { StreamlmError } from '../errors.js';
import { loadModel } from '../model.js';
import { startServer } from '../server/http.js';
import { num, parseFlags, str } from './args.js';
import { MODEL_FLAGS, modelFlags } from './common.js';

const HELP = `usage: streamlm serve [--model DIR] [--port 8080] [--host 127.0.0.1] [--cache ${DEFAULT_CHAT_CACHE}]
                     [--max-sessions 8] [--max-tokens 256] [--threads N] [--dtype auto|f32|q8_0]
                     [--model-id ID] [--chat-template FILE] [--max-body-bytes 1048576] [--evict-chunk C]
An OpenAI-compatible server: GET /v1/models, POST /v1/completions and /v1/chat/completions
(streamed or not), GET /health, GET /metrics (Prometheus) and a web chat at GET /.
A conversation keeps its StreamingLLM cache between turns: pass "session": "ID" in the body or an
X-Session-Id header. --max-sessions caches are allocated at start; when all are taken, the least
recently used idle session is dropped. POLICY: sink:S+W | window:W. --max-tokens is the default
max_tokens of a chat request.`;

export async function runServe(argv: string[]): Promise<void> {
  const { flags } = parseFlags(argv, {
    ...MODEL_FLAGS, port: { type: 'string' }, host: { type: 'string' }, cache: { type: 'string' }, 'max-sessions': { type: 'string' },
    'max-tokens': { type: 'string' }, 'model-id': { type: 'string' }, 'chat-template': { type: 'string' }, 'max-body-bytes': { type: 'string' },
    'evict-chunk': { type: 'string' },
  }, 'serve');
  if (flags.help) { console.log(HELP); return; }
  const m = modelFlags(flags);
  const port = num(flags, 'port', { int: true, min: 0, max: 65535 }) ?? 8080;
  const host = str(flags, 'host') ?? '127.0.0.1';
  const cache = str(flags, 'cache') ?? DEFAULT_CHAT_CACHE;
  // The memory each session's cache takes is checked against wasm memory once the model is loaded.
  const maxSessions = num(flags, 'max-sessions', { int: true, min: 1 }) ?? 8;
  const defaultMaxTokens = num(flags, 'max-tokens', { int: true, min: 1, max: 100_000 }) ?? 256;
  const maxBodyBytes = num(flags, 'max-body-bytes', { int: true, min: 1024 });
  const evictChunk = num(flags, 'evict-chunk', { int: true, min: 1 });
  parsePolicy(cache, { evictChunk });
  const tplFile = str(flags, 'chat-template');
  if (tplFile !== undefined && !existsSync(tplFile)) throw new StreamlmError('file not found', { file: tplFile, field: '--chat-template' });
  const chatTemplate = tplFile === undefined ? undefined : readFileSync(tplFile, 'utf8');

  const model = await loadModel(m.dir, { threads: m.threads, dtype: m.dtype });
  let srv;
  try {
    srv = await startServer(model, {
      port, host, cache, maxSessions, defaultMaxTokens, maxBodyBytes, evictChunk, chatTemplate, modelId: str(flags, 'model-id'),
      log: (line) => console.error(line),
    });
  } catch (e) {
    await model.close();
    throw e;
  }
  const mem = srv.engine.memory();
  console.error(`[streamlm] serving ${srv.modelId} at ${srv.url}/ | cache ${srv.engine.policy}, ${maxSessions} sessions, ` +
    `${(mem.kvBytes / 1048576).toFixed(1)} MB of KV reserved | ${model.threads} threads | chat template: ${srv.engine.template.builtin ? 'the model\'s' : 'plain fallback'}`);
  await new Promise<void>((done) => {
    const stop = (): void => { process.off('SIGINT', stop); process.off('SIGTERM', stop); done(); };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  console.error('[streamlm] shutting down');
  await srv.close();
  await model.close();
}
