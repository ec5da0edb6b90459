// Layout of the pool's control block: one SharedArrayBuffer that the main thread and every worker
// read. A dispatch writes the op and its arguments, then bumps GEN; workers answer by counting
// PENDING down to 0.

/** Int32 slots. */
export const GEN = 0;      // dispatch generation; workers wake on change
export const PENDING = 1;  // workers that have not finished the current dispatch
export const OP = 2;       // index into OP_NAMES, or EXIT
export const NTH = 3;      // threads taking part (main thread is tid 0)
export const FAILED = 4;   // set to 1 + tid by a worker whose kernel threw
export const EXIT = -1;

/** Float64 slots start here (byte offset); f64 holds every u32 pointer and every f32 exactly. */
export const ARGS_BYTE = 64;
export const MAX_ARGS = 24;
export const CONTROL_BYTES = ARGS_BYTE + MAX_ARGS * 8;

/**
 * How long a waiting thread spins (checking the clock every 256 loads) before it sleeps in
 * Atomics.wait. A decode step dispatches ~5 times per layer with a few to tens of microseconds of
 * single-threaded work in between; spinning through that gap saves a futex wake (5-50 us) per
 * dispatch. Longer spins would only burn a core that an oversubscribed machine needs elsewhere.
 */
export const SPIN_MS = 0.2;

/** Spins until `a[i] !== value` or SPIN_MS pass; then sleeps until it changes. Returns the new value. */
export function awaitChange(a: Int32Array, i: number, value: number, sleepMs = Infinity): number {
  let v = Atomics.load(a, i);
  if (v !== value) return v;
  const t0 = performance.now();
  for (let n = 1; ; n++) {
    v = Atomics.load(a, i);
    if (v !== value) return v;
    if ((n & 255) === 0 && performance.now() - t0 > SPIN_MS) break;
  }
  for (;;) {
    Atomics.wait(a, i, value, sleepMs);
    v = Atomics.load(a, i);
    if (v !== value) return v;
  }
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
