/**
 * @opensora/bucket benchmark: rows/s of getBucketId and of the sampler's grouping path on synthetic rows
 * with the stage-2 config (real keep probabilities, frame interval 3, seed 42), next to the reference.
 *
 *   npm run bench -w @opensora/bucket            (1M and 10M rows)
 *   BENCH_ROWS=1000000 npm run bench -w @opensora/bucket
 */
import os from 'node:os';
import { Rng } from '@opensora/random';
import { Bucket, OPENSORA_V1_1_BUCKET_CONFIGS, VariableVideoBatchSampler, type DrawMode } from '../src/index.js';

/** Reference figures (Open-Sora 1.1, one process on this kind of machine, stage-2 config). */
const REF_GET_BUCKET_ID = 44_000; // rows/s calling Bucket.get_bucket_id directly
const REF_GROUPING = 23_000; // rows/s through VariableVideoBatchSampler.group_by_bucket

const CONFIG = OPENSORA_V1_1_BUCKET_CONFIGS.stage2;
const FI = 3;
const SEED = 42;

interface Columns {
  numFrames: Int32Array;
  height: Int32Array;
  width: Int32Array;
}

/** Synthetic clip metadata: common landscape / portrait sizes, some odd sizes, 20% images, 2 to 900 frames. */
function synth(n: number, seed: number): Columns {
  const rng = new Rng(seed);
  const sizes: Array<[number, number, number]> = [
    [720, 1280, 30],
    [1080, 1920, 15],
    [360, 640, 10],
    [480, 854, 8],
    [1280, 720, 5],
    [1920, 1080, 3],
    [2160, 3840, 3],
    [512, 512, 4],
    [240, 426, 5],
  ];
  const weights = [...sizes.map((s) => s[2]), 17]; // 17%: random sizes
  const cum: number[] = [];
  weights.reduce((a, w, i) => (cum[i] = a + w), 0);
  const total = cum[cum.length - 1]!;
  const numFrames = new Int32Array(n);
  const height = new Int32Array(n);
  const width = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const u = rng.random() * total;
    let k = 0;
    while (cum[k]! <= u) k++;
    if (k < sizes.length) {
      height[i] = sizes[k]![0];
      width[i] = sizes[k]![1];
    } else {
      height[i] = 144 + rng.int(1300);
      width[i] = 144 + rng.int(2400);
    }
    numFrames[i] = rng.random() < 0.2 ? 1 : 2 + rng.int(899);
  }
  return { numFrames, height, width };
}

function mb(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

function rate(n: number, ms: number): number {
  return (n / ms) * 1000;
}

const rows: string[][] = [];
function report(what: string, n: number, ms: number, ref: number, note = ''): void {
  const r = rate(n, ms);
  rows.push([what, n.toLocaleString('en-US'), `${(ms / 1000).toFixed(2)} s`, Math.round(r).toLocaleString('en-US'), ref.toLocaleString('en-US'), `${(r / ref).toFixed(0)}x`, note]);
  console.log(`${what}: ${Math.round(r).toLocaleString('en-US')} rows/s (${n} rows in ${(ms / 1000).toFixed(2)} s; reference ${ref.toLocaleString('en-US')} rows/s) ${note}`);
}

function benchGetBucketId(cols: Columns, n: number, draw: DrawMode): void {
  const b = new Bucket(CONFIG, { draw });
  const nb = b.numBucket;
  // warm-up
  for (let i = 0; i < 20000; i++) b.getBucketId(cols.numFrames[i]!, cols.height[i]!, cols.width[i]!, FI, SEED + i * nb);
  let hit = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) if (b.getBucketId(cols.numFrames[i]!, cols.height[i]!, cols.width[i]!, FI, SEED + i * nb) !== null) hit++;
  const ms = performance.now() - t0;
  report(`getBucketId, ${draw} draw`, n, ms, REF_GET_BUCKET_ID, `(${((100 * hit) / n).toFixed(1)}% assigned)`);
}

async function benchGrouping(cols: Columns, n: number, draw: DrawMode, workers: number): Promise<void> {
  const view: Columns = { numFrames: cols.numFrames.subarray(0, n), height: cols.height.subarray(0, n), width: cols.width.subarray(0, n) };
  const s = new VariableVideoBatchSampler(view, CONFIG, { seed: SEED, frameInterval: FI, dropLast: true, draw, workers });
  const before = process.memoryUsage();
  const t0 = performance.now();
  if (workers > 1) await s.prepare();
  const g = s.grouping();
  const ms = performance.now() - t0;
  const t1 = performance.now();
  const steps = s.length; // per-epoch plan: per-bucket shuffles, access order
  const planMs = performance.now() - t1;
  const after = process.memoryUsage();
  report(
    `grouping ${n >= 1e6 ? `${n / 1e6}M` : n} rows, ${draw} draw, ${workers} thread${workers > 1 ? 's' : ''}`,
    n,
    ms,
    REF_GROUPING,
    `(${g.order.length} buckets used, ${g.unassigned} rows without a bucket; epoch plan ${(planMs / 1000).toFixed(2)} s, ${steps} steps; +${mb(after.arrayBuffers - before.arrayBuffers)} buffers, rss ${mb(after.rss)})`,
  );
}

async function main(): Promise<void> {
  const sizes = process.env.BENCH_ROWS ? process.env.BENCH_ROWS.split(',').map(Number) : [1_000_000, 10_000_000];
  const maxN = Math.max(...sizes);
  console.log(`@opensora/bucket benchmark: stage-2 config (real keep probabilities), frame interval ${FI}, seed ${SEED}; Node ${process.version}`);
  console.log(`${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')} (other processes share these cores: compare figures of the same run)`);
  const t0 = performance.now();
  const cols = synth(maxN, 1);
  console.log(`synthesised ${maxN.toLocaleString('en-US')} rows in ${((performance.now() - t0) / 1000).toFixed(2)} s (${mb(maxN * 12)} of columns)\n`);

  // Warm the kernels on a small set.
  await benchGroupingQuiet(cols);

  benchGetBucketId(cols, Math.min(maxN, 1_000_000), 'hash');
  benchGetBucketId(cols, Math.min(maxN, 1_000_000), 'numpy');
  for (const n of sizes) {
    await benchGrouping(cols, n, 'hash', 1);
    await benchGrouping(cols, n, 'numpy', 1);
    await benchGrouping(cols, n, 'hash', 2);
  }

  console.log('\n| what | rows | time | ours rows/s | reference rows/s | speed-up | notes |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
  console.log('\nhash draw = hashUniform of @opensora/random (default); numpy draw = numpy default_rng(seed).random() bit for bit (reference parity).');
  console.log('Target: at least 2,000,000 rows/s on one core for grouping (10M rows in about 5 s).');
  console.log(`Load average at the end: ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')}`);
}

async function benchGroupingQuiet(cols: Columns): Promise<void> {
  const n = Math.min(cols.numFrames.length, 200_000);
  for (const draw of ['hash', 'numpy'] as const) {
    const s = new VariableVideoBatchSampler(
      { numFrames: cols.numFrames.subarray(0, n), height: cols.height.subarray(0, n), width: cols.width.subarray(0, n) },
      CONFIG,
      { seed: SEED, frameInterval: FI, dropLast: true, draw },
    );
    void s.length;
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
