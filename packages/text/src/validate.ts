import { InvalidArgumentError } from '@opensora/core';

/**
 * Checks a batch of captions. The reference hands the list to a Hugging Face tokenizer, which
 * rejects non-strings with a TypeError/ValueError; an empty batch would reach T5 as a [0, L] tensor.
 * We refuse both with a clear error instead of producing an empty or wrongly shaped result.
 */
export function checkTexts(texts: unknown, who: string): asserts texts is string[] {
  if (!Array.isArray(texts)) {
    throw new InvalidArgumentError(`${who}.encode(texts): texts must be an array of strings, got ${describe(texts)}`, {
      hint: 'wrap a single caption in an array: encode([caption])',
    });
  }
  if (texts.length === 0) {
    throw new InvalidArgumentError(`${who}.encode(texts): the batch is empty`, {
      hint: 'pass at least one caption; use "" for an empty caption',
    });
  }
  for (let i = 0; i < texts.length; i++) {
    const t: unknown = texts[i];
    if (typeof t !== 'string') {
      throw new InvalidArgumentError(`${who}.encode(texts): texts[${i}] is ${describe(t)}, not a string`, {
        details: { index: i },
        hint: 'convert captions to strings first (a missing caption is "", not null)',
      });
    }
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v} (${String(v).slice(0, 40)})`;
}

export function checkMaxLength(n: unknown, who: string): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) {
    throw new InvalidArgumentError(`${who}: modelMaxLength must be a positive integer, got ${String(n)}`);
  }
  return n;
}
