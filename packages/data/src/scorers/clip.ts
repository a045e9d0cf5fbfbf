/**
 * Model-based scorers through the same `Scorer` interface, with weights from local files:
 *
 * - `ClipModel`: the CLIP ViT image and text towers (Hugging Face `CLIPModel` key names, e.g. a
 *   safetensors export of openai/clip-vit-large-patch14), run with tfjs from @opensora/core.
 *   The config comes from a `config.json` beside the weights, the safetensors metadata
 *   (`config`), or is inferred from tensor shapes (heads default to hidden/64).
 * - `aestheticScorer` (column `aes`): CLIP image embedding, L2-normalised, through the LAION
 *   "sac+logos+ava1-l14-linearMSE" MLP (768-1024-128-64-16-1, no activations; keys
 *   `layers.{0,2,4,6,7}.{weight,bias}` of the .pth, converted to safetensors), mean over the
 *   frames at points 0.1, 0.5, 0.9 (images: the image).
 * - `matchScorer` (column `match`): 100 x cosine(CLIP image of the middle frame, CLIP text of
 *   the caption), text truncated to the model's positions (77 for CLIP), as the reference.
 *
 * Images are preprocessed like CLIP: bicubic resize of the shorter side to the model's size,
 * centre crop, /255, CLIP mean/std.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { Tokenizer } from '@huggingface/tokenizers';
import { openSafetensors, tf, type SafetensorsReader } from '@opensora/core';
import type { Frame } from '../decode.js';
import { DataError } from '../errors.js';
import type { ScoreInput, Scorer } from '../score.js';

export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

export interface ClipTowerConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  layerNormEps: number;
  act: 'quick_gelu' | 'gelu';
}

export interface ClipConfig {
  vision: ClipTowerConfig & { patchSize: number; imageSize: number };
  text?: ClipTowerConfig & { vocabSize: number; maxPositions: number; eosTokenId?: number };
  projectionDim: number;
}

type Tensors = Map<string, tf.Tensor>;

function countLayers(keys: string[], prefix: string): number {
  let n = 0;
  const re = new RegExp(`^${prefix.replace(/\./g, '\\.')}encoder\\.layers\\.(\\d+)\\.`);
  for (const k of keys) {
    const m = re.exec(k);
    if (m) n = Math.max(n, Number(m[1]) + 1);
  }
  return n;
}

interface HfTowerJson {
  hidden_size?: number;
  intermediate_size?: number;
  num_hidden_layers?: number;
  num_attention_heads?: number;
  layer_norm_eps?: number;
  hidden_act?: string;
  patch_size?: number;
  image_size?: number;
  vocab_size?: number;
  max_position_embeddings?: number;
  eos_token_id?: number;
}

function readJsonConfig(weights: string, reader: SafetensorsReader): { vision_config?: HfTowerJson; text_config?: HfTowerJson; projection_dim?: number } {
  const dir = statSync(weights).isDirectory() ? weights : path.dirname(weights);
  const f = path.join(dir, 'config.json');
  if (existsSync(f)) return JSON.parse(readFileSync(f, 'utf8')) as ReturnType<typeof readJsonConfig>;
  if (reader.metadata.config) return JSON.parse(reader.metadata.config) as ReturnType<typeof readJsonConfig>;
  return {};
}

/** Infers the CLIP config from tensor shapes, completed by a JSON config when present. */
export function inferClipConfig(reader: SafetensorsReader, json: ReturnType<typeof readJsonConfig> = {}): ClipConfig {
  const keys = reader.keys();
  const vp = 'vision_model.';
  if (!reader.has(`${vp}embeddings.patch_embedding.weight`)) {
    throw new DataError(`${reader.path}: not a CLIP checkpoint (no ${vp}embeddings.patch_embedding.weight)`, { hint: 'use Hugging Face CLIPModel key names' });
  }
  const [D, , P] = reader.info(`${vp}embeddings.patch_embedding.weight`).shape as [number, number, number, number];
  const nPos = reader.info(`${vp}embeddings.position_embedding.weight`).shape[0]!;
  const vj = json.vision_config ?? {};
  const tower = (prefix: string, j: HfTowerJson, d: number): ClipTowerConfig => ({
    hiddenSize: d,
    intermediateSize: reader.info(`${prefix}encoder.layers.0.mlp.fc1.weight`).shape[0]!,
    numLayers: countLayers(keys, prefix),
    numHeads: j.num_attention_heads ?? Math.max(1, Math.round(d / 64)),
    layerNormEps: j.layer_norm_eps ?? 1e-5,
    act: j.hidden_act === 'gelu' ? 'gelu' : 'quick_gelu',
  });
  const cfg: ClipConfig = {
    vision: { ...tower(vp, vj, D), patchSize: P, imageSize: Math.round(Math.sqrt(nPos - 1)) * P },
    projectionDim: reader.info('visual_projection.weight').shape[0]!,
  };
  const tp = 'text_model.';
  if (reader.has(`${tp}embeddings.token_embedding.weight`)) {
    const [V, Dt] = reader.info(`${tp}embeddings.token_embedding.weight`).shape as [number, number];
    const tj = json.text_config ?? {};
    cfg.text = { ...tower(tp, tj, Dt), vocabSize: V, maxPositions: reader.info(`${tp}embeddings.position_embedding.weight`).shape[0]!, eosTokenId: tj.eos_token_id };
  }
  return cfg;
}

