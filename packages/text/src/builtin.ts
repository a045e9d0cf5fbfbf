import { InvalidArgumentError, Rng, hash32, tf } from '@opensora/core';
import { padAndTruncate } from './pad.js';
import type { TextEncoderAdapter, TextEncoderOutput, TokenizedBatch } from './types.js';
import { checkMaxLength, checkTexts } from './validate.js';
import { DEFAULT_MODEL_MAX_LENGTH } from './t5/encoder.js';

export interface BuiltinTextEncoderOptions {
  /** Feature size C (default 512). */
  captionChannels?: number;
  /** Token length L (default 200, as the v1.1 configs). */
  modelMaxLength?: number;
  /** Seed of the word-vector table (default 0). Different seeds give unrelated embeddings. */
  seed?: number | string;
  /** Weight of the sinusoidal position signal added to each word vector (default 0.5). */
  positionScale?: number;
  /**
   * Weight of the neighbour signal (default 0.5): each token also carries a vector for the word
   * before it and one for the word after it, so that a single cross-attention hop can tell
   * "red square" from "red background". 0 gives a plain bag of positioned words.
   */
  contextScale?: number;
  /**
   * Weight of the sentence signal (default 1): every token also carries the normalised sum of the
   * caption's word-pair vectors, the way each token of a real encoder carries the whole sentence,
   * so that whichever token a model attends to tells it which colour goes with which noun.
   */
  sentenceScale?: number;
}

const VERSION = 2;
/** Seed tag of the u(w) table: unchanged since v1, so that a word's own vector stays the same. */
const WORD_TABLE_TAG = 'v1';
const PAD_ID = 0;
const EOS_ID = 1;
const EOS_KEY = '\u0000</s>'; // cannot collide with a word: words are letters, marks and digits only
const BOS_KEY = '\u0000<s>'; // the "previous word" of the first token
const WORD_RE = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]|[\p{L}\p{M}\p{N}]+/gu;
const MAX_CACHED_WORDS = 50_000;

/**
 * A weight-free, deterministic text encoder for CPU work without downloads.
 *
 * Tokenizer: NFKC, lower case, words = runs of letters/digits (each CJK character is a word of its
 * own); punctuation and spaces only separate words. An EOS token is appended and the row padded to
 * `modelMaxLength`, with T5's truncation (L - 1 words + EOS) and mask semantics.
 *
 * Embedding of the token w_p at position p:
 *
 *     u(w_p) + contextScale * (before(w_{p-1}) + after(w_{p+1})) + positionScale * PE(p) + S
 *
 * where u, before and after are three unrelated tables of word vectors (C independent uniform
 * values in [-sqrt 3, sqrt 3], unit variance, drawn from `Rng` seeded by (seed, role, w)), w_{-1} is
 * a begin-of-text key, the EOS token has no word after it, and PE is the sinusoidal position code
 * (sin on even channels, cos on odd ones, periods 10000^(2i/C)). S, the same on every token of a
 * caption, is sentenceScale times the normalised sum of the caption's word-pair vectors
 * ((BOS, w_0), ..., (w_last, EOS)). Padding positions are zero. The neighbour and sentence terms
 * stand in for the context a real encoder mixes into each token: without them a model that attends
 * to the tokens once cannot tell which noun a colour word belongs to.
 *
 * The result depends only on the seed, C, L, the scales and the text: the same in every process and on every machine (integer hashing and IEEE arithmetic only, plus
 * V8's deterministic Math.sin/cos for PE).
 *
 * What it is not: a language model. It knows nothing about meaning, synonyms or word order beyond
 * the position code; "a red car" and "a crimson car" are as different as "a red car" and "a dog".
 * It is there so that a small diffusion model can learn to follow simple, repeated captions.
 */
export class BuiltinTextEncoder implements TextEncoderAdapter {
  readonly captionChannels: number;
  readonly modelMaxLength: number;
  readonly seed: number | string;
  readonly positionScale: number;
  readonly contextScale: number;
  readonly sentenceScale: number;
  readonly id: string;
  private readonly words = new Map<string, Float32Array>();
  private readonly pe: Float32Array;

  constructor(options: BuiltinTextEncoderOptions = {}) {
    const C = options.captionChannels ?? 512;
    if (!Number.isInteger(C) || C < 1) throw new InvalidArgumentError(`BuiltinTextEncoder: captionChannels must be a positive integer, got ${C}`);
    this.captionChannels = C;
    this.modelMaxLength = checkMaxLength(options.modelMaxLength ?? DEFAULT_MODEL_MAX_LENGTH, 'BuiltinTextEncoder');
    this.seed = options.seed ?? 0;
    this.positionScale = finiteScale(options.positionScale, 0.5, 'positionScale');
    this.contextScale = finiteScale(options.contextScale, 0.5, 'contextScale');
    this.sentenceScale = finiteScale(options.sentenceScale, 1, 'sentenceScale');
    this.id = `builtin:v${VERSION}:seed=${String(this.seed)}:C${C}:L${this.modelMaxLength}:pos${this.positionScale}:ctx${this.contextScale}:sent${this.sentenceScale}`;
    this.pe = sinusoidalPositions(this.modelMaxLength, C);
  }

