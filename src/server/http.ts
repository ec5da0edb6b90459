import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, resolve } from 'node:path';
import { parsePolicy } from '../cache/policy.js';
import { StreamlmError } from '../errors.js';
import type { Model } from '../model.js';
import type { CacheStats } from '../session.js';
import { Engine, type EngineOptions, type Turn, type TurnInfo, type TurnResult } from './engine.js';
import { corsPolicy } from './cors.js';
import { ApiError } from './errors.js';
import { Counter, Gauge, Histogram, LATENCY_BUCKETS, Registry } from './metrics.js';
import { speculationMetrics, speculationUsage } from './speculation.js';
import { chatPage } from './page.js';
import type { ChunkerOptions } from '../speech/chunker.js';
import type { Synthesizer } from '../speech/synth.js';
import { ChatVoice, chatAudioMessage, speak, SpeechService } from './audio.js';
import type { SessionStore } from './store/types.js';
import { Auth, type Caller } from './auth.js';
import { parseChatRequest, parseCompletionRequest, parseSessionId, parseSpeechRequest, type ApiRequest, type Limits } from './validate.js';

export interface ServerOptions extends Omit<EngineOptions, 'observer'> {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** The id clients pass as `model` (default: the model directory's name). */
  modelId?: string;
  /** Larger request bodies get a 413 (default 1 MiB). */
  maxBodyBytes?: number;
  /** max_tokens of a chat request that gives none (default 256). */
  defaultMaxTokens?: number;
  /** Largest max_tokens accepted (default 100000). */
  maxTokensLimit?: number;
  /**
   * Origins whose web pages may call the API (CORS): `*`, or a comma-separated list of origins
   * (`http://localhost:5173`). Default none: no CORS headers, so browsers block other origins.
   */
  corsOrigin?: string;
  /** Loads the synthesizer of the audio routes on first use (default: espeak-ng, an optional package). */
  speech?: () => Promise<Synthesizer>;
  /** How spoken chat replies are cut into phrases (default CHAT_CHUNKER in audio.ts; for benchmarks). */
  speechChunker?: ChunkerOptions;
  /** Called with one line per server error (default: none). */
  log?: (line: string) => void;
  /** Where sessions are kept between turns beyond memory (see src/server/store); the caller closes it. */
  store?: SessionStore;
  /** API keys: when any, every /v1 route needs `Authorization: Bearer KEY`, and sessions are per key. */
  apiKeys?: string[];
  /** Completions running at once per key (or for everyone, without keys); more get a 429. */
  maxConcurrentPerKey?: number;
}

export interface RunningServer {
  readonly url: string;
  readonly port: number;
  readonly modelId: string;
  readonly engine: Engine;
  readonly server: Server;
  /** Stops accepting requests, ends running turns and closes connections. The model stays open. */
  close(): Promise<void>;
}

/** Cache occupancy as clients see it: the sinks, the rolling window, and what was evicted. */
export interface CacheView {
  policy: string;
  sinks: number;
  sink_capacity: number;
  window: number;
  window_capacity: number;
  tokens: number;
  seen: number;
  evicted: number;
  bytes: number;
}

interface ServerMetrics {
  registry: Registry;
  requests: Counter;
  promptTokens: Counter;
  generatedTokens: Counter;
  turns: Counter;
  drops: Counter;
  ttft: Histogram;
  interToken: Histogram;
  duration: Histogram;
}

function newId(prefix: string): string { return `${prefix}-${randomBytes(12).toString('base64url')}`; }

/** Starts the OpenAI-compatible server on a loaded model. */
export async function startServer(model: Model, opts: ServerOptions = {}): Promise<RunningServer> {
  const modelId = opts.modelId ?? basename(resolve(model.dir));
  const maxBody = opts.maxBodyBytes ?? 1 << 20;
  const limits: Limits = { defaultMaxTokens: opts.defaultMaxTokens ?? 256, maxTokens: opts.maxTokensLimit ?? 100_000 };
  if (!Number.isInteger(limits.defaultMaxTokens) || limits.defaultMaxTokens < 1 || limits.defaultMaxTokens > limits.maxTokens) {
    throw new StreamlmError(`default max tokens must be an integer in [1, ${limits.maxTokens}], got ${limits.defaultMaxTokens}`, { field: '--max-tokens' });
  }
  const m = buildMetrics();
  const specMetrics = speculationMetrics(m.registry);
  const engine = new Engine(model, {
    ...opts,
    observer: {
      token: (gap) => m.interToken.observe(gap),
      prefill: (n) => m.promptTokens.inc(n),
      turn: (r) => {
        m.turns.inc(1, { finish: r.finishReason });
        m.generatedTokens.inc(r.completionTokens);
        if (r.ttftMs !== null) m.ttft.observe(r.ttftMs / 1000);
        m.duration.observe(r.durationMs / 1000);
        specMetrics(r.speculation);
      },
      drop: () => m.drops.inc(),
      storeError: (e) => (opts.log ?? (() => {}))(`[streamlm] session store: ${e instanceof Error ? e.message : String(e)}`),
    },
  });
  addGauges(m.registry, engine);
  const policy = parsePolicy(engine.policy);
  const created = Math.floor(Date.now() / 1000);
  const fingerprint = 'fp_' + createHash('sha256').update(`${modelId}|${engine.policy}`).digest('hex').slice(0, 10);
  const page = chatPage(modelId, engine.policy);
  const log = opts.log ?? (() => {});

  const cacheView = (s: CacheStats): CacheView => ({
    policy: s.policy, sinks: s.sinks, sink_capacity: policy.sinks, window: s.length - s.sinks, window_capacity: (policy.keep ?? 0) - policy.sinks,
    tokens: s.length, seen: s.seen, evicted: s.evicted, bytes: s.bytes,
  });

  const cors = corsPolicy(opts.corsOrigin);
  const speech = new SpeechService(opts.speech);
  const auth = new Auth({ keys: opts.apiKeys ?? [], maxConcurrent: opts.maxConcurrentPerKey });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let endpoint = 'other';
    res.on('finish', () => m.requests.inc(1, { endpoint, status: String(res.statusCode) }));
    try {
      const path = new URL(req.url ?? '/', 'http://localhost').pathname.replace(/\/+$/, '') || '/';
      const method = req.method ?? 'GET';
      cors.headers(req, res);
      const route = (want: string): void => { if (method !== want) throw new ApiError(405, `${method} is not allowed on ${path}; use ${want}`, 'invalid_request_error', null, 'method_not_allowed'); };
      // Preflights carry no credentials; everything else under /v1 needs a key when keys are set.
      const caller = method !== 'OPTIONS' && (path === '/v1' || path.startsWith('/v1/')) ? auth.check(req) : null;
      if (method === 'OPTIONS') {
        endpoint = 'preflight';
        cors.preflight(req, res);
      } else if (path === '/favicon.ico') {
        // Browsers ask for it on every page load; an empty answer keeps their console clean.
        endpoint = 'page'; route('GET');
        res.writeHead(204, { 'Cache-Control': 'max-age=86400' }).end();
      } else if (path === '/') {
        endpoint = 'page'; route('GET');
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' }).end(page);
      } else if (path === '/health') {
        endpoint = 'health'; route('GET');
        sendJson(res, 200, { status: 'ok', model: modelId, cache: engine.policy, sessions: engine.activeSessions, max_sessions: engine.maxSessions, running: engine.runningTurns });
      } else if (path === '/metrics') {
        endpoint = 'metrics'; route('GET');
        res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' }).end(m.registry.render());
      } else if (path === '/v1/models') {
        endpoint = 'models'; route('GET');
        sendJson(res, 200, { object: 'list', data: [{ id: modelId, object: 'model', created, owned_by: 'streamlm' }] });
      } else if (path.startsWith('/v1/models/')) {
        endpoint = 'models'; route('GET');
        const id = decodeURIComponent(path.slice('/v1/models/'.length));
        if (id !== modelId) throw unknownModel(id);
        sendJson(res, 200, { id: modelId, object: 'model', created, owned_by: 'streamlm' });
      } else if (path.startsWith('/v1/sessions/')) {
        endpoint = 'sessions';
        const id = auth.scope(caller!, parseSessionId(decodeURIComponent(path.slice('/v1/sessions/'.length)), 'session'));
        if (method === 'DELETE') {
          if (!(await engine.deleteStored(id))) throw noSession(id.slice(caller!.namespace.length));
          sendJson(res, 200, { id: id.slice(caller!.namespace.length), object: 'session.deleted', deleted: true });
        } else {
          route('GET');
          const s = engine.session(id);
          if (!s) throw noSession(id.slice(caller!.namespace.length));
          const mem = engine.memory();
          sendJson(res, 200, {
            id: id.slice(caller!.namespace.length), object: 'session', busy: s.busy, turns: s.turns, idle_s: s.idleS, cache: cacheView(s.cache),
            memory: { kv_session_bytes: s.cache.bytes, kv_in_use_bytes: mem.kvInUseBytes, kv_reserved_bytes: mem.kvBytes, wasm_bytes: mem.wasmMemoryBytes, rss_bytes: mem.rssBytes },
          });
        }
      } else if (path === '/v1/audio/speech') {
        endpoint = 'speech'; route('POST');
        requireJsonType(req);
        const r = parseSpeechRequest(await readJson(req, maxBody));
        const synth = await speech.get();
        synth.checkVoice({ voice: r.voice, speed: r.speed });
        await speak(r, synth, res);
      } else if (path === '/v1/chat/completions' || path === '/v1/completions') {
        const chat = path === '/v1/chat/completions';
        endpoint = chat ? 'chat_completions' : 'completions';
        route('POST');
        requireJsonType(req);
        const body = await readJson(req, maxBody);
        const r = chat ? parseChatRequest(body, limits) : parseCompletionRequest(body, limits);
        if (r.model !== modelId) throw unknownModel(r.model);
        const header = req.headers['x-session-id'];
        if (header !== undefined) {
          const h = parseSessionId(Array.isArray(header) ? header[0] : header, 'X-Session-Id');
          if (r.session !== null && r.session !== h) throw new ApiError(400, 'the session field and the X-Session-Id header name different sessions', 'invalid_request_error', 'session', 'invalid_value');
          r.session = h;
        }
        const leave = auth.enter(caller!);
        res.on('close', leave);
        await complete(r, res, caller!);
      } else {
        throw new ApiError(404, `no route ${method} ${path}`, 'invalid_request_error', null, 'not_found');
      }
    } catch (e) {
      sendError(res, e, log);
    }
  };

