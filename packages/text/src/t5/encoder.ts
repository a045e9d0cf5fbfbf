import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, InvalidArgumentError, openSafetensors, tf } from '@opensora/core';
import type { TextEncoderAdapter, TextEncoderOutput, TokenizedBatch } from '../types.js';
import { checkMaxLength, checkTexts } from '../validate.js';
import type { T5Config } from './config.js';
import { parseT5Config } from './config.js';
import { T5EncoderModel, weightsFromReader } from './model.js';
import { HfTokenizer } from './tokenizer.js';

export interface T5TextEncoderOptions {
  /** Token length L of every batch (default 200, the v1.1 configs' model_max_length). */
  modelMaxLength?: number;
  /** Captions per forward pass; larger batches are split and the results concatenated (default 8). */
  maxBatchSize?: number;
  /** An id for the embedding cache; derived from the config, tokenizer and weights when omitted. */
  id?: string;
  /**
   * Run T5 on each batch's real length only (default true) and return zeros at the padded
   * positions. Real-token features are unchanged (padded keys are masked and everything else is
   * per position), and STDiT2 never reads padded positions, but it is 2-10x faster for typical
   * captions. `false` computes all `modelMaxLength` positions as the reference does, so that the
   * padded positions' features match it too.
   */
  trimPadding?: boolean;
}

export interface T5FromPretrainedOptions extends T5TextEncoderOptions {
  /** Weights file, index or folder, if not in `dir` (model.safetensors or model.safetensors.index.json). */
  weights?: string;
  /** tokenizer.json path, if not `dir/tokenizer.json`. */
  tokenizer?: string;
}

export const DEFAULT_MODEL_MAX_LENGTH = 200;

/**
 * The reference's `T5Encoder` text encoder: tokenize (pad to `modelMaxLength`, truncate, append EOS),
 * run the T5 encoder with the attention mask, return `last_hidden_state[:, None]` and the mask.
 */
export class T5TextEncoder implements TextEncoderAdapter {
  readonly model: T5EncoderModel;
  readonly tokenizer: HfTokenizer;
  readonly modelMaxLength: number;
  readonly captionChannels: number;
  readonly id: string;
  private readonly maxBatchSize: number;
  private readonly trimPadding: boolean;

  constructor(model: T5EncoderModel, tokenizer: HfTokenizer, options: T5TextEncoderOptions = {}) {
    this.model = model;
    this.tokenizer = tokenizer;
    this.modelMaxLength = checkMaxLength(options.modelMaxLength ?? DEFAULT_MODEL_MAX_LENGTH, 'T5TextEncoder');
    this.maxBatchSize = options.maxBatchSize ?? 8;
    if (!Number.isInteger(this.maxBatchSize) || this.maxBatchSize < 1) throw new InvalidArgumentError(`T5TextEncoder: maxBatchSize must be a positive integer, got ${this.maxBatchSize}`);
    this.captionChannels = model.config.dModel;
    this.trimPadding = options.trimPadding ?? true;
    this.id = options.id ?? `t5:${hashJson([model.config, model.source])}:L${this.modelMaxLength}`;
  }