function layerNorm(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return x.sub(mean).div(variance.add(eps).sqrt()).mul(w).add(b);
}

/** CLIP towers in tfjs. Linear weights are kept transposed ([in, out]) for tfjs' fast matMul path. */
export class ClipModel {
  readonly config: ClipConfig;
  readonly logitScale: number;
  private readonly t: Tensors;

  private constructor(config: ClipConfig, tensors: Tensors, logitScale: number) {
    this.config = config;
    this.t = tensors;
    this.logitScale = logitScale;
  }

  /** Loads a safetensors file (or a folder with model.safetensors and config.json). */
  static load(weights: string, options: { numHeads?: number; textNumHeads?: number } = {}): ClipModel {
    const reader = openSafetensors(weights);
    try {
      const cfg = inferClipConfig(reader, readJsonConfig(weights, reader));
      if (options.numHeads) cfg.vision.numHeads = options.numHeads;
      if (options.textNumHeads && cfg.text) cfg.text.numHeads = options.textNumHeads;
      const tensors: Tensors = new Map();
      for (const k of reader.keys()) {
        if (!(k.startsWith('vision_model.') || k.startsWith('text_model.') || k === 'visual_projection.weight' || k === 'text_projection.weight')) continue;
        if (k.includes('position_ids')) continue;
        const info = reader.info(k);
        const data = reader.readFloat32(k);
        const linear = info.shape.length === 2 && (k.endsWith('proj.weight') || k.endsWith('fc1.weight') || k.endsWith('fc2.weight') || k.endsWith('projection.weight'));
        if (linear) {
          tensors.set(k, tf.tidy(() => tf.tensor2d(data, info.shape as [number, number]).transpose()));
        } else if (k.endsWith('patch_embedding.weight')) {
          // [D, 3, P, P] -> [P, P, 3, D] for tf.conv2d
          tensors.set(k, tf.tidy(() => tf.tensor4d(data, info.shape as [number, number, number, number]).transpose([2, 3, 1, 0])));
        } else tensors.set(k, tf.tensor(data, info.shape));
      }
      const logitScale = reader.has('logit_scale') ? Math.exp(reader.readFloat32('logit_scale')[0]!) : 100;
      return new ClipModel(cfg, tensors, logitScale);
    } finally {
      reader.close();
    }
  }

  private w(name: string): tf.Tensor {
    const v = this.t.get(name);
    if (!v) throw new DataError(`CLIP weights lack '${name}'`);
    return v;
  }

  private linear(x: tf.Tensor, prefix: string, bias = true): tf.Tensor {
    const shape = x.shape;
    const x2 = x.reshape([-1, shape[shape.length - 1]!]);
    let y = tf.matMul(x2, this.w(`${prefix}.weight`));
    if (bias) y = y.add(this.w(`${prefix}.bias`));
    return y.reshape([...shape.slice(0, -1), y.shape[1]!]);
  }

