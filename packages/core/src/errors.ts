/**
 * Typed errors. Every error the libraries throw for bad input or a bad environment is an
 * `OpenSoraError` with a stable `code` and a message that says what was wrong and how to fix it.
 */
export type ErrorCode =
  | 'E_BACKEND'
  | 'E_SAFETENSORS'
  | 'E_CONFIG'
  | 'E_CONFIG_FILE'
  | 'E_OVERRIDE'
  | 'E_RNG_STATE'
  | 'E_INVALID_ARGUMENT'
  | 'E_SHAPE'
  | 'E_STATE_DICT'
  | 'E_IO'
  | 'E_DATA'
  | 'E_MEDIA'
  | 'E_NOT_IMPLEMENTED'
  | (string & {});

export interface OpenSoraErrorOptions {
  /** Extra structured detail (file, key, path...) for programs that handle the error. */
  details?: Record<string, unknown>;
  /** A one-line hint on how to fix it; appended to the message. */
  hint?: string;
  cause?: unknown;
}

export class OpenSoraError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: OpenSoraErrorOptions = {}) {
    super(options.hint ? `${message} (${options.hint})` : message, { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details ?? {};
    this.hint = options.hint;
  }
}

/** The backend that was asked for cannot be loaded. */
export class BackendError extends OpenSoraError {
  constructor(message: string, options?: OpenSoraErrorOptions) {
    super('E_BACKEND', message, options);
  }
}

/** A config file or value failed to load or validate. */
export class ConfigError extends OpenSoraError {
  constructor(message: string, options?: OpenSoraErrorOptions) {
    super('E_CONFIG', message, options);
  }
}

/** An argument passed to a library function is invalid (wrong shape, out of range...). */
export class InvalidArgumentError extends OpenSoraError {
  constructor(message: string, options?: OpenSoraErrorOptions) {
    super('E_INVALID_ARGUMENT', message, options);
  }
}

export function isOpenSoraError(e: unknown): e is OpenSoraError {
  return e instanceof OpenSoraError || (typeof e === 'object' && e !== null && 'code' in e && e instanceof Error && e.name.endsWith('Error') && typeof (e as { code: unknown }).code === 'string' && String((e as { code: string }).code).startsWith('E_'));
}

/** Throws `InvalidArgumentError(message)` when `condition` is false. */
export function assertArg(condition: unknown, message: string | (() => string), details?: Record<string, unknown>): asserts condition {
  if (!condition) {
    throw new InvalidArgumentError(typeof message === 'function' ? message() : message, details ? { details } : {});
  }
}
