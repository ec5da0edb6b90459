/**
 * Next-token log-probabilities from llama.cpp for several GGUF files in one process (one native
 * library load instead of one per file), for test/gguf-llamacpp.test.ts:
 *
 *   UV_THREADPOOL_SIZE=1 node --import tsx bench/llamacpp/probe.ts '{"models":["a.gguf","b.gguf"],"probe":[1,2,3]}'
 *
 * Prints one JSON line per model: {"model", "logprobs": [[id, log p], ...]} or {"model", "error"}.
 */
import { getLlama, LlamaLogLevel, type Token } from 'node-llama-cpp';

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as { models: string[]; probe: number[] };
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  for (const file of args.models) {
    try {
      const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
      const context = await model.createContext({ contextSize: 512, batchSize: Math.max(32, args.probe.length), threads: { ideal: 1, min: 1 }, sequences: 1 });
      // Under a heavily loaded machine the test once got a list without its top token; evaluate
      // until two runs agree (size and top token), at most 4 times, so one odd run cannot fail it.
      let logprobs: number[][] = [], prev = '';
      for (let run = 0; run < 4; run++) {
        const seq = context.getSequence();
        const it = seq.evaluateWithMetadata(args.probe as Token[], { probabilities: true }, { temperature: 1, topK: 0, topP: 1, minP: 0 });
        const r = await it.next();
        await it.return();
        await seq.dispose();
        logprobs = r.done ? [] : [...r.value.probabilities.entries()].map(([id, p]) => [id, Math.log(p)]);
        const top = logprobs.reduce((a, b) => (b[1] > a[1] ? b : a), [-1, -Infinity]);
        const key = `${logprobs.length}:${top[0]}`;
        if (key === prev) break;
        prev = key;
      }
      process.stdout.write(JSON.stringify({ model: file, logprobs }) + '\n');
      await context.dispose();
      await model.dispose();
    } catch (e) {
      process.stdout.write(JSON.stringify({ model: file, error: e instanceof Error ? e.message : String(e) }) + '\n');
    }
  }
  await llama.dispose();
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
