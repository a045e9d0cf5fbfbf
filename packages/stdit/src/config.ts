/**
 * STDiT2 configuration: the typed camelCase config, its validation, the reference's snake_case
 * config (`STDiT2Config` / hub `config.json`), presets and the parameter layout (names and
 * shapes of the official state dict, spec section 7), from which the parameter count follows
 * without allocating anything.
 */
import { ConfigError } from '@opensora/core';

export interface STDiT2Config {
  /** Latent channels (VAE). */
  inChannels: number;
  /** (t, h, w) patch size. */
  patchSize: [number, number, number];
  hiddenSize: number;
  depth: number;
  numHeads: number;
  mlpRatio: number;
  /** Caption dropout probability in training (to the learned null embedding). */
  classDropoutProb: number;
  /** Predict the variance too: outChannels = 2 * inChannels. */
  predSigma: boolean;
  /** Stochastic depth: block i uses dropPath * i / (depth - 1). */
  dropPath: number;
  /** Text encoder width (4096 for T5-XXL). */
  captionChannels: number;
  /** Rows of the null-caption buffer `y_embedding` (200 for the official v1.1 weights). */
  modelMaxLength: number;
  /** Position-embedding scale: scale = sqrt(h0 * w0) / inputSqSize (512 in the official weights). */
  inputSqSize: number;
  /** RMSNorm on q and k per head (true in the official weights). */
  qkNorm: boolean;
  /** Official freeze options: 'not_temporal' trains only attn_temp, 'text' freezes cross_attn. */
  freeze?: 'not_temporal' | 'text' | null;
}

export type STDiT2ConfigInput = Partial<STDiT2Config>;

/** The defaults of the reference `STDiT2Config` class (not those of the official checkpoint). */
export const STDIT2_DEFAULTS: STDiT2Config = {
  inChannels: 4,
  patchSize: [1, 2, 2],
  hiddenSize: 1152,
  depth: 28,
  numHeads: 16,
  mlpRatio: 4.0,
  classDropoutProb: 0.1,
  predSigma: true,
  dropPath: 0.0,
  captionChannels: 4096,
  modelMaxLength: 120,
  inputSqSize: 32,
  qkNorm: false,
  freeze: null,
};

/**
 * Presets. `STDiT2-XL/2` is the official Open-Sora 1.1 model as its checkpoints need it
 * (input_sq_size 512, model_max_length 200, qk_norm true). The small ones are for CPU work:
 * `tiny` matches the shared fixtures' tiny model, `bench` the benchmark config of facts.md.
 */
export const STDIT2_PRESETS: Record<string, STDiT2Config> = {
  'STDiT2-XL/2': {
    ...STDIT2_DEFAULTS,
    depth: 28,
    hiddenSize: 1152,
    patchSize: [1, 2, 2],
    numHeads: 16,
    inputSqSize: 512,
    modelMaxLength: 200,
    qkNorm: true,
  },
  'STDiT2-S/2': {
    ...STDIT2_DEFAULTS,
    depth: 12,
    hiddenSize: 384,
    numHeads: 6,
    captionChannels: 512,
    modelMaxLength: 32,
    inputSqSize: 64,
    qkNorm: true,
  },
  'STDiT2-bench': {
    ...STDIT2_DEFAULTS,
    depth: 6,
    hiddenSize: 384,
    numHeads: 6,
    captionChannels: 512,
    modelMaxLength: 32,
    inputSqSize: 64,
    qkNorm: true,
  },
  'STDiT2-tiny': {
    ...STDIT2_DEFAULTS,
    depth: 2,
    hiddenSize: 96,
    numHeads: 4,
    captionChannels: 32,
    modelMaxLength: 16,
    inputSqSize: 32,
    qkNorm: true,
  },
  'STDiT2-micro': {
    ...STDIT2_DEFAULTS,
    depth: 1,
    hiddenSize: 24,
    numHeads: 2,
    captionChannels: 8,
    modelMaxLength: 4,
    inputSqSize: 16,
    qkNorm: true,
  },
};

const CAMEL_KEYS = Object.keys(STDIT2_DEFAULTS) as (keyof STDiT2Config)[];

function isPosInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

/**
 * Fills defaults and validates; throws a `ConfigError` listing every bad field with what was
 * expected.
 */
