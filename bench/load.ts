// Load and faults (issue 17): N `streamlm serve` replicas (child processes) on one redis-server on
// loopback, both started here; --sessions clients hold multi-turn conversations (streamed
// /v1/completions with a session id) for --minutes, each turn sent to a random live replica (the
// client is the load balancer). Faults, once each: random client disconnects mid-stream, one
// replica SIGKILLed while turns stream and restarted on its port, Redis restarted (SIGTERM, which
// saves its dump, then started again on it).
//
// Lost turns: every reply carries X-Session-Turns, the turns the session had saved before this one.
// A client knows `known` (turns it saw complete) and `maybe` (turns cut off: its own disconnects,
// a killed replica, a 5xx after the text, each of which the server may or may not have kept). A
// header below `known` means completed turns are missing: lost_turns counts them. Each session
// ends with a one-token check turn, so a loss in a session's last turns is counted too.
//
// Errors are expected when the request overlaps a fault window (from the fault to the end of its
// recovery, plus the lock lifetime a killed replica leaves behind) and have a documented kind:
// connection refused/reset by the killed replica, 503 store_unavailable while Redis is down, 409
// session_busy (the dead replica's lock, or right after the client's own disconnect; retried).
// Anything else is unexpected.
//
// Usage: npm run bench:load -- [--minutes 10] [--replicas 2] [--sessions 64] [--model DIR]
//        [--cache sink:4+252] [--max-sessions 32] [--lock-ms 10000] [--think-s 3-10] [--json] [--out DIR]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchArgs } from './common.js';

const args = benchArgs(process.argv.slice(2));
const ROOT = join(import.meta.dirname, '..');
const minutes = Number(args.get('minutes') ?? 10);
const nReplicas = Number(args.get('replicas') ?? 2);
const nSessions = Number(args.get('sessions') ?? 64);
const cache = args.get('cache') ?? 'sink:4+252';
const maxSessions = Number(args.get('max-sessions') ?? 32);
const lockMs = Number(args.get('lock-ms') ?? 10_000);
const modelDir = args.get('model') ?? join(ROOT, 'models', 'novels-8m-sink');
const json = args.has('json');
const work = args.get('out') ?? mkdtempSync(join(tmpdir(), 'streamlm-load-'));
const durationMs = minutes * 60_000;
const [thinkLo, thinkHi] = (args.get('think-s') ?? '3-10').split('-').map((x) => Number(x) * 1000);
const MAIN = ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts')];
if (spawnSync('redis-server', ['--version']).status !== 0) { console.error('bench:load needs redis-server (apt-get install redis-server)'); process.exit(1); }

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const now = (): number => performance.now();
const rand = (lo: number, hi: number): number => lo + Math.random() * (hi - lo);
/** When the clients start (reset then); times in the report are seconds from it. */
let tStart = now();
const log = (s: string): void => { if (!json || args.has('verbose')) console.error(`[load ${((now() - tStart) / 1000).toFixed(0).padStart(4)} s] ${s}`); };

async function freePort(): Promise<number> {
  return new Promise((done) => { const s = createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => done(p)); }); });
}

// --- Redis

const redisPort = await freePort();
const redisUrl = `redis://127.0.0.1:${redisPort}/0`;
let redis: ChildProcess;
function startRedis(): ChildProcess {
  // A dump on shutdown (save points configured, none reached in a run) keeps the sessions across
  // the restart without writing every snapshot to disk as it changes; production uses AOF.
  return spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', work, '--dbfilename', 'dump.rdb',
    '--save', '3600 1', '--appendonly', 'no', '--rdbcompression', 'no'], { stdio: 'ignore' });
}
/** Waits until Redis answers PING (and has loaded its dump), without blocking the clients' event loop. */
async function redisReady(): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    const pong = await new Promise<boolean>((done) => {
      const sock = connect(redisPort, '127.0.0.1');
      sock.setTimeout(1000, () => { sock.destroy(); done(false); });
      sock.on('error', () => done(false));
      sock.on('connect', () => sock.write('PING\r\n'));
      sock.on('data', (d) => { sock.destroy(); done(d.toString().startsWith('+PONG')); });
    });
    if (pong) return;
    await sleep(100);
  }
  throw new Error('redis-server did not start');
}

// --- replicas

interface Replica { index: number; port: number; base: string; proc: ChildProcess | null; up: boolean; pid: number; rss: { t: number; mb: number; pid: number }[] }
const replicas: Replica[] = [];
const internalErrors: string[] = [];

