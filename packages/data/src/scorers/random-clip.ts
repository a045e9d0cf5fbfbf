/**
 * Small random CLIP, aesthetic-MLP and tokenizer files in the layouts the model-based scorers load
 * (Hugging Face CLIP key names, the aesthetic predictor's `layers.{0,2,4,6,7}`, a `tokenizer.json`
 * with a word-level vocabulary). For tests and for trying `aesthetic` / `match` scoring offline:
 * the scores mean nothing, the code path is the real one.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Rng, saveSafetensors } from '@opensora/core';
import { SYNTH_COLOR_NAMES, SYNTH_DIRECTION_NAMES, SYNTH_SHAPES } from '../synth.js';

export interface RandomClipOptions {
  seed?: number;
  /** Width of both towers (default 32). */
  hiddenSize?: number;
  /** Vision patch (default 8) and input size (default 32; a multiple of the patch). */
  patchSize?: number;
  imageSize?: number;
  /** Shared embedding width (default 16). */
  projectionDim?: number;
  /** Layers, heads and MLP width of both towers (defaults 2, 2, 64). */
  numLayers?: number;
  numHeads?: number;
  intermediateSize?: number;
  /** Text positions (default 16). */
  maxPositions?: number;
  /** Words of the tokenizer after `[UNK]` and `<bos>` (default: the synthetic captions' words); `<eos>` is the last id. */
  words?: string[];
}

/** Float32 weights by name, row-major, as written to the files. */
export type RandomWeights = Record<string, { shape: number[]; data: Float32Array }>;

export interface RandomClipFiles {
  clip: string;
  mlp: string;
  tokenizer: string;
  /** The resolved sizes; `vocabSize` counts `[UNK]`, `<bos>`, the words and `<eos>`. */
  config: Required<Omit<RandomClipOptions, 'seed' | 'words'>> & { vocabSize: number; eosId: number };
  clipWeights: RandomWeights;
  mlpWeights: RandomWeights;
}

/** The words of the synthetic captions ("a red circle moving left on a blue background"), in vocabulary order. */
const CAPTION_WORDS = ['a', 'an', ...SYNTH_COLOR_NAMES, ...SYNTH_SHAPES, 'moving', ...SYNTH_DIRECTION_NAMES, 'on', 'background'];

