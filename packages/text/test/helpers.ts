import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { saveSafetensors } from '@opensora/core';
import type { T5Config, WeightRecord } from '../src/index.js';
import { randomT5Weights, t5ConfigToJson } from '../src/index.js';

export const TINY_WORDS = ['a', 'red', 'ball', 'blue', 'cat', 'dog', 'runs', 'on', 'the', 'grass', 'in', 'snow', 'sunset', 'over', 'sea'];
export const LETTERS = 'abcdefghijklmnopqrstuvwxyz'.split('');

/** Vocabulary of the test tokenizer: specials, then "▁"+word pieces, then "▁" and single letters. */
export function tinyVocab(): string[] {
  return ['<pad>', '</s>', '<unk>', ...TINY_WORDS.map((w) => `\u2581${w}`), '\u2581', ...LETTERS];
}

/** A T5-shaped tokenizer.json (Unigram model, WhitespaceSplit + Metaspace, `$A </s>` template). */
export function tinyTokenizerJson(): Record<string, unknown> {
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const vocab = tinyVocab().map((p, i): [string, number] => [p, i < 3 ? 0 : p.length > 2 ? -1 - i * 0.01 : -8]);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<pad>'), special(1, '</s>'), special(2, '<unk>')],
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [{ type: 'WhitespaceSplit' }, { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true }],
    },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }, { Sequence: { id: 'B', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } },
    },
    decoder: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true },
    model: { type: 'Unigram', unk_id: 2, vocab, byte_fallback: false },
  };
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