async function startReplica(r: Replica): Promise<void> {
  const out = createWriteStream(join(work, `replica-${r.index}.log`), { flags: 'a' });
  const proc = spawn(process.execPath, [...MAIN, 'serve', '--model', modelDir, '--port', String(r.port), '--cache', cache, '--threads', '1',
    '--max-sessions', String(maxSessions), '--model-id', 'load', '--session-store', redisUrl, '--session-lock-ms', String(lockMs)], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  r.proc = proc;
  await new Promise<void>((done, fail) => {
    let head = '';
    proc.stderr.on('data', (d: Buffer) => {
      out.write(d);
      const s = d.toString();
      for (const line of s.split('\n')) if (/internal error|generation failed/.test(line)) internalErrors.push(`replica ${r.index}: ${line}`);
      if (!r.up) { head += s; if (/serving .* at http/.test(head)) { r.up = true; done(); } }
    });
    proc.once('exit', (code, sig) => { r.up = false; if (!head.includes('serving')) fail(new Error(`replica ${r.index} exited (${code ?? sig}): ${head}`)); });
  });
  r.pid = proc.pid!;
}

function rssMbOf(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch { return null; }
}

// --- fault windows

interface Fault { kind: 'replica_killed' | 'redis_restart'; replica?: number; t0: number; t1: number }
const faults: Fault[] = [];
/** How long after a fault's recovery its errors still count as its own: a dead replica's lock, reconnects. */
const grace = lockMs + 5000;
function inFault(kind: Fault['kind'], a: number, b: number, replica?: number): boolean {
  return faults.some((f) => f.kind === kind && (replica === undefined || f.replica === replica) && a <= f.t1 + grace && b >= f.t0 - 1000);
}

// --- clients

const PROMPTS = readFileSync(join(ROOT, 'models', 'samples', 'pride-and-prejudice.txt'), 'utf8').split(/(?<=[.!?])\s+/).filter((s) => s.length > 20 && s.length < 200);
const stats = { requests: 0, turns_completed: 0, turns_disconnected: 0, turns_cut: 0, lost_turns: 0, extra_turns: 0, busy_retries: 0 };
const expected = new Map<string, number>();
const unexpected = new Map<string, number>();
const unexpectedSamples: string[] = [];
const ttft: number[] = [];
const bump = (m: Map<string, number>, k: string): void => { m.set(k, (m.get(k) ?? 0) + 1); };

interface Client { id: string; known: number; maybe: number; lastAbort: number; last: string }

/** One turn; returns false when the request should be retried (connection refused, 409). */
async function turn(c: Client, prompt: string, maxTokens: number, disconnectAfter: number | null): Promise<'done' | 'retry' | 'cut'> {
  const live = replicas.filter((r) => r.up);
  const r = (live.length ? live : replicas)[Math.floor(Math.random() * (live.length || replicas.length))];
  const t0 = now();
  stats.requests++;
  const ac = new AbortController();
  let res: Response;
  const classify = (what: string, kinds: { kind: string; ok: boolean }): void => {
    if (kinds.ok) bump(expected, kinds.kind);
    else { bump(unexpected, what); if (unexpectedSamples.length < 40) unexpectedSamples.push(`${what} (replica ${r.index}, t=${((t0 - tStart) / 1000).toFixed(1)} s to ${((now() - tStart) / 1000).toFixed(1)} s, after ${c.last})`); }
    c.last = `${what} at ${((now() - tStart) / 1000).toFixed(1)} s`;
  };
  // Connections refused or broken are expected only from the killed replica, around its kill.
  const netError = (): { kind: string; ok: boolean } => ({ kind: 'connection to the killed replica', ok: inFault('replica_killed', t0, now(), r.index) });
  try {
    res = await fetch(`${r.base}/v1/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, signal: ac.signal,
      body: JSON.stringify({ model: 'load', prompt: ' ' + prompt, max_tokens: maxTokens, temperature: 0.8, seed: Math.floor(Math.random() * 1e9), stream: true, ignore_eos: true, session: c.id }),
    });
  } catch (e) {
    classify(`fetch: ${(e as Error).cause instanceof Error ? ((e as Error).cause as Error).message : (e as Error).message}`, netError());
    // The request may have reached the server before it died.
    c.maybe++;
    return 'retry';
  }
  if (res.status !== 200) {
    const body = await res.json().catch(() => ({})) as { error?: { code?: string } };
    const code = `${res.status} ${body.error?.code ?? ''}`.trim();
    if (res.status === 409) {
      stats.busy_retries++;
      classify(code, { kind: '409 session_busy', ok: inFault('replica_killed', t0, now()) || inFault('redis_restart', t0, now()) || now() - c.lastAbort < 5000 });
      return 'retry';
    }
    // While Redis is down a turn cannot take its lock; while a replica is down the other carries
    // all sessions, and a request that waits past the queue timeout for a cache is told so.
    const ok = res.status === 503 && ((body.error?.code === 'store_unavailable' && inFault('redis_restart', t0, now()))
      || (body.error?.code === 'server_overloaded' && inFault('replica_killed', t0, now())));
    classify(code, { kind: code, ok });
    return 'retry';
  }
  const turns = Number(res.headers.get('x-session-turns'));
  if (turns < c.known) { stats.lost_turns += c.known - turns; log(`session ${c.id}: server has ${turns} turns, the client saw ${c.known} complete`); }
  else if (turns > c.known + c.maybe) { stats.extra_turns += turns - c.known - c.maybe; }
  c.known = turns;
  c.maybe = 0;
  let chunks = 0;
  let finished = false;
  let failed: string | null = null;
  const dec = new TextDecoder();
  let buf = '';
  try {
    for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += dec.decode(part, { stream: true });
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const ev = buf.slice(0, i).replace(/^data: /, '');
        buf = buf.slice(i + 2);
        if (ev === '[DONE]') { finished = true; continue; }
        const o = JSON.parse(ev) as { choices?: { text: string; finish_reason: string | null }[]; error?: { code?: string } };
        if (o.error) { failed = o.error.code ?? 'error'; continue; }
        if (chunks++ === 0) ttft.push(now() - t0);
      }
      if (disconnectAfter !== null && chunks >= disconnectAfter) { ac.abort(); break; }
    }
  } catch (e) {
    if (!ac.signal.aborted) { failed = `stream: ${(e as Error).message}`; classify(failed, netError()); failed = 'net'; }
  }
  if (failed && failed !== 'net') classify(`stream error ${failed}`, { kind: `stream ${failed}`, ok: failed === 'store_unavailable' && inFault('redis_restart', t0, now()) });
  if (finished && !failed) { c.known++; stats.turns_completed++; c.last = 'a completed turn'; return 'done'; }
  c.maybe++;
  if (ac.signal.aborted) { stats.turns_disconnected++; c.lastAbort = now(); c.last = `a disconnect at ${((now() - tStart) / 1000).toFixed(1)} s`; return 'cut'; }
  stats.turns_cut++;
  return 'cut';
}

async function client(c: Client, until: number): Promise<void> {
  await sleep(rand(0, 3000));
  while (now() < until) {
    const prompt = PROMPTS[Math.floor(Math.random() * PROMPTS.length)];
    const disconnect = Math.random() < 0.1 ? 1 + Math.floor(Math.random() * 8) : null;
    const maxTokens = 8 + Math.floor(Math.random() * 40);
    for (let attempt = 0; attempt < 200 && (await turn(c, prompt, maxTokens, disconnect)) === 'retry'; attempt++) await sleep(250);
    await sleep(rand(thinkLo, thinkHi));   // the user reads and types
  }
}

// --- run

// Children never outlive the bench, whatever ends it.
process.on('exit', () => { redis?.kill('SIGKILL'); for (const r of replicas) r.proc?.kill('SIGKILL'); });
process.on('uncaughtException', (e) => { console.error(e); process.exit(2); });
redis = startRedis();
await redisReady();
for (let i = 0; i < nReplicas; i++) replicas.push({ index: i, port: await freePort(), base: '', proc: null, up: false, pid: 0, rss: [] });
for (const r of replicas) r.base = `http://127.0.0.1:${r.port}`;
await Promise.all(replicas.map(startReplica));
log(`redis at ${redisUrl}, ${nReplicas} replicas up (${cache}, --max-sessions ${maxSessions}); logs in ${work}`);

tStart = now();
const loadStart = loadavg().map((x) => +x.toFixed(2));
const until = tStart + durationMs;
const sampler = setInterval(() => {
  for (const r of replicas) if (r.up) { const mb = rssMbOf(r.pid); if (mb !== null) r.rss.push({ t: (now() - tStart) / 1000, mb, pid: r.pid }); }
}, 5000);
const clients: Client[] = Array.from({ length: nSessions }, (_, i) => ({ id: `load-${i}-${Math.random().toString(36).slice(2, 8)}`, known: 0, maybe: 0, lastAbort: -Infinity, last: 'none' }));
const running = Promise.all(clients.map((c) => client(c, until)));

const faultPlan = (async () => {
  await sleep(durationMs * 0.3);
  const victim = replicas[0];
  const f: Fault = { kind: 'replica_killed', replica: 0, t0: now(), t1: Infinity };
  faults.push(f);
  victim.up = false;
  victim.proc!.kill('SIGKILL');
  log(`replica 0 killed (SIGKILL)`);
  await sleep(5000);
  await startReplica(victim);
  f.t1 = now();
  log(`replica 0 restarted (pid ${victim.pid})`);
  await sleep(durationMs * 0.3);
  const g: Fault = { kind: 'redis_restart', t0: now(), t1: Infinity };
  faults.push(g);
  const exited = new Promise((ok) => redis.once('exit', ok));
  redis.kill('SIGTERM');
  await exited;
  log('redis stopped (SIGTERM: dump saved)');
  await sleep(3000);
  redis = startRedis();
  await redisReady();
  g.t1 = now();
  log('redis restarted');
})();

await Promise.all([running, faultPlan]);
// Every session's last word: a one-token turn whose X-Session-Turns shows what was kept.
await Promise.all(clients.map(async (c) => { for (let i = 0; i < 100 && (await turn(c, 'The end.', 1, null)) === 'retry'; i++) await sleep(250); }));
clearInterval(sampler);

for (const r of replicas) r.proc?.kill('SIGTERM');
await Promise.all(replicas.map((r) => new Promise((ok) => { if (!r.proc || r.proc.exitCode !== null || r.proc.signalCode !== null) ok(null); else r.proc.once('exit', ok); })));
redis.kill('SIGTERM');

// --- report

const pct = (xs: number[], p: number): number | null => { if (!xs.length) return null; const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
const warmS = Math.min(120, durationMs / 1000 * 0.2);
/** RSS drift of each process (a restarted replica is a new one): median of its last minute over its first minute after warm-up. */
const drift = replicas.flatMap((r) => [...new Set(r.rss.map((x) => x.pid))].map((pid) => {
  const xs = r.rss.filter((x) => x.pid === pid);
  const start = xs[0]?.t ?? 0;
  const after = xs.filter((x) => x.t >= start + warmS);
  if (after.length < 8) return null;
  // Medians: RSS breathes with garbage collection of the snapshot buffers (a few MB each).
  const median = (ys: typeof xs): number => { const v = ys.map((y) => y.mb).sort((a, b) => a - b); return (v[(v.length - 1) >> 1] + v[v.length >> 1]) / 2; };
  const head = median(after.filter((x) => x.t < after[0].t + 60));
  const tail = median(after.filter((x) => x.t > after[after.length - 1].t - 60));
  const mbs = after.map((x) => x.mb);
  return { replica: r.index, pid, from_s: +after[0].t.toFixed(0), to_s: +after[after.length - 1].t.toFixed(0), rss_first_mb: +head.toFixed(1), rss_last_mb: +tail.toFixed(1),
    rss_min_mb: +Math.min(...mbs).toFixed(1), rss_max_mb: +Math.max(...mbs).toFixed(1), drift: +((tail - head) / head).toFixed(4) };
}).filter((x) => x !== null));
const rssDrift = drift.length ? drift.reduce((a, d) => (Math.abs(d.drift) > Math.abs(a) ? d.drift : a), 0) : null;
const report = {
  cpu: cpus()[0]?.model, load_start: loadStart, load_end: loadavg().map((x) => +x.toFixed(2)),
  minutes, replicas: nReplicas, sessions: nSessions, cache, max_sessions: maxSessions, lock_ms: lockMs, model: modelDir,
  ...stats,
  expected_errors: Object.fromEntries(expected), unexpected_errors: [...unexpected.values()].reduce((a, b) => a + b, 0) + internalErrors.length,
  unexpected_by_kind: Object.fromEntries(unexpected), unexpected_samples: [...unexpectedSamples, ...internalErrors.slice(0, 10)],
  ttft_ms_p50: pct(ttft, 0.5), ttft_ms_p99: pct(ttft, 0.99),
  faults: faults.map((f) => ({ kind: f.kind, replica: f.replica, at_s: +((f.t0 - tStart) / 1000).toFixed(1), down_s: +((f.t1 - f.t0) / 1000).toFixed(1) })),
  rss_drift: rssDrift, rss_drift_by_process: drift,
  rss_mb: replicas.map((r) => r.rss.map((x) => [+x.t.toFixed(0), +x.mb.toFixed(1)])),
  logs: work,
};
if (json) console.log(JSON.stringify(report));
const ok = report.lost_turns === 0 && report.unexpected_errors === 0 && rssDrift !== null && Math.abs(rssDrift) <= 0.05;
console.error(`
| measure | value | goal |
|---|---|---|
| requests / turns completed / disconnected / cut by faults | ${report.requests} / ${report.turns_completed} / ${report.turns_disconnected} / ${report.turns_cut} | |
| lost turns | ${report.lost_turns} | 0 |
| unexpected errors | ${report.unexpected_errors} ${JSON.stringify(report.unexpected_by_kind)} | 0 |
| expected errors (faults) | ${JSON.stringify(report.expected_errors)} | |
| TTFT p50 / p99 | ${report.ttft_ms_p50?.toFixed(0)} / ${report.ttft_ms_p99?.toFixed(0)} ms | |
| RSS drift after warm-up (worst process) | ${rssDrift === null ? 'n/a' : (rssDrift * 100).toFixed(2) + '%'} | within 5% |
${ok ? 'all goals met' : 'GOALS MISSED'}`);
process.exit(ok ? 0 : 1);
