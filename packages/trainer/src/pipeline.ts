/**
 * The multi-stage pipeline of the Open-Sora 1.1 report (docs/report_02.md, flows.md 5.7):
 * image pretraining, then stage 1, stage 2 and stage 3, each starting from the previous stage's
 * final weights and optimizer state (the reference's `--load <prev> --start-from-scratch`).
 *
 * Each stage trains into `<outputs>/<NN>-<name>/`; a finished stage writes `stage.json` there
 * (atomically) and is not re-run when the pipeline is restarted; an interrupted stage resumes from
 * its own latest checkpoint, exactly.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z, validateConfig, ConfigError, createLogger, type Logger } from '@opensora/core';
import { resolveTrainConfig, type TrainConfig } from './config.js';
import { findLatestCheckpoint, writeJsonAtomic } from './checkpoint.js';
import { train, type TrainOptions, type TrainResult } from './train.js';
import type { TrainComponents } from './types.js';

export const PipelineStageSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'stage names are letters, digits, _ . -'),
  /** A train preset name, or `config` (a train config object); `overrides` apply on top. */
  preset: z.string().optional(),
  config: z.record(z.string(), z.unknown()).optional(),
  overrides: z.array(z.string()).default([]),
  /** Steps of this stage. */
  maxSteps: z.number().int().positive(),
  /** Dataset CSV of this stage (default: the pipeline's). */
  data: z.string().optional(),
  /** How the stage starts from the previous one: weights + EMA + optimizer with counters reset (the report), or weights only. */
  init: z.enum(['weights+optimizer', 'weights']).default('weights+optimizer'),
});

export const PipelineConfigSchema = z.strictObject({
  name: z.string().default('pipeline'),
  outputs: z.string().default('outputs/pipeline'),
  /** Dataset CSV for every stage without its own. */
  data: z.string().nullable().default(null),
  seed: z.number().int().nullable().default(null),
  /** Initial weights of the first stage (the report starts from PixArt-alpha). */
  ckptPath: z.string().nullable().default(null),
  stages: z.array(PipelineStageSchema).min(1),
});

export type PipelineConfig = z.output<typeof PipelineConfigSchema>;
export type PipelineConfigInput = z.input<typeof PipelineConfigSchema>;
export type PipelineStage = z.output<typeof PipelineStageSchema>;

/** The report's chain with its step counts, and the tiny CPU version of it. */
export const PIPELINE_PRESETS: Readonly<Record<string, () => PipelineConfigInput>> = Object.freeze({
  official: () => ({
    name: 'official',
    outputs: 'outputs/pipeline',
    stages: [
      { name: 'image', preset: 'image', maxSteps: 6000, overrides: ['scheduler.type=iddpm-speed'] },
      { name: 'stage1', preset: 'stage1', maxSteps: 81000 },
      { name: 'stage2', preset: 'stage2', maxSteps: 22000 },
      { name: 'stage3', preset: 'stage3', maxSteps: 4000 },
    ],
  }),
  tiny: () => ({
    name: 'tiny',
    outputs: 'outputs/pipeline-tiny',
    stages: [
      { name: 'image', preset: 'tiny-image', maxSteps: 20 },
      { name: 'stage1', preset: 'tiny-stage1', maxSteps: 20 },
      { name: 'stage2', preset: 'tiny-stage2', maxSteps: 20 },
      { name: 'stage3', preset: 'tiny-stage3', maxSteps: 10 },
    ],
  }),
});

export function resolvePipelineConfig(nameOrConfig: string | PipelineConfigInput, overrides: Partial<PipelineConfigInput> = {}): PipelineConfig {
  let raw: PipelineConfigInput;
  if (typeof nameOrConfig === 'string') {
    const p = PIPELINE_PRESETS[nameOrConfig];
    if (!p) throw new ConfigError(`Unknown pipeline preset '${nameOrConfig}'`, { hint: `use one of ${Object.keys(PIPELINE_PRESETS).join(', ')}` });
    raw = p();
  } else {
    raw = structuredClone(nameOrConfig);
  }
  const cfg = validateConfig(PipelineConfigSchema, { ...raw, ...overrides }, 'pipeline config');
  const names = new Set<string>();
  cfg.stages.forEach((s, i) => {
    if (!s.preset === !s.config) throw new ConfigError(`pipeline stage ${i} ('${s.name}') needs exactly one of preset or config`);
    if (names.has(s.name)) throw new ConfigError(`pipeline stage name '${s.name}' is used twice`);
    names.add(s.name);
  });
  return cfg;
}

export interface StageRecord {
  name: string;
  dir: string;
  status: 'done' | 'skipped' | 'interrupted';
  /** The stage's final checkpoint (the next stage starts from it). */
  finalCheckpoint: string | null;
  globalStep: number;
  /** How the stage started: fresh, from the previous stage, or resumed from its own checkpoint. */
  start: 'fresh' | 'previous-stage' | 'resumed' | 'already-done';
  result?: TrainResult;
}

export interface PipelineResult {
  outputs: string;
  stages: StageRecord[];
  completed: boolean;
}