  const complete = async (r: ApiRequest, res: ServerResponse, caller: Caller): Promise<void> => {
    // A spoken reply needs its synthesizer and voice checked before generation starts (a 400, not a broken stream).
    const synth = r.kind === 'chat' && r.audio ? await speech.get() : null;
    if (synth && r.kind === 'chat' && r.audio) synth.checkVoice({ voice: r.audio.voice });
    const ac = new AbortController();
    res.on('close', () => { if (!res.writableFinished) ac.abort(); });
    if (!res.socket || res.socket.destroyed) ac.abort();
    const started = await engine.start({
      session: r.session === null ? null : auth.scope(caller, r.session),
      input: r.kind === 'chat' ? { kind: 'chat', messages: r.messages } : { kind: 'text', prompt: r.prompt },
      maxTokens: r.maxTokens,
      sampler: { temperature: r.temperature, topP: r.topP, topK: r.topK, seed: r.seed },
      stop: r.stop,
      ignoreEos: r.ignoreEos,
      signal: ac.signal,
    });
    // The client sees its own session id, without its key's namespace.
    const turn: Turn = { ...started, info: { ...started.info, session: r.session } };
    const id = newId(r.kind === 'chat' ? 'chatcmpl' : 'cmpl');
    const head = { id, object: r.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created: Math.floor(Date.now() / 1000), model: modelId, system_fingerprint: fingerprint };
    const headers = sessionHeaders(turn.info);
    if (r.stream) await streamTurn(r, res, turn, head, headers, synth);
    else await collectTurn(r, res, turn, head, headers, synth);
  };

