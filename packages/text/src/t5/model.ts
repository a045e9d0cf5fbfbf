import { OpenSoraError, Rng, openSafetensors, tf } from '@opensora/core';
import type { SafetensorsReader } from '@opensora/core';
import type { T5Config } from './config.js';
import { t5EncoderParameterShapes, validateT5Config } from './config.js';
import { relativePositionBuckets } from './bucket.js';

/** A read-only view of named float32 weights with PyTorch shapes (what a safetensors reader gives). */
export interface WeightSource {
  has(name: string): boolean;
  shape(name: string): number[];
  /** float32 data, row-major in the PyTorch layout. */
  read(name: string): Float32Array;
  /** Names of every tensor the source holds (for "unexpected key" diagnostics). */
  keys(): string[];
}

/** Plain weights in memory: name -> { shape, data }. */
export type WeightRecord = Record<string, { shape: number[]; data: Float32Array }>;

export function weightsFromRecord(rec: WeightRecord): WeightSource {
  return {
    has: (n) => Object.prototype.hasOwnProperty.call(rec, n),
    shape: (n) => [...rec[n]!.shape],
    read: (n) => rec[n]!.data,
    keys: () => Object.keys(rec),
  };
}

export function weightsFromReader(r: SafetensorsReader): WeightSource {
  return {
    has: (n) => r.has(n),
    shape: (n) => [...r.info(n).shape],
    read: (n) => r.readFloat32(n),
    keys: () => r.keys(),
  };
}

/** Error for a checkpoint that lacks keys or has tensors of the wrong shape. */
export class T5WeightsError extends OpenSoraError {
  readonly missing: string[];
  readonly mismatched: Array<{ key: string; expected: number[]; got: number[] }>;
  constructor(source: string, missing: string[], mismatched: Array<{ key: string; expected: number[]; got: number[] }>) {
    const parts: string[] = [];
    if (missing.length) parts.push(`missing ${missing.length} key(s): ${missing.slice(0, 12).join(', ')}${missing.length > 12 ? ', ...' : ''}`);
    if (mismatched.length) {
      parts.push(
        `wrong shape for ${mismatched.length} key(s): ` +
          mismatched
            .slice(0, 8)
            .map((m) => `${m.key} is [${m.got.join(', ')}], expected [${m.expected.join(', ')}]`)
            .join('; '),
      );
    }
    super('E_STATE_DICT', `T5 encoder weights from ${source}: ${parts.join('; ')}`, {
      details: { missing, mismatched },
      hint: 'the checkpoint must use the transformers T5 key names (shared.weight, encoder.block.{i}.layer.0.SelfAttention.q.weight, ...) and match config.json',
    });
    this.missing = missing;
    this.mismatched = mismatched;
  }
}

interface Layer {
  ln0: tf.Tensor1D;
  /** [D, inner] each, laid out for x @ W (separate matMuls measured faster than one fused and split). */
  wq: tf.Tensor2D;
  wk: tf.Tensor2D;
  wv: tf.Tensor2D;
  wo: tf.Tensor2D;
  ln1: tf.Tensor1D;
  /** [D, dFf]: wi (relu) or wi_0 (gated, the activated branch). */
  wi: tf.Tensor2D;
  /** [D, dFf]: wi_1, the linear branch of the gated FFN. */
  wiLin: tf.Tensor2D | null;
  wff: tf.Tensor2D;
}

const GELU_C = Math.sqrt(2 / Math.PI);
const MASK_NEG = -1e9;

function activation(x: tf.Tensor, act: T5Config['denseActFn']): tf.Tensor {
  switch (act) {
    case 'gelu_new':
      // transformers' NewGELUActivation 0.5 x (1 + tanh(z)), z = sqrt(2/pi) (x + 0.044715 x^3), computed as
      // x * sigmoid(2z) (the same function: 0.5 (1 + tanh z) = sigmoid(2z)); tanh is 5x slower than
      // sigmoid on the wasm backend.
      return tf.mul(x, tf.sigmoid(tf.mul(x, tf.add(2 * GELU_C, tf.mul(tf.square(x), 2 * GELU_C * 0.044715)))));
    case 'gelu':
      return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
    case 'relu':
      return tf.relu(x);
    case 'silu':
      return tf.mul(x, tf.sigmoid(x));
  }
}

