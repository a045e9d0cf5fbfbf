/**
 * The Open-Sora 1.1 training chain in miniature, with `@opensora/trainer`'s `runPipeline`:
 * image pretraining, then stage 1 (short low-resolution clips), stage 2 (more sizes and lengths)
 * and stage 3, each stage starting from the previous one's weights and optimizer state.
 *
 *   1. synthesise a tiny dataset (coloured shapes moving in named directions, mp4 + png, a CSV);
 *   2. run the tiny four-stage pipeline with a few steps per stage, and stop it in the middle of
 *      stage 2 (as Ctrl-C or a crash would);
 *   3. run it again: the finished stages are skipped, stage 2 resumes from its own checkpoint,
 *      stage 3 starts from stage 2's final weights;
 *   4. find the final checkpoint (the folder `opensora sample --model` and `loadModelStack` take).
 *
 * Run it: `npx tsx examples/src/tiny-pretrain-to-stage3.ts` (STEPS=20 for longer stages).
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, formatBackend, initBackend } from '@opensora/core';
import { synthesizeDataset } from '@opensora/data';
import { findLatestCheckpoint, listCheckpoints, runPipeline, type PipelineConfigInput, type PipelineResult } from '@opensora/trainer';

export interface PipelineExampleOptions {
  /** Work folder (default: a folder under the OS temp dir; it is cleared first). */
  workDir?: string;
  /** Training steps per stage (default 6; at least 2, so that stage 2 can be stopped half-way). */
  steps?: number;
  /** Videos and images of the synthetic dataset (default 12 and 6). */
  videos?: number;
  images?: number;
  log?: (line: string) => void;
}

export interface PipelineExampleResult {
  csv: string;
  /** The run stopped in stage 2, and the restart. */
  first: PipelineResult;
  second: PipelineResult;
  finalCheckpoint: string;
}

/** The stages of the tiny pipeline (the trainer's `tiny-*` presets: tiny resolutions, a 2-block STDiT2, built-in VAE and text encoder). */
export function tinyPipeline(outputs: string, data: string, steps: number): PipelineConfigInput {
  const overrides = ['logEvery=1', `ckptEvery=${Math.max(1, Math.floor(steps / 2))}`, 'keepLast=2'];
  return {
    name: 'tiny-example',
    outputs,
    data,
    seed: 42,
    stages: [
      { name: 'image', preset: 'tiny-image', maxSteps: steps, overrides: [...overrides, 'lr=2e-3'] },
      { name: 'stage1', preset: 'tiny-stage1', maxSteps: steps, overrides: [...overrides, 'lr=2e-3'] },
      { name: 'stage2', preset: 'tiny-stage2', maxSteps: steps, overrides: [...overrides, 'lr=1e-3'] },
      { name: 'stage3', preset: 'tiny-stage3', maxSteps: steps, overrides: [...overrides, 'lr=5e-4'] },
    ],
  };
}

function describe(r: PipelineResult): string[] {
  return r.stages.map((s) => {
    const losses = s.result?.losses.map((l) => l.loss.toFixed(3)).join(' ') ?? '';
    return `  ${s.name.padEnd(7)} ${s.status.padEnd(11)} start: ${s.start.padEnd(14)} global step ${s.globalStep}${losses ? `  losses ${losses}` : ''}`;
  });
}

export async function main(o: PipelineExampleOptions = {}): Promise<PipelineExampleResult> {
  const log = o.log ?? ((s: string) => console.log(s));
  const steps = Math.max(2, o.steps ?? (Number(process.env.STEPS) || 6));
  const work = path.resolve(o.workDir ?? path.join(tmpdir(), 'opensora-pipeline-example'));
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  log(`backend: ${formatBackend(await initBackend())}`);

  // 1. data: clips long enough for the 8-frame buckets, at the tiny resolutions' sizes
  const synth = await synthesizeDataset({
    outDir: path.join(work, 'data'),
    seed: 3,
    numVideos: o.videos ?? 12,
    numImages: o.images ?? 6,
    sizes: [
      [32, 32],
      [32, 48],
      [64, 64],
    ],
    lengths: [12, 16],
    concurrency: 2,
  });
  log(`dataset: ${synth.rows.length} rows in ${synth.csvPath}`);

  // 2. the pipeline, stopped half-way through stage 2
  const outputs = path.join(work, 'train');
  const config = tinyPipeline(outputs, synth.csvPath, steps);
  const logger = createLogger({ name: 'pipeline', level: 'warn' });
  const stop = new AbortController();
  let stagesDone = 0;
  const first = await runPipeline(config, {
    progress: 'silent',
    handleSignals: false,
    logger,
    signal: stop.signal,
    onStage: () => stagesDone++,
    onStep: (s) => {
      // Aborting finishes the current step, saves a checkpoint and returns (like Ctrl-C).
      if (config.stages[stagesDone]!.name === 'stage2' && s.globalStep === Math.floor(steps / 2)) stop.abort();
    },
  });
  log(`first run (stopped in stage 2): completed ${first.completed}`);
  for (const line of describe(first)) log(line);

  // 3. the same command again
  const second = await runPipeline(config, { progress: 'silent', handleSignals: false, logger });
  log(`second run: completed ${second.completed}`);
  for (const line of describe(second)) log(line);

  // 4. the result
  const last = second.stages[second.stages.length - 1]!;
  const finalCheckpoint = findLatestCheckpoint(last.dir);
  if (!finalCheckpoint || !existsSync(finalCheckpoint)) throw new Error(`no checkpoint in ${last.dir}`);
  log(`checkpoints of stage 3: ${listCheckpoints(last.dir).map((c) => c.name).join(', ')}`);
  log(`final checkpoint: ${finalCheckpoint}`);
  log('sample from it: loadModelStack({ model: finalCheckpoint }) and generate(...) of @opensora/cli (see inference-flows.ts)');
  return { csv: synth.csvPath, first, second, finalCheckpoint };
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  main().catch((e: unknown) => {
    console.error(`pipeline example failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  });
}
