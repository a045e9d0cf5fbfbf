import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { ConfigError } from '@opensora/core';
import { padAndTruncate } from '../pad.js';
import type { TokenizedBatch } from '../types.js';

type PostProcess = (tokens: string[], pair: string[] | null, addSpecial: boolean) => { tokens: string[] };

/**
 * A Hugging Face `tokenizer.json` tokenizer (through `@huggingface/tokenizers`) with the padding and
 * truncation of the reference's call `tokenizer(texts, max_length=L, padding="max_length",
 * truncation=True, add_special_tokens=True)`: content tokens cut on the right to leave room for the
 * special tokens the post-processor appends (T5: `</s>`), then right-padded with the pad id.
 */
export class HfTokenizer {
  readonly tokenizer: Tokenizer;
  readonly padId: number;
  /** Number of special tokens the post-processor adds to a single sequence (T5: 1, the EOS). */
  readonly numSpecial: number;
  readonly vocabSize: number;

  constructor(tokenizerJson: unknown, tokenizerConfig: Record<string, unknown> = {}, source = 'tokenizer.json') {
    try {
      this.tokenizer = new Tokenizer(tokenizerJson as object, tokenizerConfig);
    } catch (e) {
      throw new ConfigError(`${source}: not a usable Hugging Face tokenizer (${(e as Error).message})`, { cause: e });
    }
    const pad = typeof tokenizerConfig.pad_token === 'string' ? tokenizerConfig.pad_token : '<pad>';
    const padId = this.tokenizer.token_to_id(pad);
    this.padId = padId ?? 0;
    this.numSpecial = this.postProcess([]).length;
    this.vocabSize = this.tokenizer.get_vocab(true).size;
  }

  /** Reads `tokenizer.json` (and `tokenizer_config.json` beside it, if there). */
  static fromFile(file: string): HfTokenizer {
    const f = existsSync(file) && !file.endsWith('.json') ? path.join(file, 'tokenizer.json') : file;
    if (!existsSync(f)) {
      throw new ConfigError(`tokenizer file ${f} does not exist`, {
        hint: 'save the tokenizer with transformers (AutoTokenizer.from_pretrained(...).save_pretrained(dir)) to get a tokenizer.json',
      });
    }
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(f, 'utf8'));
    } catch (e) {
      throw new ConfigError(`${f}: not valid JSON (${(e as Error).message})`, { cause: e });
    }
    const cfgPath = path.join(path.dirname(f), 'tokenizer_config.json');
    let cfg: Record<string, unknown> = {};
    if (existsSync(cfgPath)) {
      try {
        cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
      } catch (e) {
        throw new ConfigError(`${cfgPath}: not valid JSON (${(e as Error).message})`, { cause: e });
      }
    }
    return new HfTokenizer(json, cfg, f);
  }

  private postProcess(tokens: string[]): string[] {
    const pp = this.tokenizer.post_processor as unknown as PostProcess | null;
    return pp ? pp(tokens, null, true).tokens : tokens;
  }

  private toIds(tokens: string[]): number[] {
    const unk = (this.tokenizer.model as unknown as { unk_token_id?: number } | null)?.unk_token_id ?? 0;
    return tokens.map((t) => this.tokenizer.token_to_id(t) ?? unk);
  }

  /** Content ids of one text, without special tokens. */
  contentIds(text: string): number[] {
    return this.toIds(this.tokenizer.tokenize(text, { add_special_tokens: false }));
  }

  /** Ids of one text with special tokens, untruncated (what `tokenizer(text).input_ids` gives). */
  encodeIds(text: string): number[] {
    return this.toIds(this.postProcess(this.tokenizer.tokenize(text, { add_special_tokens: false })));
  }

  /** The padded, truncated batch. */
  encodeBatch(texts: string[], maxLength: number): TokenizedBatch {
    const rows = texts.map((t) => this.tokenizer.tokenize(t, { add_special_tokens: false }));
    // Token strings are truncated, then post-processed, so templates with leading specials work too.
    return padAndTruncate(rows, maxLength, this.numSpecial, (kept) => this.toIds(this.postProcess(kept)), this.padId);
  }
}

/**
 * A T5-shaped stand-in `tokenizer.json` over a few words, for tests and offline trials: a
 * SentencePiece Unigram model (`<pad>`, `</s>`, `<unk>`, then "▁"+word pieces, "▁" and the single
 * letters a-z, so any lower-case text tokenizes), WhitespaceSplit + Metaspace, and the `$A </s>`
 * template. The real T5 folder ships its own.
 */
export function t5StandInTokenizerJson(words: readonly string[]): Record<string, unknown> {
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const pieces = ['<pad>', '</s>', '<unk>', ...words.map((w) => `\u2581${w}`), '\u2581', ...'abcdefghijklmnopqrstuvwxyz'];
  const metaspace = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<pad>'), special(1, '</s>'), special(2, '<unk>')],
    normalizer: null,
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, metaspace] },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }, { Sequence: { id: 'B', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } },
    },
    decoder: metaspace,
    model: { type: 'Unigram', unk_id: 2, vocab: pieces.map((p, i) => [p, i < 3 ? 0 : p.length > 2 ? -1 - i * 0.01 : -8]), byte_fallback: false },
  };
}
