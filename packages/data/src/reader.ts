/**
 * The dataset reader: for a CSV row and a bucket's (T, H, W) it returns what the trainer needs
 * (video C,T,H,W in [-1, 1], text, num_frames, height, width, ar, fps), with the reference's
 * temporal random crop over `frameInterval` and its resize-crop transform; images are one frame.
 * Decoding and transforms run in worker threads (piscina) writing into shared memory; a file that
 * fails is logged with its path and error, counted, and (in the batch loader) replaced by another
 * sample of the same bucket.
 *
 * Deliberate choices where the reference is odd (spec 9): `ar` is width/height like the reference's
 * training (configurable), `fps` is the raw source fps (configurable), and each read draws its crop
 * from its own seeded stream (`Rng.derive(seed, epoch, index, ...)`), not from a per-worker
 * constant seed.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pLimit from 'p-limit';
import { Piscina } from 'piscina';
import { Rng, createLogger, tf, type Logger } from '@opensora/core';
import type { BinaryOptions } from './binaries.js';
import { readDatasetCsvSync, resolveRowPath, type DatasetRow } from './csv.js';
import { DataError, MediaError, errorLine } from './errors.js';
import { mediaKind } from './media.js';
import { loadSample, type SampleResult, type SampleTask } from './sample.js';
import type { TransformName } from './transform.js';

export interface Sample {
  /** C,T,H,W float32 in [-1, 1]. */
  video: Float32Array;
  shape: [number, number, number, number];
  text: string;
  /** The bucket's T, H, W (target size, not the source size). */
  numFrames: number;
  height: number;
  width: number;
  /** width/height by default (the reference's training convention); see `arConvention`. */
  ar: number;
  fps: number;
  index: number;
  path: string;
  /** Source frame indices used. */
  frameIndices: number[];
  /** True when the CSV's num_frames overstated the file and the crop was redone on the real count. */
  recounted: boolean;
}

export interface DatasetReaderOptions extends BinaryOptions {
  /** Base folder of relative paths (default: the CSV's folder, or the cwd for rows). */
  root?: string;
  /** Temporal stride of the crop window (the v1.1 configs use 3). Default 1. */
  frameInterval?: number;
  transform?: TransformName;
  /** Seed of the per-read crop streams (default 42, the reference's training seed). */
  seed?: number;
  /** Worker threads for decode + transform; 0 runs in this thread. Default: min(4, cpus). */
  workers?: number;
  /** Concurrent in-thread loads when `workers` is 0 (default 4). */
  concurrency?: number;
  arConvention?: 'width/height' | 'height/width';
  /** 'source': the file's fps (reference); 'effective': fps / frameInterval. */
  fpsMode?: 'source' | 'effective';
  /** fps when a video reports none (24) and for images (120). */
  defaultFps?: number;
  imageFps?: number;
  logger?: Logger;
}

export interface ReadFailure {
  index: number;
  path: string;
  error: string;
}

const here = fileURLToPath(import.meta.url);
const req = createRequire(import.meta.url);

function workerEntry(): { filename: string; execArgv: string[] } {
  const dir = path.dirname(here);
  for (const name of ['reader-worker.js', 'reader-worker.mjs']) {
    const f = path.join(dir, name);
    if (existsSync(f)) return { filename: f, execArgv: [] };
  }
  const ts = path.join(dir, 'reader-worker.ts');
  if (existsSync(ts)) {
    // Running from source (tests, tsx): let the worker load TypeScript through tsx.
    const tsx = req.resolve('tsx');
    return { filename: ts, execArgv: ['--import', `file://${tsx}`] };
  }
  throw new DataError(`reader worker not found beside ${here}`, { hint: 'rebuild @opensora/data, or use workers: 0' });
}

export class DatasetReader {
  readonly rows: DatasetRow[];
  readonly root: string;
  readonly frameInterval: number;
  readonly transform: TransformName;
  readonly seed: number;
  readonly failures: ReadFailure[] = [];
  /** Indices whose file failed at least once. */
  readonly badIndices = new Set<number>();
  private readonly options: DatasetReaderOptions;
  private readonly logger: Logger;
  private pool: Piscina | null = null;
  private readonly limit: ReturnType<typeof pLimit>;
  private readonly counters = new Map<number, number>();
  private closed = false;

