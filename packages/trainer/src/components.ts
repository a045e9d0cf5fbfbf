/**
 * Builds the training components from a config with the packages of this monorepo: STDiT2
 * (@opensora/stdit), the VAE adapter (@opensora/vae), the text encoder (@opensora/text), the
 * scheduler (@opensora/scheduler), the dataset reader (@opensora/data) and the bucket batch
 * sampler (@opensora/bucket).
 */
import { ConfigError, Rng, type Logger } from '@opensora/core';
import { VariableVideoBatchSampler, registerResolution, type toColumns, type BucketConfig as BucketPkgConfig } from '@opensora/bucket';
import { STDiT2, STDIT2_PRESETS, type STDiT2ConfigInput } from '@opensora/stdit';
import { createVae, type VaeSpec } from '@opensora/vae';
import { createTextEncoder, type TextEncoderSpec } from '@opensora/text';
import { createScheduler } from '@opensora/scheduler';
import { DatasetReader, readDatasetCsvSync, type DatasetRow } from '@opensora/data';
import type { TrainConfig } from './config.js';
import type { TrainBatch, TrainComponents, TrainReader, TrainSample, TrainSampler, TrainScheduler } from './types.js';

/** Registers the config's custom resolutions with @opensora/bucket (idempotent for identical tables). */
export function registerConfigResolutions(config: Pick<TrainConfig, 'customResolutions'>): void {
  for (const [name, spec] of Object.entries(config.customResolutions ?? {})) registerResolution(name, { pixels: spec.pixels, ratios: spec.ratios });
}

/** The VAE spec of @opensora/vae for a train config's `vae` entry. */
export function vaeSpecOf(config: TrainConfig): VaeSpec {
  const { type, fromPretrained, microBatchSize, ...rest } = config.vae;
  if (type === 'builtin') return { type: 'builtin', ...rest } as VaeSpec;
  return { type: 'sd-vae', ...(fromPretrained ? { path: fromPretrained } : {}), ...(microBatchSize ? { microBatchSize } : {}), ...rest } as VaeSpec;
}

/** The text-encoder spec of @opensora/text for a train config's `textEncoder` entry. */
export function textSpecOf(config: TrainConfig): TextEncoderSpec {
  const { type, fromPretrained, cacheDir, ...rest } = config.textEncoder;
  if (type === 'builtin') return { type: 'builtin', ...rest, ...(cacheDir ? { cacheDir } : {}) } as TextEncoderSpec;
  if (!fromPretrained) throw new ConfigError("textEncoder.type 't5' needs textEncoder.fromPretrained (a local Hugging Face T5 folder)");
  return { type: 't5', path: fromPretrained, ...rest, ...(cacheDir ? { cacheDir } : {}) } as TextEncoderSpec;
}

/** The STDiT2 config for a train config, with inChannels / captionChannels / modelMaxLength from the VAE and text encoder. */
export function modelConfigOf(config: TrainConfig, latentChannels: number, captionChannels: number, modelMaxLength: number): STDiT2ConfigInput {
  const preset = config.model.preset;
  if (preset !== null && !(preset in STDIT2_PRESETS)) {
    throw new ConfigError(`model.preset '${preset}' is not a STDiT2 preset`, { hint: `use one of ${Object.keys(STDIT2_PRESETS).join(', ')}, or null with model.config` });
  }
  const base: STDiT2ConfigInput = preset ? { ...STDIT2_PRESETS[preset]! } : {};
  return { ...base, inChannels: latentChannels, captionChannels, modelMaxLength, ...(config.model.config as STDiT2ConfigInput) };
}

function freezePattern(p: string): string | RegExp {
  const m = /^\/(.*)\/([a-z]*)$/.exec(p);
  return m ? new RegExp(m[1]!, m[2]) : p;
}

/**
 * A reader with deterministic replacement of bad files: a sample that fails is replaced by another
 * row of the same bucket in the current epoch, drawn from the step's own stream, so that a resumed
 * run makes the same replacements as an uninterrupted one.
 */
