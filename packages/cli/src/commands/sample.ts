import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { loadConfigFile } from '@opensora/core';
import { setupBackend, type GlobalFlags } from '../backend.js';
import { getResolution, registerResolution, type CustomResolution } from '@opensora/bucket';
import { TINY_RESOLUTIONS } from '@opensora/trainer';
import { createScheduler } from '@opensora/scheduler';
import type { CliIO } from '../program.js';
import { UsageError } from '../errors.js';
import { generate } from '../generate.js';
import { loadModelStack } from '../models.js';

export interface SampleFlags {
  config?: string;
  prompt?: string[];
  promptPath?: string;
  resolution?: string;
  aspectRatio?: string;
  imageSize?: string[] | number[];
  numFrames?: number;
  duration?: number;
  fps?: number;
  frameInterval?: number;
  seed?: number;
  numSamplingSteps?: number;
  steps?: number;
  scheduler?: 'iddpm' | 'dpm-solver';
  cfgScale?: number;
  cfgChannel?: number;
  referencePath?: string[];
  maskStrategy?: string[];
  loop?: number;
  conditionFrameLength?: number;
  numSample?: number;
  batchSize?: number;
  saveDir?: string;
  sampleName?: string;
  promptAsPath?: boolean;
  contactSheet?: boolean;
  model?: string;
  vae?: string;
  textEncoder?: string;
  dtype?: 'fp32' | 'bf16';
}

/** "9:16" (H:W) or "0.56" -> the aspect key of the tables (H/W, two decimals). */
export function aspectKey(ratio: string): string {
  const m = /^\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*$/.exec(ratio);
  if (m) return (Number(m[1]) / Number(m[2])).toFixed(2);
  if (/^\d+(\.\d+)?$/.test(ratio.trim())) return Number(ratio).toFixed(2);
  throw new UsageError(`--aspect-ratio '${ratio}' is not H:W (e.g. 9:16) or a decimal H/W key (e.g. 0.56)`);
}

/**
 * Makes the trainer's tiny resolutions ('tiny-32', 'tiny-64') and those a trainer checkpoint was
 * trained with (its `train_config.json` customResolutions) known to the bucket tables.
 */
export function registerSampleResolutions(model?: string): void {
  const tables: Record<string, CustomResolution> = { ...TINY_RESOLUTIONS };
  if (model && existsSync(model) && statSync(model).isDirectory()) {
    for (const file of [path.join(model, 'train_config.json'), path.join(model, '..', 'train_config.json')]) {
      if (!existsSync(file)) continue;
      const cfg = JSON.parse(readFileSync(file, 'utf8')) as { customResolutions?: typeof tables };
      Object.assign(tables, cfg.customResolutions ?? {});
      break;
    }
  }
  for (const [name, spec] of Object.entries(tables)) {
    if (!getResolution(name)) registerResolution(name, spec);
  }
}

/** The [H, W] of a resolution name and aspect ratio, from the bucket tables. */
export function imageSizeFor(resolution: string, aspectRatio: string): [number, number] {
  const res = getResolution(resolution);
  if (!res) throw new UsageError(`unknown resolution '${resolution}'`);
  const key = aspectKey(aspectRatio);
  const hw = res.ratios[key];
  if (!hw) {
    throw new UsageError(`resolution ${resolution} has no aspect ratio ${key} (${aspectRatio}); it has ${Object.keys(res.ratios).slice(0, 12).join(', ')}...`);
  }
  return [hw[0], hw[1]];
}

