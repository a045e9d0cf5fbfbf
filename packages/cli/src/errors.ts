/** Exit codes that scripts can rely on. */
export const EXIT = {
  OK: 0,
  /** The command ran and failed (a runtime error, a failed sample or training step). */
  FAILURE: 1,
  /** Bad usage or bad input: unknown flag, invalid value, unreadable or malformed file. */
  USAGE: 2,
  /** Interrupted by SIGINT/SIGTERM after a clean stop. */
  INTERRUPTED: 130,
} as const;

/** Error codes that mean "the user's input was wrong" (exit 2) rather than "it failed" (exit 1). */
const USAGE_CODES = new Set([
  'E_CONFIG',
  'E_CONFIG_FILE',
  'E_OVERRIDE',
  'E_INVALID_ARGUMENT',
  'E_SAFETENSORS',
  'E_USAGE',
  'E_MASK_STRATEGY',
  'E_BUCKET_CONFIG',
  'E_STATE_DICT',
  'E_SHAPE',
  'E_DATA',
  'E_CSV',
  'E_MEDIA',
  'E_BACKEND',
]);

export class UsageError extends Error {
  readonly code = 'E_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Maps any thrown value to a one-line message and an exit code. */
export function describeFailure(e: unknown): { message: string; exitCode: number } {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    const first = e.message.split('\n');
    // Multi-line messages (config issue lists) are kept: they are already one issue per line.
    const message = first.length > 1 && first.length <= 20 ? e.message : first[0]!;
    if (typeof code === 'string' && (USAGE_CODES.has(code) || code.startsWith('commander.'))) {
      return { message, exitCode: EXIT.USAGE };
    }
    if (typeof code === 'string' && code.startsWith('E_')) return { message, exitCode: EXIT.FAILURE };
    if (typeof code === 'string' && ['ENOENT', 'EACCES', 'EISDIR', 'ENOTDIR'].includes(code)) {
      return { message, exitCode: EXIT.USAGE };
    }
    return { message: `${e.name}: ${first[0]}`, exitCode: EXIT.FAILURE };
  }
  return { message: String(e), exitCode: EXIT.FAILURE };
}
