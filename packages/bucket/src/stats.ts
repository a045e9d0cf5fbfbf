import type { Bucket, BucketIdLike } from './bucket.js';
import type { Grouping } from './group.js';

export interface BucketStatsEntry {
  readonly index: number;
  readonly id: BucketIdLike;
  readonly thw: readonly [number, number, number];
  readonly batchSize: number;
  readonly samples: number;
  /** Micro-batches this bucket yields in the epoch (floor with dropLast, ceil without), before the rank truncation. */
  readonly batches: number;
}

export interface BucketStats {
  readonly epoch: number;
  readonly numRows: number;
  readonly assigned: number;
  /** Rows with no bucket this epoch (fit none, or lost every keep-probability draw). */
  readonly unassigned: number;
  /** Rows not in any batch because of dropLast (bucket tails). */
  readonly dropped: number;
  /** Σ batches over buckets (the reference's `num_batch`), before truncation to a multiple of numReplicas. */
  readonly numBatches: number;
  readonly numReplicas: number;
  /** Steps per epoch for every rank. */
  readonly numSteps: number;
  /** Per bucket, in bucket-index order (resolution order, T descending, table order). */
  readonly buckets: readonly BucketStatsEntry[];
  readonly byResolution: ReadonlyArray<{ readonly resolution: string; readonly samples: number; readonly batches: number }>;
  readonly byResolutionFrames: ReadonlyArray<{ readonly resolution: string; readonly numFrames: number; readonly samples: number; readonly batches: number }>;
  readonly byAspectRatio: ReadonlyArray<{ readonly aspectRatio: string; readonly samples: number }>;
}

export interface StatsOptions {
  dropLast?: boolean;
  numReplicas?: number;
}

/** Samples and batches per bucket, per resolution, per (resolution, T) and per aspect key. */
export function computeBucketStats(bucket: Bucket, grouping: Grouping, options: StatsOptions = {}): BucketStats {
  const dropLast = options.dropLast ?? false;
  const R = options.numReplicas ?? 1;
  const entries: BucketStatsEntry[] = [];
  let numBatches = 0;
  let dropped = 0;
  for (let j = 0; j < grouping.order.length; j++) {
    const info = bucket.info(grouping.order[j]!);
    const samples = grouping.start[j + 1]! - grouping.start[j]!;
    const bs = info.batchSize ?? 1;
    const batches = dropLast ? Math.floor(samples / bs) : Math.ceil(samples / bs);
    if (dropLast) dropped += samples - batches * bs;
    numBatches += batches;
    entries.push({ index: info.index, id: info.id, thw: info.thw, batchSize: bs, samples, batches });
  }
  entries.sort((a, b) => a.index - b.index);
  const byRes = new Map<string, { resolution: string; samples: number; batches: number }>();
  const byRT = new Map<string, { resolution: string; numFrames: number; samples: number; batches: number }>();
  const byAr = new Map<string, { aspectRatio: string; samples: number }>();
  for (const r of bucket.resolutions) byRes.set(r, { resolution: r, samples: 0, batches: 0 });
  for (const e of entries) {
    const [res, t, ar] = e.id;
    const a = byRes.get(res)!;
    a.samples += e.samples;
    a.batches += e.batches;
    const key = `${res}\u0000${t}`;
    let b = byRT.get(key);
    if (!b) byRT.set(key, (b = { resolution: res, numFrames: t, samples: 0, batches: 0 }));
    b.samples += e.samples;
    b.batches += e.batches;
    let c = byAr.get(ar);
    if (!c) byAr.set(ar, (c = { aspectRatio: ar, samples: 0 }));
    c.samples += e.samples;
  }
  const total = dropLast ? numBatches - (numBatches % R) : numBatches % R === 0 ? numBatches : numBatches + R - (numBatches % R);
  return {
    epoch: grouping.epoch,
    numRows: grouping.numRows,
    assigned: grouping.rows.length,
    unassigned: grouping.unassigned,
    dropped,
    numBatches,
    numReplicas: R,
    numSteps: total / R,
    buckets: entries,
    byResolution: [...byRes.values()],
    byResolutionFrames: [...byRT.values()],
    byAspectRatio: [...byAr.values()].sort((x, y) => parseFloat(x.aspectRatio) - parseFloat(y.aspectRatio)),
  };
}

function table(header: string[], rows: Array<Array<string | number>>): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, c) => Math.max(...cells.map((r) => r[c]!.length)));
  const line = (r: string[]): string => r.map((v, c) => (c === 0 ? v.padEnd(widths[c]!) : v.padStart(widths[c]!))).join('  ');
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

/** A printable report of `computeBucketStats` (what the reference's verbose sampler prints, as tables). */
export function formatBucketStats(stats: BucketStats): string {
  const pct = (n: number): string => (stats.numRows > 0 ? `${((100 * n) / stats.numRows).toFixed(1)}%` : '-');
  const parts = [
    `Epoch ${stats.epoch}: ${stats.numRows} rows, ${stats.assigned} in buckets (${pct(stats.assigned)}), ${stats.unassigned} without a bucket, ${stats.dropped} dropped by dropLast`,
    `${stats.numBatches} micro-batches, ${stats.numSteps} steps per rank x ${stats.numReplicas} rank(s)`,
    '',
    'By resolution:',
    table(
      ['resolution', 'samples', 'batches'],
      stats.byResolution.map((r) => [r.resolution, r.samples, r.batches]),
    ),
    '',
    'By resolution and frames:',
    table(
      ['resolution', 'T', 'samples', 'batches'],
      stats.byResolutionFrames.map((r) => [r.resolution, r.numFrames, r.samples, r.batches]),
    ),
    '',
    'By aspect ratio (h/w):',
    table(
      ['aspect', 'samples'],
      stats.byAspectRatio.map((r) => [r.aspectRatio, r.samples]),
    ),
    '',
    'Buckets:',
    table(
      ['resolution', 'T', 'aspect', 'T x H x W', 'batch', 'samples', 'batches'],
      stats.buckets.map((b) => [b.id[0], b.id[1], b.id[2], b.thw.join('x'), b.batchSize, b.samples, b.batches]),
    ),
  ];
  return parts.join('\n');
}
