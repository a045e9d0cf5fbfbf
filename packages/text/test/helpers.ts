import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { saveSafetensors } from '@opensora/core';
import type { T5Config, WeightRecord } from '../src/index.js';
import { randomT5Weights, t5ConfigToJson, t5StandInTokenizerJson } from '../src/index.js';

export const TINY_WORDS = ['a', 'red', 'ball', 'blue', 'cat', 'dog', 'runs', 'on', 'the', 'grass', 'in', 'snow', 'sunset', 'over', 'sea'];
/** The test tokenizer: the package's T5 stand-in over TINY_WORDS. */
export function tinyTokenizerJson(): Record<string, unknown> {
  return t5StandInTokenizerJson(TINY_WORDS);
}

export function tinyT5Config(over: Partial<T5Config> = {}): T5Config {
  return {
    vocabSize: 48,
    dModel: 16,
    dKv: 4,
    dFf: 24,
    numLayers: 2,
    numHeads: 3,
    relativeAttentionNumBuckets: 32,
    relativeAttentionMaxDistance: 128,
    layerNormEpsilon: 1e-6,
    denseActFn: 'gelu_new',
    isGatedAct: true,
    padTokenId: 0,
    eosTokenId: 1,
    ...over,
  };
}

/** Writes a Hugging Face style folder: config.json, model.safetensors (transformers keys), tokenizer.json. */
export async function writeTinyT5(dir: string, config: T5Config, seed = 1, edit?: (w: WeightRecord) => WeightRecord): Promise<WeightRecord> {
  mkdirSync(dir, { recursive: true });
  let w = randomT5Weights(config, seed);
  if (edit) w = edit(w);
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(t5ConfigToJson(config), null, 2));
  writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson()));
  writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ pad_token: '<pad>', eos_token: '</s>', unk_token: '<unk>', model_max_length: 512 }));
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  for (const [k, v] of Object.entries(w)) tensors[k] = { dtype: 'F32', shape: v.shape, data: v.data };
  await saveSafetensors(path.join(dir, 'model.safetensors'), tensors, { metadata: { format: 'pt' } });
  return w;
}
