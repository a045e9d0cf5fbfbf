/**
 * Trainer benchmark: steps/s and samples/s of the training loop, with the time split between data
 * (waiting for the reader), VAE encode, text encode, forward+backward and the optimizer
 * (clip + AdamW + EMA), for
 *   1. the `tiny` CPU preset on the synthetic dataset, and
 *   2. the benchmark model config of ../shared/facts.md (STDiT2 hidden 384, depth 6, 6 heads,
 *      patch 1x2x2, 4 latent channels, 512 caption channels, 32 tokens; batch 2 of 8 frames at
 *      256x256 px = latent 4x8x32x32), whose training step the reference runs in 3.47 s.
 * Run: npm run bench -w @opensora/trainer [-- --backend wasm|cpu] [--accel onnxruntime|none]
 *      (BENCH_STEPS=N changes the benchmark-model steps)
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { initBackend, formatBackend, createLogger, enableFastKernels } from '@opensora/core';
import { synthesizeDataset } from '@opensora/data';
import { train, resolveTrainConfig, type StepReport, type TrainConfig } from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const tmp = path.join(here, '..', '.bench-tmp');
const quiet = createLogger({ name: 'bench', level: 'warn' });

async function dataset(name: string, opts: Parameters<typeof synthesizeDataset>[0]): Promise<string> {
  const csv = path.join(tmp, name, 'dataset.csv');
  if (!existsSync(csv)) await synthesizeDataset({ ...opts, outDir: path.join(tmp, name), csvName: 'dataset.csv' });
  return csv;
}

interface Figures {
  steps: number;
  stepsPerSec: number;
  samplesPerSec: number;
  /** Mean ms per step; `other` = wall time not in a phase (batch assembly, masks, logging). */
  ms: Record<keyof StepReport['timings'] | 'other', number>;
  stepMs: number;
}

async function run(config: TrainConfig, csv: string, steps: number, warmup: number): Promise<Figures> {
  const reps: StepReport[] = [];
  const at: number[] = [];
  const outputs = path.join(tmp, `out-${config.name}-${Date.now()}`);
  await train(config, {
    data: csv,
    outputs,
    maxSteps: steps + warmup,
    ckptEvery: 0,
    progress: 'lines',
    handleSignals: false,
    logger: quiet,
    onStep: (r) => {
      reps.push(r);
      at.push(performance.now());
    },
  });
  rmSync(outputs, { recursive: true, force: true });
  const steady = reps.slice(warmup);
  // wall time per step between the end of the last warm-up step and the end of the last step
  const wallMs = (at[at.length - 1]! - at[warmup - 1]!) / steady.length;
  const ms = { data: 0, vae: 0, text: 0, fwdBwd: 0, optimizer: 0, other: 0 };
  let samples = 0;
  for (const r of steady) {
    for (const k of Object.keys(r.timings) as Array<keyof StepReport['timings']>) ms[k] += r.timings[k] / steady.length;
    samples += r.batchSize;
  }
  const stepMs = wallMs;
  ms.other = Math.max(0, wallMs - (ms.data + ms.vae + ms.text + ms.fwdBwd + ms.optimizer));
  return { steps: steady.length, stepsPerSec: 1000 / stepMs, samplesPerSec: (samples / steady.length) * (1000 / stepMs), ms, stepMs };
}

function print(title: string, f: Figures, ref?: { label: string; ms: number }): void {
  console.log(`\n${title} (${f.steps} steps measured)`);
  console.log(`  steps/s    ${f.stepsPerSec.toFixed(3)}    samples/s ${f.samplesPerSec.toFixed(3)}    step ${(f.stepMs / 1000).toFixed(3)} s`);
  const pct = (v: number) => `${((100 * v) / f.stepMs).toFixed(1).padStart(5)}%`;
  for (const [k, v] of Object.entries(f.ms)) console.log(`  ${k.padEnd(10)} ${v.toFixed(1).padStart(10)} ms ${pct(v)}`);
  if (ref) {
    console.log(`  forward+backward ${(f.ms.fwdBwd / 1000).toFixed(2)} s vs reference ${ref.label} ${(ref.ms / 1000).toFixed(2)} s: ${(f.ms.fwdBwd / ref.ms).toFixed(2)}x the reference time`);
  }
}

async function main(): Promise<void> {
  mkdirSync(tmp, { recursive: true });
  const arg = (name: string, def: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
  };
  const info = await initBackend(arg('backend', process.env.OPENSORA_BACKEND ?? 'auto'));
  console.log(`backend: ${formatBackend(info)}`);
  const accel = arg('accel', 'onnxruntime');
  if (accel !== 'none') console.log(`fast kernels: ${enableFastKernels({ engine: accel as 'onnxruntime' }).note}`);

  const tinyCsv = await dataset('tiny', { seed: 1, numVideos: 16, numImages: 8, outDir: '' });
  const tiny = await run(resolveTrainConfig('tiny', ['logEvery=1000']), tinyCsv, 30, 3);
  print('tiny preset (STDiT2 hidden 48, depth 2; builtin VAE (patch 4) and text encoder; buckets tiny-32 T=1/4)', tiny);

  const benchSteps = Number(process.env.BENCH_STEPS ?? 2);
  const benchCsv = await dataset('bench', { seed: 2, numVideos: 4, numImages: 0, sizes: [[256, 256]], lengths: [32], fps: [24], cutFraction: 0, outDir: '' });
  const benchCfg = resolveTrainConfig('benchmark', {
    name: 'benchmark-model',
    model: { type: 'STDiT2', preset: 'STDiT2-bench', config: { qkNorm: true, inputSqSize: 64 }, fromPretrained: null, freeze: [] },
    // a small random AutoencoderKL with the SD VAE's geometry (8x, 4 latent channels) stands in for SD VAE weights
    vae: {
      type: 'sd-vae',
      fromPretrained: null,
      microBatchSize: 4,
      config: {
        block_out_channels: [16, 16, 16, 16],
        down_block_types: Array(4).fill('DownEncoderBlock2D'),
        up_block_types: Array(4).fill('UpDecoderBlock2D'),
        layers_per_block: 1,
        latent_channels: 4,
        norm_num_groups: 8,
      },
    },
    textEncoder: { type: 'builtin', fromPretrained: null, modelMaxLength: 32, captionChannels: 512, cacheDir: null },
    bucketConfig: { '256': { '8': [1.0, 2] } },
    gradCheckpoint: process.env.BENCH_GC !== '0', // benchmark.py trains with grad_checkpoint=True; without it the wasm heap (4 GB) overflows
    dtype: 'fp32',
    numWorkers: 0,
    logEvery: 1000,
  });
  const title = `benchmark model config (facts.md: STDiT2 384/6/6, batch 2, latent 4x8x32x32, 32 tokens; iddpm${benchCfg.gradCheckpoint ? '; grad checkpointing' : ''})`;
  try {
    const bench = await run(benchCfg, benchCsv, benchSteps, 1);
    print(title, bench, { label: 'PyTorch CPU 2 threads (forward + MSE + backward, facts.md)', ms: 3470 });
  } catch (e) {
    console.log(`\n${title}\n  FAILED: ${(e as Error).message.split('\n')[0]}`);
    process.exitCode = 1;
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