export function resolveConfig(input: STDiT2ConfigInput = {}, source = 'STDiT2 config'): STDiT2Config {
  const problems: string[] = [];
  if (typeof input !== 'object' || input === null) {
    throw new ConfigError(`${source}: expected an object, got ${input === null ? 'null' : typeof input}`);
  }
  for (const k of Object.keys(input)) {
    if (!(CAMEL_KEYS as string[]).includes(k)) {
      problems.push(`${k}: unknown field (known: ${CAMEL_KEYS.join(', ')})`);
    }
  }
  const c: STDiT2Config = { ...STDIT2_DEFAULTS, ...input } as STDiT2Config;
  if (input.patchSize !== undefined) c.patchSize = [...input.patchSize] as [number, number, number];
  for (const k of ['inChannels', 'hiddenSize', 'depth', 'numHeads', 'captionChannels', 'modelMaxLength'] as const) {
    if (!isPosInt(c[k])) problems.push(`${k}: expected a positive integer, got ${JSON.stringify(c[k])}`);
  }
  if (!Array.isArray(c.patchSize) || c.patchSize.length !== 3 || !c.patchSize.every(isPosInt)) {
    problems.push(`patchSize: expected three positive integers [t, h, w], got ${JSON.stringify(c.patchSize)}`);
  }
  if (typeof c.mlpRatio !== 'number' || !(c.mlpRatio > 0) || !Number.isFinite(c.mlpRatio)) {
    problems.push(`mlpRatio: expected a positive number, got ${JSON.stringify(c.mlpRatio)}`);
  }
  if (typeof c.inputSqSize !== 'number' || !(c.inputSqSize > 0) || !Number.isFinite(c.inputSqSize)) {
    problems.push(`inputSqSize: expected a positive number, got ${JSON.stringify(c.inputSqSize)}`);
  }
  for (const k of ['classDropoutProb', 'dropPath'] as const) {
    if (typeof c[k] !== 'number' || !(c[k] >= 0 && c[k] < 1)) problems.push(`${k}: expected a number in [0, 1), got ${JSON.stringify(c[k])}`);
  }
  for (const k of ['predSigma', 'qkNorm'] as const) {
    if (typeof c[k] !== 'boolean') problems.push(`${k}: expected a boolean, got ${JSON.stringify(c[k])}`);
  }
  if (c.freeze !== undefined && c.freeze !== null && c.freeze !== 'not_temporal' && c.freeze !== 'text') {
    problems.push(`freeze: expected null, 'not_temporal' or 'text', got ${JSON.stringify(c.freeze)}`);
  }
  if (isPosInt(c.hiddenSize)) {
    if (c.hiddenSize % 3 !== 0) problems.push(`hiddenSize: must be divisible by 3 (the size embedders use hiddenSize / 3 each), got ${c.hiddenSize}`);
    if (isPosInt(c.numHeads) && c.hiddenSize % c.numHeads !== 0) {
      problems.push(`hiddenSize: must be divisible by numHeads (${c.numHeads}), got ${c.hiddenSize}`);
    } else if (isPosInt(c.numHeads) && (c.hiddenSize / c.numHeads) % 2 !== 0) {
      problems.push(`hiddenSize / numHeads: the head dim must be even for the rotary embedding, got ${c.hiddenSize / c.numHeads}`);
    }
    if (c.hiddenSize % 4 !== 0) problems.push(`hiddenSize: must be divisible by 4 (2D sin/cos position embedding), got ${c.hiddenSize}`);
  }
  if (problems.length) {
    throw new ConfigError(`${source} is invalid:\n  - ${problems.join('\n  - ')}`, { details: { problems } });
  }
  return c;
}

/** Maps the reference's snake_case keys to ours. Keys that carry no maths are accepted and dropped. */
const SNAKE_TO_CAMEL: Record<string, keyof STDiT2Config> = {
  in_channels: 'inChannels',
  patch_size: 'patchSize',
  hidden_size: 'hiddenSize',
  depth: 'depth',
  num_heads: 'numHeads',
  mlp_ratio: 'mlpRatio',
  class_dropout_prob: 'classDropoutProb',
  pred_sigma: 'predSigma',
  drop_path: 'dropPath',
  caption_channels: 'captionChannels',
  model_max_length: 'modelMaxLength',
  input_sq_size: 'inputSqSize',
  qk_norm: 'qkNorm',
  freeze: 'freeze',
};
/** Reference keys without a numerical meaning here (kernel choices, HF bookkeeping, unused fields). */
const IGNORED_SNAKE = new Set([
  'input_size',
  'no_temporal_pos_emb',
  'enable_flash_attn',
  'enable_flashattn',
  'enable_layernorm_kernel',
  'enable_sequence_parallelism',
  'qk_norm_legacy',
  'model_type',
  'architectures',
  'transformers_version',
  'torch_dtype',
  '_name_or_path',
  '_commit_hash',
  'return_dict',
  'output_hidden_states',
  'output_attentions',
  'torchscript',
  'use_bfloat16',
  'tie_word_embeddings',
  'is_encoder_decoder',
  'is_decoder',
  'add_cross_attention',
  'tie_encoder_decoder',
  'pruned_heads',
  'chunk_size_feed_forward',
  'problem_type',
  'tokenizer_class',
  'label2id',
  'id2label',
]);

