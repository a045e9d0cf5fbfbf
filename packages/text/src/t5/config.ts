import { ConfigError } from '@opensora/core';

/** The encoder half of a Hugging Face `T5Config` (camelCase). */
export interface T5Config {
  vocabSize: number;
  dModel: number;
  /** Size of one attention head. */
  dKv: number;
  dFf: number;
  numLayers: number;
  numHeads: number;
  relativeAttentionNumBuckets: number;
  relativeAttentionMaxDistance: number;
  layerNormEpsilon: number;
  /** The feed-forward activation, e.g. 'gelu_new' (T5 v1.1) or 'relu' (T5 v1.0). */
  denseActFn: T5Activation;
  /** Gated feed-forward (wi_0 and wi_1), as in T5 v1.1's "gated-gelu". */
  isGatedAct: boolean;
  padTokenId: number;
  eosTokenId: number;
}

export type T5Activation = 'gelu_new' | 'gelu' | 'relu' | 'silu';

/**
 * The encoder of `DeepFloyd/t5-v1_1-xxl` (= google/t5-v1_1-xxl), the text encoder of Open-Sora 1.1.
 * From the model's published config.json: 24 layers, d_model 4096, 64 heads of 64, d_ff 10240,
 * gated-GELU, 32 relative-position buckets up to distance 128, vocab 32128.
 */
export const T5_V1_1_XXL_CONFIG: Readonly<T5Config> = Object.freeze({
  vocabSize: 32128,
  dModel: 4096,
  dKv: 64,
  dFf: 10240,
  numLayers: 24,
  numHeads: 64,
  relativeAttentionNumBuckets: 32,
  relativeAttentionMaxDistance: 128,
  layerNormEpsilon: 1e-6,
  denseActFn: 'gelu_new',
  isGatedAct: true,
  padTokenId: 0,
  eosTokenId: 1,
});

const ACTS: Record<string, T5Activation> = {
  gelu_new: 'gelu_new',
  gelu_pytorch_tanh: 'gelu_new',
  gelu: 'gelu',
  relu: 'relu',
  silu: 'silu',
  swish: 'silu',
};

/**
 * Reads a Hugging Face T5 `config.json` object (snake_case), applying transformers' defaults
 * and its `feed_forward_proj` parsing ("gated-gelu" means gated with gelu_new; "relu" plain).
 */
