import { checkCacheFits } from './cache/budget.js';
import { SlotBook } from './cache/book.js';
import { KVCache } from './cache/kvcache.js';
import { parsePolicy, type CachePolicy, type Forward, type PolicyOptions, type RunOptions } from './cache/policy.js';
import { encodeSnapshot, type DecodedSnapshot } from './cache/snapshot.js';
import { plainEvictions } from './cache/draft.js';
import { DEFAULT_CACHE, prefillChunkOf } from './defaults.js';
import { StreamlmError } from './errors.js';
import type { ForwardOptions, Transformer } from './models/transformer.js';
import { HiddenLog } from './models/hidden-log.js';
import type { MctpHeads } from './models/mctp.js';

export interface SessionOptions extends PolicyOptions {
  /** Cache policy: `dense`, `window:W`, `sink:S+W` or `recompute:W` (default `sink:4+1020`). */
  cache?: string;
  /** Prompt tokens per forward during prefill (default 64). */
  prefillChunk?: number;
  /** Slots for a dense cache, which never evicts (default: the model's trained context). */
  maxTokens?: number;
  /**
   * A pre-allocated cache (from `Model.allocCache`) to use instead of allocating one. The session
   * resets it and never frees it, so such sessions may be closed in any order.
   */
  kv?: KVCache;
  /**
   * Keep the final hidden states the model's MCTP heads draft from (for `--speculate mctp|auto`).
   * Off by default: it costs a final norm over every fed row and a copy per forward.
   */
  draftHeads?: boolean;
}

/** Cache occupancy, for status lines and metrics. */
export interface CacheStats { policy: string; length: number; sinks: number; seen: number; evicted: number; capacity: number; bytes: number }

/** What a session needs from its model, beyond the forward pass. */
export interface SessionHost {
  net: Transformer;
  /** Called once by close(). */
  release: () => void;
  /** Model.fingerprint, written into snapshots. */
  fingerprint: () => string;
  /** The model's MCTP heads, if it has them: the session then keeps the hidden states they draft from. */
  mctp?: MctpHeads | null;
}

/** Runs of consecutive physical slots in `order`, as [first slot, count]: one copy per run. */
function slotRuns(order: readonly number[]): [number, number][] {
  const runs: [number, number][] = [];
  for (const s of order) {
    const last = runs[runs.length - 1];
    if (last && last[0] + last[1] === s) last[1]++; else runs.push([s, 1]);
  }
  return runs;
}

/** A draft in flight (see Session.draft): its logits, and what to return to if it is rejected. */
interface Draft { n: number; high: number; length: number; logits: Float32Array; before: Float32Array | null; hidden: Float32Array | null; ids: readonly number[] }

/**
 * One stream of text through one model: the KV cache plus its eviction policy.
 * Per-token steps follow the paper exactly: the token attends to the cache and itself, is appended,
 * then the policy evicts. Prefill appends a chunk at once, so late tokens in a chunk may see up to
 * `prefillChunk − 1` extra recent tokens.
 */
export class Session {
  readonly policy: CachePolicy;
  readonly cache: KVCache;
  readonly prefillChunk: number;
  /** Tokens accepted but not yet fed; the next prefill or step feeds them first. */
  private pending: number[] = [];
  /** Logits of the last forward (predicting the next token), or null before the first. */
  private last: Float32Array | null = null;
  private draftState: Draft | null = null;
  private closed = false;
  /**
   * The model's MCTP heads and the final hidden states of the recently fed tokens they draft from
   * (null without heads, or under a policy that keeps no K/V and so cannot verify drafts).
   */
  readonly mctp: { heads: MctpHeads; log: HiddenLog } | null;
  /** The model has MCTP heads but this session was opened without `draftHeads`. */
  readonly headsUnused: boolean;

