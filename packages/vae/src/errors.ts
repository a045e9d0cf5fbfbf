/**
 * Error helpers. Everything the package throws for bad input is an `OpenSoraError` from core with a
 * stable code: `E_SHAPE` (tensor rank/channels/size), `E_INVALID_ARGUMENT` (values, options),
 * `E_CONFIG` (a VAE config), `E_STATE_DICT` (missing/unexpected/mis-shaped weights), `E_IO` (files).
 */
import { OpenSoraError, type OpenSoraErrorOptions } from '@opensora/core';

export function shapeError(message: string, options?: OpenSoraErrorOptions): OpenSoraError {
  return new OpenSoraError('E_SHAPE', message, options);
}

export function stateDictError(message: string, options?: OpenSoraErrorOptions): OpenSoraError {
  return new OpenSoraError('E_STATE_DICT', message, options);
}

export function ioError(message: string, options?: OpenSoraErrorOptions): OpenSoraError {
  return new OpenSoraError('E_IO', message, options);
}

/** `[a, b, c]` for messages. */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** The first `n` items of a list joined with ', ', then "... and K more". */
export function listSome(items: readonly string[], n = 12): string {
  const head = items.slice(0, n).join(', ');
  return items.length > n ? `${head}, ... and ${items.length - n} more` : head;
}