function readPrompts(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read prompt file ${file} (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  // Blank lines are kept as empty prompts, as the reference does; a final newline adds none.
  const lines = text.split(/\r?\n/).map((l) => l.trim());
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

export async function resolveSampleFlags(flags: SampleFlags): Promise<Required<Pick<SampleFlags, 'saveDir'>> & SampleFlags & { imageSizeHW: [number, number]; frames: number }> {
  let merged: SampleFlags = { ...flags };
  if (flags.config) {
    const fromFile = (await loadConfigFile(flags.config)) as SampleFlags;
    if (typeof fromFile !== 'object' || fromFile === null) throw new UsageError(`config ${flags.config} is not an object`);
    // Flags given on the command line win over the file.
    merged = { ...fromFile, ...Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)) };
  }
  let imageSizeHW: [number, number];
  if (merged.imageSize) {
    if (merged.imageSize.length !== 2) throw new UsageError('--image-size takes two numbers: H W');
    const [h, w] = merged.imageSize.map(Number) as [number, number];
    if (!(Number.isInteger(h) && Number.isInteger(w) && h > 0 && w > 0)) throw new UsageError(`--image-size ${merged.imageSize.join(' ')} is not two positive integers`);
    imageSizeHW = [h, w];
  } else if (merged.resolution) {
    registerSampleResolutions(merged.model);
    imageSizeHW = imageSizeFor(merged.resolution, merged.aspectRatio ?? '9:16');
  } else {
    throw new UsageError('give the size: --resolution NAME [--aspect-ratio H:W] or --image-size H W');
  }
  const fps = merged.fps ?? 24;
  const frameInterval = merged.frameInterval ?? 1;
  let frames = merged.numFrames;
  if (merged.duration !== undefined) {
    if (frames !== undefined) throw new UsageError('give --num-frames or --duration, not both');
    frames = Math.max(1, Math.round((merged.duration * fps) / frameInterval));
  }
  if (merged.steps !== undefined && merged.numSamplingSteps !== undefined && merged.steps !== merged.numSamplingSteps) {
    throw new UsageError('--steps and --num-sampling-steps disagree');
  }
  return { ...merged, saveDir: merged.saveDir ?? './samples', imageSizeHW, frames: frames ?? 16, fps, frameInterval };
}

export async function runSampleCommand(flags: Record<string, unknown>, global: GlobalFlags, io: CliIO): Promise<void> {
  const f = await resolveSampleFlags(flags as SampleFlags);
  let prompts = f.prompt ?? (f.promptPath ? readPrompts(f.promptPath) : undefined);
  if (!prompts || prompts.length === 0) throw new UsageError('no prompts: give --prompt TEXT... or --prompt-path FILE');
  prompts = [...prompts];
  if (f.maskStrategy && !f.referencePath) {
    io.stderr('opensora: warning: --mask-strategy without --reference-path is ignored (as in the reference)\n');
  }
  await setupBackend(global, io);
  const stack = await loadModelStack({ model: f.model, vae: f.vae, textEncoder: f.textEncoder, seed: f.seed ?? 42 });
  const scheduler = createScheduler({
    type: f.scheduler ?? 'iddpm',
    numSamplingSteps: f.numSamplingSteps ?? f.steps ?? (f.scheduler === 'dpm-solver' ? 20 : 100),
    cfgScale: f.cfgScale ?? 7.0,
    cfgChannel: f.cfgChannel ?? 3,
  });
  try {
    const result = await generate({
      ...stack,
      scheduler,
      prompts,
      referencePaths: f.referencePath,
      maskStrategies: f.maskStrategy,
      imageSize: f.imageSizeHW,
      numFrames: f.frames,
      fps: f.fps,
      frameInterval: f.frameInterval,
      loop: f.loop,
      conditionFrameLength: f.conditionFrameLength,
      numSample: f.numSample,
      batchSize: f.batchSize,
      seed: f.seed ?? 42,
      saveDir: f.saveDir,
      sampleName: f.sampleName,
      promptAsPath: f.promptAsPath,
      contactSheet: f.contactSheet,
      dtype: f.dtype,
      progress: true,
      onSaved: (s) => io.stdout(`Saved to ${s.path}\n`),
    });
    io.stderr(`${result.samples.length} sample(s) written to ${f.saveDir}\n`);
  } finally {
    stack.dispose();
  }
}