  /**
   * Loads a Hugging Face folder: `config.json`, `model.safetensors` (or a sharded
   * `model.safetensors.index.json`) with transformers key names, and `tokenizer.json`.
   * Example: a local copy of DeepFloyd/t5-v1_1-xxl converted to safetensors.
   */
  static async fromPretrained(dir: string, options: T5FromPretrainedOptions = {}): Promise<T5TextEncoder> {
    const cfgPath = path.join(dir, 'config.json');
    if (!existsSync(cfgPath)) throw new ConfigError(`${dir}: no config.json`, { hint: 'point fromPretrained at a Hugging Face model folder' });
    let cfgText: string;
    let cfg: T5Config;
    try {
      cfgText = readFileSync(cfgPath, 'utf8');
      cfg = parseT5Config(JSON.parse(cfgText), cfgPath);
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      throw new ConfigError(`${cfgPath}: not valid JSON (${(e as Error).message})`, { cause: e });
    }
    const tokPath = options.tokenizer ?? path.join(dir, 'tokenizer.json');
    const tokenizer = HfTokenizer.fromFile(tokPath);
    const reader = openSafetensors(options.weights ?? dir);
    let model: T5EncoderModel;
    try {
      model = T5EncoderModel.fromWeights(cfg, weightsFromReader(reader), reader.path);
    } finally {
      reader.close();
    }
    const maxLen = options.modelMaxLength ?? DEFAULT_MODEL_MAX_LENGTH;
    const h = createHash('sha256');
    h.update(cfgText);
    h.update(readFileSync(tokPath.endsWith('.json') ? tokPath : path.join(tokPath, 'tokenizer.json')));
    const wpath = reader.path;
    const st = statSync(wpath);
    h.update(`${path.resolve(wpath)}:${st.size}:${st.mtimeMs}`);
    return new T5TextEncoder(model, tokenizer, { ...options, id: options.id ?? `t5:${h.digest('hex').slice(0, 16)}:L${maxLen}` });
  }

  /** Token ids and mask of a batch, padded and truncated to `modelMaxLength`. */
  tokenize(texts: string[]): TokenizedBatch {
    checkTexts(texts, 'T5TextEncoder');
    const tok = this.tokenizer.encodeBatch(texts, this.modelMaxLength);
    const V = this.model.config.vocabSize;
    for (let i = 0; i < tok.ids.length; i++) {
      if (tok.ids[i]! >= V) {
        throw new ConfigError(`T5TextEncoder: token id ${tok.ids[i]} is outside the model's vocabulary of ${V}`, {
          hint: 'the tokenizer.json does not belong to this model',
        });
      }
    }
    return tok;
  }

  encode(texts: string[]): TextEncoderOutput {
    const tok = this.tokenize(texts);
    const B = tok.batchSize;
    const L = this.modelMaxLength;
    const D = this.captionChannels;
    // With trimming, captions are grouped by length so that each forward pass is as short as possible.
    const order = Array.from({ length: B }, (_, i) => i);
    if (this.trimPadding) order.sort((a, b) => tok.lengths[b]! - tok.lengths[a]! || a - b);
    const chunks: tf.Tensor[] = [];
    try {
      for (let s = 0; s < B; s += this.maxBatchSize) {
        const rows = order.slice(s, s + this.maxBatchSize);
        const n = rows.length;
        const len = this.trimPadding ? Math.max(...rows.map((r) => tok.lengths[r]!)) : L;
        const ids = new Int32Array(n * len);
        const mask = new Int32Array(n * len);
        rows.forEach((r, i) => {
          ids.set(tok.ids.subarray(r * L, r * L + len), i * len);
          mask.set(tok.mask.subarray(r * L, r * L + len), i * len);
        });
        const out = tf.tidy(() => {
          const h = this.model.forward(tf.tensor2d(ids, [n, len], 'int32'), tf.tensor2d(mask, [n, len], 'int32'));
          if (len === L) return h;
          // zero the padded rows inside the trimmed length too, then pad to L
          const m = tf.reshape(tf.tensor2d(mask, [n, len], 'float32'), [n, len, 1]);
          return tf.pad(tf.mul(h, m), [
            [0, 0],
            [0, L - len],
            [0, 0],
          ]);
        });
        chunks.push(out);
      }
      const embeddings = tf.tidy(() => {
        let all = chunks.length === 1 ? chunks[0]! : tf.concat(chunks, 0);
        if (order.some((v, i) => v !== i)) {
          const inverse = new Int32Array(B);
          order.forEach((r, i) => (inverse[r] = i));
          all = tf.gather(all, tf.tensor1d(inverse, 'int32'));
        }
        return tf.reshape(all, [B, 1, L, D]);
      });
      return { embeddings, mask: tf.tensor2d(tok.mask, [B, L], 'int32') };
    } finally {
      for (const c of chunks) c.dispose();
    }
  }

  dispose(): void {
    this.model.dispose();
  }
}

function hashJson(v: unknown): string {
  return createHash('sha256').update(JSON.stringify(v)).digest('hex').slice(0, 16);
}