  constructor(source: string | readonly DatasetRow[], options: DatasetReaderOptions = {}) {
    if (typeof source === 'string') {
      this.rows = readDatasetCsvSync(source, { requiredColumns: ['path'] });
      this.root = path.resolve(options.root ?? path.dirname(source));
    } else {
      this.rows = [...source];
      this.root = path.resolve(options.root ?? process.cwd());
    }
    this.options = options;
    this.frameInterval = options.frameInterval ?? 1;
    if (!(Number.isInteger(this.frameInterval) && this.frameInterval >= 1)) throw new DataError(`frameInterval must be an integer >= 1, got ${options.frameInterval}`);
    this.transform = options.transform ?? 'resize_crop';
    this.seed = options.seed ?? 42;
    this.logger = options.logger ?? createLogger({ name: 'data:reader' });
    this.limit = pLimit(options.concurrency ?? 4);
  }

  get length(): number {
    return this.rows.length;
  }

  /** Absolute path (or URL) of row `index`. */
  resolvePath(index: number): string {
    const row = this.row(index);
    return resolveRowPath(row.path, this.root);
  }

  row(index: number): DatasetRow {
    const r = this.rows[index];
    if (!r) throw new DataError(`row ${index} out of range (dataset has ${this.rows.length} rows)`);
    return r;
  }

  get workerCount(): number {
    return this.options.workers ?? Math.min(4, os.availableParallelism?.() ?? os.cpus().length);
  }

  private getPool(): Piscina | null {
    if (this.workerCount <= 0) return null;
    if (!this.pool) {
      const entry = workerEntry();
      this.pool = new Piscina({ filename: entry.filename, execArgv: entry.execArgv, minThreads: 1, maxThreads: this.workerCount, idleTimeout: 30_000 });
    }
    return this.pool;
  }

  /** Allocates an output buffer for a (T, H, W) sample: shared memory when workers are used. */
  allocate(T: number, H: number, W: number, count = 1): Float32Array {
    const n = 3 * T * H * W * count;
    return this.workerCount > 0 ? new Float32Array(new SharedArrayBuffer(n * 4)) : new Float32Array(n);
  }

  /**
   * Reads row `index` at the bucket size [T, H, W]. Throws a MediaError for a bad file (after
   * logging and counting it); `rng` fixes the temporal crop (default: a per-read seeded stream).
   */
  async read(index: number, thw: readonly [number, number, number], rng?: Rng, out?: Float32Array): Promise<Sample> {
    if (this.closed) throw new DataError('reader is closed');
    const [T, H, W] = thw;
    if (![T, H, W].every((v) => Number.isInteger(v) && v >= 1)) throw new DataError(`bucket size must be positive integers, got [${thw.join(', ')}]`);
    const row = this.row(index);
    const file = resolveRowPath(row.path, this.root);
    const n = this.counters.get(index) ?? 0;
    this.counters.set(index, n + 1);
    const u = (rng ?? Rng.derive(this.seed, 'read', index, n)).random();
    let result: Omit<SampleResult, 'video'>;
    let video: Float32Array;
    try {
      const kind = mediaKind(file);
      const task: SampleTask = {
        path: file,
        kind,
        T,
        H,
        W,
        frameInterval: this.frameInterval,
        transform: this.transform,
        u,
        numFrames: kind === 'video' ? row.num_frames : 1,
        fps: kind === 'video' ? row.fps : (this.options.imageFps ?? 120),
        width: row.width,
        height: row.height,
        defaultFps: this.options.defaultFps ?? 24,
        ffmpegPath: this.options.ffmpegPath,
        ffprobePath: this.options.ffprobePath,
      };
      const pool = this.getPool();
      if (pool) {
        video = out ?? this.allocate(T, H, W);
        if (!(video.buffer instanceof SharedArrayBuffer)) throw new DataError('with workers, the output buffer must live in a SharedArrayBuffer (use reader.allocate)');
        result = (await pool.run({ ...task, out: video })) as Omit<SampleResult, 'video'>;
      } else {
        const r = await this.limit(() => loadSample({ ...task, out }));
        video = r.video;
        result = r;
      }
    } catch (e) {
      const error = errorLine(e);
      this.failures.push({ index, path: file, error });
      this.badIndices.add(index);
      this.logger.warn(`bad sample ${index}: ${error}`, { path: file });
      throw e instanceof MediaError ? e : new MediaError(file, error, { cause: e });
    }
    const fps = this.options.fpsMode === 'effective' && mediaKind(file) === 'video' ? result.fps / this.frameInterval : result.fps;
    return {
      video,
      shape: [3, T, H, W],
      text: typeof row.text === 'string' ? row.text : '',
      numFrames: T,
      height: H,
      width: W,
      ar: this.options.arConvention === 'height/width' ? H / W : W / H,
      fps,
      index,
      path: file,
      frameIndices: result.indices,
      recounted: result.recounted,
    };
  }