/** Random CLIP weights (HF key names) and aesthetic MLP weights, deterministic for a seed. */
export function randomClipWeights(options: RandomClipOptions = {}): Pick<RandomClipFiles, 'config' | 'clipWeights' | 'mlpWeights'> {
  const D = options.hiddenSize ?? 32;
  const P = options.patchSize ?? 8;
  const S = options.imageSize ?? 32;
  const proj = options.projectionDim ?? 16;
  const layers = options.numLayers ?? 2;
  const heads = options.numHeads ?? 2;
  const ff = options.intermediateSize ?? 64;
  const tpos = options.maxPositions ?? 16;
  const words = options.words ?? CAPTION_WORDS;
  const vocabSize = words.length + 3;
  if (S % P !== 0) throw new RangeError(`imageSize ${S} is not a multiple of patchSize ${P}`);
  if (D % heads !== 0) throw new RangeError(`hiddenSize ${D} is not divisible by numHeads ${heads}`);
  const rng = new Rng(options.seed ?? 123);
  const W: RandomWeights = {};
  const rand = (shape: number[], scale = 0.2) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = rng.normal() * scale;
    return { shape, data };
  };
  const around = (value: number, shape: number[], scale: number) => {
    const r = rand(shape, scale);
    return { shape, data: Float32Array.from(r.data, (v) => value + v) };
  };
  const tower = (prefix: string) => {
    for (let i = 0; i < layers; i++) {
      const p = `${prefix}encoder.layers.${i}`;
      for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
        W[`${p}.self_attn.${n}.weight`] = rand([D, D]);
        W[`${p}.self_attn.${n}.bias`] = rand([D], 0.05);
      }
      for (const n of ['layer_norm1', 'layer_norm2']) {
        W[`${p}.${n}.weight`] = around(1, [D], 0.1);
        W[`${p}.${n}.bias`] = rand([D], 0.05);
      }
      W[`${p}.mlp.fc1.weight`] = rand([ff, D]);
      W[`${p}.mlp.fc1.bias`] = rand([ff], 0.05);
      W[`${p}.mlp.fc2.weight`] = rand([D, ff]);
      W[`${p}.mlp.fc2.bias`] = rand([D], 0.05);
    }
  };
  const G = S / P;
  W['vision_model.embeddings.patch_embedding.weight'] = rand([D, 3, P, P], 0.05);
  W['vision_model.embeddings.class_embedding'] = rand([D]);
  W['vision_model.embeddings.position_embedding.weight'] = rand([G * G + 1, D]);
  W['vision_model.pre_layrnorm.weight'] = { shape: [D], data: new Float32Array(D).fill(1) };
  W['vision_model.pre_layrnorm.bias'] = rand([D], 0.05);
  tower('vision_model.');
  W['vision_model.post_layernorm.weight'] = { shape: [D], data: new Float32Array(D).fill(1.1) };
  W['vision_model.post_layernorm.bias'] = rand([D], 0.05);
  W['visual_projection.weight'] = rand([proj, D]);
  W['text_model.embeddings.token_embedding.weight'] = rand([vocabSize, D]);
  W['text_model.embeddings.position_embedding.weight'] = rand([tpos, D]);
  tower('text_model.');
  W['text_model.final_layer_norm.weight'] = { shape: [D], data: new Float32Array(D).fill(0.9) };
  W['text_model.final_layer_norm.bias'] = rand([D], 0.05);
  W['text_projection.weight'] = rand([proj, D]);
  W.logit_scale = { shape: [], data: Float32Array.of(Math.log(100)) };
  // The aesthetic predictor's Linear layers (dropouts between them in the original have no weights).
  const M: RandomWeights = {};
  const dims: Array<[number, number, number]> = [
    [0, proj, 24],
    [2, 24, 8],
    [4, 8, 6],
    [6, 6, 4],
    [7, 4, 1],
  ];
  for (const [i, a, b] of dims) {
    M[`layers.${i}.weight`] = rand([b, a], 0.5);
    M[`layers.${i}.bias`] = rand([b], 0.1);
  }
  return {
    config: { hiddenSize: D, patchSize: P, imageSize: S, projectionDim: proj, numLayers: layers, numHeads: heads, intermediateSize: ff, maxPositions: tpos, vocabSize, eosId: vocabSize - 1 },
    clipWeights: W,
    mlpWeights: M,
  };
}

const asF32 = (w: RandomWeights) => Object.fromEntries(Object.entries(w).map(([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape, data: v.data }]));

/**
 * Writes `clip.safetensors` (its config, the head counts, in the metadata), `aesthetic.safetensors`
 * and `tokenizer.json` (lower-casing, whitespace split, `<bos> ... <eos>`) into `dir`.
 */
export async function writeRandomClip(dir: string, options: RandomClipOptions = {}): Promise<RandomClipFiles> {
  mkdirSync(dir, { recursive: true });
  const { config, clipWeights, mlpWeights } = randomClipWeights(options);
  const clip = path.join(dir, 'clip.safetensors');
  const mlp = path.join(dir, 'aesthetic.safetensors');
  const tokenizer = path.join(dir, 'tokenizer.json');
  const heads = { num_attention_heads: config.numHeads };
  await saveSafetensors(clip, asF32(clipWeights), { metadata: { config: JSON.stringify({ vision_config: heads, text_config: heads }) } });
  await saveSafetensors(mlp, asF32(mlpWeights));
  const words = options.words ?? CAPTION_WORDS;
  const vocab: Record<string, number> = Object.fromEntries(['[UNK]', '<bos>', ...words].map((w, i) => [w, i]));
  vocab['<eos>'] = config.eosId;
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  writeFileSync(
    tokenizer,
    JSON.stringify({
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: [special(1, '<bos>'), special(config.eosId, '<eos>')],
      normalizer: { type: 'Lowercase' },
      pre_tokenizer: { type: 'Whitespace' },
      post_processor: {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<bos>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<eos>', type_id: 0 } }],
        pair: [],
        special_tokens: { '<bos>': { id: '<bos>', ids: [1], tokens: ['<bos>'] }, '<eos>': { id: '<eos>', ids: [config.eosId], tokens: ['<eos>'] } },
      },
      decoder: null,
      model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
    }),
  );
  return { clip, mlp, tokenizer, config, clipWeights, mlpWeights };
}
