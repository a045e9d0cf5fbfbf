/** Typed errors of the data pipeline (codes `E_DATA` for table/CSV problems, `E_MEDIA` for files). */
import { OpenSoraError, type OpenSoraErrorOptions } from '@opensora/core';

/** A dataset table (CSV) is malformed, or a pipeline step was misused. */
export class DataError extends OpenSoraError {
  constructor(message: string, options?: OpenSoraErrorOptions) {
    super('E_DATA', message, options);
  }
}

/** A media file cannot be read: missing, empty, truncated, wrong type, no video stream... */
export class MediaError extends OpenSoraError {
  readonly path: string;
  constructor(path: string, message: string, options?: OpenSoraErrorOptions) {
    super('E_MEDIA', `${path}: ${message}`, { ...options, details: { path, ...(options?.details ?? {}) } });
    this.path = path;
  }
}

/** First line of an error's message (ffmpeg errors carry the whole stderr). */
export function errorLine(e: unknown, max = 300): string {
  const msg = e instanceof Error ? e.message : String(e);
  const lines = msg
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return (lines[0] ?? 'unknown error').slice(0, max);
}