/**
 * The encoder stack of a T5 model (transformers `T5EncoderModel`) on tfjs, in float32:
 * token embedding, per layer a pre-norm self-attention (no 1/sqrt(d) scaling; a relative
 * position bias computed from layer 0's table and shared by every layer, plus the padding mask)
 * and a pre-norm (gated) feed-forward, each added to the residual, then a final RMS norm.
 * Dropout is off (inference).
 */
export class T5EncoderModel {
  readonly config: Readonly<T5Config>;
  /** Where the weights came from (file path or `random(seed=N)`). */
  readonly source: string;
  private embed: tf.Tensor2D;
  private relBias: tf.Tensor2D;
  private finalLn: tf.Tensor1D;
  private layers: Layer[];
  private biasCache: { len: number; bias: tf.Tensor } | null = null;
  private disposed = false;

  private constructor(config: T5Config, source: string, embed: tf.Tensor2D, relBias: tf.Tensor2D, finalLn: tf.Tensor1D, layers: Layer[]) {
    this.config = Object.freeze({ ...config });
    this.source = source;
    this.embed = embed;
    this.relBias = relBias;
    this.finalLn = finalLn;
    this.layers = layers;
  }

  /**
   * Builds the encoder from transformers-named weights. Every required key is checked (presence and
   * shape) before any data is read; a `T5WeightsError` lists all missing and misshapen keys.
   * The embedding may be stored as `shared.weight` or `encoder.embed_tokens.weight`. Other keys
   * (a decoder, an lm_head) are ignored.
   */
  static fromWeights(config: T5Config, source: WeightSource, sourceName = 'weights'): T5EncoderModel {
    validateT5Config(config);
    const shapes = t5EncoderParameterShapes(config);
    const resolved = new Map<string, string>();
    const missing: string[] = [];
    const mismatched: Array<{ key: string; expected: number[]; got: number[] }> = [];
    for (const [key, expected] of shapes) {
      let name = key;
      if (key === 'shared.weight' && !source.has(key) && source.has('encoder.embed_tokens.weight')) name = 'encoder.embed_tokens.weight';
      if (!source.has(name)) {
        missing.push(key);
        continue;
      }
      const got = source.shape(name);
      if (got.length !== expected.length || got.some((v, i) => v !== expected[i])) mismatched.push({ key: name, expected, got });
      resolved.set(key, name);
    }
    if (missing.length || mismatched.length) throw new T5WeightsError(sourceName, missing, mismatched);

    const owned: tf.Tensor[] = [];
    const load = (key: string): tf.Tensor => {
      const name = resolved.get(key)!;
      const t = tf.tensor(source.read(name), source.shape(name), 'float32');
      owned.push(t);
      return t;
    };
    try {
      const c = config;
      const embed = load('shared.weight') as tf.Tensor2D;
      const relBias = load('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight') as tf.Tensor2D;
      const finalLn = load('encoder.final_layer_norm.weight') as tf.Tensor1D;
      const layers: Layer[] = [];
      for (let i = 0; i < c.numLayers; i++) {
        const p = `encoder.block.${i}.layer`;
        // Linear weights are transposed once to [in, out] so that forward runs plain x @ W matMuls.
        const tr = (k: string): tf.Tensor2D => {
          const t = load(k);
          const out = tf.transpose(t) as tf.Tensor2D;
          owned.push(out);
          t.dispose();
          return out;
        };
        const layer: Layer = {
          ln0: load(`${p}.0.layer_norm.weight`) as tf.Tensor1D,
          wq: tr(`${p}.0.SelfAttention.q.weight`),
          wk: tr(`${p}.0.SelfAttention.k.weight`),
          wv: tr(`${p}.0.SelfAttention.v.weight`),
          wo: tr(`${p}.0.SelfAttention.o.weight`),
          ln1: load(`${p}.1.layer_norm.weight`) as tf.Tensor1D,
          wi: tr(`${p}.1.DenseReluDense.${c.isGatedAct ? 'wi_0' : 'wi'}.weight`),
          wiLin: c.isGatedAct ? tr(`${p}.1.DenseReluDense.wi_1.weight`) : null,
          wff: tr(`${p}.1.DenseReluDense.wo.weight`),
        };
        layers.push(layer);
      }
      return new T5EncoderModel(config, sourceName, embed, relBias, finalLn, layers);
    } catch (e) {
      for (const t of owned) if (!t.isDisposed) t.dispose();
      throw e;
    }
  }

