// Compiles the AssemblyScript kernels (src/kernels/) twice, from one source:
//   build/kernels.wasm          SIMD128 (every runtime we support), and
//   build/kernels-relaxed.wasm  SIMD128 + relaxed SIMD (fused multiply-add, relaxed dot products),
// where kernels branch on the compile-time constant ASC_FEATURE_RELAXED_SIMD. The Runtime picks the
// relaxed build only where the engine validates it. Both have threads on; the memory is imported and
// shared (one WebAssembly.Memory for the main thread and every worker, up to the wasm32 ceiling of
// 65536 pages = 4 GiB); the stub runtime keeps no heap or stack in linear memory, so kernels only
// touch what they are passed. The .wat files are for reading.
import asc from 'assemblyscript/asc';
import { mkdirSync } from 'node:fs';

mkdirSync('build', { recursive: true });
const builds = [
  { name: 'kernels', features: [] },
  { name: 'kernels-relaxed', features: ['--enable', 'relaxed-simd'] },
];
for (const { name, features } of builds) {
  const { error, stderr } = await asc.main([
    'src/kernels/index.ts',
    '--outFile', `build/${name}.wasm`,
    '--textFile', `build/${name}.wat`,
    '-O3', '--runtime', 'stub', '--noAssert', '--use', 'abort=',
    '--enable', 'simd', '--enable', 'threads', ...features,
    '--importMemory', '--sharedMemory', '--initialMemory', '2', '--maximumMemory', '65536',
  ]);
  if (error) {
    console.error(stderr.toString());
    console.error(`build-kernels: ${name}: ${error.message}`);
    process.exit(1);
  }
  console.log(`build/${name}.wasm`);
}