export interface RunPipelineOptions extends Omit<TrainOptions, 'load' | 'ckptPath' | 'startFromScratch' | 'maxSteps' | 'components' | 'outputs'> {
  outputs?: string;
  /** Builds components per stage (default: from each stage's config). */
  components?: (config: TrainConfig, stage: PipelineStage) => Promise<TrainComponents>;
  onStage?: (record: StageRecord) => void;
}

interface StageMarker {
  name: string;
  status: 'done';
  finalCheckpoint: string;
  globalStep: number;
}

function readMarker(file: string): StageMarker | null {
  if (!existsSync(file)) return null;
  try {
    const m = JSON.parse(readFileSync(file, 'utf8')) as StageMarker;
    return m.status === 'done' && typeof m.finalCheckpoint === 'string' && existsSync(m.finalCheckpoint) ? m : null;
  } catch {
    return null;
  }
}

export function stageDir(outputs: string, index: number, name: string): string {
  return path.join(outputs, `${String(index + 1).padStart(2, '0')}-${name}`);
}

/** Runs the stages in order; finished stages are skipped, an interrupted one resumes. */
export async function runPipeline(nameOrConfig: string | PipelineConfigInput, options: RunPipelineOptions = {}): Promise<PipelineResult> {
  const cfg = resolvePipelineConfig(nameOrConfig, options.outputs ? { outputs: options.outputs } : {});
  const outputs = path.resolve(cfg.outputs);
  const logger: Logger = options.logger ?? createLogger({ name: `pipeline:${cfg.name}` });
  const records: StageRecord[] = [];
  let prev: string | null = null;
  const writeState = () =>
    writeJsonAtomic(path.join(outputs, 'pipeline.json'), {
      name: cfg.name,
      config: cfg,
      stages: records.map(({ result: _r, ...rest }) => rest),
    });
  for (let i = 0; i < cfg.stages.length; i++) {
    const stage = cfg.stages[i]!;
    const dir = stageDir(outputs, i, stage.name);
    const markerFile = path.join(dir, 'stage.json');
    const marker = readMarker(markerFile);
    if (marker) {
      logger.info(`stage ${stage.name}: already done (${path.basename(marker.finalCheckpoint)}), skipped`);
      const rec: StageRecord = { name: stage.name, dir, status: 'skipped', finalCheckpoint: marker.finalCheckpoint, globalStep: marker.globalStep, start: 'already-done' };
      records.push(rec);
      options.onStage?.(rec);
      prev = marker.finalCheckpoint;
      continue;
    }
    const data = stage.data ?? cfg.data ?? options.data;
    const overrides = [...stage.overrides];
    const base = stage.preset ? resolveTrainConfig(stage.preset, overrides) : resolveTrainConfig(stage.config as never, overrides);
    const own = findLatestCheckpoint(dir);
    const { components: makeComponents, onStage: _onStage, ...passThrough } = options;
    const trainOpts: TrainOptions = {
      ...passThrough,
      outputs: dir,
      maxSteps: stage.maxSteps,
      ...(data ? { data } : {}),
      ...(cfg.seed !== null ? { seed: cfg.seed } : {}),
    };
    let start: StageRecord['start'];
    if (own) {
      trainOpts.load = own;
      start = 'resumed';
    } else if (prev) {
      if (stage.init === 'weights') trainOpts.ckptPath = prev;
      else {
        trainOpts.load = prev;
        trainOpts.startFromScratch = true;
      }
      start = 'previous-stage';
    } else {
      if (cfg.ckptPath) trainOpts.ckptPath = cfg.ckptPath;
      start = 'fresh';
    }
    if (makeComponents) trainOpts.components = await makeComponents(resolveTrainConfig(base, { outputs: dir, ...(data ? { 'dataset.dataPath': data } : {}) }), stage);
    logger.info(`stage ${i + 1}/${cfg.stages.length} ${stage.name}: ${start === 'resumed' ? `resuming ${path.basename(own!)}` : start === 'previous-stage' ? `from ${path.relative(outputs, prev!)}` : 'fresh start'}`);
    let result: TrainResult;
    try {
      result = await train(base, trainOpts);
    } finally {
      if (trainOpts.components) await trainOpts.components.dispose();
    }
    const interrupted = result.stoppedBy === 'signal' || result.stoppedBy === 'abort';
    const rec: StageRecord = { name: stage.name, dir, status: interrupted ? 'interrupted' : 'done', finalCheckpoint: result.lastCheckpoint, globalStep: result.globalStep, start, result };
    records.push(rec);
    if (!interrupted) {
      if (!result.lastCheckpoint) throw new ConfigError(`stage ${stage.name} finished without a checkpoint`);
      await writeJsonAtomic(markerFile, { name: stage.name, status: 'done', finalCheckpoint: result.lastCheckpoint, globalStep: result.globalStep } satisfies StageMarker);
    }
    await writeState();
    options.onStage?.(rec);
    if (interrupted) {
      logger.info(`pipeline stopped during stage ${stage.name}; run it again to resume`);
      return { outputs, stages: records, completed: false };
    }
    prev = result.lastCheckpoint;
  }
  await writeState();
  return { outputs, stages: records, completed: true };
}