/**
 * Builds a config from the reference's snake_case form (`STDiT2Config(**kwargs)`, the hub
 * `config.json`, or the fixture metadata). Missing fields take the reference class defaults,
 * exactly as `STDiT2Config` would (so a config without `input_sq_size` gets 32, not 512).
 * Accepts a JSON string too. Unknown keys are ignored, as HF `PretrainedConfig` keeps extra
 * kwargs without meaning; `strict` makes them an error (keys known to carry no maths, such as
 * `enable_flash_attn` or HF bookkeeping, are always accepted).
 */
export function configFromOfficial(json: string | Record<string, unknown>, options: { strict?: boolean } = {}): STDiT2Config {
  let obj: Record<string, unknown>;
  if (typeof json === 'string') {
    try {
      obj = JSON.parse(json) as Record<string, unknown>;
    } catch (e) {
      throw new ConfigError(`official STDiT2 config: not valid JSON (${(e as Error).message})`);
    }
  } else obj = json;
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    throw new ConfigError('official STDiT2 config: expected a JSON object');
  }
  const out: STDiT2ConfigInput = {};
  const problems: string[] = [];
  for (const [k, v] of Object.entries(obj)) {
    const ck = SNAKE_TO_CAMEL[k];
    if (ck) {
      if (ck === 'patchSize' && Array.isArray(v)) (out as Record<string, unknown>)[ck] = v.slice();
      else (out as Record<string, unknown>)[ck] = v;
    } else if (options.strict && !IGNORED_SNAKE.has(k)) {
      problems.push(`${k}: unknown field of the reference STDiT2Config`);
    }
  }
  if (problems.length) {
    throw new ConfigError(`official STDiT2 config is invalid:\n  - ${problems.join('\n  - ')}`, { details: { problems } });
  }
  return resolveConfig(out, 'official STDiT2 config');
}

/** The reference's snake_case config for `c` (what `config.json` holds), for saving. */
export function configToOfficial(c: STDiT2Config): Record<string, unknown> {
  return {
    model_type: 'STDiT2',
    architectures: ['STDiT2'],
    input_size: [null, null, null],
    input_sq_size: c.inputSqSize,
    in_channels: c.inChannels,
    patch_size: [...c.patchSize],
    hidden_size: c.hiddenSize,
    depth: c.depth,
    num_heads: c.numHeads,
    mlp_ratio: c.mlpRatio,
    class_dropout_prob: c.classDropoutProb,
    pred_sigma: c.predSigma,
    drop_path: c.dropPath,
    no_temporal_pos_emb: false,
    caption_channels: c.captionChannels,
    model_max_length: c.modelMaxLength,
    freeze: c.freeze ?? null,
    qk_norm: c.qkNorm,
    enable_flash_attn: false,
    enable_layernorm_kernel: false,
  };
}

export interface ParamSpec {
  name: string;
  shape: number[];
  /** false for the buffers `y_embedder.y_embedding` and `rope.freqs`. */
  trainable: boolean;
}

/** Derived sizes. */
export function derived(c: STDiT2Config) {
  const D = c.hiddenSize;
  const headDim = D / c.numHeads;
  const [pt, ph, pw] = c.patchSize;
  const outChannels = c.predSigma ? c.inChannels * 2 : c.inChannels;
  return {
    D,
    headDim,
    mlpHidden: Math.trunc(D * c.mlpRatio),
    sizeDim: D / 3,
    patchVol: pt * ph * pw,
    outChannels,
    finalOut: pt * ph * pw * outChannels,
    ropeFreqs: headDim / 2,
  };
}