  private encoder(x: tf.Tensor, prefix: string, cfg: ClipTowerConfig, causal: boolean): tf.Tensor {
    const [N, L, D] = x.shape as [number, number, number];
    const H = cfg.numHeads;
    const hd = D / H;
    if (!Number.isInteger(hd)) throw new DataError(`hidden size ${D} is not divisible by ${H} heads`, { hint: 'pass numHeads or a config.json' });
    const mask = causal ? tf.linalg.bandPart(tf.ones([L, L]), -1, 0).sub(1).mul(1e9) : null;
    for (let i = 0; i < cfg.numLayers; i++) {
      const p = `${prefix}encoder.layers.${i}`;
      const h = layerNorm(x, this.w(`${p}.layer_norm1.weight`), this.w(`${p}.layer_norm1.bias`), cfg.layerNormEps);
      const split = (t: tf.Tensor) => t.reshape([N, L, H, hd]).transpose([0, 2, 1, 3]);
      const q = split(this.linear(h, `${p}.self_attn.q_proj`).mul(hd ** -0.5));
      const k = split(this.linear(h, `${p}.self_attn.k_proj`));
      const v = split(this.linear(h, `${p}.self_attn.v_proj`));
      let att = tf.matMul(q, k, false, true);
      if (mask) att = att.add(mask);
      const o = tf.matMul(tf.softmax(att, -1), v).transpose([0, 2, 1, 3]).reshape([N, L, D]);
      x = x.add(this.linear(o, `${p}.self_attn.out_proj`));
      const h2 = layerNorm(x, this.w(`${p}.layer_norm2.weight`), this.w(`${p}.layer_norm2.bias`), cfg.layerNormEps);
      let m = this.linear(h2, `${p}.mlp.fc1`);
      m = cfg.act === 'gelu' ? m.mul(tf.erf(m.div(Math.SQRT2)).add(1)).mul(0.5) : m.mul(tf.sigmoid(m.mul(1.702)));
      x = x.add(this.linear(m, `${p}.mlp.fc2`));
    }
    return x;
  }

  /** Image embeddings [N, projectionDim] from CLIP-normalised pixels [N, 3, S, S]. */
  encodeImages(pixels: Float32Array, n: number): Float32Array {
    const { imageSize: S, patchSize: P } = this.config.vision;
    return tf.tidy(() => {
      const x = tf.tensor4d(pixels, [n, 3, S, S]).transpose([0, 2, 3, 1]);
      const patches = tf.conv2d(x as tf.Tensor4D, this.w('vision_model.embeddings.patch_embedding.weight') as tf.Tensor4D, P, 'valid');
      const D = this.config.vision.hiddenSize;
      const g = S / P;
      const cls = this.w('vision_model.embeddings.class_embedding').reshape([1, 1, D]).tile([n, 1, 1]);
      let h = tf.concat([cls, patches.reshape([n, g * g, D])], 1).add(this.w('vision_model.embeddings.position_embedding.weight'));
      h = layerNorm(h, this.w('vision_model.pre_layrnorm.weight'), this.w('vision_model.pre_layrnorm.bias'), this.config.vision.layerNormEps);
      h = this.encoder(h, 'vision_model.', this.config.vision, false);
      const pooled = layerNorm(h.slice([0, 0, 0], [n, 1, D]).reshape([n, D]), this.w('vision_model.post_layernorm.weight'), this.w('vision_model.post_layernorm.bias'), this.config.vision.layerNormEps);
      return this.linear(pooled, 'visual_projection', false).dataSync() as Float32Array;
    });
  }

