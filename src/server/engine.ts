import type { KVCache } from '../cache/kvcache.js';
import { parsePolicy, type CachePolicy } from '../cache/policy.js';
import { decodeSnapshot } from '../cache/snapshot.js';
import { ChatTemplate, type ChatMessage } from '../chat/template.js';
import { Transcript } from '../chat/transcript.js';
import { DEFAULT_CHAT_CACHE, prefillChunkOf } from '../defaults.js';
import { StreamlmError } from '../errors.js';
import { Sampler, type SamplerOptions } from '../generate/sampler.js';
import { DecodeStepper, type FinishReason, type SpeculationStats } from '../generate/stepper.js';
import { draftsWithHeads, makeDrafter, type SpeculateOptions } from '../generate/speculate.js';
import type { Model } from '../model.js';
import type { CacheStats, Session } from '../session.js';
import { ApiError } from './errors.js';
import type { SessionStore } from './store/types.js';

export interface EngineOptions {
  /** Cache policy of every session: `sink:S+W` or `window:W` (default `sink:4+2044`). */
  cache?: string;
  /** Sessions (KV caches) held at once; the least recently used idle one is dropped for a new one (default 8). */
  maxSessions?: number;
  /** Prompt tokens per forward; one chunk is one scheduling slice (default 64). */
  prefillChunk?: number;
  /** Evict this many tokens at once when the cache overflows (default 1, as in the paper). */
  evictChunk?: number;
  /** How long a request waits for a cache while every one is busy, before a 503 (default 30000 ms). */
  queueTimeoutMs?: number;
  /** Overrides the model's chat template (a Jinja string). */
  chatTemplate?: string;
  /** Called per generated token and per finished turn, for metrics. */
  observer?: EngineObserver;
  /** Speculative decoding for every turn (default off); see DecodeOptions.speculate. */
  speculate?: SpeculateOptions;
  /**
   * Keeps every named session's snapshot after each turn, so the in-memory caches are a cache in
   * front of it: an evicted or restarted session is restored from it on its next request.
   */
  store?: SessionStore;
  /** Tokens one request may feed (its new text, after the template); more is a 400 (default unlimited). */
  maxPromptTokens?: number;
}

export interface EngineObserver {
  /** A token was sampled `gapS` seconds after the previous one of the same turn. */
  token(gapS: number): void;
  /** `n` prompt tokens were prefilled. */
  prefill(n: number): void;
  turn(result: TurnResult): void;
  /** A session was dropped to make room (LRU). */
  drop(): void;
  /** The session store failed to save or load (the turn itself went on). */
  storeError?(e: unknown): void;
}

/** New text for the session: chat messages (rendered with the chat template), raw text, or token ids. */
export type TurnInput = { kind: 'chat'; messages: ChatMessage[] } | { kind: 'text'; prompt: string | number[] };

export interface TurnOptions {
  /** Conversation id, or null for a one-off request whose cache is freed at its end. */
  session: string | null;
  input: TurnInput;
  maxTokens: number;
  sampler: SamplerOptions;
  stop: string[];
  /** Keep generating past end-of-sequence tokens (for benchmarks and tests). */
  ignoreEos?: boolean;
  signal?: AbortSignal;
}

export interface TurnInfo {
  session: string | null;
  /**
   * `new`: the session was created by this request; `continued`: the request repeated the
   * conversation so far and only the rest was appended; `appended`: everything in the request was
   * appended to the kept cache.
   */
  status: 'new' | 'continued' | 'appended';
  /** The id had been dropped (least recently used, or its turn failed) and now starts empty. */
  dropped: boolean;
  /** Tokens fed to the model for this turn before generation. */
  promptTokens: number;
  /** Tokens already in the cache before this turn. */
  cachedTokens: number;
  /** Turns the session had finished (and, with a store, saved) before this one. */
  turns: number;
}

export type { FinishReason };

export interface TurnResult {
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  /** Milliseconds from the request to the first sampled token (null if none). */
  ttftMs: number | null;
  durationMs: number;
  cache: CacheStats;
  /** Forwards, tokens per forward and acceptance per draft position, when speculation is on. */
  speculation?: SpeculationStats;
}

export interface SessionInfo { id: string; busy: boolean; turns: number; idleS: number; cache: CacheStats }