  /** Stops the worker threads. */
  async close(): Promise<void> {
    this.closed = true;
    const p = this.pool;
    this.pool = null;
    if (p) await p.destroy();
  }
}

export type BucketKey = readonly [string, number, string];

export interface BatchSpec {
  indices: readonly number[];
  bucketId?: BucketKey | string;
  thw: readonly [number, number, number];
  /** The sampler's step (kept for resumes: crops depend on (seed, epoch, step, slot), not on order). */
  step?: number;
}

export interface Replacement {
  slot: number;
  index: number;
  by: number;
  error: string;
}

export interface Batch {
  /** B,C,T,H,W float32 in [-1, 1]. */
  video: Float32Array;
  shape: [number, number, number, number, number];
  text: string[];
  numFrames: number[];
  height: number[];
  width: number[];
  ar: number[];
  fps: number[];
  /** Row indices actually read (after replacements). */
  indices: number[];
  bucketId: BucketKey | string | undefined;
  thw: [number, number, number];
  replaced: Replacement[];
  /** Position of this batch in the loader's sequence. */
  step: number;
}

export interface BatchLoaderOptions {
  /** Batches decoded ahead of the consumer (default 2). */
  prefetch?: number;
  /** Seed and epoch of the crop and replacement draws (default: the reader's seed, epoch 0). */
  seed?: number;
  epoch?: number;
  /** Replacement attempts per bad sample before giving up (default 10). */
  maxRetries?: number;
}

export interface LoaderStats {
  batches: number;
  samples: number;
  replaced: number;
}

function bucketKey(spec: BatchSpec): string {
  return JSON.stringify(spec.bucketId ?? spec.thw);
}

/**
 * Prefetching batch loader over a sampler's batches (e.g. `VariableVideoBatchSampler` from
 * @opensora/bucket). A sample that fails is replaced by another index of the same bucket (drawn
 * from the bucket's indices in the batches seen so far, all batches when given an array), never
 * by one already known bad.
 */
export class BatchLoader implements AsyncIterable<Batch> {
  readonly stats: LoaderStats = { batches: 0, samples: 0, replaced: 0 };
  private epoch: number;
  private readonly pools = new Map<string, number[]>();
  private readonly poolSeen = new Map<string, Set<number>>();

  constructor(
    private readonly reader: DatasetReader,
    private readonly batches: Iterable<BatchSpec>,
    private readonly options: BatchLoaderOptions = {},
  ) {
    this.epoch = options.epoch ?? 0;
    if (Array.isArray(batches)) for (const b of batches as BatchSpec[]) this.addToPool(b);
  }

  /** Sets the epoch used by the crop and replacement draws of the next iteration. */
  setEpoch(epoch: number): void {
    this.epoch = epoch;
  }

  private addToPool(spec: BatchSpec): void {
    const key = bucketKey(spec);
    let pool = this.pools.get(key);
    let seen = this.poolSeen.get(key);
    if (!pool || !seen) {
      pool = [];
      seen = new Set();
      this.pools.set(key, pool);
      this.poolSeen.set(key, seen);
    }
    for (const i of spec.indices) {
      if (!seen.has(i)) {
        seen.add(i);
        pool.push(i);
      }
    }
  }

