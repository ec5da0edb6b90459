import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { StreamlmError } from '../errors.js';
import { ApiError } from './errors.js';

export interface AuthOptions {
  /** Accepted API keys; empty: no auth (every request is the one anonymous caller). */
  keys: string[];
  /** Completions running at once per key; one more is a 429 (default unlimited). */
  maxConcurrent?: number;
}

/** Who made a request: the prefix that keeps their session ids apart from other keys'. */
export interface Caller { namespace: string; key: string }

const ANONYMOUS: Caller = { namespace: '', key: '' };

/**
 * `--api-key` (or STREAMLM_API_KEY): one key or several, comma-separated. A key is 16+ printable
 * characters without spaces or commas, so a typo like `--api-key --port` is refused, not accepted.
 */
export function parseApiKeys(spec: string | undefined, field = '--api-key'): string[] {
  if (spec === undefined) return [];
  const keys = spec.split(',').map((k) => k.trim());
  for (const k of keys) {
    if (!/^[\x21-\x7e]{16,}$/.test(k)) throw new StreamlmError(`an API key must be 16 or more printable characters without spaces (several: comma-separated), got '${k.slice(0, 4)}…' of ${k.length}`, { field });
  }
  return keys;
}

/**
 * Bearer-token auth of the /v1 routes, per-key session namespaces and per-key concurrency. Keys are
 * compared through their SHA-256 digests in constant time, and a session id is prefixed with a
 * digest of its key, so one key can neither read nor continue another key's sessions.
 */
export class Auth {
  private readonly digests: Buffer[];
  private readonly running = new Map<string, number>();
  private readonly maxConcurrent: number;

  constructor(private readonly opts: AuthOptions) {
    this.digests = opts.keys.map(digest);
    this.maxConcurrent = opts.maxConcurrent ?? Infinity;
    if (!(this.maxConcurrent >= 1)) throw new StreamlmError(`expected a positive integer, got ${opts.maxConcurrent}`, { field: '--max-concurrent-per-key' });
  }

  get enabled(): boolean { return this.digests.length > 0; }

  /** The caller of `req`, or a 401 ApiError (OpenAI's shape) when keys are set and it has none of them. */
  check(req: IncomingMessage): Caller {
    if (!this.enabled) return ANONYMOUS;
    const h = req.headers.authorization ?? '';
    const m = /^Bearer +(\S+) *$/i.exec(h);
    if (!m) throw new ApiError(401, 'You didn\'t provide an API key: send "Authorization: Bearer KEY"', 'invalid_request_error', null, 'missing_api_key');
    const d = digest(m[1]);
    if (!this.digests.some((k) => timingSafeEqual(k, d))) throw new ApiError(401, 'Incorrect API key provided', 'invalid_request_error', null, 'invalid_api_key');
    return { namespace: `k${d.toString('hex').slice(0, 16)}~`, key: d.toString('hex') };
  }

  /** The engine's id of the caller's session `id`. */
  scope(caller: Caller, id: string): string { return caller.namespace + id; }

  /** Counts a running completion of `caller`; a 429 when it has `maxConcurrent` already. Returns the release. */
  enter(caller: Caller): () => void {
    const n = this.running.get(caller.key) ?? 0;
    if (n >= this.maxConcurrent) throw new ApiError(429, `this key already has ${n} requests running (the limit); retry when one ends`, 'rate_limit_error', null, 'rate_limit_exceeded');
    this.running.set(caller.key, n + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (this.running.get(caller.key) ?? 1) - 1;
      if (left > 0) this.running.set(caller.key, left); else this.running.delete(caller.key);
    };
  }
}

function digest(key: string): Buffer { return createHash('sha256').update(key).digest(); }