export interface MemoryInfo {
  /** Bytes of all preallocated KV caches, and of those held by sessions. */
  kvBytes: number;
  kvInUseBytes: number;
  /** Bytes handed out in wasm memory (weights, caches, scratch) and the memory's size. */
  wasmAllocatedBytes: number;
  wasmMemoryBytes: number;
  rssBytes: number;
}

export interface GeneratedText { id: number; text: string }

/** A running turn: iterate it for text pieces; `result` settles when generation ends. */
export interface Turn extends AsyncIterable<GeneratedText> {
  readonly info: TurnInfo;
  readonly result: Promise<TurnResult>;
}

/** A push queue consumed by one async iterator. */
class Channel<T> implements AsyncIterable<T> {
  private items: T[] = [];
  private done = false;
  private error: unknown = null;
  private wake: (() => void) | null = null;
  push(v: T): void { this.items.push(v); this.notify(); }
  end(): void { this.done = true; this.notify(); }
  fail(e: unknown): void { this.error = e; this.done = true; this.notify(); }
  private notify(): void { const w = this.wake; this.wake = null; w?.(); }
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.items.length) { yield this.items.shift()!; continue; }
      if (this.error) throw this.error;
      if (this.done) return;
      await new Promise<void>((r) => { this.wake = r; });
    }
  }
}

interface Conversation {
  id: string | null;
  kv: KVCache;
  session: Session;
  transcript: Transcript;
  busy: boolean;
  turns: number;
  lastUsed: number;
}

interface Job {
  conv: Conversation;
  feed: number[];
  /** Feed tokens already prefilled. */
  fed: number;
  stepper: DecodeStepper;
  reply: string;
  chat: boolean;
  signal: AbortSignal | undefined;
  out: Channel<GeneratedText>;
  t0: number;
  tLast: number;
  ttftMs: number | null;
  settle: (r: TurnResult) => void;
  /** Releases the store's cross-process lock on the session. */
  unlock: (() => Promise<void>) | null;
}

interface Waiter { resolve: (kv: KVCache) => void; reject: (e: unknown) => void }

const DROPPED_MEMORY = 10_000;

/**
 * Many conversations over one model. Each conversation keeps a StreamingLLM cache between turns, in
 * one of `maxSessions` caches allocated up front, so memory is bounded and caches can be returned in
 * any order. The forward pass blocks the event loop, so the scheduler runs one slice at a time —
 * one prefill chunk or one decoded token — round-robin over the running turns, yielding to I/O
 * between slices.
 */
export class Engine {
  readonly policy: string;
  /** The policy every session runs, as an object (its sinks, what it keeps). */
  readonly cachePolicy: CachePolicy;
  readonly maxSessions: number;
  readonly prefillChunk: number;
  readonly template: ChatTemplate;
  private readonly evictChunk: number;
  private readonly queueTimeoutMs: number;
  private readonly free: KVCache[] = [];
  private readonly slabBytes: number;
  /** Conversations with an id, least recently used first. */
  private readonly sessions = new Map<string, Conversation>();
  /** Ids being created (waiting for a cache). */
  private readonly reserved = new Set<string>();
  /** Ids dropped to make room, so a returning client can be told. */
  private readonly dropped = new Map<string, true>();
  private readonly waiters: Waiter[] = [];
  private readonly jobs: Job[] = [];
  private readonly oneOff = new Set<Conversation>();
  private readonly eos: number[];
  private readonly store: SessionStore | null;
  private readonly maxPromptTokens: number;
  /** The last store write (or delete) of each id, so reads and writes of one id stay in order. */
  private readonly saving = new Map<string, Promise<boolean>>();
  private running = false;
  private closed = false;
  readonly observer: EngineObserver | null;
  readonly speculate: SpeculateOptions | undefined;

