import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChatTemplate, FALLBACK_TEMPLATE, type ChatMessage } from '../src/chat/template.js';
import { Transcript } from '../src/chat/transcript.js';
import { StreamlmError } from '../src/errors.js';
import { loadModel, type Model } from '../src/model.js';
import { Engine } from '../src/server/engine.js';
import { TextTokenizer } from '../src/tokenizer.js';
import { fixtureDir } from './helpers/fixtures.js';

const CHATML = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const LLAMA2 = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + eos_token }}{% endif %}{% endfor %}";

const tok = TextTokenizer.load(fixtureDir('llama'));
const MAIN = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');

/** Drives `turns` turns; returns the concatenation of appended texts and replies (what the cache holds, as text). */
function converse(tpl: ChatTemplate, turns: number, fullHistory: boolean, system?: string): { cached: string; history: ChatMessage[]; modes: string[] } {
  const tr = new Transcript(tpl);
  const history: ChatMessage[] = system ? [{ role: 'system', content: system }] : [];
  let cached = '';
  const modes: string[] = [];
  for (let t = 0; t < turns; t++) {
    const user: ChatMessage = { role: 'user', content: `question ${t}` };
    const r = tr.next(fullHistory ? [...history, user] : t === 0 ? [...history, user] : [user]);
    modes.push(r.mode);
    history.push(user);
    const reply = `answer ${t}`;
    cached += r.text + reply;
    tr.commitReply(reply);
    history.push({ role: 'assistant', content: reply });
  }
  return { cached, history, modes };
}

test('a new turn appends exactly what the template adds, with the history sent or not', () => {
  for (const [name, source, system] of [['chatml', CHATML, 'Be brief.'], ['llama-2', LLAMA2, undefined], ['fallback', FALLBACK_TEMPLATE, 'Be brief.']] as const) {
    const tpl = new ChatTemplate(tok, { template: source });
    for (const full of [true, false]) {
      // Twelve turns: well past the rendering tail, so truncation is exercised.
      const { cached, history, modes } = converse(tpl, 12, full, system);
      // The whole conversation rendered at once, with the last reply: the cache holds exactly that,
      // except the space llama-2 and the fallback put before a reply: the reply follows the prompt as generated.
      const all = tpl.render(history.slice(0, -1), true) + history.at(-1)!.content;
      assert.equal(cached, all.replaceAll('[/INST] answer', '[/INST]answer').replaceAll('Assistant: answer', 'Assistant:answer'), `${name}, ${full ? 'full history' : 'new messages only'}`);
      assert.deepEqual(modes, ['appended', ...new Array(11).fill(full ? 'continued' : 'appended')]);
    }
  }
});

test('the fallback template is plain text with a stop string; the model template wins when present', () => {
  const fb = new ChatTemplate(tok);
  assert.equal(fb.builtin, false);
  assert.equal(fb.render([{ role: 'system', content: 'S' }, { role: 'user', content: ' hi ' }], true), 'System: S\n\nUser: hi\n\nAssistant:');
  assert.deepEqual(fb.stop, ['\nUser:']);
  const own = new ChatTemplate(tok, { template: LLAMA2 });
  assert.equal(own.builtin, true);
  assert.equal(own.render([{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }], false), '<s>[INST] a [/INST] b</s>');
  assert.throws(() => own.render([{ role: 'assistant', content: 'x' }], true), (e: unknown) => e instanceof StreamlmError && /roles must alternate/.test(e.message) && e.field === 'messages');
  assert.throws(() => new ChatTemplate(tok, { template: '{% for %}' }), /cannot parse the chat template/);
});

test('the assistant reply is not appended twice, even when the template trims it or the client edits it', () => {
  const tpl = new ChatTemplate(tok, { template: FALLBACK_TEMPLATE });
  const tr = new Transcript(tpl);
  tr.next([{ role: 'user', content: 'q1' }]);
  tr.commitReply('  spaced reply \n');
  const r = tr.next([{ role: 'user', content: 'q1' }, { role: 'assistant', content: 'an edited reply' }, { role: 'user', content: 'q2' }]);
  assert.equal(r.mode, 'continued');
  assert.equal(r.text, '\n\nUser: q2\n\nAssistant:');
  // A history that does not match is appended whole.
  const d = tr.next([{ role: 'user', content: 'other' }, { role: 'user', content: 'q3' }]);
  assert.equal(d.mode, 'appended');
  assert.equal(d.newMessages, 2);
});

let model: Model;
let dir: string;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'streamlm-chat-'));
  cpSync(fixtureDir('llama'), dir, { recursive: true });
  const cfgFile = join(dir, 'tokenizer_config.json');
  writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(readFileSync(cfgFile, 'utf8')), chat_template: LLAMA2 }));
  model = await loadModel(dir, { threads: 1 });
});
after(async () => { await model.close(); });

