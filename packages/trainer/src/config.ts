/**
 * Typed, validated training configs. Field names are the reference's (`configs/opensora-v1-1/train/*.py`)
 * in camelCase; the schema rejects unknown top-level keys (the reference silently ignored its own
 * `enable_flashattn` typo: we report such keys). Adapter option objects (model, vae, textEncoder,
 * scheduler) keep extra keys and pass them on to the adapter's factory.
 */
import { existsSync } from 'node:fs';
import { z, validateConfig, applyOverrides, loadConfigFile, ConfigError } from '@opensora/core';
import { DEFAULT_MASK_RATIOS, MASK_TYPES } from '@opensora/mask';

/** A bucket cell: `[keepProb, batchSize | null]` (the reference's tuple, `null` for `None`). */
export const BucketCellSchema = z.tuple([z.number().min(0).max(1), z.number().int().positive().nullable()]);
/** `{ [resolution]: { [numFrames]: [keepProb, batchSize | null] } }`. */
export const BucketConfigSchema = z.record(z.string().min(1), z.record(z.string().regex(/^\d+$/, 'frame keys are integers'), BucketCellSchema));
export type BucketConfig = z.output<typeof BucketConfigSchema>;

/** A resolution registered for small runs: a pixel count and its aspect table (key = H/W to 2 decimals). */
export const CustomResolutionSchema = z.strictObject({
  pixels: z.number().int().positive(),
  ratios: z.record(z.string(), z.tuple([z.number().int().positive(), z.number().int().positive()])),
});
export type CustomResolution = z.output<typeof CustomResolutionSchema>;


export const MaskRatiosSchema = z
  .partialRecord(z.enum(MASK_TYPES), z.number().min(0).max(1))
  .refine((r) => Math.abs(Object.values(r).reduce((a, b) => a + (b ?? 0), 0) - 1) <= 1e-6, {
    message: 'mask ratios must sum to 1 (within 1e-6)',
  });

export const ModelConfigSchema = z.looseObject({
  /** Model family; only STDiT2 exists in 1.1. */
  type: z.literal('STDiT2').default('STDiT2'),
  /** A preset name of @opensora/stdit (`STDiT2-XL/2`, ...), or null to build from `config` alone. */
  preset: z.string().nullable().default('STDiT2-XL/2'),
  /** camelCase STDiT2 config fields that override the preset (inChannels/captionChannels/modelMaxLength default to the VAE's and text encoder's). */
  config: z.record(z.string(), z.unknown()).default({}),
  /** Initial weights (the reference's `model.from_pretrained`, set by `--ckpt-path`). */
  fromPretrained: z.string().nullable().default(null),
  /** Parameter-name patterns (substring or /regex/) that are not trained. */
  freeze: z.array(z.string()).default([]),
});

export const VaeConfigSchema = z.looseObject({
  type: z.enum(['builtin', 'sd-vae']).default('builtin'),
  fromPretrained: z.string().nullable().default(null),
  microBatchSize: z.number().int().positive().nullable().default(null),
});

export const TextEncoderConfigSchema = z.looseObject({
  type: z.enum(['builtin', 't5']).default('builtin'),
  fromPretrained: z.string().nullable().default(null),
  modelMaxLength: z.number().int().positive().default(200),
  /** A folder for the caption-embedding cache (null: no cache). */
  cacheDir: z.string().nullable().default(null),
});

export const SchedulerConfigSchema = z.looseObject({
  type: z.enum(['iddpm', 'iddpm-speed']).default('iddpm'),
  timestepRespacing: z.string().default(''),
});

export const DatasetConfigSchema = z.strictObject({
  type: z.literal('VariableVideoTextDataset').default('VariableVideoTextDataset'),
  /** The dataset CSV (the reference's `--data-path`). */
  dataPath: z.string().nullable().default(null),
  frameInterval: z.number().int().positive().default(3),
  transformName: z.enum(['resize_crop', 'center']).default('resize_crop'),
  /** Batches read ahead of the step being computed. */
  prefetch: z.number().int().min(0).default(2),
});