  const usageOf = (t: TurnResult): { prompt_tokens: number; completion_tokens: number; total_tokens: number; speculation?: ReturnType<typeof speculationUsage> } =>
    ({ prompt_tokens: t.promptTokens, completion_tokens: t.completionTokens, total_tokens: t.promptTokens + t.completionTokens,
      ...(t.speculation ? { speculation: speculationUsage(t.speculation) } : {}) });

  const streamTurn = async (r: ApiRequest, res: ServerResponse, turn: Turn, head: Record<string, unknown>, headers: Record<string, string>, synth: Synthesizer | null): Promise<void> => {
    const audioHeaders: Record<string, string> = synth ? { 'X-Sample-Rate': String(synth.sampleRate) } : {};
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no', ...headers, ...audioHeaders });
    res.flushHeaders();
    const usage = r.includeUsage ? { usage: null } : {};
    const send = (o: unknown): void => { if (!res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify(o)}\n\n`); };
    const chunk = (delta: Record<string, unknown> | string, finish: string | null): Record<string, unknown> => r.kind === 'chat'
      ? { ...head, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...usage }
      : { ...head, choices: [{ text: delta, index: 0, logprobs: null, finish_reason: finish }], ...usage };
    // A spoken reply streams its text as delta.audio.transcript, between its audio deltas (OpenAI's shape).
    const voice = synth && r.kind === 'chat' && r.audio ? new ChatVoice(synth, r.audio, (d) => send(chunk(d, null)), opts.speechChunker) : null;
    res.on('close', () => voice?.cancel());
    try {
      if (r.kind === 'chat') send(chunk({ role: 'assistant', content: voice ? null : '', refusal: null }, null));
      for await (const t of turn) {
        if (voice) voice.say(t.text);
        else send(chunk(r.kind === 'chat' ? { content: t.text } : t.text, null));
      }
      await voice?.finish();
    } catch (e) {
      voice?.cancel();
      const err = e instanceof ApiError ? e : new ApiError(500, 'generation failed', 'server_error', null, 'internal_error');
      log(`[streamlm] ${err.message}`);
      send(err.body());
      res.end();
      return;
    }
    const result = await turn.result;
    if (result.finishReason === 'abort') { res.end(); return; }
    send(chunk(r.kind === 'chat' ? {} : '', result.finishReason));
    if (r.includeUsage) send({ ...head, choices: [], usage: usageOf(result) });
    if (!res.writableEnded && !res.destroyed) res.end('data: [DONE]\n\n');
  };

  const collectTurn = async (r: ApiRequest, res: ServerResponse, turn: Turn, head: Record<string, unknown>, headers: Record<string, string>, synth: Synthesizer | null): Promise<void> => {
    let text = '';
    for await (const t of turn) text += t.text;
    const result = await turn.result;
    if (result.finishReason === 'abort') return;
    const session = turn.info.session === null ? null : { id: turn.info.session, status: turn.info.status, dropped: turn.info.dropped, cache: cacheView(result.cache) };
    const base = { ...head, object: r.kind === 'chat' ? 'chat.completion' : 'text_completion' };
    const choice = r.kind === 'chat'
      ? { index: 0, message: synth && r.kind === 'chat' && r.audio
        ? { role: 'assistant', content: null, refusal: null, audio: await chatAudioMessage(synth, r.audio, text) }
        : { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: result.finishReason }
      : { text, index: 0, logprobs: null, finish_reason: result.finishReason };
    sendJson(res, 200, { ...base, choices: [choice], usage: usageOf(result), ...(session ? { session } : {}) }, headers);
  };

  const server = createServer({ keepAliveTimeout: 30_000 }, (req, res) => { void handle(req, res); });
  server.on('clientError', (_e, socket) => { if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n'); else socket.destroy(); });
  await new Promise<void>((ok, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) => fail(e.code === 'EADDRINUSE' ? new StreamlmError(`port ${opts.port ?? 8080} is already in use`, { field: '--port' }) : e));
    server.listen(opts.port ?? 8080, opts.host ?? '127.0.0.1', () => ok());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`, port: addr.port, modelId, engine, server,
    close: async () => {
      engine.close();
      await speech.close();
      await new Promise<void>((ok) => { server.close(() => ok()); server.closeAllConnections(); });
    },
  };
}

function buildMetrics(): ServerMetrics {
  const registry = new Registry();
  return {
    registry,
    requests: registry.add(new Counter('streamlm_http_requests_total', 'HTTP requests by endpoint and status code.')),
    promptTokens: registry.add(new Counter('streamlm_prompt_tokens_total', 'Prompt tokens prefilled.')),
    generatedTokens: registry.add(new Counter('streamlm_generated_tokens_total', 'Tokens generated (end-of-sequence tokens excluded).')),
    turns: registry.add(new Counter('streamlm_turns_total', 'Finished turns by finish reason (abort: the client went away).')),
    drops: registry.add(new Counter('streamlm_sessions_dropped_total', 'Idle sessions dropped (least recently used) to make room.')),
    ttft: registry.add(new Histogram('streamlm_time_to_first_token_seconds', 'From request to first sampled token.', LATENCY_BUCKETS)),
    interToken: registry.add(new Histogram('streamlm_inter_token_seconds', 'Between consecutive tokens of one turn.', LATENCY_BUCKETS)),
    duration: registry.add(new Histogram('streamlm_turn_duration_seconds', 'From request to the end of generation.', LATENCY_BUCKETS)),
  };
}

function addGauges(reg: Registry, engine: Engine): void {
  const cacheSum = (f: (s: CacheStats) => number): number => engine.cacheStats().reduce((a, s) => a + f(s), 0);
  reg.add(new Gauge('streamlm_sessions', 'Sessions holding a KV cache (named and one-off).', () => engine.activeSessions));
  reg.add(new Gauge('streamlm_sessions_max', 'KV caches preallocated (--max-sessions).', () => engine.maxSessions));
  reg.add(new Gauge('streamlm_turns_running', 'Turns being prefilled or decoded.', () => engine.runningTurns));
  reg.add(new Gauge('streamlm_requests_waiting', 'Requests waiting for a free KV cache.', () => engine.waitingRequests));
  reg.add(new Gauge('streamlm_cache_tokens', 'Tokens held in KV caches, by part.', () => [
    [{ part: 'sinks' }, cacheSum((s) => s.sinks)], [{ part: 'window' }, cacheSum((s) => s.length - s.sinks)]]));
  reg.add(new Gauge('streamlm_cache_evicted_tokens', 'Tokens evicted so far by the live sessions.', () => cacheSum((s) => s.evicted)));
  reg.add(new Gauge('streamlm_cache_seen_tokens', 'Tokens appended so far by the live sessions.', () => cacheSum((s) => s.seen)));
  reg.add(new Gauge('streamlm_memory_bytes', 'Memory by kind.', () => {
    const mm = engine.memory();
    return [[{ kind: 'kv_reserved' }, mm.kvBytes], [{ kind: 'kv_in_use' }, mm.kvInUseBytes], [{ kind: 'wasm_allocated' }, mm.wasmAllocatedBytes],
      [{ kind: 'wasm_memory' }, mm.wasmMemoryBytes], [{ kind: 'rss' }, mm.rssBytes]];
  }));
}

function sessionHeaders(info: TurnInfo): Record<string, string> {
  if (info.session === null) return {};
  return { 'X-Session-Id': info.session, 'X-Session-Status': info.status, 'X-Session-Dropped': String(info.dropped), 'X-Session-Turns': String(info.turns) };
}

function unknownModel(id: string): ApiError {
  return new ApiError(404, `The model '${id}' does not exist`, 'invalid_request_error', 'model', 'model_not_found');
}

function noSession(id: string): ApiError {
  return new ApiError(404, `no session '${id}' (never created, dropped or deleted)`, 'invalid_request_error', 'session', 'session_not_found');
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers }).end(text);
}