  /** Text embeddings [N, projectionDim] from token ids (each truncated to maxPositions, the last kept id being EOS). */
  encodeText(ids: number[][]): Float32Array {
    const cfg = this.config.text;
    if (!cfg) throw new DataError('these CLIP weights have no text tower (text_model.*)');
    const L = Math.min(cfg.maxPositions, Math.max(...ids.map((s) => s.length)));
    const n = ids.length;
    const flat = new Int32Array(n * L);
    const eosPos: number[] = [];
    ids.forEach((s, i) => {
      const t = s.slice(0, L);
      if (s.length > L) t[L - 1] = s[s.length - 1]!; // keep EOS when truncating (clip.tokenize truncate=True)
      flat.set(t, i * L);
      let pos = -1;
      if (cfg.eosTokenId !== undefined && cfg.eosTokenId !== 2) pos = t.indexOf(cfg.eosTokenId);
      if (pos < 0) pos = t.reduce((best, v, j) => (v > t[best]! ? j : best), 0); // argmax (OpenAI CLIP)
      eosPos.push(i * L + pos);
    });
    return tf.tidy(() => {
      const D = cfg.hiddenSize;
      const tok = tf.gather(this.w('text_model.embeddings.token_embedding.weight'), tf.tensor1d(flat, 'int32')).reshape([n, L, D]);
      const pos = this.w('text_model.embeddings.position_embedding.weight').slice([0, 0], [L, D]);
      let h = tok.add(pos);
      h = this.encoder(h, 'text_model.', cfg, true);
      h = layerNorm(h, this.w('text_model.final_layer_norm.weight'), this.w('text_model.final_layer_norm.bias'), cfg.layerNormEps);
      const pooled = tf.gather(h.reshape([n * L, D]), tf.tensor1d(eosPos, 'int32'));
      return this.linear(pooled, 'text_projection', false).dataSync() as Float32Array;
    });
  }

  dispose(): void {
    for (const t of this.t.values()) t.dispose();
    this.t.clear();
  }
}

/** CLIP preprocessing of RGB frames: bicubic shorter-side resize, centre crop, normalise; [N, 3, S, S]. */
export async function clipPreprocess(frames: Frame[], size: number): Promise<Float32Array> {
  const out = new Float32Array(frames.length * 3 * size * size);
  const plane = size * size;
  for (let k = 0; k < frames.length; k++) {
    const f = frames[k]!;
    const s = size / Math.min(f.width, f.height);
    const rw = Math.max(size, Math.round(f.width * s));
    const rh = Math.max(size, Math.round(f.height * s));
    const { data } = await sharp(Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength), { raw: { width: f.width, height: f.height, channels: 3 } })
      .resize(rw, rh, { fit: 'fill', kernel: 'cubic' })
      .extract({ left: Math.round((rw - size) / 2), top: Math.round((rh - size) / 2), width: size, height: size })
      .raw()
      .toBuffer({ resolveWithObject: true });
    for (let c = 0; c < 3; c++) {
      const base = (k * 3 + c) * plane;
      for (let i = 0; i < plane; i++) out[base + i] = (data[i * 3 + c]! / 255 - CLIP_MEAN[c]!) / CLIP_STD[c]!;
    }
  }
  return out;
}

function l2normalize(v: Float32Array, n: number): Float32Array {
  const d = v.length / n;
  const out = new Float32Array(v.length);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += v[i * d + j]! ** 2;
    const inv = 1 / Math.max(Math.sqrt(s), 1e-12);
    for (let j = 0; j < d; j++) out[i * d + j] = v[i * d + j]! * inv;
  }
  return out;
}

/** A chain of linear layers (`layers.{i}.weight/bias`, ascending i), no activations. */
export class LinearChain {
  private readonly layers: Array<{ w: tf.Tensor2D; b: tf.Tensor1D }>;
  readonly inputDim: number;

  constructor(weights: string, prefix = 'layers.') {
    const reader = openSafetensors(weights);
    try {
      const ids = [...new Set(reader.keys().filter((k) => k.startsWith(prefix) && k.endsWith('.weight')).map((k) => Number(k.slice(prefix.length).split('.')[0])))].sort((a, b) => a - b);
      if (!ids.length) throw new DataError(`${weights}: no '${prefix}N.weight' tensors`);
      this.layers = ids.map((i) => {
        const info = reader.info(`${prefix}${i}.weight`);
        return {
          w: tf.tidy(() => tf.tensor2d(reader.readFloat32(`${prefix}${i}.weight`), info.shape as [number, number]).transpose() as tf.Tensor2D),
          b: tf.tensor1d(reader.readFloat32(`${prefix}${i}.bias`)),
        };
      });
      this.inputDim = this.layers[0]!.w.shape[0];
    } finally {
      reader.close();
    }
  }