class ReplacingReader implements TrainReader {
  private pool: { epoch: number; byBucket: Map<string, number[]> } | null = null;
  replaced = 0;

  constructor(
    readonly reader: DatasetReader,
    private readonly sampler: () => TrainSampler & { epoch?: number },
    private readonly maxRetries: number,
    private readonly logger: Logger,
  ) {}

  private candidates(bucket: string, exclude: Set<number>): number[] {
    const s = this.sampler();
    const epoch = s.epoch ?? 0;
    if (!this.pool || this.pool.epoch !== epoch) {
      const byBucket = new Map<string, number[]>();
      for (let k = 0; k < s.length; k++) {
        const b: TrainBatch = s.batchAt(k);
        const key = b.bucketId.join('/');
        let list = byBucket.get(key);
        if (!list) byBucket.set(key, (list = []));
        list.push(...b.indices);
      }
      this.pool = { epoch, byBucket };
    }
    return [...new Set(this.pool.byBucket.get(bucket) ?? [])].filter((i) => !exclude.has(i)).sort((a, b) => a - b);
  }

  async read(index: number, thw: [number, number, number], rng?: Rng, bucket?: string): Promise<TrainSample> {
    const tried = new Set<number>();
    let idx = index;
    const r = rng ?? new Rng(index);
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.reader.read(idx, thw, r.fork(attempt));
      } catch (e) {
        tried.add(idx);
        const cands = bucket ? this.candidates(bucket, tried) : [];
        if (attempt >= this.maxRetries || cands.length === 0) throw e;
        const by = cands[r.fork(`replace-${attempt}`).int(cands.length)]!;
        this.logger.warn(`sample ${idx} (${this.reader.rows[idx]?.path}) is unreadable; using ${by} of bucket ${bucket} instead`);
        this.replaced++;
        idx = by;
      }
    }
  }

  async close(): Promise<void> {
    await this.reader.close();
  }
}

/** Builds every component a train config names. */
export async function createComponents(config: TrainConfig, logger: Logger): Promise<TrainComponents> {
  const dataPath = config.dataset.dataPath;
  if (!dataPath) throw new ConfigError('dataset.dataPath is not set', { hint: 'pass --data <csv> (train({ data }))' });
  registerConfigResolutions(config);
  const rows: DatasetRow[] = readDatasetCsvSync(dataPath, { requiredColumns: ['path', 'text', 'num_frames', 'height', 'width'] });
  const vae = await createVae(vaeSpecOf(config));
  const textEncoder = await createTextEncoder(textSpecOf(config));
  const modelConfig = modelConfigOf(config, vae.latentChannels, textEncoder.captionChannels, textEncoder.modelMaxLength);
  const model = new STDiT2(modelConfig, { seed: `${config.seed}:init` });
  for (const p of config.model.freeze) model.freeze(freezePattern(p));
  const scheduler = createScheduler({ ...config.scheduler }) as unknown as TrainScheduler;
  const reader = new DatasetReader(dataPath, {
    frameInterval: config.dataset.frameInterval,
    transform: config.dataset.transformName,
    seed: config.seed,
    workers: config.numWorkers,
    logger: logger.child('data'),
  });
  let current: (TrainSampler & { epoch?: number }) | null = null;
  const replacing = new ReplacingReader(reader, () => current!, 10, logger);
  const makeSampler = (seed: number): TrainSampler => {
    const s = new VariableVideoBatchSampler(rows as unknown as Parameters<typeof toColumns>[0], config.bucketConfig as unknown as BucketPkgConfig, {
      seed,
      shuffle: true,
      dropLast: true,
      numReplicas: 1,
      rank: 0,
      frameInterval: config.dataset.frameInterval,
    });
    current = s as unknown as TrainSampler & { epoch?: number };
    return current;
  };
  return {
    model,
    vae,
    textEncoder,
    scheduler,
    reader: replacing,
    makeSampler,
    rows,
    async dispose() {
      model.dispose();
      vae.dispose();
      textEncoder.dispose();
      await replacing.close();
    },
  };
}