function sendError(res: ServerResponse, e: unknown, log: (line: string) => void): void {
  let err: ApiError;
  if (e instanceof ApiError) err = e;
  else if (e instanceof StreamlmError) err = new ApiError(400, e.message, 'invalid_request_error', e.field ?? null, 'invalid_value');
  else if (e instanceof URIError || (e instanceof TypeError && (e as NodeJS.ErrnoException).code === 'ERR_INVALID_URL')) err = new ApiError(400, `malformed URL: ${e.message}`, 'invalid_request_error', null, 'invalid_url');
  else {
    log(`[streamlm] internal error: ${e instanceof Error ? e.stack : String(e)}`);
    err = new ApiError(500, 'internal server error', 'server_error', null, 'internal_error');
  }
  if (err.status === 499 || res.destroyed) return;
  if (res.headersSent) { res.end(); return; }
  sendJson(res, err.status, err.body(), err.status === 413 ? { Connection: 'close' } : {});
}

/** JSON routes take only JSON bodies: a form post from any web page must not start a generation. */
function requireJsonType(req: IncomingMessage): void {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') {
    req.resume();
    throw new ApiError(415, `Content-Type must be application/json, got ${type ? `'${type}'` : 'none'}`, 'invalid_request_error', null, 'unsupported_media_type');
  }
}

/** Reads a JSON body of at most `limit` bytes (413 beyond, 400 if not JSON). */
async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const tooBig = (): ApiError => new ApiError(413, `the request body exceeds ${limit} bytes`, 'invalid_request_error', null, 'request_too_large');
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) { req.resume(); throw tooBig(); }
  const dec = new TextDecoder();
  let text = '';
  let n = 0;
  for await (const chunk of req) {
    n += (chunk as Uint8Array).length;
    if (n > limit) { req.resume(); throw tooBig(); }
    text += dec.decode(chunk as Uint8Array, { stream: true });
  }
  text += dec.decode();
  if (text.trim() === '') throw new ApiError(400, 'the request body is empty; send a JSON object', 'invalid_request_error', null, 'invalid_json');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, `We could not parse the JSON body of your request: ${(e as Error).message}`, 'invalid_request_error', null, 'invalid_json');
  }
}