test('the engine renders with the model chat template from tokenizer_config.json and feeds only new tokens', async () => {
  const engine = new Engine(model, { cache: 'sink:4+124', maxSessions: 1 });
  assert.equal(engine.template.builtin, true);
  const m1: ChatMessage[] = [{ role: 'user', content: 'Hello' }];
  const t1 = await engine.start({ session: 's', input: { kind: 'chat', messages: m1 }, maxTokens: 5, sampler: {}, stop: [] });
  let reply = '';
  for await (const t of t1) reply += t.text;
  const r1 = await t1.result;
  // The template writes BOS itself, so the text is encoded without adding special tokens.
  assert.equal(t1.info.promptTokens, model.tokenizer!.encode('<s>[INST] Hello [/INST]', { addSpecialTokens: false }).length);
  assert.equal(model.tokenizer!.encode('<s>[INST] Hello [/INST]', { addSpecialTokens: false })[0], model.tokenizer!.bosTokenId);
  const m2: ChatMessage[] = [...m1, { role: 'assistant', content: reply }, { role: 'user', content: 'More' }];
  const t2 = await engine.start({ session: 's', input: { kind: 'chat', messages: m2 }, maxTokens: 5, sampler: {}, stop: [] });
  for await (const _ of t2) { /* drain */ }
  const r2 = await t2.result;
  assert.equal(t2.info.status, 'continued');
  // The cache holds the reply as generated; the template's `</s>` and the next [INST] follow it.
  const carried = r1.finishReason === 'length' ? 1 : 0;
  assert.equal(t2.info.promptTokens, carried + model.tokenizer!.encode('</s>[INST] More [/INST]', { addSpecialTokens: false }).length);
  assert.equal(r2.cache.seen, t1.info.promptTokens + r1.completionTokens + t2.info.promptTokens - carried + r2.completionTokens - (r2.finishReason === 'length' ? 1 : 0));
  engine.close();
});

function chatCli(input: string, ...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, 'chat', '--model', fixtureDir('llama'), '--threads', '1', ...args], { input, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

test('streamlm chat streams replies and prints a cache status line per turn; the cache stays bounded', () => {
  const turns = ['Hello there', 'Tell me a story about a lighthouse', 'And then?', 'What happened next?', 'The end?'];
  const r = chatCli(turns.join('\n') + '\n/exit\n', '--cache', 'sink:4+40', '--max-tokens', '12', '--temperature', '0', '--system', 'Be brief.');
  assert.equal(r.code, 0, r.err);
  const status = [...r.err.matchAll(/\[cache sink:4\+40 \| sinks (\d+)\/4 \| window (\d+)\/40 \| evicted (\d+) \| seen (\d+) \| KV [\d.]+ MB/g)]
    .map((m) => ({ sinks: +m[1], window: +m[2], evicted: +m[3], seen: +m[4] }));
  assert.equal(status.length, turns.length, r.err);
  for (let i = 1; i < status.length; i++) assert.ok(status[i].seen > status[i - 1].seen);
  for (const s of status) { assert.equal(s.sinks, 4); assert.ok(s.window <= 40); assert.equal(s.evicted, s.seen - s.sinks - s.window); }
  assert.ok(status.at(-1)!.evicted > 0, 'five turns overflow a 44-token cache');
  assert.equal(r.out.split('\n').length, turns.length + 1);
  // Greedy and deterministic.
  assert.equal(chatCli(turns.join('\n') + '\n', '--cache', 'sink:4+40', '--max-tokens', '12', '--temperature', '0', '--system', 'Be brief.').out, r.out);

  const bad = chatCli('', '--cache', 'dense');
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /serving needs a bounded cache.*dense/);
  assert.doesNotMatch(bad.err, /\n\s+at /);
});

test('streamlm chat skips a stdin line that is not valid UTF-8, with a one-line message, and goes on', () => {
  const input = Buffer.concat([Buffer.from('caf'), Buffer.from([0xc3, 0x28]), Buffer.from('\nHello there\n/exit\n')]);
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, 'chat', '--model', fixtureDir('llama'), '--threads', '1', '--cache', 'sink:4+40', '--max-tokens', '4', '--temperature', '0'], { input, timeout: 60_000 });
  const err = r.stderr.toString();
  assert.equal(r.status, 0, err);
  assert.match(err, /^streamlm: stdin: the line is not valid UTF-8 \(or holds U\+FFFD\); skipped$/m);
  assert.equal([...err.matchAll(/\[cache sink:4\+40 \|/g)].length, 1, 'only the valid line got a reply');
});
