/**
 * The one error type of @opensora/mask. It is a plain `Error` with a `code` string (this package is
 * pure TypeScript and does not depend on @opensora/core), plus, where it applies, the input text
 * and the group / field that is wrong so that callers can point at it.
 */
export type MaskErrorCode =
  /** Bad training mask ratios (unknown name, value out of range, sum not 1). */
  | 'E_MASK_RATIOS'
  /** A mask-strategy string that does not follow the grammar (or a field value out of range). */
  | 'E_MASK_STRATEGY'
  /** A well-formed group whose placement falls outside the target clip or the reference. */
  | 'E_MASK_PLACEMENT'
  /** A prompt's JSON options suffix that cannot be read. */
  | 'E_PROMPT_OPTIONS'
  /** A multi-segment `|0|text|2|text` prompt that does not cover the loops. */
  | 'E_LOOP_PROMPT'
  /** Bad arguments to a function of this package (frame counts, loop counts, state objects). */
  | 'E_MASK_ARGUMENT';

export interface MaskErrorDetails {
  /** The text that was being read (strategy string, prompt), when there is one. */
  input?: string;
  /** 0-based index of the `;`-separated group at fault (messages count from 1). */
  group?: number;
  /** Name of the field at fault, e.g. `length` or `edit_ratio`. */
  field?: string;
  /** 0-based index of the sample in a batch, for batch planning. */
  sample?: number;
}

export class MaskError extends Error {
  readonly code: MaskErrorCode;
  readonly input: string | undefined;
  readonly group: number | undefined;
  readonly field: string | undefined;
  readonly sample: number | undefined;

  constructor(code: MaskErrorCode, message: string, details: MaskErrorDetails = {}) {
    super(message);
    this.name = 'MaskError';
    this.code = code;
    this.input = details.input;
    this.group = details.group;
    this.field = details.field;
    this.sample = details.sample;
  }
}

/** Quotes a user string for an error message (JSON escapes make whitespace and newlines visible). */
export function quote(s: string): string {
  const q = JSON.stringify(s);
  return q.length > 200 ? `${q.slice(0, 197)}..."` : q;
}