  constructor(readonly model: Model, opts: EngineOptions = {}) {
    makeDrafter(opts.speculate, model.mctp !== null);  // checks the options before any request
    this.speculate = opts.speculate;
    const spec = opts.cache ?? DEFAULT_CHAT_CACHE;
    this.evictChunk = opts.evictChunk ?? 1;
    const policy = parsePolicy(spec, { evictChunk: this.evictChunk });
    if (!policy.bounded || !policy.carriesKV) {
      throw new StreamlmError(`serving needs a bounded cache that is carried between turns: sink:S+W or window:W, got '${policy.name}'`, { field: '--cache' });
    }
    this.policy = policy.name;
    this.cachePolicy = policy;
    this.maxSessions = opts.maxSessions ?? 8;
    if (!Number.isInteger(this.maxSessions) || this.maxSessions < 1) throw new StreamlmError(`max sessions must be a positive integer, got ${opts.maxSessions}`, { field: '--max-sessions' });
    this.prefillChunk = prefillChunkOf(opts.prefillChunk);
    model.checkCacheFits({ cache: this.policy, prefillChunk: this.prefillChunk, evictChunk: this.evictChunk }, this.maxSessions, { cache: '--cache', count: '--max-sessions' });
    this.queueTimeoutMs = opts.queueTimeoutMs ?? 30_000;
    this.template = new ChatTemplate(model.tokenizer, { template: opts.chatTemplate });
    this.observer = opts.observer ?? null;
    this.eos = model.eosTokenIds;
    this.store = opts.store ?? null;
    this.maxPromptTokens = opts.maxPromptTokens ?? Infinity;
    if (!(this.maxPromptTokens >= 1)) throw new StreamlmError(`expected a positive integer, got ${opts.maxPromptTokens}`, { field: '--max-prompt-tokens' });
    for (let i = 0; i < this.maxSessions; i++) {
      const kv = model.allocCache({ cache: this.policy, prefillChunk: this.prefillChunk, evictChunk: this.evictChunk });
      // Grown wasm memory is mapped but not resident until written: write every cache once now, so
      // the server's memory is all taken at start and stays flat under traffic (and a machine
      // short of memory says so at start, not under load).
      const mem = new Uint8Array(model.net.rt.memory.buffer);
      for (const p of [...kv.k, ...kv.v]) mem.fill(0, p, p + kv.capacity * kv.kvDim * 4);
      this.free.push(kv);
    }
    this.slabBytes = this.free[0].bytes;
  }

  /** Conversations holding a cache (one-off requests included). */
  get activeSessions(): number { return this.maxSessions - this.free.length; }
  get namedSessions(): number { return this.sessions.size; }
  get runningTurns(): number { return this.jobs.length; }
  get waitingRequests(): number { return this.waiters.length; }

  /** Per-session cache occupancy, for metrics. */
  cacheStats(): CacheStats[] {
    const out: CacheStats[] = [];
    for (const c of this.sessions.values()) out.push(c.session.stats());
    for (const c of this.oneOff) out.push(c.session.stats());
    return out;
  }

  memory(): MemoryInfo {
    const rt = this.model.net.rt;
    return {
      kvBytes: this.slabBytes * this.maxSessions,
      kvInUseBytes: this.slabBytes * this.activeSessions,
      wasmAllocatedBytes: rt.bytesAllocated,
      wasmMemoryBytes: rt.memory.buffer.byteLength,
      rssBytes: process.memoryUsage.rss(),
    };
  }

  session(id: string): SessionInfo | null {
    const c = this.sessions.get(id);
    if (!c) return null;
    return { id, busy: c.busy, turns: c.turns, idleS: c.busy ? 0 : (performance.now() - c.lastUsed) / 1000, cache: c.session.stats() };
  }

  /** Frees a session's cache. False if unknown; a 409 ApiError if a turn is running on it. */
  deleteSession(id: string): boolean {
    const c = this.sessions.get(id);
    if (!c) return false;
    if (c.busy) throw new ApiError(409, `session '${id}' has a request in progress`, 'invalid_request_error', 'session', 'session_busy');
    this.sessions.delete(id);
    this.releaseCache(c.kv);
    if (this.store) void this.persist(id, null);
    return true;
  }

  /** Forgets `id` in the store too (known or not in memory); false if it was nowhere. */
  async deleteStored(id: string): Promise<boolean> {
    if (this.deleteSession(id)) return true;
    if (!this.store) return false;
    await this.saving.get(id);
    const had = (await this.store.get(id)) !== null;
    if (had) { void this.persist(id, null); await this.saving.get(id); }
    return had;
  }

