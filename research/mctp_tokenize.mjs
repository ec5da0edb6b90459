// MCTP training data (docs/training.md, MCTP section): tokenizes the train split (a chunk of each book) and longeval into uint16 .bin files.
// node research/mctp_tokenize.mjs TOKENIZER_JSON OUT_DIR TRAIN_TOKENS_PER_BOOK EVAL_TOKENS_PER_BOOK
import * as hf from '@huggingface/tokenizers';
import { readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
const [tokPath, outDir, perBook, evalPer] = process.argv.slice(2);
const tj = JSON.parse(readFileSync(tokPath, 'utf8'));
const tok = new hf.Tokenizer(tj, {});
const enc = (t) => tok.encode(t, { add_special_tokens: false }).ids;
function dump(name, arr) { const u = new Uint16Array(arr); writeFileSync(`${outDir}/${name}`, Buffer.from(u.buffer)); console.log(name, u.length); }
const tr = '/work/shared/corpus/train', le = '/work/shared/corpus/longeval';
let train = [], t0 = Date.now();
for (const f of readdirSync(tr).sort()) {
  const text = execFileSync('xz', ['-dc', `${tr}/${f}`], { maxBuffer: 1 << 30 }).toString('utf8');
  // a chunk from the middle of each book: ~4 chars per token
  const n = Number(perBook) * 5, s = Math.max(0, Math.floor(text.length / 2 - n / 2));
  const ids = enc(text.slice(s, s + n)).slice(0, Number(perBook));
  train.push(...ids, 0);
}
console.log('train s', (Date.now() - t0) / 1000);
dump('train.bin', train);
let ev = [];
for (const f of readdirSync(le).filter((x) => x.endsWith('.txt')).sort()) {
  const text = readFileSync(`${le}/${f}`, 'utf8');
  const n = Number(evalPer) * 5, s = Math.floor(text.length / 3);
  ev.push(...enc(text.slice(s, s + n)).slice(0, Number(evalPer)), 0);
}
dump('eval.bin', ev);
