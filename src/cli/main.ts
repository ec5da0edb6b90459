#!/usr/bin/env node
import { StreamlmError } from '../errors.js';
import { runAttentionMap } from './attention-map.js';
import { runChat } from './chat.js';
import { runCompress } from './compress.js';
import { runEvalPpl } from './eval-ppl.js';
import { runGenerate } from './generate.js';
import { packageVersion } from './common.js';
import { fsError } from './files.js';
import { runQuantize } from './quantize.js';
import { runServe } from './serve.js';
import { runWeb } from './web.js';

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<void>; help: string }> = {
  generate: { run: runGenerate, help: 'stream a completion of a prompt' },
  'eval-ppl': { run: runEvalPpl, help: 'perplexity of a long text streamed through cache policies' },
  'attention-map': { run: runAttentionMap, help: 'heatmaps of attention over the first tokens (attention sinks)' },
  serve: { run: runServe, help: 'OpenAI-compatible HTTP server with kept per-session caches, and a web chat' },
  chat: { run: runChat, help: 'terminal chat on one endless StreamingLLM session' },
  web: { run: runWeb, help: 'a page that runs the model in the browser: endless chat, streaming perplexity' },
  compress: { run: runCompress, help: 'factor every linear layer to low rank (FlashSVD; docs/lowrank.md)' },
  quantize: { run: runQuantize, help: 'write a model directory as one GGUF file (q4_0 ... q8_0, f16, f32)' },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([k, v]) => `  ${k.padEnd(12)} ${v.help}`);
  return `usage: streamlm <command> [flags]\n\ncommands:\n${lines.join('\n')}\n\nRun 'streamlm <command> --help' for a command's flags; 'streamlm --version' for the version.\n` +
    `Without --model, commands run the shipped models/novels-8m-sink.`;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h') { console.log(usage()); return cmd ? 0 : 1; }
  if (cmd === '--version' || cmd === '-V') { console.log(`streamlm ${packageVersion()}`); return 0; }
  const c = COMMANDS[cmd];
  if (!c) { console.error(`streamlm: unknown command '${cmd}'\n\n${usage()}`); return 1; }
  await c.run(rest);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e: unknown) => {
    const fe = fsError(e);
    if (e instanceof StreamlmError) console.error(`streamlm: ${e.message}`);
    else if (fe) console.error(`streamlm: ${fe.message}`);
    else if (e instanceof Error && (e as NodeJS.ErrnoException).code === 'EPIPE') { /* stdout closed by the reader */ }
    else console.error(`streamlm: internal error: ${e instanceof Error ? e.stack : String(e)}`);
    process.exitCode = 1;
  },
);