  run(x: Float32Array, n: number): Float32Array {
    return tf.tidy(() => {
      let h: tf.Tensor2D = tf.tensor2d(x, [n, this.inputDim]);
      for (const l of this.layers) h = tf.matMul(h, l.w).add(l.b);
      return h.dataSync() as Float32Array;
    });
  }

  dispose(): void {
    for (const l of this.layers) {
      l.w.dispose();
      l.b.dispose();
    }
  }
}

export interface AestheticScorerOptions {
  /** CLIP weights (safetensors file or folder). */
  clip: string | ClipModel;
  /** MLP weights (safetensors with layers.{0,2,4,6,7}.*). */
  mlp: string;
  points?: readonly number[];
  column?: string;
}

/** `aes`: CLIP image embedding (L2-normalised) -> aesthetic MLP, mean over frames. */
export function aestheticScorer(options: AestheticScorerOptions): Scorer {
  const clip = typeof options.clip === 'string' ? ClipModel.load(options.clip) : options.clip;
  const mlp = new LinearChain(options.mlp);
  if (mlp.inputDim !== clip.config.projectionDim) throw new DataError(`aesthetic MLP takes ${mlp.inputDim} features, CLIP gives ${clip.config.projectionDim}`);
  return {
    name: 'aesthetic',
    column: options.column ?? 'aes',
    frames: { points: options.points ?? [0.1, 0.5, 0.9] },
    async score(input: ScoreInput): Promise<number> {
      const n = input.frames.length;
      const px = await clipPreprocess(input.frames, clip.config.vision.imageSize);
      const emb = l2normalize(clip.encodeImages(px, n), n);
      const s = mlp.run(emb, n);
      return s.reduce((a, b) => a + b, 0) / n;
    },
    dispose() {
      mlp.dispose();
      if (typeof options.clip === 'string') clip.dispose();
    },
  };
}

export type TokenizeFn = (text: string) => number[];

/** A tokenizer from a Hugging Face `tokenizer.json` (with special tokens: BOS/EOS for CLIP). */
export function tokenizerFromFile(tokenizerJson: string, configJson?: string): TokenizeFn {
  const tok = new Tokenizer(JSON.parse(readFileSync(tokenizerJson, 'utf8')) as object, configJson ? (JSON.parse(readFileSync(configJson, 'utf8')) as object) : {});
  return (text: string) => tok.encode(text).ids;
}

export interface MatchScorerOptions {
  clip: string | ClipModel;
  /** Token ids of a caption (BOS ... EOS), e.g. `tokenizerFromFile('tokenizer.json')`. */
  tokenize: TokenizeFn;
  column?: string;
}

/** `match`: logit scale (100) x cosine(image of the middle frame, caption). */
export function matchScorer(options: MatchScorerOptions): Scorer {
  const clip = typeof options.clip === 'string' ? ClipModel.load(options.clip) : options.clip;
  return {
    name: 'match',
    column: options.column ?? 'match',
    frames: { points: [0.5] },
    async score(input: ScoreInput): Promise<number> {
      const text = typeof input.row.text === 'string' ? input.row.text : '';
      if (!text) throw new DataError(`row ${input.row.path} has no text to match`);
      const img = l2normalize(clip.encodeImages(await clipPreprocess(input.frames.slice(0, 1), clip.config.vision.imageSize), 1), 1);
      const txt = l2normalize(clip.encodeText([options.tokenize(text)]), 1);
      let dot = 0;
      for (let i = 0; i < img.length; i++) dot += img[i]! * txt[i]!;
      return clip.logitScale * dot;
    },
    dispose() {
      if (typeof options.clip === 'string') clip.dispose();
    },
  };
}