  /** Loads a `.safetensors` file, a sharded `*.safetensors.index.json`, or a folder holding one. */
  static fromSafetensors(config: T5Config, file: string): T5EncoderModel {
    const reader = openSafetensors(file);
    try {
      return T5EncoderModel.fromWeights(config, weightsFromReader(reader), reader.path);
    } finally {
      reader.close();
    }
  }

  /** A randomly initialised encoder (transformers' init scales), for tests and benchmarks. */
  static random(config: T5Config, seed = 0): T5EncoderModel {
    return T5EncoderModel.fromWeights(config, weightsFromRecord(randomT5Weights(config, seed)), `random(seed=${seed})`);
  }

  /** Number of parameters held (the embedding counted once). */
  get parameterCount(): number {
    let n = this.embed.size + this.relBias.size + this.finalLn.size;
    for (const l of this.layers) n += l.ln0.size + l.wq.size + l.wk.size + l.wv.size + l.wo.size + l.ln1.size + l.wi.size + (l.wiLin?.size ?? 0) + l.wff.size;
    return n;
  }

  private rmsNorm(x: tf.Tensor, w: tf.Tensor1D): tf.Tensor {
    // transformers T5LayerNorm: x * rsqrt(mean(x^2) + eps) * w; no mean subtraction, no bias.
    const variance = tf.mean(tf.square(x), -1, true);
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, this.config.layerNormEpsilon))), w);
  }

  /** [1, H, L, L] relative-position bias for sequence length L (cached for the last L). */
  positionBias(len: number): tf.Tensor {
    if (this.biasCache && this.biasCache.len === len) return this.biasCache.bias;
    const c = this.config;
    const buckets = relativePositionBuckets(len, len, true, c.relativeAttentionNumBuckets, c.relativeAttentionMaxDistance);
    const bias = tf.tidy(() => {
      const idx = tf.tensor1d(buckets, 'int32');
      const vals = tf.gather(this.relBias, idx); // [L*L, H]
      return tf.expandDims(tf.transpose(tf.reshape(vals, [len, len, c.numHeads]), [2, 0, 1]), 0);
    });
    tf.keep(bias); // survives any tidy() the caller runs forward() in
    this.biasCache?.bias.dispose();
    this.biasCache = { len, bias };
    return bias;
  }

  /**
   * Runs the encoder. `inputIds` [B, L] int32, `attentionMask` [B, L] (1 = attend, 0 = padding).
   * Returns `last_hidden_state`, [B, L, dModel] float32.
   */
  forward(inputIds: tf.Tensor, attentionMask?: tf.Tensor): tf.Tensor3D {
    if (this.disposed) throw new OpenSoraError('E_INVALID_ARGUMENT', 'T5EncoderModel.forward: the model was disposed');
    if (inputIds.rank !== 2) throw new OpenSoraError('E_SHAPE', `T5EncoderModel.forward: inputIds must be [B, L], got [${inputIds.shape.join(', ')}]`);
    const [B, L] = inputIds.shape as [number, number];
    if (attentionMask && (attentionMask.rank !== 2 || attentionMask.shape[0] !== B || attentionMask.shape[1] !== L)) {
      throw new OpenSoraError('E_SHAPE', `T5EncoderModel.forward: attentionMask must be [${B}, ${L}], got [${attentionMask.shape.join(', ')}]`);
    }
    const c = this.config;
    const posBias = this.positionBias(L);
    return tf.tidy(() => {
      const ids = inputIds.dtype === 'int32' ? inputIds : tf.cast(inputIds, 'int32');
      let h: tf.Tensor = tf.gather(this.embed, tf.reshape(ids, [B * L])); // [B*L, D]
      let bias: tf.Tensor = posBias;
      if (attentionMask) {
        const m = tf.cast(attentionMask, 'float32');
        const maskBias = tf.reshape(tf.mul(tf.sub(1, m), MASK_NEG), [B, 1, 1, L]);
        bias = tf.add(posBias, maskBias); // [B, H, L, L]
      }
      for (const l of this.layers) {
        h = tf.tidy(() => {
          const n0 = this.rmsNorm(h, l.ln0) as tf.Tensor2D;
          const ctx = this.attention(tf.matMul(n0, l.wq), tf.matMul(n0, l.wk), tf.matMul(n0, l.wv), bias, B, L);
          const h1 = tf.add(h, tf.matMul(ctx as tf.Tensor2D, l.wo));
          const n1 = this.rmsNorm(h1, l.ln1) as tf.Tensor2D;
          let ff: tf.Tensor;
          if (l.wiLin) {
            ff = tf.mul(activation(tf.matMul(n1, l.wi), c.denseActFn), tf.matMul(n1, l.wiLin));
          } else {
            ff = activation(tf.matMul(n1, l.wi), c.denseActFn);
          }
          return tf.add(h1, tf.matMul(ff as tf.Tensor2D, l.wff));
        });
      }
      return tf.reshape(this.rmsNorm(h, this.finalLn), [B, L, c.dModel]) as tf.Tensor3D;
    });
  }

  /**
   * softmax(q k^T + bias) v per head, without 1/sqrt(dk) scaling. q, k, v are [B*L, H*dk]; returns
   * [B*L, H*dk]. (Batched matMuls are slow on tfjs-wasm, but a loop of per-head 2D matMuls measured
   * 1.5-40x slower still because of the per-op overhead of the slices; padding trimming keeps L small.)
   */
  private attention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, bias: tf.Tensor, B: number, L: number): tf.Tensor {
    const H = this.config.numHeads;
    const dk = this.config.dKv;
    const heads = (x: tf.Tensor) => tf.transpose(tf.reshape(x, [B, L, H, dk]), [0, 2, 1, 3]);
    const p = tf.softmax(tf.add(tf.matMul(heads(q), heads(k), false, true), bias), -1);
    return tf.reshape(tf.transpose(tf.matMul(p, heads(v)), [0, 2, 1, 3]), [B * L, H * dk]);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.biasCache?.bias.dispose();
    this.biasCache = null;
    const all: tf.Tensor[] = [this.embed, this.relBias, this.finalLn];
    for (const l of this.layers) all.push(l.ln0, l.wq, l.wk, l.wv, l.wo, l.ln1, l.wi, l.wff, ...(l.wiLin ? [l.wiLin] : []));
    for (const t of all) if (!t.isDisposed) t.dispose();
  }
}

