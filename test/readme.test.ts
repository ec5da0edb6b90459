// The README's commands must run as written (issue 11, item 5). Running each one in full takes
// minutes, so this checks what goes stale silently: every command exists, every flag it shows is
// accepted by that command (the flag parser runs before --help answers), and every file it names
// ships with the repository.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');
const MAIN = join(ROOT, 'src', 'cli', 'main.ts');

/** Every `npx streamlm ...` command in the README's sh blocks, continuation lines joined. */
function readmeCommands(): string[] {
  const md = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const out: string[] = [];
  for (const block of md.matchAll(/```sh\n([\s\S]*?)```/g)) {
    let cur: string | null = null;
    let depth = 0;
    for (const raw of block[1].split('\n')) {
      const line = raw.replace(/#.*$/, '').trimEnd();
      const at = line.indexOf('npx streamlm ');
      if (cur === null && at >= 0) cur = line.slice(at + 'npx streamlm '.length);
      else if (cur !== null) cur += ' ' + line.trim();
      else continue;
      depth += (line.match(/[[(]/g) ?? []).length - (line.match(/[\])]/g) ?? []).length;
      if (cur !== null && !line.endsWith('\\') && depth <= 0) { out.push(cur.replace(/\\$/gm, '').replace(/ \\ /g, ' ')); cur = null; depth = 0; }
    }
  }
  return out;
}

/** Shell-like words: quotes kept together; optional-group brackets and `|` between flags dropped. */
function words(cmd: string): string[] {
  const ws = [...cmd.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]);
  return ws.map((w) => w.replace(/^[[(]+|[\])]+$/g, '')).filter((w) => w !== '|' && w !== '\\' && w !== '');
}

test('every README command and flag is accepted, and the files it names exist', () => {
  const cmds = readmeCommands();
  assert.ok(cmds.length >= 10, `found ${cmds.length} commands`);
  // One run per command with the flags of all its examples (a repeated flag keeps its last value).
  const byCommand = new Map<string, string[]>();
  for (const c of cmds) {
    const argv = words(c);
    if (argv.includes('&&')) argv.splice(argv.indexOf('&&'));
    for (let i = 1; i < argv.length; i++) {
      if (argv[i - 1] === '--text' || (argv[i - 1] === '--model' && argv[i] !== 'DIR')) assert.ok(existsSync(join(ROOT, argv[i])), `${argv[i]} (in '${c}') ships`);
    }
    byCommand.set(argv[0], [...(byCommand.get(argv[0]) ?? []), ...argv.slice(1)]);
  }
  assert.deepEqual([...byCommand.keys()].sort(), ['attention-map', 'chat', 'compress', 'eval-ppl', 'generate', 'quantize', 'serve']);
  assert.ok(byCommand.get('serve')!.includes('--cors-origin') && byCommand.get('compress')!.includes('--energy'));
  for (const [cmd, args] of byCommand) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, cmd, ...args, '--help'], { encoding: 'utf8', cwd: ROOT, timeout: 60_000 });
    assert.equal(r.status, 0, `'streamlm ${cmd} ${args.join(' ')} --help': ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^usage: streamlm ${cmd} `));
  }
});