  constructor(private readonly host: SessionHost, opts: SessionOptions = {}) {
    this.policy = parsePolicy(opts.cache ?? DEFAULT_CACHE, opts);
    this.prefillChunk = prefillChunkOf(opts.prefillChunk);
    const net = host.net, hp = net.hp;
    const maxTokens = opts.maxTokens ?? hp.maxPositionEmbeddings;
    if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new StreamlmError(`maxTokens must be a positive integer, got ${opts.maxTokens}`, { field: 'maxTokens' });
    const capacity = this.policy.capacity(this.prefillChunk, maxTokens);
    const kvDim = hp.numKvHeads * hp.headDim;
    if (opts.kv) {
      const kv = opts.kv;
      if (kv.k.length !== hp.numLayers || kv.kvDim !== kvDim) throw new StreamlmError(`the given KV cache has ${kv.k.length} layers of width ${kv.kvDim}; this model needs ${hp.numLayers} of width ${kvDim}`, { field: 'kv' });
      if (kv.capacity < capacity) throw new StreamlmError(`the given KV cache has ${kv.capacity} slots; ${this.policy.name} with prefill chunk ${this.prefillChunk} needs ${capacity}`, { field: 'kv' });
      kv.reset();
      this.cache = kv;
    } else {
      checkCacheFits({ hp, policy: this.policy, prefillChunk: this.prefillChunk, capacity, count: 1, allocated: net.rt.bytesAllocated, threads: net.rt.threads });
      this.cache = new KVCache(net.rt, hp.numLayers, kvDim, capacity);
    }
    this.headsUnused = !opts.draftHeads && !!host.mctp;
    const heads = opts.draftHeads ? host.mctp ?? null : null;
    this.mctp = heads && this.policy.carriesKV ? { heads, log: new HiddenLog(heads.logRows, hp.hiddenSize) } : null;
  }

  /** Logits predicting the next token (those the last prefill or step returned), or null before any. */
  get logits(): Float32Array | null { return this.last; }

  /** Feeds prompt tokens (after any pending ones); returns the logits after the last one. */
  prefill(ids: readonly number[], opts: ForwardOptions = {}): Float32Array {
    if (ids.length === 0 && this.pending.length === 0) throw new StreamlmError('prefill needs at least one token', { field: 'prompt' });
    return this.feed([...this.takePending(), ...ids], opts);
  }

  /** Appends one token (after any pending ones); returns the logits predicting the next. */
  step(id: number, opts: ForwardOptions = {}): Float32Array {
    return this.feed([...this.takePending(), id], opts);
  }

  /** Runs tokens through the model in one forward and returns logits for each of them (M, vocab). */
  forwardAll(ids: readonly number[]): Float32Array {
    if (!this.policy.carriesKV) throw new StreamlmError(`forwardAll is not defined for ${this.policy.name}; use step()`, { field: 'cache' });
    if (this.pending.length) throw new StreamlmError('forwardAll with pending tokens; feed them with prefill() first', { field: 'pending' });
    return this.runPolicy(ids, {}, { chunk: Math.max(ids.length, 1), logits: 'all' });
  }

  /**
   * Queues tokens to feed before the next prefill or step, without running the model now: a reply's
   * last sampled token, or the rest of an interrupted prompt. Snapshots keep them.
   */
  defer(ids: readonly number[]): void { this.pending.push(...ids); }

  get pendingCount(): number { return this.pending.length; }

  /** Removes and returns the pending tokens, for a caller that schedules its own prefill chunks. */
  takePending(): number[] { const p = this.pending; this.pending = []; return p; }

  /**
   * Appends draft tokens in one forward and returns logits for each (ids.length, vocab), without
   * evicting after them, so rejecting them cannot have pushed a real token out. Follow with
   * `accept(n)`. For speculative decoding; needs a policy that keeps K/V and at most a prefill chunk.
   */
  draft(ids: readonly number[]): Float32Array {
    if (this.draftState) throw new StreamlmError('a draft is already open; accept() it first', { field: 'draft' });
    if (ids.length === 0 || ids.length > this.prefillChunk) throw new StreamlmError(`a draft needs 1..${this.prefillChunk} tokens (the prefill chunk), got ${ids.length}`, { field: 'draft' });
    if (this.draftLimit === 0) throw new StreamlmError(`${this.policy.name} cannot hold a draft to take back on this model; use a policy that keeps K/V (or, with ALiBi or a trained window, dense)`, { field: 'cache' });
    if (this.pending.length) this.feed(this.takePending(), {});
    this.policy.evict(this.cache.book);
    const high = this.cache.book.highWater, length = this.cache.length;
    const held: { rows: Float32Array | null } = { rows: null };
    const logits = this.runPolicy(ids, {}, { chunk: ids.length, logits: 'all', evictAfter: false }, this.mctp ? (_, rows) => { held.rows = rows.slice(); } : null);
    this.draftState = { n: ids.length, high, length, logits, before: this.last, hidden: held.rows, ids: [...ids] };
    return logits;
  }

