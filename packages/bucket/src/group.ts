import { Worker } from 'node:worker_threads';
import type { Bucket } from './bucket.js';
import { toColumns, type BucketColumns, type BucketRow, type NormalizedColumns } from './columns.js';
import { BucketError } from './errors.js';
import { makeKernel, type NumericColumn } from './kernel.js';

/**
 * Rows grouped by bucket, the reference's `group_by_bucket()` result in columnar form: bucket
 * `order[j]` holds the rows `rows[start[j] .. start[j + 1])`, in row order. Buckets are listed in the
 * order of their first row (the reference's insertion-ordered dict).
 */
export interface Grouping {
  readonly epoch: number;
  /** Number of dataset rows. */
  readonly numRows: number;
  /** Bucket indices (see Bucket.buckets()) in first-appearance order. */
  readonly order: Int32Array;
  /** order.length + 1 offsets into rows. */
  readonly start: Int32Array;
  /** Row indices of every assigned row, grouped by bucket. */
  readonly rows: Int32Array;
  /** Rows that fit no bucket (or lost every keep-probability draw) this epoch. */
  readonly unassigned: number;
}

/** Groups a per-row bucket assignment (-1 = none) by bucket: two linear passes, typed arrays only. */
export function groupAssignment(assignment: Int32Array, numBucket: number, epoch = 0): Grouping {
  const n = assignment.length;
  const counts = new Int32Array(numBucket);
  const firstOrder = new Int32Array(numBucket);
  let numUsed = 0;
  let assigned = 0;
  for (let i = 0; i < n; i++) {
    const b = assignment[i]!;
    if (b < 0) continue;
    if (b >= numBucket) throw new BucketError('E_BUCKET_ARG', `Row ${i} has bucket index ${b}, but there are only ${numBucket} buckets`);
    if (counts[b]++ === 0) firstOrder[numUsed++] = b;
    assigned++;
  }
  const order = firstOrder.slice(0, numUsed);
  const start = new Int32Array(numUsed + 1);
  const pos = new Int32Array(numBucket);
  for (let j = 0; j < numUsed; j++) {
    const b = order[j]!;
    pos[b] = start[j]!;
    start[j + 1] = start[j]! + counts[b]!;
  }
  const rows = new Int32Array(assigned);
  for (let i = 0; i < n; i++) {
    const b = assignment[i]!;
    if (b >= 0) rows[pos[b]++] = i;
  }
  return { epoch, numRows: n, order, start, rows, unassigned: n - assigned };
}

export interface AssignOptions {
  frameInterval?: number;
  /** Base seed (the sampler's seed). Default 0. */
  seed?: number;
  /** Epoch; row i draws with `seed + epoch + i * numBucket`. Default 0. */
  epoch?: number;
}

export interface ParallelAssignOptions extends AssignOptions {
  /** Worker threads (default: 2). 1 or less runs inline. */
  workers?: number;
  /** Rows below which threads are not worth starting (default 200,000). */
  minRowsForWorkers?: number;
}

type TypedCtor = { new (buf: SharedArrayBuffer, offset?: number, length?: number): NumericColumn; BYTES_PER_ELEMENT: number };

function shared(col: NumericColumn): NumericColumn {
  if (col.buffer instanceof SharedArrayBuffer) return col;
  const Ctor = col.constructor as unknown as TypedCtor;
  const out = new Ctor(new SharedArrayBuffer(col.length * Ctor.BYTES_PER_ELEMENT), 0, col.length);
  (out as unknown as { set(a: ArrayLike<number>): void }).set(col);
  return out;
}

let workerSource: string | undefined;
function getWorkerSource(): string {
  workerSource ??= [
    "'use strict';",
    "const { parentPort, workerData } = require('node:worker_threads');",
    // Transpilers that keep function names (tsx, esbuild keepNames) wrap functions in a __name helper.
    'var __name = (fn) => fn;',
    `const kernel = (${makeKernel.toString()})();`,
    'const d = workerData;',
    'kernel.assignRange(d.tables, d.numFrames, d.height, d.width, d.frameInterval, d.base, d.start, d.end, d.out);',
    "parentPort.postMessage('done');",
  ].join('\n');
  return workerSource;
}

/**
 * Bucket assignment across worker threads (node:worker_threads): rows are split into contiguous ranges,
 * each thread runs the same kernel on shared memory, so the result is identical to `bucket.assign()`.
 * Returns the per-row bucket index (-1 = none) in an Int32Array on a SharedArrayBuffer.
 */
export async function assignBucketsParallel(
  bucket: Bucket,
  data: readonly BucketRow[] | BucketColumns | NormalizedColumns,
  options: ParallelAssignOptions = {},
): Promise<Int32Array> {
  const cols = toColumns(data);
  const n = cols.length;
  const fi = options.frameInterval ?? 1;
  if (!(typeof fi === 'number' && Number.isFinite(fi) && fi > 0)) throw new BucketError('E_BUCKET_ARG', `frameInterval must be a positive number, got ${fi}`);
  const base = bucket.baseSeed(options.seed ?? 0, options.epoch ?? 0, n);
  const workers = Math.floor(options.workers ?? 2);
  const minRows = options.minRowsForWorkers ?? 200_000;
  if (workers <= 1 || n < minRows) {
    const out = new Int32Array(new SharedArrayBuffer(Math.max(1, n) * 4), 0, n);
    return bucket.assign(cols, { frameInterval: fi, seed: options.seed ?? 0, epoch: options.epoch ?? 0, out });
  }
  const numFrames = shared(cols.numFrames);
  const height = shared(cols.height);
  const width = shared(cols.width);
  const out = new Int32Array(new SharedArrayBuffer(n * 4));
  const chunk = Math.ceil(n / workers);
  const source = getWorkerSource();
  const jobs: Array<Promise<void>> = [];
  for (let w = 0; w < workers; w++) {
    const start = w * chunk;
    const end = Math.min(n, start + chunk);
    if (start >= end) break;
    jobs.push(
      new Promise<void>((resolve, reject) => {
        const worker = new Worker(source, {
          eval: true,
          workerData: { tables: bucket.tables, numFrames, height, width, frameInterval: fi, base, start, end, out },
        });
        let done = false;
        worker.once('message', () => {
          done = true;
          resolve();
        });
        worker.once('error', reject);
        worker.once('exit', (code) => {
          if (!done) reject(new BucketError('E_BUCKET_WORKER', `Bucket worker for rows ${start}..${end} exited with code ${code}`));
        });
      }),
    );
  }
  await Promise.all(jobs);
  return out;
}
