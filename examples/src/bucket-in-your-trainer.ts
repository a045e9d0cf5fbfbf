/**
 * Using `@opensora/bucket` on its own, inside somebody else's training loop.
 *
 * The bucket package knows nothing about tensors, models or OpenSora's trainer: it takes dataset
 * metadata (frames, height, width per row) and a bucket config, and hands out batches of row
 * indices that share one (frames, height, width) shape. This script:
 *
 *   1. makes metadata rows for a mixed dataset (images and clips of several sizes and lengths);
 *   2. builds a `VariableVideoBatchSampler` and prints its bucket statistics;
 *   3. runs a toy training loop over the batches, saves the sampler state mid-epoch, "crashes",
 *      restores the state into a fresh sampler and finishes, checking the batches equal those of
 *      an uninterrupted run;
 *   4. splits the same epoch over two data-parallel ranks.
 *
 * Run it: `npx tsx examples/src/bucket-in-your-trainer.ts`
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { VariableVideoBatchSampler, type BucketConfig, type BucketRow, type BucketStats, type SamplerBatch } from '@opensora/bucket';

export interface BucketExampleOptions {
  /** Rows of the made-up dataset (default 2000). */
  rows?: number;
  /** Epochs the toy loop trains (default 2). */
  epochs?: number;
  /** Where the sampler state is saved (default: a folder under the OS temp dir). */
  workDir?: string;
  log?: (line: string) => void;
}

export interface BucketExampleResult {
  stats: BucketStats;
  stepsPerEpoch: number;
  /** Every batch of the uninterrupted run, as "epoch/step:T x H x W:indices". */
  uninterrupted: string[];
  /** The same, for the run that was stopped and resumed from the saved state. */
  resumed: string[];
  /** Where the crash happened: epoch and completed steps in it. */
  crashedAt: { epoch: number; step: number };
  /** Rows of epoch 0 seen by each of two ranks (disjoint). */
  ranks: [number[], number[]];
}

/**
 * The bucket config: `{ resolution: { numFrames: [keepProbability, batchSize] } }`. T = 1 are
 * images. A clip goes to the largest resolution its size reaches (80% of the pixels suffice),
 * then to the longest T it has frames for (more than T * frameInterval).
 */
export const BUCKET_CONFIG: BucketConfig = {
  '360p': { 1: [1.0, 16], 16: [1.0, 4] },
  '240p': { 1: [1.0, 32], 16: [1.0, 8], 32: [0.8, 4] },
  '144p': { 1: [1.0, 64], 16: [1.0, 16], 32: [1.0, 8] },
};

/** Made-up metadata rows, deterministic (a tiny LCG, so the example needs no other package). */
export function makeRows(n: number, seed = 1): BucketRow[] {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const sizes: Array<[number, number]> = [
    [720, 1280],
    [480, 854],
    [360, 640],
    [240, 426],
    [144, 256],
    [1080, 1080],
    [640, 360],
  ];
  const lengths = [1, 1, 40, 60, 120, 200];
  const rows: BucketRow[] = [];
  for (let i = 0; i < n; i++) {
    const [height, width] = sizes[Math.floor(next() * sizes.length)]!;
    rows.push({ num_frames: lengths[Math.floor(next() * lengths.length)]!, height, width });
  }
  return rows;
}

const key = (epoch: number, b: SamplerBatch) => `${epoch}/${b.step}:${b.thw.join('x')}:${b.indices.join(',')}`;

/** A stand-in for your trainer: it only needs the batch's indices and target shape. */
class ToyTrainer {
  seen: string[] = [];
  step(epoch: number, batch: SamplerBatch): void {
    // Here a real loop loads rows `batch.indices`, takes T frames (stride frameInterval), resizes
    // and crops them to H x W, and runs forward / backward / optimizer.
    this.seen.push(key(epoch, batch));
  }
}

const SAMPLER_OPTIONS = { seed: 42, frameInterval: 2, dropLast: true } as const;

export async function main(o: BucketExampleOptions = {}): Promise<BucketExampleResult> {
  const log = o.log ?? ((s: string) => console.log(s));
  const rows = makeRows(o.rows ?? 2000);
  const epochs = o.epochs ?? 2;
  const workDir = o.workDir ?? path.join(tmpdir(), 'opensora-bucket-example');
  mkdirSync(workDir, { recursive: true });
  const stateFile = path.join(workDir, 'sampler.json');

  // 1-2. the sampler and what it does with the dataset
  const sampler = new VariableVideoBatchSampler(rows, BUCKET_CONFIG, SAMPLER_OPTIONS);
  const stats = sampler.bucketStats();
  log(`${rows.length} rows -> ${stats.assigned} in buckets, ${stats.unassigned} fit none, ${stats.dropped} dropped (bucket tails)`);
  log(sampler.formatBucketStats());
  const stepsPerEpoch = sampler.length;
  log(`steps per epoch: ${stepsPerEpoch}`);

  // Reference: the whole run without interruption.
  const reference = new ToyTrainer();
  for (let epoch = 0; epoch < epochs; epoch++) {
    sampler.setEpoch(epoch);
    for (const batch of sampler) reference.step(epoch, batch);
  }

  // 3. The same run, killed in the middle of epoch 0 after a state save...
  const crashEpoch = 0;
  const crashStep = Math.floor(stepsPerEpoch / 2);
  const first = new ToyTrainer();
  const a = new VariableVideoBatchSampler(rows, BUCKET_CONFIG, SAMPLER_OPTIONS);
  a.setEpoch(crashEpoch);
  for (const batch of a) {
    first.step(crashEpoch, batch);
    if (a.step === crashStep) {
      writeFileSync(stateFile, JSON.stringify(a.stateDict())); // save with your checkpoint
      break; // the process dies here
    }
  }
  log(`stopped at epoch ${crashEpoch}, step ${crashStep}; state saved to ${stateFile}`);

  // ...and restarted: a fresh sampler, the saved state, the same epoch loop.
  const b = new VariableVideoBatchSampler(rows, BUCKET_CONFIG, SAMPLER_OPTIONS);
  b.loadStateDict(JSON.parse(readFileSync(stateFile, 'utf8')));
  const second = new ToyTrainer();
  for (let epoch = b.epoch; epoch < epochs; epoch++) {
    b.setEpoch(epoch); // the restored epoch keeps its step; a new one starts at 0
    for (const batch of b) second.step(epoch, batch);
  }
  const resumed = [...first.seen, ...second.seen];
  const same = resumed.length === reference.seen.length && resumed.every((k, i) => k === reference.seen[i]);
  log(`resumed run: ${resumed.length} batches, ${same ? 'identical to' : 'DIFFERENT from'} the uninterrupted run's ${reference.seen.length}`);

  // 4. Two data-parallel ranks: same steps, disjoint rows.
  const ranks = [0, 1].map((rank) => {
    const r = new VariableVideoBatchSampler(rows, BUCKET_CONFIG, { ...SAMPLER_OPTIONS, numReplicas: 2, rank });
    const seen: number[] = [];
    for (const batch of r) seen.push(...batch.indices);
    log(`rank ${rank}: ${r.length} steps, ${seen.length} rows`);
    return seen;
  }) as [number[], number[]];

  return { stats, stepsPerEpoch, uninterrupted: reference.seen, resumed, crashedAt: { epoch: crashEpoch, step: crashStep }, ranks };
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  main().catch((e: unknown) => {
    console.error(`bucket example failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  });
}