/** Every state-dict entry in the official order (spec section 7), with its shape. */
export function parameterSpecs(c: STDiT2Config): ParamSpec[] {
  const d = derived(c);
  const D = d.D;
  const [pt, ph, pw] = c.patchSize;
  const P = (name: string, shape: number[], trainable = true): ParamSpec => ({ name, shape, trainable });
  const mlp2 = (prefix: string, inDim: number, outDim: number) => [
    P(`${prefix}.mlp.0.weight`, [outDim, inDim]),
    P(`${prefix}.mlp.0.bias`, [outDim]),
    P(`${prefix}.mlp.2.weight`, [outDim, outDim]),
    P(`${prefix}.mlp.2.bias`, [outDim]),
  ];
  const out: ParamSpec[] = [
    P('x_embedder.proj.weight', [D, c.inChannels, pt, ph, pw]),
    P('x_embedder.proj.bias', [D]),
    ...mlp2('t_embedder', 256, D),
    P('t_block.1.weight', [6 * D, D]),
    P('t_block.1.bias', [6 * D]),
    P('t_block_temp.1.weight', [3 * D, D]),
    P('t_block_temp.1.bias', [3 * D]),
    P('y_embedder.y_embedding', [c.modelMaxLength, c.captionChannels], false),
    P('y_embedder.y_proj.fc1.weight', [D, c.captionChannels]),
    P('y_embedder.y_proj.fc1.bias', [D]),
    P('y_embedder.y_proj.fc2.weight', [D, D]),
    P('y_embedder.y_proj.fc2.bias', [D]),
    P('rope.freqs', [d.ropeFreqs], false),
  ];
  for (let i = 0; i < c.depth; i++) {
    const b = `blocks.${i}`;
    const attn = (name: string) => [
      P(`${b}.${name}.qkv.weight`, [3 * D, D]),
      P(`${b}.${name}.qkv.bias`, [3 * D]),
      ...(c.qkNorm ? [P(`${b}.${name}.q_norm.weight`, [d.headDim]), P(`${b}.${name}.k_norm.weight`, [d.headDim])] : []),
      P(`${b}.${name}.proj.weight`, [D, D]),
      P(`${b}.${name}.proj.bias`, [D]),
    ];
    out.push(
      P(`${b}.scale_shift_table`, [6, D]),
      P(`${b}.scale_shift_table_temporal`, [3, D]),
      ...attn('attn'),
      P(`${b}.cross_attn.q_linear.weight`, [D, D]),
      P(`${b}.cross_attn.q_linear.bias`, [D]),
      P(`${b}.cross_attn.kv_linear.weight`, [2 * D, D]),
      P(`${b}.cross_attn.kv_linear.bias`, [2 * D]),
      P(`${b}.cross_attn.proj.weight`, [D, D]),
      P(`${b}.cross_attn.proj.bias`, [D]),
      P(`${b}.mlp.fc1.weight`, [d.mlpHidden, D]),
      P(`${b}.mlp.fc1.bias`, [d.mlpHidden]),
      P(`${b}.mlp.fc2.weight`, [D, d.mlpHidden]),
      P(`${b}.mlp.fc2.bias`, [D]),
      ...attn('attn_temp'),
    );
  }
  out.push(
    P('final_layer.scale_shift_table', [2, D]),
    P('final_layer.linear.weight', [d.finalOut, D]),
    P('final_layer.linear.bias', [d.finalOut]),
    ...mlp2('csize_embedder', 256, d.sizeDim),
    ...mlp2('ar_embedder', 256, d.sizeDim),
    ...mlp2('fl_embedder', 256, D),
    ...mlp2('fps_embedder', 256, D),
  );
  return out;
}

export interface ParameterCount {
  /** Every value of the state dict (parameters and the two persistent buffers). */
  total: number;
  /** Trainable parameters (everything but y_embedding and rope.freqs). */
  trainable: number;
  /** Number of state-dict keys. */
  keys: number;
  /** Bytes of the state dict in float32. */
  bytesF32: number;
}

/** Counts the parameters from shapes alone (nothing is allocated). */
export function countParameters(c: STDiT2Config): ParameterCount {
  let total = 0;
  let trainable = 0;
  const specs = parameterSpecs(c);
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    total += n;
    if (s.trainable) trainable += n;
  }
  return { total, trainable, keys: specs.length, bytesF32: total * 4 };
}
