import { ConfigError, InvalidArgumentError, tf } from '@opensora/core';
import type { BuiltinTextEncoderOptions } from './builtin.js';
import { BuiltinTextEncoder } from './builtin.js';
import type { EmbeddingCacheOptions } from './cache.js';
import { CachedTextEncoder, EmbeddingCache } from './cache.js';
import type { T5FromPretrainedOptions } from './t5/encoder.js';
import { T5TextEncoder } from './t5/encoder.js';
import type { TextEncoderAdapter } from './types.js';

export type TextEncoderSpec =
  | ({ type: 'builtin'; cacheDir?: string; cache?: Partial<EmbeddingCacheOptions> } & BuiltinTextEncoderOptions)
  | ({ type: 't5'; path: string; cacheDir?: string; cache?: Partial<EmbeddingCacheOptions> } & T5FromPretrainedOptions);

/**
 * Builds a text encoder from a config object: `{ type: 'builtin', captionChannels?, modelMaxLength?, seed? }`
 * or `{ type: 't5', path, modelMaxLength? }`. With `cacheDir`, the encoder is wrapped in a
 * `CachedTextEncoder` over an `EmbeddingCache` in that folder.
 */
export async function createTextEncoder(spec: TextEncoderSpec): Promise<TextEncoderAdapter> {
  if (!spec || typeof spec !== 'object') throw new ConfigError('createTextEncoder: expected { type: "builtin" | "t5", ... }');
  let enc: TextEncoderAdapter;
  switch (spec.type) {
    case 'builtin':
      enc = new BuiltinTextEncoder(spec);
      break;
    case 't5':
      if (typeof spec.path !== 'string' || !spec.path) throw new ConfigError('createTextEncoder: type "t5" needs path (a Hugging Face model folder)');
      enc = await T5TextEncoder.fromPretrained(spec.path, spec);
      break;
    default:
      throw new ConfigError(`createTextEncoder: unknown type '${String((spec as { type?: unknown }).type)}'`, { hint: 'use "builtin" or "t5"' });
  }
  if (spec.cacheDir) return new CachedTextEncoder(enc, EmbeddingCache.open(spec.cacheDir, enc, spec.cache ?? {}));
  return enc;
}

/**
 * The reference's `T5Encoder.null(n)`: the diffusion model's learned null caption
 * (`y_embedder.y_embedding`, [L, C]) tiled to [n, 1, L, C] for classifier-free guidance.
 * The model passes it through the same caption projection and, as the reference does, uses the
 * conditional prompts' mask.
 */
export function nullEmbeddings(yEmbedding: tf.Tensor, n: number): tf.Tensor {
  if (yEmbedding.rank !== 2) throw new InvalidArgumentError(`nullEmbeddings: y_embedding must be [L, C], got [${yEmbedding.shape.join(', ')}]`);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`nullEmbeddings: n must be a positive integer, got ${n}`);
  return tf.tidy(() => tf.tile(tf.reshape(yEmbedding, [1, 1, ...yEmbedding.shape]), [n, 1, 1, 1]));
}