export function parseT5Config(json: unknown, source = 'config.json'): T5Config {
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new ConfigError(`${source}: expected a JSON object`);
  const j = json as Record<string, unknown>;
  const num = (key: string, def?: number): number => {
    const v = j[key];
    if (v === undefined || v === null) {
      if (def === undefined) throw new ConfigError(`${source}: '${key}' is missing`, { hint: 'a T5 config.json needs d_model, d_kv, d_ff, num_layers, num_heads and vocab_size' });
      return def;
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(`${source}: '${key}' must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  const int = (key: string, def?: number): number => {
    const v = num(key, def);
    if (!Number.isInteger(v) || v < 0) throw new ConfigError(`${source}: '${key}' must be a non-negative integer, got ${v}`);
    return v;
  };
  const ffp = typeof j.feed_forward_proj === 'string' ? j.feed_forward_proj : 'relu';
  const parts = ffp.split('-');
  const gated = parts[0] === 'gated' && parts.length === 2;
  if (!(parts.length === 1 || gated)) {
    throw new ConfigError(`${source}: feed_forward_proj '${ffp}' is not of the form 'gated-{act}' or '{act}'`);
  }
  // transformers derives the activation from feed_forward_proj ("gated-gelu" maps to gelu_new for
  // backward compatibility), then lets explicit dense_act_fn / is_gated_act keys in the file win.
  let actName = ffp === 'gated-gelu' ? 'gelu_new' : parts[parts.length - 1]!;
  if (typeof j.dense_act_fn === 'string') actName = j.dense_act_fn;
  const isGated = typeof j.is_gated_act === 'boolean' ? j.is_gated_act : gated;
  const act = ACTS[actName];
  if (!act) throw new ConfigError(`${source}: activation '${actName}' is not supported (use one of ${Object.keys(ACTS).join(', ')})`);
  const dModel = int('d_model');
  const cfg: T5Config = {
    vocabSize: int('vocab_size'),
    dModel,
    dKv: int('d_kv'),
    dFf: int('d_ff'),
    numLayers: int('num_layers'),
    numHeads: int('num_heads'),
    relativeAttentionNumBuckets: int('relative_attention_num_buckets', 32),
    relativeAttentionMaxDistance: int('relative_attention_max_distance', 128),
    layerNormEpsilon: num('layer_norm_epsilon', 1e-6),
    denseActFn: act,
    isGatedAct: isGated,
    padTokenId: int('pad_token_id', 0),
    eosTokenId: int('eos_token_id', 1),
  };
  validateT5Config(cfg, source);
  return cfg;
}

/** The transformers config.json form of a config (what `save_pretrained` writes). */
export function t5ConfigToJson(c: T5Config): Record<string, unknown> {
  const act = c.denseActFn;
  return {
    architectures: ['T5EncoderModel'],
    model_type: 't5',
    vocab_size: c.vocabSize,
    d_model: c.dModel,
    d_kv: c.dKv,
    d_ff: c.dFf,
    num_layers: c.numLayers,
    num_heads: c.numHeads,
    relative_attention_num_buckets: c.relativeAttentionNumBuckets,
    relative_attention_max_distance: c.relativeAttentionMaxDistance,
    layer_norm_epsilon: c.layerNormEpsilon,
    feed_forward_proj: c.isGatedAct ? (act === 'gelu_new' ? 'gated-gelu' : `gated-${act}`) : act,
    dense_act_fn: act,
    is_gated_act: c.isGatedAct,
    pad_token_id: c.padTokenId,
    eos_token_id: c.eosTokenId,
  };
}

export function validateT5Config(c: T5Config, source = 'T5 config'): void {
  const pos: Array<keyof T5Config> = ['vocabSize', 'dModel', 'dKv', 'dFf', 'numHeads', 'relativeAttentionNumBuckets', 'relativeAttentionMaxDistance'];
  for (const k of pos) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new ConfigError(`${source}: ${k} must be a positive integer, got ${String(v)}`);
  }
  if (!Number.isInteger(c.numLayers) || c.numLayers < 1) throw new ConfigError(`${source}: numLayers must be >= 1, got ${c.numLayers}`);
  if (c.relativeAttentionNumBuckets < 4) throw new ConfigError(`${source}: relativeAttentionNumBuckets must be >= 4 (bidirectional buckets are split in halves and quarters), got ${c.relativeAttentionNumBuckets}`);
  if (!(c.layerNormEpsilon > 0)) throw new ConfigError(`${source}: layerNormEpsilon must be > 0`);
}

/**
 * Every parameter of a T5 encoder with its transformers key and PyTorch shape ([out, in] for
 * Linear weights). The token embedding is listed once, as `shared.weight` (`encoder.embed_tokens.weight`
 * is tied to it).
 */
export function t5EncoderParameterShapes(c: T5Config): Array<[string, number[]]> {
  const inner = c.numHeads * c.dKv;
  const out: Array<[string, number[]]> = [['shared.weight', [c.vocabSize, c.dModel]]];
  for (let i = 0; i < c.numLayers; i++) {
    const p = `encoder.block.${i}.layer`;
    out.push([`${p}.0.SelfAttention.q.weight`, [inner, c.dModel]]);
    out.push([`${p}.0.SelfAttention.k.weight`, [inner, c.dModel]]);
    out.push([`${p}.0.SelfAttention.v.weight`, [inner, c.dModel]]);
    out.push([`${p}.0.SelfAttention.o.weight`, [c.dModel, inner]]);
    if (i === 0) out.push([`${p}.0.SelfAttention.relative_attention_bias.weight`, [c.relativeAttentionNumBuckets, c.numHeads]]);
    out.push([`${p}.0.layer_norm.weight`, [c.dModel]]);
    if (c.isGatedAct) {
      out.push([`${p}.1.DenseReluDense.wi_0.weight`, [c.dFf, c.dModel]]);
      out.push([`${p}.1.DenseReluDense.wi_1.weight`, [c.dFf, c.dModel]]);
    } else {
      out.push([`${p}.1.DenseReluDense.wi.weight`, [c.dFf, c.dModel]]);
    }
    out.push([`${p}.1.DenseReluDense.wo.weight`, [c.dModel, c.dFf]]);
    out.push([`${p}.1.layer_norm.weight`, [c.dModel]]);
  }
  out.push(['encoder.final_layer_norm.weight', [c.dModel]]);
  return out;
}

/** Number of encoder parameters, from the shapes alone (no weights needed). T5-XXL: 4,762,310,656. */
export function countT5EncoderParameters(c: T5Config): number {
  let n = 0;
  for (const [, s] of t5EncoderParameterShapes(c)) n += s.reduce((a, b) => a * b, 1);
  return n;
}
