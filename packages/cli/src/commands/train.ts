import { loadConfigFile } from '@opensora/core';
import { setupBackend, type GlobalFlags } from '../backend.js';
import { runPipeline, train, type PipelineConfigInput, type TrainConfigInput } from '@opensora/trainer';
import type { CliIO } from '../program.js';
import { EXIT, UsageError } from '../errors.js';

export interface TrainFlags {
  config?: string;
  preset?: string;
  data?: string;
  outputs?: string;
  maxSteps?: number;
  epochs?: number;
  ckptEvery?: number;
  logEvery?: number;
  seed?: number;
  set?: string[];
  load?: string;
  ckptPath?: string;
  startFromScratch?: boolean;
  stages?: string[];
}

async function configSource(f: TrainFlags, what: string): Promise<string | Record<string, unknown>> {
  if (f.config && f.preset) throw new UsageError(`give --config or --preset for the ${what}, not both`);
  if (f.config) {
    const v = await loadConfigFile(f.config);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UsageError(`config ${f.config} is not an object`);
    return v as Record<string, unknown>;
  }
  return f.preset ?? 'tiny';
}

function extraOverrides(f: TrainFlags): string[] {
  const o = [...(f.set ?? [])];
  if (f.epochs !== undefined) o.push(`epochs=${f.epochs}`);
  if (f.logEvery !== undefined) o.push(`logEvery=${f.logEvery}`);
  return o;
}

export async function runTrainCommand(flags: Record<string, unknown>, global: GlobalFlags, io: CliIO): Promise<void> {
  const f = flags as TrainFlags;
  if (f.startFromScratch && !f.load) throw new UsageError('--start-from-scratch needs --load DIR');
  if (f.load && f.ckptPath) throw new UsageError('give --load (exact resume) or --ckpt-path (weights only), not both');
  const source = await configSource(f, 'training');
  await setupBackend(global, io);
  const { resolveTrainConfig } = await import('@opensora/trainer');
  const config = resolveTrainConfig(source as string | TrainConfigInput, extraOverrides(f));
  const result = await train(config, {
    data: f.data,
    outputs: f.outputs,
    maxSteps: f.maxSteps,
    ckptEvery: f.ckptEvery,
    seed: f.seed,
    load: f.load,
    ckptPath: f.ckptPath,
    startFromScratch: f.startFromScratch,
  });
  io.stdout(
    `trained ${result.globalStep - result.startGlobalStep} steps (global step ${result.globalStep}, epoch ${result.epoch}), ` +
      `${result.stepsPerSec.toFixed(2)} steps/s, stopped by ${result.stoppedBy}; last checkpoint: ${result.lastCheckpoint ?? 'none'}\n`,
  );
  if (result.stoppedBy === 'signal') process.exitCode = EXIT.INTERRUPTED;
}

export async function runPipelineCommand(flags: Record<string, unknown>, global: GlobalFlags, io: CliIO): Promise<void> {
  const f = flags as TrainFlags;
  if (f.load || f.ckptPath || f.startFromScratch) {
    throw new UsageError('pipeline resumes by itself from its outputs folder; --load, --ckpt-path and --start-from-scratch are for `opensora train`');
  }
  let source: string | PipelineConfigInput;
  if (f.stages && f.stages.length) {
    if (f.config) throw new UsageError('give --stages or --config, not both');
    source = {
      name: f.preset ?? 'custom',
      stages: f.stages.map((name) => ({ name, preset: name, maxSteps: f.maxSteps ?? 20, overrides: extraOverrides(f) })),
    };
  } else {
    source = (await configSource(f, 'pipeline')) as string | PipelineConfigInput;
    if (typeof source === 'object' && (f.maxSteps !== undefined || (f.set ?? []).length)) {
      source = {
        ...source,
        stages: (source.stages ?? []).map((s) => ({
          ...s,
          ...(f.maxSteps !== undefined ? { maxSteps: f.maxSteps } : {}),
          overrides: [...(s.overrides ?? []), ...extraOverrides(f)],
        })),
      };
    } else if (typeof source === 'string' && (f.maxSteps !== undefined || (f.set ?? []).length || f.epochs !== undefined)) {
      const { resolvePipelineConfig } = await import('@opensora/trainer');
      const cfg = resolvePipelineConfig(source);
      source = {
        ...cfg,
        stages: cfg.stages.map((s) => ({ ...s, ...(f.maxSteps !== undefined ? { maxSteps: f.maxSteps } : {}), overrides: [...s.overrides, ...extraOverrides(f)] })),
      };
    }
  }
  await setupBackend(global, io);
  const result = await runPipeline(source, {
    data: f.data,
    outputs: f.outputs,
    ckptEvery: f.ckptEvery,
    seed: f.seed,
    onStage: (s) => io.stderr(`stage ${s.name}: ${s.status} (${s.start}), global step ${s.globalStep}\n`),
  });
  for (const s of result.stages) io.stdout(`${s.name}\t${s.status}\t${s.finalCheckpoint ?? '-'}\n`);
  if (!result.completed) process.exitCode = EXIT.INTERRUPTED;
}