export const OptimizerConfigSchema = z.strictObject({
  type: z.literal('adamw').default('adamw'),
  betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).default([0.9, 0.999]),
  eps: z.number().positive().default(1e-8),
  weightDecay: z.number().min(0).default(0),
});

export const TrainConfigSchema = z.strictObject({
  /** Where the config came from (a preset name, a file). */
  name: z.string().default('custom'),
  model: ModelConfigSchema.prefault({}),
  vae: VaeConfigSchema.prefault({}),
  textEncoder: TextEncoderConfigSchema.prefault({}),
  scheduler: SchedulerConfigSchema.prefault({}),
  dataset: DatasetConfigSchema.prefault({}),
  bucketConfig: BucketConfigSchema,
  /** Resolutions to register with @opensora/bucket before the bucket config is read. */
  customResolutions: z.record(z.string(), CustomResolutionSchema).default({}),
  /** Training-mask ratios (null: no masking, as in image/video/benchmark). */
  maskRatios: MaskRatiosSchema.nullable().default(null),
  /** Recompute each block in the backward pass (memory only; same numbers). */
  gradCheckpoint: z.boolean().default(false),
  lr: z.number().min(0).default(2e-5),
  optimizer: OptimizerConfigSchema.prefault({}),
  /** Global-norm gradient clipping (<= 0 disables). */
  gradClip: z.number().default(1.0),
  /** EMA decay (the reference's fixed 0.9999); null disables the EMA. */
  emaDecay: z.number().min(0).max(1).nullable().default(0.9999),
  emaSkip: z.array(z.string()).default(['pos_embed']),
  seed: z.number().int().default(42),
  epochs: z.number().int().positive().default(1000),
  /** Stop after this many global steps (null: run `epochs`). */
  maxSteps: z.number().int().positive().nullable().default(null),
  logEvery: z.number().int().positive().default(10),
  ckptEvery: z.number().int().min(0).default(500),
  /** Keep only the last K checkpoints (null: keep all, as the reference). */
  keepLast: z.number().int().positive().nullable().default(null),
  /** Stop after this many consecutive non-finite steps (each one is skipped and logged). */
  nonFiniteLimit: z.number().int().positive().default(5),
  /** Output folder of the run (config, log.jsonl, loss.png, checkpoints). */
  outputs: z.string().default('outputs'),
  /** Resume from a checkpoint folder (`--load`), or 'latest' for the newest one under `outputs`. */
  load: z.string().nullable().default(null),
  /** With `load`: keep weights, EMA and optimizer moments but reset counters and the sampler. */
  startFromScratch: z.boolean().default(false),
  /** Per-GPU batch size, "only for logging" in the reference; unused here (buckets set the batch). */
  batchSize: z.number().int().positive().nullable().default(null),
  /** The reference computes in bf16; every backend here computes in fp32 (kept for the record). */
  dtype: z.enum(['fp32', 'bf16', 'fp16']).default('fp32'),
  /** The reference's ColossalAI plugin and workers: recorded, not used (one process here). */
  plugin: z.string().default('zero2'),
  spSize: z.number().int().positive().default(1),
  numWorkers: z.number().int().min(0).default(4),
  numBucketBuildWorkers: z.number().int().positive().default(1),
  /** Benchmark preset only: the batch-size search table of `benchmark.py`, kept verbatim. */
  batchSizeSearch: z.record(z.string(), z.record(z.string(), z.unknown())).optional(),
  /** Free-form notes (what a preset mirrors, what differs). */
  notes: z.array(z.string()).default([]),
});

export type TrainConfig = z.output<typeof TrainConfigSchema>;
export type TrainConfigInput = z.input<typeof TrainConfigSchema>;

// ---------------------------------------------------------------------------------------------
// presets