  /** Keeps the first `n` tokens of the open draft and takes the rest back as if never fed, then evicts. */
  accept(n: number): void {
    const d = this.draftState;
    if (!d) throw new StreamlmError('no draft is open', { field: 'draft' });
    if (!Number.isInteger(n) || n < 0 || n > d.n) throw new StreamlmError(`accept(n) needs 0 <= n <= ${d.n}, got ${n}`, { field: 'draft' });
    this.draftState = null;
    if (n < d.n) this.cache.truncate(d.n - n, d.high);
    const V = this.host.net.hp.vocabSize;
    this.last = n === 0 ? d.before : d.logits.slice((n - 1) * V, n * V);
    if (this.mctp && d.hidden && n > 0) this.mctp.log.push(d.ids.slice(0, n), d.hidden.subarray(0, n * this.host.net.hp.hiddenSize));
    // Evict what plain decoding of the n kept tokens would have (with an evict chunk > 1 that is not
    // what one evict() of the longer book removes).
    const gone = plainEvictions(this.policy, d.length, n).after;
    if (gone > 0) this.cache.book.remove(this.policy.sinks, this.policy.sinks + gone);
  }

  /**
   * Most tokens one draft may hold (0: this session cannot verify drafts): within a prefill chunk
   * (and a dense cache's free slots),
   * short enough that evictions during it reach only old tokens, and 0 for recompute (no K/V to
   * keep) or for a bounded cache on a model whose mask cannot hide evicted tokens per row (ALiBi,
   * trained windows). See KVCache.appendDraft.
   */
  get draftLimit(): number {
    const p = this.policy;
    if (!p.carriesKV) return 0;
    if (p.keep === null) return Math.max(0, Math.min(this.prefillChunk, this.cache.capacity - this.cache.length));
    if (!this.host.net.draftMaskable) return 0;
    return Math.max(0, Math.min(this.prefillChunk, p.keep - p.sinks - p.evictChunk));
  }

  stats(): CacheStats {
    const c = this.cache;
    const sinks = Math.min(c.length, this.policy.sinks);
    return { policy: this.policy.name, length: c.length, sinks, seen: c.seen, evicted: c.evicted, capacity: c.capacity, bytes: c.bytes };
  }

  /**
   * Everything needed to continue this stream elsewhere, bit-identically: the model's fingerprint,
   * the policy, the slot book, the stream counters, pending tokens, the last logits and the K/V of
   * the kept tokens (none for recompute, which keeps ids only). See src/cache/snapshot.ts.
   */
  snapshot(opts: { extra?: unknown } = {}): Uint8Array {
    if (this.draftState) throw new StreamlmError('a draft is open; accept() it before a snapshot', { field: 'draft' });
    const c = this.cache, rt = this.host.net.rt, book = c.book.state();
    const kvBytes = this.policy.carriesKV ? 2 * c.numLayers * book.order.length * c.kvDim * 4 : 0;
    const kv = {
      bytes: kvBytes,
      write: (dst: Uint8Array): void => {
        if (kvBytes === 0) return;
        // One view of the memory (a shared memory's `buffer` getter is not free), one copy per run
        // of consecutive slots, straight into the snapshot.
        const mem = new Uint8Array(rt.memory.buffer), row = c.kvDim * 4;
        let o = 0;
        for (let l = 0; l < c.numLayers; l++)
          for (const base of [c.k[l], c.v[l]])
            for (const [slot, n] of slotRuns(book.order)) { dst.set(mem.subarray(base + slot * row, base + (slot + n) * row), o); o += n * row; }
      },
    };
    const bytes = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const stream = book.stream.subarray(0, c.capacity), token = book.token.subarray(0, c.capacity), group = book.group.subarray(0, c.capacity);
    return encodeSnapshot({
      format: 'streamlm-session', model: this.host.fingerprint(), policy: this.policy.name, evictChunk: this.policy.evictChunk,
      prefillChunk: this.prefillChunk, capacity: c.capacity, numLayers: c.numLayers, kvDim: c.kvDim, counters: c.counters,
      order: book.order, free: book.free, high: book.high, pending: [...this.pending], vocab: this.last?.length ?? 0,
      extra: opts.extra ?? null,
    }, { stream: bytes(stream), token: bytes(token), group: bytes(group), logits: this.last ? bytes(this.last) : new Uint8Array(0), kv });
  }

