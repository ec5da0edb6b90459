/**
 * llama.cpp half of bench/decode.ts, run as its own process (started with UV_THREADPOOL_SIZE=1:
 * with libuv's default pool of 4, node-llama-cpp's 2-thread decode is 30-50% slower and erratic).
 *
 *   UV_THREADPOOL_SIZE=1 node --import tsx bench/llamacpp/run.ts '{"model":"x.gguf","threads":2,"prompt":[...],"gen":128}'
 *
 * Prints one JSON line: {"prefill_tok_s", "decode_tok_s", "load_s"}. With `"probe": [ids]` instead, it
 * evaluates those ids and prints {"logprobs": [[id, log p], ...]} for the next token (all of the
 * vocab), which test/gguf.test.ts compares against a reference forward pass. Token ids go straight to the
 * context sequence (no tokenizer): evaluateWithoutGeneratingNewTokens for the prompt, then one
 * evaluate([id], {temperature: 0}) per decode step, as bench/decode.ts does for ours.
 */
import { getLlama, LlamaLogLevel, type Token } from 'node-llama-cpp';

interface Args {
  model: string;
  threads: number;
  prompt: number[];
  gen: number;
  vocab: number;
  /** Decode steps of the untimed warm-up run. */
  warmupSteps: number;
  /** Instead of timing: ids to evaluate, then print the next token's log-probabilities. */
  probe?: number[];
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as Args;
  const t0 = performance.now();
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: args.model, gpuLayers: 0 });
  const n = args.prompt.length;
  const context = await model.createContext({
    contextSize: Math.max(512, 2 * (n + args.gen)),
    batchSize: Math.max(n, args.probe?.length ?? 0, 32),
    threads: { ideal: args.threads, min: args.threads },
    sequences: 1,
  });
  const seq = context.getSequence();
  const loadS = (performance.now() - t0) / 1000;
  if (args.probe) {
    const it = seq.evaluateWithMetadata(args.probe as Token[], { probabilities: true }, { temperature: 1, topK: 0, topP: 1, minP: 0 });
    const r = await it.next();
    await it.return();
    const probs = r.done ? [] : [...r.value.probabilities.entries()].map(([id, p]) => [id, Math.log(p)]);
    process.stdout.write(JSON.stringify({ logprobs: probs }) + '\n');
    await llama.dispose();
    return;
  }
  const prompt = args.prompt as Token[];

  const step = async (id: Token): Promise<Token> => {
    const it = seq.evaluate([id], { temperature: 0 });
    const r = await it.next();
    await it.return();
    const next = (r.value ?? id) as number;
    return (next < 3 ? 3 + (next % (args.vocab - 3)) : next) as Token; // keep specials out of the stream
  };
  const run = async (steps: number): Promise<{ prefillS: number; decodeS: number }> => {
    await seq.clearHistory();
    const a = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(prompt);
    const b = performance.now();
    let id = prompt[n - 1];
    for (let i = 0; i < steps; i++) id = await step(id);
    const c = performance.now();
    return { prefillS: (b - a) / 1000, decodeS: (c - b) / 1000 };
  };
  await run(args.warmupSteps);
  const r = await run(args.gen);
  process.stdout.write(JSON.stringify({ prefill_tok_s: n / r.prefillS, decode_tok_s: args.gen / r.decodeS, load_s: loadS }) + '\n');
  await context.dispose();
  await model.dispose();
  await llama.dispose();
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
