import { createHash, randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { SessionStore } from './types.js';

export interface RedisStoreOptions {
  /** Seconds a session is kept after its last turn (default: no expiry). */
  ttlS?: number;
  /**
   * How long a lock lives without renewal; renewed at a third of it while a turn runs (default
   * 10000 ms). A replica killed mid-turn leaves its lock behind: the session answers 409 for this long.
   */
  lockMs?: number;
}

// Deletes or extends the lock only when it still holds our token, so an expired-then-retaken lock
// of another replica is never touched.
const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
const RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
// Each session has a generation (`…:gen`), bumped by every write. Taking the lock reads it; a write
// under the lock lands while the lock still holds our token, or, when the lock has expired (a
// stalled process, a Redis outage) and no one holds it, while the generation is still the one read
// at lock time: no other replica wrote a turn meanwhile. Otherwise it is refused, so a replica that
// lost its lock never overwrites a later turn of another. A write without a lock (generation -1) lands.
const LOCK = "if redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return tonumber(redis.call('get', KEYS[2]) or '0') else return -1 end";
const FENCED_SET = "local l = redis.call('get', KEYS[2]) "
  + "if ARGV[4] ~= '-1' and l ~= ARGV[2] and (l or tonumber(redis.call('get', KEYS[3]) or '0') ~= tonumber(ARGV[4])) then return 0 end "
  + "if ARGV[3] == '0' then redis.call('set', KEYS[1], ARGV[1]) else redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[3]) end "
  + "redis.call('incr', KEYS[3]) if ARGV[3] ~= '0' then redis.call('expire', KEYS[3], ARGV[3]) end return 1";

/**
 * Snapshots in Redis, shared by replicas: `streamlm:<ns>:{<id>}` holds the bytes (SET replaces them
 * atomically), `…:lock` a per-session lock (SET NX PX with a random token) so two replicas never
 * run one session at once. `ns` is a digest of the model fingerprint and cache settings, so a
 * server of another model never reads these keys.
 */
export class RedisStore implements SessionStore {
  readonly name: string;
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly lockMs: number;
  /** The locks this process holds, by session id: their token and the generation when taken. */
  private readonly held = new Map<string, { token: string; gen: number }>();

  constructor(url: string, namespace: string, private readonly opts: RedisStoreOptions = {}) {
    this.name = url;
    // Fail a command fast while Redis is down (the request gets a 503) instead of queueing it forever.
    this.redis = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true, retryStrategy: (n) => Math.min(n * 100, 1000) });
    this.redis.on('error', () => { /* reported per command; reconnects on its own */ });
    this.prefix = `streamlm:${createHash('sha256').update(namespace).digest('hex').slice(0, 16)}:`;
    this.lockMs = opts.lockMs ?? 10_000;
  }

  /** Connects once, so a wrong address is reported at start. */
  async connect(): Promise<void> {
    try {
      await this.redis.connect();
    } catch (e) {
      this.redis.disconnect();   // else it keeps retrying in the background
      throw e;
    }
  }

  async get(id: string): Promise<Uint8Array | null> {
    const b = await this.redis.getBuffer(this.key(id));
    return b ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : null;
  }

  async put(id: string, bytes: Uint8Array): Promise<void> {
    const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const k = this.key(id);
    const held = this.held.get(id);
    const ok = await this.redis.eval(FENCED_SET, 3, k, k + ':lock', k + ':gen', b, held?.token ?? '', String(this.opts.ttlS ?? 0), String(held?.gen ?? -1));
    if (ok !== 1) throw new Error(`session '${id}': another replica took it after this one's lock expired; this turn is not saved`);
  }

  async delete(id: string): Promise<void> { const k = this.key(id); await this.redis.del(k, k + ':gen'); }

  /** The id in braces: a Redis Cluster hashes only that part, so a session's keys share a slot (the scripts read several). */
  private key(id: string): string { return `${this.prefix}{${id}}`; }

  async lock(id: string): Promise<(() => Promise<void>) | null> {
    const key = this.key(id) + ':lock';
    const token = randomBytes(12).toString('hex');
    const gen = await this.redis.eval(LOCK, 2, key, this.key(id) + ':gen', token, this.lockMs);
    if (typeof gen !== 'number' || gen < 0) return null;
    this.held.set(id, { token, gen });
    const renew = setInterval(() => { this.redis.eval(RENEW, 1, key, token, this.lockMs).catch(() => {}); }, this.lockMs / 3);
    renew.unref();
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      clearInterval(renew);
      if (this.held.get(id)?.token === token) this.held.delete(id);
      // If Redis is down the lock simply expires after lockMs.
      await this.redis.eval(RELEASE, 1, key, token).catch(() => {});
    };
  }

  async close(): Promise<void> { this.redis.disconnect(); return Promise.resolve(); }
}
