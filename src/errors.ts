/**
 * One error type for everything a user can get wrong: a file, a config field, a CLI flag.
 * The CLI prints `message` alone (no stack) and exits non-zero.
 */
export class StreamlmError extends Error {
  /** The file the problem is in, if any. */
  readonly file?: string;
  /** The field, tensor, flag or parameter at fault, if any. */
  readonly field?: string;

  constructor(message: string, where: { file?: string; field?: string } = {}) {
    const prefix = [where.file, where.field].filter(Boolean).join(': ');
    super(prefix ? `${prefix}: ${message}` : message);
    this.name = 'StreamlmError';
    this.file = where.file;
    this.field = where.field;
  }
}

/** Throws a StreamlmError unless `cond` holds. */
export function check(cond: unknown, message: string, where: { file?: string; field?: string } = {}): asserts cond {
  if (!cond) throw new StreamlmError(message, where);
}
