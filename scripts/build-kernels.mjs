// Compiles the AssemblyScript kernels (src/kernels/) into build/kernels.wasm (+ .wat for reading).
// Flags: SIMD128 and threads on; the memory is imported and shared (one WebAssembly.Memory for the
// main thread and every worker, up to the wasm32 ceiling of 65536 pages = 4 GiB); the stub
// runtime keeps no heap or stack in linear memory, so kernels only touch what they are passed.
import asc from 'assemblyscript/asc';
import { mkdirSync } from 'node:fs';

mkdirSync('build', { recursive: true });
const { error, stderr } = await asc.main([
  'src/kernels/index.ts',
  '--outFile', 'build/kernels.wasm',
  '--textFile', 'build/kernels.wat',
  '-O3', '--runtime', 'stub', '--noAssert', '--use', 'abort=',
  '--enable', 'simd', '--enable', 'threads',
  '--importMemory', '--sharedMemory', '--initialMemory', '2', '--maximumMemory', '65536',
]);
if (error) {
  console.error(stderr.toString());
  console.error(`build-kernels: ${error.message}`);
  process.exit(1);
}
console.log('build/kernels.wasm');