  /**
   * A named idle session as bytes: its cache (Session.snapshot) plus the conversation state, to
   * keep across a restart or move to another server with the same model and cache settings. Null
   * for an unknown id; a 409 ApiError while a turn runs on it.
   */
  saveSession(id: string): Uint8Array | null {
    const c = this.sessions.get(id);
    if (!c) return null;
    if (c.busy) throw new ApiError(409, `session '${id}' has a request in progress`, 'invalid_request_error', 'session', 'session_busy');
    return c.session.snapshot({ extra: { kind: 'streamlm-conversation', turns: c.turns, transcript: c.transcript.state() } });
  }

  /**
   * Brings back a session from `saveSession` under `id`, replacing an idle one of that id. Refuses
   * (StreamlmError) a snapshot of another model, of other cache settings, or a corrupt one; a busy
   * id is a 409. Waits for a free cache like a new session does.
   */
  async loadSession(id: string, bytes: Uint8Array): Promise<void> {
    const h = decodeSnapshot(bytes).header;
    const mine = { policy: this.policy, prefillChunk: this.prefillChunk, evictChunk: this.evictChunk };
    const theirs = { policy: h.policy, prefillChunk: h.prefillChunk, evictChunk: h.evictChunk };
    if (JSON.stringify(mine) !== JSON.stringify(theirs)) throw new StreamlmError(`the saved session ran with ${JSON.stringify(theirs)}; this server runs ${JSON.stringify(mine)}`, { field: 'snapshot' });
    const extra = h.extra as { kind?: unknown; turns?: unknown; transcript?: unknown } | null;
    if (extra?.kind !== 'streamlm-conversation' || !Number.isInteger(extra.turns)) throw new StreamlmError('the snapshot holds no saved conversation (take it with Engine.saveSession)', { field: 'snapshot' });
    const transcript = Transcript.fromState(this.template, extra.transcript);
    const old = this.sessions.get(id);
    if (old?.busy || this.reserved.has(id)) throw new ApiError(409, `session '${id}' has a request in progress`, 'invalid_request_error', 'session', 'session_busy');
    if (old) { this.sessions.delete(id); this.releaseCache(old.kv); }
    this.reserved.add(id);
    let kv: KVCache;
    try {
      kv = await this.acquireCache(undefined);
    } finally {
      this.reserved.delete(id);
    }
    let session: Session;
    try {
      session = this.model.restoreSession(bytes, { kv, draftHeads: draftsWithHeads(this.speculate) });
    } catch (e) {
      this.releaseCache(kv);
      throw e;
    }
    this.sessions.set(id, { id, kv, session, transcript, busy: false, turns: extra.turns as number, lastUsed: performance.now() });
    this.dropped.delete(id);
  }