/** `mask_ratios` of stage1/2/3 (data.md 5.4), in the reference's order: the mask package's defaults. */
export const STAGE_MASK_RATIOS = DEFAULT_MASK_RATIOS;

type Cell = [number, number | null];
type Table = Record<string, Record<string, Cell>>;

/** data.md 5.3, rows in processing order. */
export const OFFICIAL_BUCKETS: Readonly<Record<'stage1' | 'stage2' | 'stage3' | 'image' | 'video' | 'benchmark', Table>> = Object.freeze({
  stage1: {
    '1024': { '1': [0.3, 3] },
    '512': { '1': [0.4, 12] },
    '240p': { '16': [0.3, 2], '32': [0.3, 1], '64': [0.0, null] },
    '256': { '1': [0.5, 24], '16': [0.5, 3], '48': [0.5, 1], '64': [0.0, null] },
    '144p': { '1': [0.5, 48], '16': [1.0, 6], '32': [1.0, 3], '96': [1.0, 1] },
  },
  stage2: {
    '1080p': { '1': [0.4, 8] },
    '1024': { '1': [0.3, 20] },
    '720p': { '1': [0.1, 20], '16': [0.1, 2], '32': [0.0, null] },
    '480p': { '1': [0.4, 54], '16': [0.4, 4], '32': [0.0, null] },
    '512': { '1': [0.5, 86], '16': [0.2, 4], '32': [0.2, 2], '64': [0.2, 1], '128': [0.0, null] },
    '240p': { '1': [0.1, 20], '16': [0.9, 17], '32': [0.8, 9], '64': [0.8, 4], '128': [0.8, 2] },
    '256': { '1': [0.8, 254], '16': [0.5, 17], '32': [0.5, 9], '64': [0.5, 4], '128': [0.5, 1] },
    '144p': { '1': [1.0, 48], '16': [1.0, 17], '32': [1.0, 9], '64': [1.0, 4], '128': [1.0, 1] },
  },
  stage3: {
    '1024': { '1': [0.3, 40] },
    '720p': { '1': [0.4, 40], '16': [0.6, 3], '32': [0.6, 1], '96': [0.0, null] },
    '480p': { '1': [0.4, 80], '16': [0.6, 6], '32': [0.6, 3], '64': [0.6, 1], '128': [0.0, null] },
    '512': { '1': [0.5, 120], '16': [0.5, 9], '32': [0.5, 4], '64': [0.5, 2], '128': [0.8, 1] },
    '360p': { '1': [0.5, 120], '16': [0.5, 9], '32': [0.5, 4], '64': [0.5, 2], '128': [0.5, 1] },
    '240p': { '1': [0.8, 200], '16': [0.5, 22], '32': [0.5, 10], '64': [0.5, 6], '128': [0.5, 3] },
    '256': { '1': [0.8, 200], '16': [0.5, 22], '32': [0.5, 11], '64': [0.5, 6], '128': [0.8, 4] },
    '144p': { '1': [1.0, 200], '16': [1.0, 36], '32': [1.0, 18], '64': [1.0, 9], '128': [1.0, 4] },
  },
  image: {
    '1080p': { '1': [1.0, 8] },
    '1024': { '1': [1.0, 20] },
    '480p': { '1': [1.0, 52] },
    '512': { '1': [1.0, 80] },
    '256': { '1': [1.0, 256] },
  },
  video: {
    '1080p': { '1': [0.3, 8] },
    '1024': { '1': [0.3, 20] },
    '720p': { '16': [0.1, 2], '32': [0.0, null] },
    '480p': { '1': [0.4, 52], '16': [0.4, 4], '32': [0.0, null] },
    '512': { '1': [0.5, 80] },
    '240p': { '16': [1.0, 16], '32': [1.0, 8], '64': [1.0, 4], '128': [1.0, 2] },
    '256': { '1': [1.0, 256] },
  },
  // benchmark.py: "720p": {1: (20, 40), 32: (0.5, (2, 4)), 64: (0.5, (1, 1))}. keep_prob 20 keeps
  // always (= 1.0); a (min, max) batch size is a search range: the runnable table takes its max.
  benchmark: {
    '720p': { '1': [1.0, 40], '32': [0.5, 4], '64': [0.5, 1] },
  },
});

