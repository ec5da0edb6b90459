import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parsePolicy } from '../cache/policy.js';
import { DEFAULT_CHAT_CACHE } from '../defaults.js';
import { StreamlmError } from '../errors.js';
import { parseApiKeys } from '../server/auth.js';
import { startServer } from '../server/http.js';
import { openStore, parseStoreSpec } from '../server/store/open.js';
import type { SessionStore } from '../server/store/types.js';
import { num, parseFlags, str } from './args.js';
import { SPECULATE_FLAGS, SPECULATE_HELP, speculateFlags } from './speculate.js';
import { MODEL_FLAGS, MODEL_HELP, modelFlags, plural, loadCliModel } from './common.js';
import { readTextFile } from './files.js';

const HELP = `usage: streamlm serve [--model DIR] [--port 8080] [--host 127.0.0.1] [--cache ${DEFAULT_CHAT_CACHE}]
                     [--max-sessions 8] [--max-tokens 256] [--threads N] [--dtype auto|f32|q8_0|q6_K|q5_K|q4_K|q4_0]
                     [--model-id ID] [--chat-template FILE] [--max-body-bytes 1048576] [--evict-chunk C]
                     [--cors-origin ORIGIN[,ORIGIN...]|*] [--speculate MODE] [--draft K]
                     [--session-store dir:PATH|redis://HOST:PORT[/DB]] [--session-ttl S] [--session-lock-ms 10000]
                     [--api-key KEY[,KEY...]] [--max-concurrent-per-key N] [--max-prompt-tokens N]
An OpenAI-compatible server: GET /v1/models, POST /v1/completions and /v1/chat/completions
(streamed or not), GET /health, GET /metrics (Prometheus) and a web chat at GET /.
A conversation keeps its StreamingLLM cache between turns: pass "session": "ID" in the body or an
X-Session-Id header. --max-sessions caches are allocated at start; when all are taken, the least
recently used idle session is dropped. POLICY: sink:S+W | window:W. --max-tokens is the default
max_tokens of a chat request. --cors-origin lets web pages of those origins call the API (CORS is
off by default: any page the user visits could otherwise read the conversations).
--session-store dir:PATH saves each session after every turn (atomically) and restores it on its next
request, after an eviction or a restart; a snapshot that cannot be restored starts the session fresh
(X-Session-Dropped: true). With redis://, replicas share sessions: a per-session lock makes a second
replica answer 409 session_busy while one runs a turn (a replica killed mid-turn holds it for
--session-lock-ms at most); --session-ttl S expires idle sessions.
--api-key (or the env STREAMLM_API_KEY) requires "Authorization: Bearer KEY" on every /v1 route
(/health stays open); each key sees only its own sessions. --max-concurrent-per-key answers 429
past N running requests of one key; --max-prompt-tokens answers 400 past N new prompt tokens.
Started through npx (npm exec), the server exits when npm exits; in scripts, run
node_modules/.bin/streamlm (or 'exec npx streamlm ...') so the recorded PID is the server's.
${SPECULATE_HELP}
${MODEL_HELP}`;