/**
 * Random weights under transformers' key names and shapes, with its T5 init scales
 * (q: N(0, (D*dk)^-1/2), k/v/wi: N(0, D^-1/2), o: N(0, (H*dk)^-1/2), wo: N(0, dFf^-1/2), embedding N(0, 1),
 * relative bias N(0, D^-1/2)). The norm weights are 1 + N(0, 0.1) so that they matter in tests.
 */
export function randomT5Weights(config: T5Config, seed = 0): WeightRecord {
  const rng = new Rng(`t5-random:${seed}`);
  const c = config;
  const out: WeightRecord = {};
  for (const [key, shape] of t5EncoderParameterShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    let mean = 0;
    let std: number;
    if (key.endsWith('layer_norm.weight')) {
      mean = 1;
      std = 0.1;
    } else if (key === 'shared.weight') std = 1;
    else if (key.endsWith('.q.weight')) std = (c.dModel * c.dKv) ** -0.5;
    else if (key.endsWith('.o.weight')) std = (c.numHeads * c.dKv) ** -0.5;
    else if (key.endsWith('.wo.weight')) std = c.dFf ** -0.5;
    else std = c.dModel ** -0.5;
    for (let i = 0; i < n; i++) data[i] = rng.normal(mean, std);
    out[key] = { shape: [...shape], data };
  }
  return out;
}
