// Public surface of @opensora/text.
export type { TextEncoderAdapter, TextEncoderOutput, TokenizedBatch } from './types.js';
export { padAndTruncate } from './pad.js';
export { checkTexts } from './validate.js';
export type { T5Config, T5Activation } from './t5/config.js';
export { T5_V1_1_XXL_CONFIG, parseT5Config, t5ConfigToJson, validateT5Config, t5EncoderParameterShapes, countT5EncoderParameters } from './t5/config.js';
export { relativePositionBucket, relativePositionBuckets } from './t5/bucket.js';
export type { WeightSource, WeightRecord } from './t5/model.js';
export { T5EncoderModel, T5WeightsError, randomT5Weights, weightsFromRecord, weightsFromReader } from './t5/model.js';
export { HfTokenizer, t5StandInTokenizerJson } from './t5/tokenizer.js';
export type { T5TextEncoderOptions, T5FromPretrainedOptions } from './t5/encoder.js';
export { T5TextEncoder, DEFAULT_MODEL_MAX_LENGTH } from './t5/encoder.js';
export type { BuiltinTextEncoderOptions } from './builtin.js';
export { BuiltinTextEncoder, sinusoidalPositions } from './builtin.js';
export type { EmbeddingCacheOptions, CachedTextEncoderOptions, PrecomputeOptions } from './cache.js';
export { EmbeddingCache, CachedTextEncoder, captionKey, precomputeEmbeddings, serializeSafetensors, cacheExists, CACHE_FORMAT } from './cache.js';
export type { TextEncoderSpec } from './factory.js';
export { createTextEncoder, nullEmbeddings } from './factory.js';
