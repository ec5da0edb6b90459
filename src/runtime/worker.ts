// The pool thread's program, as source text: `async function main(init, ready)`, which each platform
// (platform/node.ts, platform/web.ts) wraps in its own worker start-up. Text rather than a module
// file so that workers start in tens of milliseconds from src/ (tests under tsx, which Node 20 does
// not apply inside workers), dist/ and the browser bundle alike; the helpers it needs are spliced in
// from their (self-contained) compiled functions.
import { ARGS_BYTE, CLAIM, DONE, FAILED, GEN, MAX_ARGS, NAP, OP, QUIT, RAN, SLEEPERS, SPIN_MS, STALL, awaitChange, claimChunk } from './control.js';
import { OP_NAMES, PARALLEL_OPS, callParallel } from './kernels.js';

/** `init`: WorkerInit (control.ts). The worker calls `ready()` once its kernels are instantiated. */
export function workerSource(): string {
  return `${awaitChange.toString()}
${claimChunk.toString()}
${callParallel.toString()}
async function main(init, ready) {
  const instance = await WebAssembly.instantiate(init.module, { env: { memory: init.memory } });
  const k = instance.exports;
  k.set_scratch(init.scratchPtr, init.scratchBytes);
  const names = ${JSON.stringify(OP_NAMES)};
  const fns = names.map((name) => k[name]);
  const arity = names.map((name) => (${JSON.stringify(PARALLEL_OPS)})[name]);
  const ctl = new Int32Array(init.control);
  const args = new Float64Array(init.control, ${ARGS_BYTE}, ${MAX_ARGS});
  const tid = init.tid;
  let seen = Atomics.load(ctl, ${GEN});
  ready();
  for (;;) {
    seen = awaitChange(ctl, ${GEN}, seen, ${SPIN_MS}, Infinity, ${SLEEPERS});
    if (Atomics.load(ctl, ${QUIT})) break;
    const stall = Atomics.load(ctl, ${STALL});
    if (stall > 0) Atomics.wait(ctl, ${NAP}, 0, stall);
    for (let v = claimChunk(ctl, ${CLAIM}); v >= 0; v = claimChunk(ctl, ${CLAIM})) {
      const op = ctl[${OP}], chunks = v >>> 16;
      try {
        callParallel(fns[op], args, arity[op], v & 0xffff, chunks);
      } catch (e) {
        Atomics.store(ctl, ${FAILED}, tid + 1);
        console.error('streamlm worker ' + tid + ': ' + names[op] + ' failed:', e);
      }
      ctl[${RAN} + tid]++;
      if (Atomics.add(ctl, ${DONE}, 1) + 1 === chunks) Atomics.notify(ctl, ${DONE});
    }
  }
}
`;
}
