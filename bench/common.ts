import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

/** Flags of the form `--name value` or `--flag`, for bench scripts. */
export function benchArgs(argv: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const next = argv[i + 1];
    if (next !== undefined && !next.startsWith('--')) { m.set(a.slice(2), next); i++; } else m.set(a.slice(2), 'true');
  }
  return m;
}

/** The long-eval books, concatenated in sorted order as the StreamingLLM paper does with PG19. */
export function longevalText(maxChars = Infinity): string {
  const dir = join(import.meta.dirname, '..', '..', 'shared', 'corpus', 'longeval');
  if (!existsSync(dir)) throw new Error(`long-eval corpus not found at ${dir}`);
  let text = '';
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.txt')).sort()) {
    text += (text ? '\n\n' : '') + readFileSync(join(dir, f), 'utf8');
    if (text.length >= maxChars) break;
  }
  return text.slice(0, maxChars);
}

export function rssMb(): number { return process.memoryUsage().rss / 2 ** 20; }