  /** Loads a decoded snapshot into this fresh session (see Model.restoreSession, which checks the header first). */
  restore(snap: DecodedSnapshot): void {
    const h = snap.header, c = this.cache, rt = this.host.net.rt;
    const corrupt = (what: string): StreamlmError => new StreamlmError(`not a usable session snapshot: ${what}`, { field: 'snapshot' });
    const f64 = (b: Uint8Array): Float64Array => new Float64Array(b.buffer, b.byteOffset, b.byteLength / 8);
    const i32 = (b: Uint8Array): Int32Array => new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    const [stream, token, group] = ['stream', 'token', 'group'].map((n) => snap.section(n));
    if (stream.length !== h.capacity * 8 || token.length !== h.capacity * 4 || group.length !== h.capacity * 4) throw corrupt('slot records do not match its capacity');
    const book = SlotBook.fromState({ order: h.order, free: h.free, high: h.high, stream: f64(stream), token: i32(token), group: i32(group) }, c.capacity);
    const kv = snap.view('kv');
    const row = c.kvDim * 4;
    const want = this.policy.carriesKV ? 2 * c.numLayers * h.order.length * row : 0;
    if (kv.length !== want) throw corrupt(`K/V section has ${kv.length} bytes, expected ${want}`);
    const counters = h.counters;
    if (!Array.isArray(counters) || counters.length !== 2 || !counters.every((x) => Number.isSafeInteger(x) && x >= 0) || counters[1] < h.order.length) throw corrupt('stream counters are invalid');
    const V = this.host.net.hp.vocabSize;
    if (!Array.isArray(h.pending) || h.pending.some((x) => !Number.isInteger(x) || x < 0 || x >= V)) throw corrupt('pending tokens are outside the vocabulary');
    const logits = snap.section('logits');
    if (logits.length !== h.vocab * 4 || (h.vocab !== 0 && h.vocab !== V)) throw corrupt('logits do not match the vocabulary');
    const mem = new Uint8Array(rt.memory.buffer);
    let o = 0;
    for (let l = 0; l < c.numLayers && want; l++)
      for (const base of [c.k[l], c.v[l]])
        for (const [slot, n] of slotRuns(h.order)) { mem.set(kv.subarray(o, o + n * row), base + slot * row); o += n * row; }
    c.restore(book, counters[0], counters[1]);
    this.pending = [...h.pending];
    this.last = h.vocab ? new Float32Array(logits.buffer, logits.byteOffset, h.vocab).slice() : null;
    // Slot positions and groups are rewritten from the book by the next append.
  }

  /**
   * Frees the cache memory. Sessions that allocated their own cache must be closed in reverse order
   * of creation; with a pre-allocated `kv` the cache is only handed back to its owner.
   */
  close(): void { if (!this.closed) { this.closed = true; this.host.release(); } }

  private feed(ids: readonly number[], opts: ForwardOptions): Float32Array {
    if (this.draftState) throw new StreamlmError('a draft is open; accept() it first', { field: 'draft' });
    this.last = this.runPolicy(ids, opts, { chunk: this.prefillChunk });
    return this.last;
  }

  /**
   * Runs the policy's forwards over `ids`. With MCTP heads each forward's final hidden states go to
   * `hidden` (default: the log, as fed tokens; a draft keeps them until accept()).
   */
  private runPolicy(ids: readonly number[], opts: ForwardOptions, run: RunOptions, hidden?: ((part: readonly number[], rows: Float32Array) => void) | null): Float32Array {
    const net = this.host.net, V = net.hp.vocabSize;
    for (const id of ids) if (!Number.isInteger(id) || id < 0 || id >= V) throw new StreamlmError(`token id ${id} is outside the vocabulary [0, ${V})`, { field: 'prompt' });
    const log = this.mctp?.log;
    const sink = hidden === undefined ? (log ? (part: readonly number[], rows: Float32Array): void => log.push(part, rows) : null) : hidden;
    const forward: Forward = (part, batch, logits) => net.forward(part, batch, { ...opts, logits, ...(sink ? { onHidden: (rows: Float32Array) => sink(part, rows) } : {}) });
    return this.policy.run(this.cache, ids, forward, run);
  }
}