  private replacementCandidates(spec: BatchSpec, exclude: Set<number>): number[] {
    const pool = (this.pools.get(bucketKey(spec)) ?? []).filter((i) => !this.reader.badIndices.has(i) && !exclude.has(i));
    if (pool.length) return pool;
    // No other index of this bucket is known: fall back to rows long enough for the bucket's T.
    const [T] = spec.thw;
    const need = T === 1 ? 1 : T * this.reader.frameInterval + 1;
    const out: number[] = [];
    this.reader.rows.forEach((r, i) => {
      if (this.reader.badIndices.has(i) || exclude.has(i)) return;
      const n = r.num_frames ?? 0;
      if (T === 1 ? n >= 1 : n >= need) out.push(i);
    });
    return out;
  }

  private async loadBatch(spec: BatchSpec, step: number): Promise<Batch> {
    const [T, H, W] = spec.thw;
    const B = spec.indices.length;
    const per = 3 * T * H * W;
    const video = this.reader.allocate(T, H, W, B);
    const seed = this.options.seed ?? this.reader.seed;
    const epoch = this.epoch;
    const maxRetries = this.options.maxRetries ?? 10;
    const replaced: Replacement[] = [];
    const used = new Set<number>(spec.indices);
    const samples = await Promise.all(
      spec.indices.map(async (first, slot) => {
        let index = first;
        for (let attempt = 0; ; attempt++) {
          const rng = Rng.derive(seed, epoch, step, slot, attempt);
          try {
            return await this.reader.read(index, spec.thw, rng, video.subarray(slot * per, (slot + 1) * per));
          } catch (e) {
            const cands = this.replacementCandidates(spec, used);
            if (attempt >= maxRetries || cands.length === 0) {
              throw new DataError(`batch ${step}: could not read a sample for slot ${slot} after ${attempt + 1} tries (last: ${errorLine(e)})`, {
                hint: 'run datautil --info on the CSV to drop unreadable files',
                cause: e,
              });
            }
            const by = cands[rng.int(cands.length)]!;
            replaced.push({ slot, index, by, error: errorLine(e) });
            used.add(by);
            index = by;
          }
        }
      }),
    );
    this.stats.batches++;
    this.stats.samples += B;
    this.stats.replaced += replaced.length;
    return {
      video,
      shape: [B, 3, T, H, W],
      text: samples.map((s) => s.text),
      numFrames: samples.map((s) => s.numFrames),
      height: samples.map((s) => s.height),
      width: samples.map((s) => s.width),
      ar: samples.map((s) => s.ar),
      fps: samples.map((s) => s.fps),
      indices: samples.map((s) => s.index),
      bucketId: spec.bucketId,
      thw: [T, H, W],
      replaced,
      step,
    };
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Batch> {
    const prefetch = Math.max(1, this.options.prefetch ?? 2);
    const it = this.batches[Symbol.iterator]();
    const queue: Array<Promise<Batch>> = [];
    let step = 0;
    let done = false;
    const pull = () => {
      while (!done && queue.length < prefetch) {
        const n = it.next();
        if (n.done) {
          done = true;
          break;
        }
        this.addToPool(n.value);
        const p = this.loadBatch(n.value, n.value.step ?? step);
        step++;
        p.catch(() => undefined); // surfaced when awaited
        queue.push(p);
      }
    };
    pull();
    while (queue.length) {
      const b = await queue.shift()!;
      pull();
      yield b;
    }
  }
}

/** Tensors of a batch for the model: video [B,C,T,H,W] and the per-sample scalars as float32 [B]. */
export function batchToTensors(batch: Batch): { video: tf.Tensor5D; numFrames: tf.Tensor1D; height: tf.Tensor1D; width: tf.Tensor1D; ar: tf.Tensor1D; fps: tf.Tensor1D } {
  const data = batch.video.buffer instanceof SharedArrayBuffer ? new Float32Array(batch.video) : batch.video;
  return {
    video: tf.tensor5d(data, batch.shape),
    numFrames: tf.tensor1d(batch.numFrames, 'float32'),
    height: tf.tensor1d(batch.height, 'float32'),
    width: tf.tensor1d(batch.width, 'float32'),
    ar: tf.tensor1d(batch.ar, 'float32'),
    fps: tf.tensor1d(batch.fps, 'float32'),
  };
}