/** The reference's STDiT2-XL/2 training model (`input_sq_size=512, qk_norm=True`). */
function officialModel(): TrainConfigInput['model'] {
  return { type: 'STDiT2', preset: 'STDiT2-XL/2', config: { inputSqSize: 512, qkNorm: true }, fromPretrained: null, freeze: [] };
}
const OFFICIAL_VAE = { type: 'sd-vae', fromPretrained: 'stabilityai/sd-vae-ft-ema', microBatchSize: 4 } as const;
const OFFICIAL_TEXT = { type: 't5', fromPretrained: 'DeepFloyd/t5-v1_1-xxl', modelMaxLength: 200, cacheDir: null } as const;

function official(name: keyof typeof OFFICIAL_BUCKETS, extra: Partial<TrainConfigInput>): TrainConfigInput {
  return {
    name,
    model: officialModel(),
    vae: { ...OFFICIAL_VAE },
    textEncoder: { ...OFFICIAL_TEXT },
    scheduler: { type: 'iddpm', timestepRespacing: '' },
    dataset: { type: 'VariableVideoTextDataset', dataPath: null, frameInterval: 3, transformName: 'resize_crop', prefetch: 2 },
    bucketConfig: structuredClone(OFFICIAL_BUCKETS[name]) as BucketConfig,
    maskRatios: null,
    gradCheckpoint: true,
    lr: 2e-5,
    gradClip: 1.0,
    emaDecay: 0.9999,
    seed: 42,
    epochs: 1000,
    logEvery: 10,
    ckptEvery: 500,
    outputs: 'outputs',
    dtype: 'bf16',
    plugin: 'zero2',
    spSize: 1,
    numBucketBuildWorkers: 16,
    notes: [`mirrors configs/opensora-v1-1/train/${name}.py (Open-Sora v1.1.0)`],
    ...extra,
  };
}

/**
 * Tiny resolutions for CPU runs (registered with @opensora/bucket). Sizes are multiples of 16 so
 * that every VAE factor up to 8 and a 2x2 patch divide them.
 */
export const TINY_RESOLUTIONS: Readonly<Record<string, CustomResolution>> = Object.freeze({
  'tiny-32': { pixels: 32 * 32, ratios: { '0.67': [32, 48], '1.00': [32, 32], '1.50': [48, 32] } },
  'tiny-64': { pixels: 64 * 64, ratios: { '0.60': [48, 80], '1.00': [64, 64], '1.67': [80, 48] } },
});

/** The tiny STDiT2 used by the CPU presets (caption channels and token count come from the text encoder). */
export const TINY_MODEL_CONFIG = Object.freeze({
  // Wider than the 48 latent values a 2x2 patch of the built-in VAE (2x2 pixels, 12 channels)
  // carries per token: a model narrower than its token cannot predict the noise, and samples stay noise.
  hiddenSize: 96,
  depth: 2,
  numHeads: 2,
  patchSize: [1, 2, 2],
  mlpRatio: 2,
  inputSqSize: 32,
  qkNorm: true,
  predSigma: true,
  classDropoutProb: 0.1,
});

