import { InvalidArgumentError } from '@opensora/core';
import type { TokenizedBatch } from './types.js';

/**
 * Truncation and padding as a Hugging Face tokenizer called with `max_length=L,
 * padding="max_length", truncation=True` does for single sequences: the content tokens are cut on
 * the right to `L - numSpecial` (room for the special tokens), `addSpecial` adds those (T5 appends
 * `</s>`), and pad ids fill the row to L on the right. The mask is 1 on content and special tokens,
 * 0 on padding.
 */
export function padAndTruncate<T>(
  content: T[][],
  maxLength: number,
  numSpecial: number,
  addSpecial: (kept: T[]) => number[],
  padId: number,
): TokenizedBatch {
  const room = maxLength - numSpecial;
  if (room < 0) {
    throw new InvalidArgumentError(`modelMaxLength ${maxLength} is shorter than the ${numSpecial} special token(s) every caption gets`);
  }
  const B = content.length;
  const ids = new Int32Array(B * maxLength).fill(padId);
  const mask = new Int32Array(B * maxLength);
  const lengths: number[] = [];
  const truncated: boolean[] = [];
  for (let b = 0; b < B; b++) {
    const row = content[b]!;
    truncated.push(row.length > room);
    const full = addSpecial(row.length > room ? row.slice(0, room) : row);
    if (full.length > maxLength) throw new InvalidArgumentError(`internal: ${full.length} tokens after adding special tokens exceed ${maxLength}`);
    const off = b * maxLength;
    ids.set(full, off);
    mask.fill(1, off, off + full.length);
    lengths.push(full.length);
  }
  return { ids, mask, lengths, truncated, batchSize: B, maxLength };
}
