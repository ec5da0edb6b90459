// Layout of the pool's control block: one SharedArrayBuffer that the main thread and every worker
// read. A dispatch writes the op and its arguments, publishes a chunk counter (CLAIM), then bumps
// GEN. Every thread, the caller included, takes chunks from CLAIM until none are left and counts
// DONE up; the caller returns when DONE reaches the chunk count. So a worker that the OS has not
// scheduled in time delays nothing: the caller runs the chunks it has not taken (issue 11, item 3).

/** Int32 slots. */
export const GEN = 0;       // dispatch generation; sleeping workers wake on change
export const CLAIM = 1;     // (chunks << 16) | next chunk to take; taken by compare-exchange only
export const DONE = 2;      // chunks finished in the current dispatch
export const OP = 3;        // index into OP_NAMES
export const FAILED = 4;    // set to 1 + tid by a worker whose kernel threw
export const SLEEPERS = 5;  // workers inside Atomics.wait on GEN (the caller notifies only if > 0)
export const QUIT = 6;      // 1: workers exit
export const STALL = 7;     // ms each worker sleeps after waking, before taking chunks (tests, benches)
export const NAP = 8;       // never written: the slot a stalled worker waits on
/** Chunks run by thread t, at RAN + t (statistics for tests and benches). */
export const RAN = 16;
export const MAX_THREADS = 256;
/** Most chunks in one dispatch: CLAIM keeps the count in 15 bits. */
export const MAX_CHUNKS = 32767;

/** Float64 slots start here (byte offset); f64 holds every u32 pointer and every f32 exactly. */
export const ARGS_BYTE = (RAN + MAX_THREADS) * 4;
export const MAX_ARGS = 24;
export const CONTROL_BYTES = ARGS_BYTE + MAX_ARGS * 8;

/**
 * How long a waiting thread spins (checking the clock every 256 loads) before it sleeps in
 * Atomics.wait. A decode step dispatches ~5 times per layer with a few to tens of microseconds of
 * single-threaded work in between; spinning through that gap saves a futex wake (5-50 us) per
 * dispatch. Longer spins would only burn a core that an oversubscribed machine needs elsewhere.
 */
export const SPIN_MS = 0.2;

/**
 * Takes the next chunk of the current dispatch: returns CLAIM's value before the take (chunk
 * `v & 0xffff` of `v >>> 16`), or -1 when every chunk is taken. A stale thread cannot take a
 * chunk of a finished dispatch (its CLAIM is exhausted); a take is valid for whatever dispatch
 * is current, whose op and arguments stay put until its DONE count completes.
 */
export function claimChunk(ctl: Int32Array, at: number): number {
  for (;;) {
    const v = Atomics.load(ctl, at);
    if ((v & 0xffff) >= v >>> 16) return -1;
    if (Atomics.compareExchange(ctl, at, v, v + 1) === v) return v;
  }
}

/**
 * Spins until `a[i] !== value` or `spinMs` pass; then sleeps until it changes, counting itself in
 * `a[sleepers]` (when >= 0) so the writer knows to notify. Returns the new value.
 */
export function awaitChange(a: Int32Array, i: number, value: number, spinMs: number, sleepMs: number, sleepers: number): number {
  let v = Atomics.load(a, i);
  if (v !== value) return v;
  const t0 = performance.now();
  for (let n = 1; ; n++) {
    v = Atomics.load(a, i);
    if (v !== value) return v;
    if ((n & 255) === 0 && performance.now() - t0 > spinMs) break;
  }
  if (sleepers >= 0) Atomics.add(a, sleepers, 1);
  for (;;) {
    Atomics.wait(a, i, value, sleepMs);
    v = Atomics.load(a, i);
    if (v !== value) break;
  }
  if (sleepers >= 0) Atomics.sub(a, sleepers, 1);
  return v;
}

/** Message a worker receives at start. */
export interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: SharedArrayBuffer;
  tid: number;
  scratchPtr: number;
  scratchBytes: number;
}