function tiny(name: string, extra: Partial<TrainConfigInput>): TrainConfigInput {
  return {
    name,
    model: { type: 'STDiT2', preset: null, config: { ...TINY_MODEL_CONFIG, patchSize: [1, 2, 2] }, fromPretrained: null, freeze: [] },
    vae: { type: 'builtin', fromPretrained: null, microBatchSize: null, patchSize: 2 },
    textEncoder: { type: 'builtin', fromPretrained: null, modelMaxLength: 16, cacheDir: null },
    scheduler: { type: 'iddpm', timestepRespacing: '' },
    dataset: { type: 'VariableVideoTextDataset', dataPath: null, frameInterval: 1, transformName: 'resize_crop', prefetch: 2 },
    customResolutions: structuredClone(TINY_RESOLUTIONS) as Record<string, CustomResolution>,
    bucketConfig: { 'tiny-32': { '1': [1.0, 4], '4': [1.0, 2] } },
    maskRatios: { ...STAGE_MASK_RATIOS },
    gradCheckpoint: false,
    lr: 1e-3,
    gradClip: 1.0,
    emaDecay: 0.99,
    seed: 42,
    epochs: 1000,
    maxSteps: 40,
    logEvery: 5,
    ckptEvery: 20,
    keepLast: 2,
    outputs: 'outputs',
    dtype: 'fp32',
    numWorkers: 0,
    notes: ['tiny CPU preset: tiny resolutions, a 2-block 96-wide STDiT2, builtin VAE (2x2 patches) and text encoder'],
    ...extra,
  };
}

const PRESET_BUILDERS: Record<string, () => TrainConfigInput> = {
  image: () => official('image', { gradCheckpoint: true, numWorkers: 4, batchSize: 10 }),
  stage1: () => official('stage1', { gradCheckpoint: false, numWorkers: 8, maskRatios: { ...STAGE_MASK_RATIOS } }),
  stage2: () => official('stage2', { gradCheckpoint: true, numWorkers: 8, maskRatios: { ...STAGE_MASK_RATIOS } }),
  stage3: () => official('stage3', { gradCheckpoint: true, numWorkers: 8, maskRatios: { ...STAGE_MASK_RATIOS } }),
  video: () => official('video', { gradCheckpoint: true, numWorkers: 4, batchSize: 10 }),
  benchmark: () =>
    official('benchmark', {
      gradCheckpoint: true,
      numWorkers: 4,
      ckptEvery: 1000,
      batchSizeSearch: { '720p': { '1': [20, 40], '32': [0.5, [2, 4]], '64': [0.5, [1, 1]] } },
      notes: [
        'mirrors configs/opensora-v1-1/train/benchmark.py (a batch-size search config, not a training recipe)',
        'keep_prob 20 (a typo upstream) is 1.0 here; (min, max) batch sizes take their max; the raw table is batchSizeSearch',
      ],
    }),
  // The CPU presets: same structure, tiny sizes. `tiny` is the smallest; the four stages form
  // the tiny pipeline (image pretraining with iddpm-speed as the report did, then stages 1-3).
  tiny: () => tiny('tiny', {}),
  'tiny-image': () =>
    tiny('tiny-image', {
      bucketConfig: { 'tiny-64': { '1': [1.0, 2] }, 'tiny-32': { '1': [1.0, 4] } },
      maskRatios: null,
      scheduler: { type: 'iddpm-speed', timestepRespacing: '' },
      gradCheckpoint: true,
    }),
  'tiny-stage1': () =>
    tiny('tiny-stage1', {
      bucketConfig: { 'tiny-32': { '1': [0.5, 4], '4': [1.0, 2], '8': [1.0, 1] } },
      gradCheckpoint: false,
    }),
  'tiny-stage2': () =>
    tiny('tiny-stage2', {
      bucketConfig: { 'tiny-64': { '1': [0.5, 2], '4': [1.0, 1] }, 'tiny-32': { '1': [0.5, 4], '4': [1.0, 2], '8': [1.0, 1] } },
      gradCheckpoint: true,
    }),
  'tiny-stage3': () =>
    tiny('tiny-stage3', {
      bucketConfig: { 'tiny-64': { '1': [1.0, 2], '4': [1.0, 1], '8': [0.5, 1] }, 'tiny-32': { '4': [0.5, 2] } },
      gradCheckpoint: true,
    }),
};