  /**
   * Starts a turn: finds or creates the session, works out the tokens to append and queues the
   * turn. Throws ApiError for a busy session (409), a full server (503) or a bad prompt (400).
   */
  async start(opts: TurnOptions): Promise<Turn> {
    if (this.closed) throw new ApiError(503, 'the server is shutting down', 'server_error', null, 'shutting_down');
    const t0 = performance.now();
    const id = opts.session;
    let conv = id === null ? undefined : this.sessions.get(id);
    if (id !== null && (conv?.busy || this.reserved.has(id))) {
      throw new ApiError(409, `session '${id}' already has a request in progress; wait for it to finish`, 'invalid_request_error', 'session', 'session_busy');
    }
    new Sampler(opts.sampler);  // checks the sampling options before a cache is taken
    let unlock: (() => Promise<void>) | null = null;
    let restoreFailed = false;
    if (id !== null && this.store) {
      try {
        unlock = await this.store.lock(id);
      } catch (e) {
        this.observer?.storeError?.(e);
        throw new ApiError(503, `the session store is unavailable: ${e instanceof Error ? e.message : String(e)}`, 'server_error', null, 'store_unavailable');
      }
      if (!unlock) throw new ApiError(409, `session '${id}' has a request in progress on another server; wait for it to finish`, 'invalid_request_error', 'session', 'session_busy');
      try {
        restoreFailed = await this.restore(id);
      } catch (e) {
        await unlock();
        throw e;
      }
      conv = this.sessions.get(id);
      if (conv?.busy || this.reserved.has(id)) {
        await unlock();
        throw new ApiError(409, `session '${id}' already has a request in progress; wait for it to finish`, 'invalid_request_error', 'session', 'session_busy');
      }
    }
    let created = false;
    const dropped = id !== null && !conv && (restoreFailed || this.dropped.has(id));
    if (!conv) {
      if (id !== null) this.reserved.add(id);
      let kv: KVCache;
      try {
        kv = await this.acquireCache(opts.signal);
      } catch (e) {
        await unlock?.();
        throw e;
      } finally {
        if (id !== null) this.reserved.delete(id);
      }
      conv = {
        id, kv, session: this.model.session({ cache: this.policy, prefillChunk: this.prefillChunk, evictChunk: this.evictChunk, kv, draftHeads: draftsWithHeads(this.speculate) }),
        transcript: new Transcript(this.template), busy: false, turns: 0, lastUsed: t0,
      };
      created = true;
      if (id !== null) { this.sessions.set(id, conv); this.dropped.delete(id); } else this.oneOff.add(conv);
    } else if (id !== null) {
      // Most recently used goes last.
      this.sessions.delete(id);
      this.sessions.set(id, conv);
    }
    let feed: number[];
    let status: TurnInfo['status'];
    try {
      const fresh = conv.session.cache.seen === 0 && conv.session.pendingCount === 0;
      if (opts.input.kind === 'chat') {
        const t = conv.transcript.next(opts.input.messages);
        feed = this.encode(t.text, fresh && !this.template.builtin);
        status = created ? 'new' : t.mode;
      } else {
        const p = opts.input.prompt;
        // As generate(): an empty text is refused for every model, BOS-adding tokenizers included.
        if (p === '') throw new ApiError(400, 'the prompt is empty', 'invalid_request_error', 'prompt', 'invalid_value');
        feed = typeof p === 'string' ? this.encode(p, fresh) : p;
        const V = this.model.hparams.vocabSize;
        for (const x of feed) if (x >= V) throw new ApiError(400, `token id ${x} is outside the vocabulary [0, ${V})`, 'invalid_request_error', 'prompt', 'invalid_value');
        conv.transcript.detach();
        status = created ? 'new' : 'appended';
      }
      if (feed.length > this.maxPromptTokens) throw new ApiError(400, `the prompt has ${feed.length} new tokens; this server takes at most ${this.maxPromptTokens} per request`, 'invalid_request_error', opts.input.kind === 'chat' ? 'messages' : 'prompt', 'prompt_too_long');
      if (feed.length === 0) throw new ApiError(400, 'the prompt gives no tokens', 'invalid_request_error', opts.input.kind === 'chat' ? 'messages' : 'prompt', 'invalid_value');
    } catch (e) {
      if (created) this.discard(conv);
      await unlock?.();
      if (e instanceof StreamlmError && !(e instanceof ApiError)) throw new ApiError(400, e.message, 'invalid_request_error', e.field ?? null, 'invalid_value');
      throw e;
    }
    const cachedTokens = conv.session.cache.length;
    feed = [...conv.session.takePending(), ...feed];
    conv.busy = true;
    const out = new Channel<GeneratedText>();
    let settle!: (r: TurnResult) => void;
    const result = new Promise<TurnResult>((r) => { settle = r; });
    // Settled after iteration ends; a failed turn rejects the iterator instead, so this never rejects.
    const stepper = new DecodeStepper(conv.session, {
      maxNewTokens: opts.maxTokens, sampler: opts.sampler, stop: [...opts.stop, ...(opts.input.kind === 'chat' ? this.template.stop : [])],
      eos: this.eos, ignoreEos: opts.ignoreEos, tokenizer: this.model.tokenizer, context: feed.slice(-4), signal: opts.signal,
      speculate: this.speculate, history: [...conv.session.cache.book.tokens(), ...feed],
    });
    const job: Job = {
      conv, feed, fed: 0, stepper, reply: '', chat: opts.input.kind === 'chat', signal: opts.signal, out,
      t0, tLast: t0, ttftMs: null, settle, unlock,
    };
    this.jobs.push(job);
    this.kick();
    const info: TurnInfo = { session: id, status, dropped, promptTokens: feed.length, cachedTokens, turns: conv.turns };
    return { info, result, [Symbol.asyncIterator]: () => out[Symbol.asyncIterator]() };
  }