export async function runServe(argv: string[]): Promise<void> {
  const { flags } = parseFlags(argv, {
    ...MODEL_FLAGS, port: { type: 'string' }, host: { type: 'string' }, cache: { type: 'string' }, 'max-sessions': { type: 'string' },
    'max-tokens': { type: 'string' }, 'model-id': { type: 'string' }, 'chat-template': { type: 'string' }, 'max-body-bytes': { type: 'string' },
    'evict-chunk': { type: 'string' }, 'cors-origin': { type: 'string' },
    ...SPECULATE_FLAGS,
    'session-store': { type: 'string' }, 'api-key': { type: 'string' }, 'max-concurrent-per-key': { type: 'string' },
    'max-prompt-tokens': { type: 'string' }, 'session-ttl': { type: 'string' }, 'session-lock-ms': { type: 'string' },
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
  const speculate = speculateFlags(flags);
  const corsOrigin = str(flags, 'cors-origin');
  if (corsOrigin !== undefined && corsOrigin !== '*' && !corsOrigin.split(',').every((o) => /^https?:\/\/[^\s/]+$/.test(o.trim())))
    throw new StreamlmError(`expected * or origins like http://localhost:5173 (scheme://host[:port], comma-separated), got '${corsOrigin}'`, { field: '--cors-origin' });
  const tplFile = str(flags, 'chat-template');
  const chatTemplate = tplFile === undefined ? undefined : readTextFile(tplFile, '--chat-template');

  const flagKey = str(flags, 'api-key');
  const apiKeys = flagKey !== undefined ? parseApiKeys(flagKey) : parseApiKeys(process.env.STREAMLM_API_KEY || undefined, 'STREAMLM_API_KEY');
  const maxConcurrentPerKey = num(flags, 'max-concurrent-per-key', { int: true, min: 1 });
  const maxPromptTokens = num(flags, 'max-prompt-tokens', { int: true, min: 1 });
  const storeFlag = str(flags, 'session-store');
  const sessionTtl = num(flags, 'session-ttl', { int: true, min: 1 });
  const lockMs = num(flags, 'session-lock-ms', { int: true, min: 300 });
  const storeSpec = storeFlag === undefined ? undefined : parseStoreSpec(storeFlag);

  const model = await loadCliModel(m);
  let srv;
  let store: SessionStore | undefined;
  try {
    store = storeSpec && await openStore(storeSpec, `${model.fingerprint}|${cache}|${evictChunk ?? 1}`, sessionTtl, lockMs);
    srv = await startServer(model, {
      port, host, cache, maxSessions, defaultMaxTokens, maxBodyBytes, evictChunk, chatTemplate, modelId: str(flags, 'model-id'),
      corsOrigin, speculate, store, apiKeys, maxConcurrentPerKey, maxPromptTokens, log: (line) => console.error(line),
    });
  } catch (e) {
    await store?.close();
    await model.close();
    throw e;
  }
  const mem = srv.engine.memory();
  console.error(`[streamlm] serving ${srv.modelId} at ${srv.url}/ | cache ${srv.engine.policy}, ${maxSessions} sessions, ` +
    `${(mem.kvBytes / 1048576).toFixed(1)} MB of KV reserved | ${plural(model.threads, 'thread')} | chat template: ${srv.engine.template.builtin ? 'the model\'s' : 'plain fallback'}` +
    (corsOrigin ? ` | CORS: ${corsOrigin}` : '') + (apiKeys.length ? ` | ${plural(apiKeys.length, 'API key')}` : '') + (store ? ` | sessions kept in ${store.name}` : ''));
  if (!apiKeys.length && !/^(127\.|::1$|localhost$)/.test(host)) {
    console.error(`[streamlm] warning: bound to ${host} without --api-key: anyone who can reach this address can use the model and read every session`);
  }
  await new Promise<void>((done) => {
    const stop = (): void => { process.off('SIGINT', stop); process.off('SIGTERM', stop); clearInterval(orphan); done(); };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    const orphan = watchParent(() => { console.error('[streamlm] npm exec, which started this server, has exited'); stop(); });
  });
  console.error('[streamlm] shutting down');
  await srv.close();
  await store?.close();
  await model.close();
}

/**
 * `npx streamlm serve &` records the PID of npm exec, not of this process, and killing npm leaves
 * the server running unseen. When started by npm exec (npm sets npm_command=exec), exit once npm
 * is gone. npm runs us through `sh -c`, so npm is the parent or the grandparent: when it dies the
 * kernel re-parents its child, and the chain of our two ancestors changes. A server started with
 * node directly (or nohup) is left alone.
 */
function watchParent(onGone: () => void): NodeJS.Timeout | undefined {
  if (process.env.npm_command !== 'exec') return undefined;
  const chain = (): string => { const p = process.ppid; return `${p}<${parentOf(p)}`; };
  const start = chain();
  const t = setInterval(() => { if (chain() !== start) onGone(); }, process.platform === 'linux' ? 500 : 2000);
  t.unref();
  return t;
}

/** The parent PID of `pid` (/proc on Linux, ps elsewhere), or 0 when it cannot be read. */
function parentOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) || 0;   // "pid (comm) state ppid ..."
  } catch {
    const r = spawnSync('ps', ['-o', 'ppid=', '-p', String(pid)], { encoding: 'utf8' });
    return Number(r.stdout?.trim()) || 0;
  }
}
