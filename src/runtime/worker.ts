// One pool thread: instantiates the kernels on the shared memory, then loops on the control block.
import { parentPort, workerData } from 'node:worker_threads';
import { ARGS_BYTE, EXIT, FAILED, GEN, MAX_ARGS, NTH, OP, PENDING, awaitChange, type WorkerInit } from './control.js';
import { OP_NAMES, PARALLEL_OPS, callParallel, type Kernels } from './kernels.js';

const init = workerData as WorkerInit;
const instance = await WebAssembly.instantiate(init.module, { env: { memory: init.memory } });
const k = instance.exports as unknown as Kernels;
k.set_scratch(init.scratchPtr, init.scratchBytes);
const fns = OP_NAMES.map((name) => k[name] as (...a: number[]) => void);
const arity = OP_NAMES.map((name) => PARALLEL_OPS[name]);

const ctl = new Int32Array(init.control);
const args = new Float64Array(init.control, ARGS_BYTE, MAX_ARGS);
const tid = init.tid;
let seen = Atomics.load(ctl, GEN);
parentPort!.postMessage('ready');

for (;;) {
  seen = awaitChange(ctl, GEN, seen);
  const op = ctl[OP];
  if (op === EXIT) break;
  const nth = ctl[NTH];
  if (tid < nth) {
    try {
      callParallel(fns[op], args, arity[op], tid, nth);
    } catch (e) {
      Atomics.store(ctl, FAILED, tid + 1);
      console.error(`streamlm worker ${tid}: ${OP_NAMES[op]} failed:`, e);
    }
  }
  if (Atomics.sub(ctl, PENDING, 1) === 1) Atomics.notify(ctl, PENDING);
}