export type TrainPresetName = keyof typeof PRESET_BUILDERS;
export const TRAIN_PRESET_NAMES = Object.freeze(Object.keys(PRESET_BUILDERS));

/** Every preset, validated (fresh objects: safe to mutate). */
export const TRAIN_PRESETS: Readonly<Record<string, TrainConfig>> = new Proxy({} as Record<string, TrainConfig>, {
  get(_t, key) {
    if (typeof key !== 'string' || !(key in PRESET_BUILDERS)) return undefined;
    return validateConfig(TrainConfigSchema, PRESET_BUILDERS[key]!(), `train preset '${key}'`);
  },
  has(_t, key) {
    return typeof key === 'string' && key in PRESET_BUILDERS;
  },
  ownKeys() {
    return Object.keys(PRESET_BUILDERS);
  },
  getOwnPropertyDescriptor(_t, key) {
    return typeof key === 'string' && key in PRESET_BUILDERS ? { enumerable: true, configurable: true } : undefined;
  },
});

/** The raw (unvalidated) input of a preset, for overriding before validation. */
export function presetInput(name: string): TrainConfigInput {
  const b = PRESET_BUILDERS[name];
  if (!b) {
    throw new ConfigError(`Unknown train preset '${name}'`, { hint: `use one of ${TRAIN_PRESET_NAMES.join(', ')}` });
  }
  return b();
}

/**
 * Resolves a preset name or a config object, applies CLI-style overrides (`a.b=value` strings or
 * a record of dotted keys), and validates the result.
 */
export function resolveTrainConfig(presetOrConfig: string | TrainConfigInput | TrainConfig, overrides: string[] | Record<string, unknown> = []): TrainConfig {
  const source = typeof presetOrConfig === 'string' ? `train preset '${presetOrConfig}'` : 'train config';
  const raw = typeof presetOrConfig === 'string' ? presetInput(presetOrConfig) : structuredClone(presetOrConfig);
  const withOverrides = (Array.isArray(overrides) ? overrides.length : Object.keys(overrides).length) ? applyOverrides(raw, overrides) : raw;
  return validateConfig(TrainConfigSchema, withOverrides, source);
}

/**
 * A preset name or a config file (.json/.yaml/.ts/.js, whose export may set `preset: 'stage2'` to
 * start from a preset), plus overrides, validated: what `opensora train --config/--preset` needs.
 */
export async function loadTrainConfig(presetOrFile: string, overrides: string[] | Record<string, unknown> = []): Promise<TrainConfig> {
  if (presetOrFile in PRESET_BUILDERS) return resolveTrainConfig(presetOrFile, overrides);
  if (!existsSync(presetOrFile)) {
    throw new ConfigError(`'${presetOrFile}' is neither a train preset nor a config file`, { hint: `presets: ${TRAIN_PRESET_NAMES.join(', ')}` });
  }
  const raw = (await loadConfigFile(presetOrFile)) as Record<string, unknown>;
  const { preset, ...rest } = raw && typeof raw === 'object' ? raw : ({} as Record<string, unknown>);
  let input: TrainConfigInput = rest as TrainConfigInput;
  if (typeof preset === 'string') {
    const flat: Record<string, unknown> = {};
    const walk = (o: Record<string, unknown>, prefix: string) => {
      for (const [k, v] of Object.entries(o)) {
        // nested objects merge key by key into the preset; arrays, tables and scalars replace
        if (v && typeof v === 'object' && !Array.isArray(v) && !['bucketConfig', 'maskRatios', 'customResolutions', 'config'].includes(k)) walk(v as Record<string, unknown>, `${prefix}${k}.`);
        else flat[`${prefix}${k}`] = v;
      }
    };
    walk(rest, '');
    input = applyOverrides(presetInput(preset), flat);
  }
  return validateConfig(TrainConfigSchema, applyOverrides(input, overrides), `train config ${presetOrFile}`);
}