  /** The words of a caption, in order, before truncation. */
  static splitWords(text: string): string[] {
    return text.normalize('NFKC').toLowerCase().match(WORD_RE) ?? [];
  }

  /** Id of a word token (a 31-bit hash, >= 2; 0 is padding and 1 the EOS). Informational. */
  wordId(word: string): number {
    return Math.max(2, hash32(`builtin-text:${String(this.seed)}`, word) >>> 1);
  }

  /**
   * The word's fixed vector (C unit-variance uniform values) in one of three roles: 'word' is u(w),
   * 'before' the vector a token gets when w precedes it, 'after' when w follows it, 'pair' the
   * vector of a word pair (`w` is the two words joined by a space) in the sentence signal.
   */
  wordVector(word: string, role: 'word' | 'before' | 'after' | 'pair' = 'word'): Float32Array {
    const key = role === 'word' ? word : `${role}\u0000${word}`;
    let v = this.words.get(key);
    if (v) return v;
    const rng = new Rng(`opensora-builtin-text:${role === 'word' ? WORD_TABLE_TAG : role}:${String(this.seed)}:${word}`);
    v = new Float32Array(this.captionChannels);
    const a = Math.sqrt(3);
    for (let i = 0; i < v.length; i++) v[i] = (2 * rng.random() - 1) * a;
    if (this.words.size >= MAX_CACHED_WORDS) this.words.clear();
    this.words.set(key, v);
    return v;
  }

  private rows(texts: string[]): { words: string[][]; batch: TokenizedBatch } {
    checkTexts(texts, 'BuiltinTextEncoder');
    const words = texts.map((t) => BuiltinTextEncoder.splitWords(t));
    const batch = padAndTruncate(words, this.modelMaxLength, 1, (kept) => [...kept.map((w) => this.wordId(w)), EOS_ID], PAD_ID);
    return { words, batch };
  }

  tokenize(texts: string[]): TokenizedBatch {
    return this.rows(texts).batch;
  }

  encode(texts: string[]): TextEncoderOutput {
    const { words, batch } = this.rows(texts);
    const B = batch.batchSize;
    const L = this.modelMaxLength;
    const C = this.captionChannels;
    const out = new Float32Array(B * L * C);
    const s = this.positionScale;
    const k = this.contextScale;
    for (let b = 0; b < B; b++) {
      const n = batch.lengths[b]!;
      const tokens = [...words[b]!.slice(0, n - 1), EOS_KEY];
      const sentence = this.sentenceVector(tokens);
      for (let p = 0; p < n; p++) {
        const u = this.wordVector(tokens[p]!);
        const off = (b * L + p) * C;
        const po = p * C;
        for (let c = 0; c < C; c++) out[off + c] = u[c]! + s * this.pe[po + c]!;
        if (k !== 0) {
          const before = this.wordVector(p === 0 ? BOS_KEY : tokens[p - 1]!, 'before');
          for (let c = 0; c < C; c++) out[off + c] += k * before[c]!;
          if (p + 1 < n) {
            const after = this.wordVector(tokens[p + 1]!, 'after');
            for (let c = 0; c < C; c++) out[off + c] += k * after[c]!;
          }
        }
        if (sentence) for (let c = 0; c < C; c++) out[off + c] += sentence[c]!;
      }
    }
    return { embeddings: tf.tensor4d(out, [B, 1, L, C]), mask: tf.tensor2d(batch.mask, [B, L], 'int32') };
  }

  /**
   * S for a caption's tokens (its kept words, then EOS): sentenceScale * (sum of the pair vectors of
   * (BOS, w_0), (w_0, w_1), ..., (w_last, EOS)) / sqrt(pairs), or null when the scale is 0.
   */
  private sentenceVector(tokens: readonly string[]): Float32Array | null {
    if (this.sentenceScale === 0) return null;
    const C = this.captionChannels;
    const seq = [BOS_KEY, ...tokens];
    const out = new Float32Array(C);
    for (let i = 0; i + 1 < seq.length; i++) {
      const v = this.wordVector(`${seq[i]} ${seq[i + 1]}`, 'pair');
      for (let c = 0; c < C; c++) out[c] += v[c]!;
    }
    const f = this.sentenceScale / Math.sqrt(seq.length - 1);
    for (let c = 0; c < C; c++) out[c] *= f;
    return out;
  }

  dispose(): void {
    this.words.clear();
  }
}

function finiteScale(value: number | undefined, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v)) throw new InvalidArgumentError(`BuiltinTextEncoder: ${name} must be finite`);
  return v;
}

/** [L, C] sinusoidal position code: PE[p, 2i] = sin(p / 10000^(2i/C)), PE[p, 2i+1] = cos(same). */
export function sinusoidalPositions(L: number, C: number): Float32Array {
  const pe = new Float32Array(L * C);
  for (let p = 0; p < L; p++) {
    for (let i = 0; i < C; i += 2) {
      const angle = p / Math.pow(10000, i / C);
      pe[p * C + i] = Math.sin(angle);
      if (i + 1 < C) pe[p * C + i + 1] = Math.cos(angle);
    }
  }
  return pe;
}
