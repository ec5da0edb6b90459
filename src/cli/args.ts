import { parseArgs } from 'node:util';
import { StreamlmError } from '../errors.js';

export type Flags = Record<string, string | boolean | string[] | undefined>;
export type FlagSpec = Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }>;

/**
 * Joins `--flag VALUE` into `--flag=VALUE` when VALUE begins with a dash but is not itself a flag
 * (`--max-tokens -5`, `--prompt "-- a dash"`), which node:util would reject as ambiguous.
 */
function joinDashValues(argv: string[], spec: FlagSpec): string[] {
  const isFlag = (a: string): boolean => {
    if (a === '--' || a === '-') return a === '--';
    if (a.startsWith('--')) return a.slice(2).split('=')[0] in spec;
    return /^-[A-Za-z]/.test(a) && Object.values(spec).some((o) => o.short === a[1]);
  };
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { out.push(...argv.slice(i)); break; }
    const name = a.startsWith('--') && !a.includes('=') ? a.slice(2) : null;
    const next = argv[i + 1];
    if (name !== null && spec[name]?.type === 'string' && next !== undefined && next.startsWith('-') && !isFlag(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/** Strict flag parsing: an unknown flag or a missing value is a clear error, not a stack trace. */
export function parseFlags(argv: string[], spec: FlagSpec, command: string): { flags: Flags; rest: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: joinDashValues(argv, spec), options: spec, allowPositionals: true, strict: true });
    return { flags: values as Flags, rest: positionals };
  } catch (e) {
    throw new StreamlmError(`${(e as Error).message.replace(/\. To specify.*$/s, '')} (see 'streamlm ${command} --help')`);
  }
}

export function str(flags: Flags, name: string): string | undefined {
  const v = flags[name];
  return typeof v === 'string' ? v : undefined;
}

export function num(flags: Flags, name: string, opts: { int?: boolean; min?: number; max?: number } = {}): number | undefined {
  const v = str(flags, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  const bad = v.trim() === '' || !Number.isFinite(n) || (opts.int && !Number.isInteger(n)) || (opts.min !== undefined && n < opts.min) || (opts.max !== undefined && n > opts.max);
  if (bad) {
    const range = [opts.min !== undefined ? `>= ${opts.min}` : '', opts.max !== undefined ? `<= ${opts.max}` : ''].filter(Boolean).join(' and ');
    throw new StreamlmError(`expected ${opts.int ? 'an integer' : 'a number'}${range ? ' ' + range : ''}, got '${v}'`, { field: `--${name}` });
  }
  return n;
}

export function list(flags: Flags, name: string): string[] {
  const v = flags[name];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [String(v)]);
}