  /** Stops every turn and refuses new ones. */
  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.reject(new ApiError(503, 'the server is shutting down', 'server_error', null, 'shutting_down'));
    for (const j of this.jobs.splice(0)) this.finish(j, 'abort');
  }

  private encode(text: string, addSpecial: boolean): number[] {
    const tok = this.model.tokenizer;
    if (!tok) throw new ApiError(400, 'this model has no tokenizer: send token ids as the prompt of /v1/completions', 'invalid_request_error', 'prompt', 'no_tokenizer');
    return tok.encode(text, { addSpecialTokens: addSpecial });
  }

  // --- caches

  private acquireCache(signal: AbortSignal | undefined): Promise<KVCache> {
    const kv = this.free.pop() ?? this.dropIdle();
    if (kv) return Promise.resolve(kv);
    const closed = (): ApiError => new ApiError(499, 'the client closed the request', 'invalid_request_error', null, 'client_closed');
    if (signal?.aborted) return Promise.reject(closed());
    return new Promise<KVCache>((resolve, reject) => {
      const w: Waiter = {
        resolve: (k) => { cleanup(); resolve(k); },
        reject: (e) => { cleanup(); reject(e); },
      };
      const timer = setTimeout(() => w.reject(new ApiError(503, `all ${this.maxSessions} sessions are busy; retry later`, 'server_error', null, 'server_overloaded')), this.queueTimeoutMs);
      const onAbort = (): void => w.reject(closed());
      const cleanup = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(w);
    });
  }

  /** Drops the least recently used idle session and returns its cache. */
  private dropIdle(): KVCache | undefined {
    for (const [id, c] of this.sessions) {
      if (c.busy) continue;
      this.sessions.delete(id);
      // With a store the session was saved after its last turn: it comes back on its next request.
      if (this.store) return c.kv;
      this.dropped.set(id, true);
      if (this.dropped.size > DROPPED_MEMORY) this.dropped.delete(this.dropped.keys().next().value!);
      this.observer?.drop();
      return c.kv;
    }
    return undefined;
  }

  private releaseCache(kv: KVCache): void {
    const w = this.waiters[0];
    if (w) w.resolve(kv); else this.free.push(kv);
  }

  /** A conversation whose cache can no longer be trusted (or a one-off one) gives its cache back. */
  private discard(c: Conversation): void {
    if (c.id !== null && this.sessions.get(c.id) === c) this.sessions.delete(c.id);
    this.oneOff.delete(c);
    this.releaseCache(c.kv);
  }

  // --- scheduler

  private kick(): void {
    if (this.running) return;
    this.running = true;
    setImmediate(() => { void this.loop(); });
  }

  private async loop(): Promise<void> {
    while (this.jobs.length > 0) {
      const job = this.jobs.shift()!;
      let more = false;
      try {
        more = this.slice(job);
      } catch (e) {
        this.fail(job, e);
      }
      if (more) this.jobs.push(job);
      await new Promise<void>((r) => setImmediate(r));
    }
    this.running = false;
  }

  /** Runs one prefill chunk or one decode step of `job`; returns whether it has more to do. */
  private slice(job: Job): boolean {
    const s = job.conv.session;
    if (job.signal?.aborted) { this.finish(job, 'abort'); return false; }
    if (job.fed < job.feed.length) {
      const chunk = job.feed.slice(job.fed, job.fed + this.prefillChunk);
      s.prefill(chunk);
      job.fed += chunk.length;
      this.observer?.prefill(chunk.length);
      return true;
    }
    const step = job.stepper.next();
    // A sampled token (EOS included) counts for latency; a step that only ended generation does not.
    if (step.id !== null || step.finish === 'stop') {
      const now = performance.now();
      if (job.ttftMs === null) job.ttftMs = now - job.t0;
      else this.observer?.token((now - job.tLast) / 1000);
      job.tLast = now;
    }
    this.emit(job, step.id, step.text);
    if (step.finish) { this.finish(job, step.finish); return false; }
    return true;
  }

  private emit(job: Job, id: number | null, text: string): void {
    if (text) { job.reply += text; job.out.push({ id: id ?? -1, text }); }
  }

  private finish(job: Job, reason: FinishReason): void {
    const c = job.conv;
    // Ended from outside the stepper (abort during the prompt, shutdown): flush what it held back.
    if (!job.stepper.done) this.emit(job, null, job.stepper.finish(reason).text);
    // An abort mid-prompt leaves the rest of the prompt to be fed before the next one.
    if (job.fed < job.feed.length) c.session.defer(job.feed.slice(job.fed));
    if (job.chat) c.transcript.commitReply(job.reply);
    c.turns++;
    c.busy = false;
    c.lastUsed = performance.now();
    const result: TurnResult = {
      finishReason: reason, promptTokens: job.feed.length, completionTokens: job.stepper.stats().newTokens, ttftMs: job.ttftMs,
      durationMs: c.lastUsed - job.t0, cache: c.session.stats(),
    };
    const sp = job.stepper.stats().speculation;
    if (sp) result.speculation = sp;
    // Taken now, while no other turn can touch the cache; written before the client hears the end.
    const saved = c.id !== null && this.store ? this.persist(c.id, this.snapshotOf(c)) : Promise.resolve(true);
    if (c.id === null) this.discard(c);
    else if (this.waiters.length > 0) { const kv = this.dropIdle(); if (kv) this.releaseCache(kv); }
    this.observer?.turn(result);
    void saved.then(async (ok) => {
      // A turn the store did not keep did not happen, for every replica: forget it here too (the
      // next request restores the last saved turn) and tell the client, instead of ending the
      // stream as if it had been kept. The lock is still ours, so no request got in meanwhile.
      if (!ok && c.id !== null && this.sessions.get(c.id) === c && !c.busy) this.discard(c);
      await job.unlock?.();
      job.settle(result);
      if (ok) job.out.end();
      else job.out.fail(new ApiError(503, 'the session store is unavailable: this turn was not saved; send it again', 'server_error', null, 'store_unavailable'));
    });
  }

  private snapshotOf(c: Conversation): Uint8Array {
    return c.session.snapshot({ extra: { kind: 'streamlm-conversation', turns: c.turns, transcript: c.transcript.state() } });
  }

  /**
   * Queues a write (or, for null, a delete) of `id` after the previous one; resolves to whether it
   * succeeded (store errors go to the observer).
   */
  private persist(id: string, bytes: Uint8Array | null): Promise<boolean> {
    const store = this.store!;
    const prev = this.saving.get(id) ?? Promise.resolve(true);
    const next = prev.then(() => (bytes ? store.put(id, bytes) : store.delete(id))).then(() => true, (e: unknown) => { this.observer?.storeError?.(e); return false; });
    this.saving.set(id, next);
    void next.then(() => { if (this.saving.get(id) === next) this.saving.delete(id); });
    return next;
  }

  /**
   * Brings `id` from the store into memory when it is not there, or when another replica ran a
   * later turn on it (the stored turn count differs). Returns true when a stored snapshot was
   * refused (corrupt, another model or other settings): it is deleted and the session starts fresh.
   */
  private async restore(id: string): Promise<boolean> {
    await this.saving.get(id);
    let bytes: Uint8Array | null;
    try {
      bytes = await this.store!.get(id);
    } catch (e) {
      this.observer?.storeError?.(e);
      throw new ApiError(503, `the session store is unavailable: ${e instanceof Error ? e.message : String(e)}`, 'server_error', null, 'store_unavailable');
    }
    const mem = this.sessions.get(id);
    if (!bytes) return false;
    if (mem) {
      if (mem.busy) return false;
      try {
        if ((decodeSnapshot(bytes).header.extra as { turns?: unknown } | null)?.turns === mem.turns) return false;
      } catch { /* refused below by loadSession */ }
    }
    try {
      await this.loadSession(id, bytes);
      return false;
    } catch (e) {
      if (e instanceof ApiError) throw e;
      if (mem && this.sessions.get(id) === mem) this.deleteSession(id);
      void this.persist(id, null);
      return true;
    }
  }

  private fail(job: Job, e: unknown): void {
    const c = job.conv;
    c.busy = false;
    this.discard(c);
    if (c.id !== null) this.dropped.set(c.id, true);
    void job.unlock?.();
    const err = e instanceof ApiError ? e : new ApiError(500, `generation failed: ${e instanceof Error ? e.message : String(e)}`, 'server_error', null, 'internal_error');
    job.settle({ finishReason: 'abort', promptTokens: job.feed.length, completionTokens: job.stepper.stats().newTokens, ttftMs: job.ttftMs, durationMs: performance.now() - job.t0, cache: c.session.stats() });
    job.out.fail(err);
  }
}
