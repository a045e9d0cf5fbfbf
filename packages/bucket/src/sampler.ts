import { Rng, hash32 } from '@opensora/random';
import { Bucket, type BucketConfig, type BucketId, type BucketOptions } from './bucket.js';
import { toColumns, type BucketColumns, type BucketRow, type NormalizedColumns } from './columns.js';
import { BucketError } from './errors.js';
import { assignBucketsParallel, groupAssignment, type Grouping } from './group.js';
import { computeBucketStats, formatBucketStats, type BucketStats } from './stats.js';

export interface SamplerOptions extends BucketOptions {
  /** Base seed of the keep-probability draws and shuffles. Default 0. */
  seed?: number;
  /** Shuffle rows within buckets and the order of batches, per epoch. Default true. */
  shuffle?: boolean;
  /** Drop each bucket's incomplete last batch and the steps that do not fill every rank. Default false. */
  dropLast?: boolean;
  /** Number of data-parallel ranks. Default 1. */
  numReplicas?: number;
  /** This process's rank, 0 .. numReplicas - 1. Default 0. */
  rank?: number;
  /** The dataset's frame interval (a bucket T needs more than T * frameInterval source frames). Default 1. */
  frameInterval?: number;
  /** Worker threads used by `prepare()` to group large datasets. Default 1 (inline). */
  workers?: number;
}

/** One micro-batch for this rank: dataset row indices, all from one bucket of shape thw. */
export interface SamplerBatch {
  indices: number[];
  bucketId: BucketId;
  /** `[T, H, W]` every sample of the batch is cropped / resized to. */
  thw: [number, number, number];
  /** Step within the epoch (0-based). */
  step: number;
}

/** JSON-safe sampler state; `loadStateDict` resumes with exactly the batches that would have followed. */
export interface SamplerState {
  version: 1;
  seed: number;
  epoch: number;
  /** Completed steps in `epoch`. */
  step: number;
  numReplicas: number;
  /** The reference's `last_micro_batch_access_index` (= step * numReplicas). */
  lastMicroBatchAccessIndex: number;
  numRows: number;
  numBucket: number;
  /** Hash of the bucket config, draw mode, frame interval, shuffle / dropLast and row count. */
  fingerprint: number;
}

interface EpochPlan {
  readonly epoch: number;
  readonly grouping: Grouping;
  /** Rows grouped like grouping.rows, each bucket's range shuffled. */
  readonly perm: Int32Array;
  readonly batchSize: Int32Array;
  readonly numBatches: Int32Array;
  /** Bucket position j (into grouping.order) of every access, length numSteps * numReplicas. */
  readonly access: Int32Array;
  /** Batch number within its bucket of every access. */
  readonly batchNo: Int32Array;
  readonly numSteps: number;
}

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new BucketError('E_BUCKET_ARG', `${name} must be a positive integer, got ${v}`);
  return v;
}

/**
 * The reference's `VariableVideoBatchSampler`: groups rows into buckets (per epoch, with keep
 * probabilities), then yields per-rank micro-batches of row indices, each from one bucket.
 *
 * Per epoch e (all randomness from `seed` and `e`, nothing else):
 * 1. grouping: row i gets `bucket.getBucketId(T, H, W, frameInterval, seed + e + i * numBucket)`;
 *    buckets are ordered by their first row;
 * 2. per bucket in that order: shuffle its rows, then with dropLast drop the incomplete tail, without
 *    dropLast pad the last batch by wrapping around the (shuffled) rows;
 * 3. the list of (bucket, batch) accesses is shuffled, then truncated (dropLast) or wrapped (otherwise)
 *    to a multiple of numReplicas;
 * 4. step s gives rank r the access `s * numReplicas + r`: ranks never share rows within a step, every
 *    rank has the same number of steps, and each row appears at most once per epoch (with dropLast).
 *
 * Resume is exact at any epoch and step: `stateDict()` / `loadStateDict()`.
 */
export class VariableVideoBatchSampler implements Iterable<SamplerBatch> {
  readonly bucket: Bucket;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly numReplicas: number;
  readonly rank: number;
  readonly frameInterval: number;
  readonly workers: number;
  readonly numRows: number;

  private seedValue: number;
  private epochValue = 0;
  private stepValue = 0;
  private readonly columns: NormalizedColumns;
  private groupingCache: Grouping | undefined;
  private planCache: EpochPlan | undefined;
  private readonly configHash: number;

  constructor(
    data: readonly BucketRow[] | BucketColumns | NormalizedColumns,
    bucketConfig: BucketConfig | Bucket,
    options: SamplerOptions = {},
  ) {
    this.bucket = bucketConfig instanceof Bucket ? bucketConfig : new Bucket(bucketConfig, options);
    this.columns = toColumns(data);
    this.numRows = this.columns.length;
    this.shuffle = options.shuffle ?? true;
    this.dropLast = options.dropLast ?? false;
    this.numReplicas = positiveInt('numReplicas', options.numReplicas ?? 1);
    const rank = options.rank ?? 0;
    if (!Number.isSafeInteger(rank) || rank < 0 || rank >= this.numReplicas) {
      throw new BucketError('E_BUCKET_ARG', `rank must be an integer in 0..${this.numReplicas - 1} (numReplicas ${this.numReplicas}), got ${rank}`);
    }
    this.rank = rank;
    this.frameInterval = options.frameInterval ?? 1;
    if (!(typeof this.frameInterval === 'number' && Number.isFinite(this.frameInterval) && this.frameInterval > 0)) {
      throw new BucketError('E_BUCKET_ARG', `frameInterval must be a positive number, got ${this.frameInterval}`);
    }
    this.workers = Math.max(1, Math.floor(options.workers ?? 1));
    this.seedValue = options.seed ?? 0;
    this.bucket.baseSeed(this.seedValue, 0, this.numRows);
    this.configHash = hash32(
      this.bucket.signature,
      String(this.frameInterval),
      this.shuffle ? 1 : 0,
      this.dropLast ? 1 : 0,
      this.numRows,
      this.bucket.numBucket,
    );
  }

  get seed(): number {
    return this.seedValue;
  }

  get epoch(): number {
    return this.epochValue;
  }

  /** Completed steps in the current epoch (batches handed out by the iterator). */
  get step(): number {
    return this.stepValue;
  }

  /**
   * Selects the epoch. A different epoch restarts at step 0; the same epoch keeps the current step, so
   * calling `setEpoch(epoch)` at the top of an epoch loop after `loadStateDict` keeps the resume point.
   */
  setEpoch(epoch: number): void {
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw new BucketError('E_BUCKET_ARG', `epoch must be a non-negative integer, got ${epoch}`);
    if (epoch === this.epochValue) return;
    this.bucket.baseSeed(this.seedValue, epoch, this.numRows);
    this.epochValue = epoch;
    this.stepValue = 0;
    this.planCache = undefined;
    if (this.groupingCache && this.groupingCache.epoch !== epoch) this.groupingCache = undefined;
  }

  /**
   * Groups the current epoch's rows ahead of time, on `workers` threads when configured (the result is
   * identical to the inline grouping). Optional: iteration groups on demand otherwise.
   */
  async prepare(): Promise<void> {
    if (this.groupingCache?.epoch === this.epochValue) return;
    const epoch = this.epochValue;
    const assignment = await assignBucketsParallel(this.bucket, this.columns, {
      frameInterval: this.frameInterval,
      seed: this.seedValue,
      epoch,
      workers: this.workers,
    });
    if (this.epochValue === epoch) this.groupingCache = groupAssignment(assignment, this.bucket.numBucket, epoch);
  }

  /** The current epoch's rows grouped by bucket (computed once per epoch). */
  grouping(): Grouping {
    if (this.groupingCache?.epoch !== this.epochValue) {
      const assignment = this.bucket.assign(this.columns, { frameInterval: this.frameInterval, seed: this.seedValue, epoch: this.epochValue });
      this.groupingCache = groupAssignment(assignment, this.bucket.numBucket, this.epochValue);
    }
    return this.groupingCache;
  }

  private plan(): EpochPlan {
    if (this.planCache?.epoch === this.epochValue) return this.planCache;
    const grouping = this.grouping();
    const nbk = grouping.order.length;
    const rng = Rng.derive(this.seedValue, 'VariableVideoBatchSampler', this.epochValue);
    const perm = grouping.rows.slice();
    const batchSize = new Int32Array(nbk);
    const numBatches = new Int32Array(nbk);
    let total = 0;
    for (let j = 0; j < nbk; j++) {
      const s0 = grouping.start[j]!;
      const s1 = grouping.start[j + 1]!;
      if (this.shuffle) rng.shuffle(perm.subarray(s0, s1));
      const bs = this.bucket.batchSizeOfIndex(grouping.order[j]!) ?? 1;
      batchSize[j] = bs;
      const len = s1 - s0;
      numBatches[j] = this.dropLast ? Math.floor(len / bs) : Math.ceil(len / bs);
      total += numBatches[j]!;
    }
    const base = new Int32Array(total);
    let p = 0;
    for (let j = 0; j < nbk; j++) for (let k = 0; k < numBatches[j]!; k++) base[p++] = j;
    if (this.shuffle) rng.shuffle(base);
    const R = this.numReplicas;
    const rem = total % R;
    const len = total === 0 ? 0 : this.dropLast ? total - rem : rem === 0 ? total : total + R - rem;
    const access = new Int32Array(len);
    const batchNo = new Int32Array(len);
    const seen = new Int32Array(nbk);
    for (let a = 0; a < Math.min(len, total); a++) {
      const j = base[a]!;
      access[a] = j;
      batchNo[a] = seen[j]++;
    }
    // Without dropLast, the last step is filled by wrapping around to the first accesses.
    for (let a = total; a < len; a++) {
      access[a] = access[a % total]!;
      batchNo[a] = batchNo[a % total]!;
    }
    this.planCache = { epoch: this.epochValue, grouping, perm, batchSize, numBatches, access, batchNo, numSteps: len / R };
    return this.planCache;
  }

  /** Steps per epoch (identical on every rank), exact for the current epoch. */
  get length(): number {
    return this.plan().numSteps;
  }

  /** Micro-batches in the epoch over all ranks before truncation to a multiple of numReplicas (the reference's `get_num_batch()`). */
  get numBatches(): number {
    const p = this.plan();
    let t = 0;
    for (let j = 0; j < p.numBatches.length; j++) t += p.numBatches[j]!;
    return t;
  }

  /** This rank's batch at a step of the current epoch (random access; does not move the iterator). */
  batchAt(step: number, rank = this.rank): SamplerBatch {
    const plan = this.plan();
    if (!Number.isSafeInteger(step) || step < 0 || step >= plan.numSteps) {
      throw new BucketError('E_BUCKET_ARG', `step must be an integer in 0..${plan.numSteps - 1}, got ${step}`);
    }
    if (!Number.isSafeInteger(rank) || rank < 0 || rank >= this.numReplicas) {
      throw new BucketError('E_BUCKET_ARG', `rank must be an integer in 0..${this.numReplicas - 1}, got ${rank}`);
    }
    const a = step * this.numReplicas + rank;
    const j = plan.access[a]!;
    const k = plan.batchNo[a]!;
    const bs = plan.batchSize[j]!;
    const s0 = plan.grouping.start[j]!;
    const len = plan.grouping.start[j + 1]! - s0;
    const indices = new Array<number>(bs);
    for (let q = 0; q < bs; q++) indices[q] = plan.perm[s0 + ((k * bs + q) % len)]!;
    const bucketIndex = plan.grouping.order[j]!;
    const bucketId = this.bucket.idOf(bucketIndex);
    return { indices, bucketId, thw: this.bucket.getThw(bucketId), step };
  }

  /**
   * Iterates this rank's remaining batches of the current epoch, from the current step. When the
   * epoch is exhausted the sampler moves to the next epoch (step 0), so a state saved after the loop
   * resumes with the next epoch.
   */
  *[Symbol.iterator](): Generator<SamplerBatch, void, undefined> {
    const epoch = this.epochValue;
    const n = this.plan().numSteps;
    for (let s = this.stepValue; s < n; s++) {
      if (this.epochValue !== epoch) return; // setEpoch / loadStateDict during iteration ends this pass
      const b = this.batchAt(s);
      this.stepValue = s + 1;
      yield b;
    }
    if (this.epochValue === epoch && this.stepValue >= n) this.setEpoch(epoch + 1);
  }

  /** Same as iterating the sampler. */
  batches(): Generator<SamplerBatch, void, undefined> {
    return this[Symbol.iterator]();
  }

  /**
   * JSON-safe state. `stepsDone` defaults to the batches handed out so far; pass the number of steps
   * actually trained when the loader prefetches ahead of the training loop.
   */
  stateDict(stepsDone: number = this.stepValue): SamplerState {
    if (!Number.isSafeInteger(stepsDone) || stepsDone < 0) throw new BucketError('E_BUCKET_ARG', `stepsDone must be a non-negative integer, got ${stepsDone}`);
    return {
      version: 1,
      seed: this.seedValue,
      epoch: this.epochValue,
      step: stepsDone,
      numReplicas: this.numReplicas,
      lastMicroBatchAccessIndex: stepsDone * this.numReplicas,
      numRows: this.numRows,
      numBucket: this.bucket.numBucket,
      fingerprint: this.configHash,
    };
  }

  /**
   * Restores a state from `stateDict()`. With the same dataset, config and numReplicas the following
   * batches are exactly those the saved run would have seen. With another numReplicas, the step is
   * `floor(lastMicroBatchAccessIndex / numReplicas)` (approximate, as in the reference). A state from
   * another dataset or config is rejected unless `strict: false`.
   */
  loadStateDict(state: SamplerState, options: { strict?: boolean } = {}): void {
    const strict = options.strict ?? true;
    const bad = (msg: string): never => {
      throw new BucketError('E_BUCKET_STATE', `Invalid sampler state: ${msg}`);
    };
    if (state === null || typeof state !== 'object') bad('expected the object returned by stateDict()');
    if (state.version !== 1) bad(`unknown version ${JSON.stringify(state.version)} (expected 1)`);
    for (const k of ['seed', 'epoch', 'step', 'numReplicas', 'lastMicroBatchAccessIndex'] as const) {
      if (!Number.isSafeInteger(state[k]) || state[k] < 0) bad(`${k} must be a non-negative integer, got ${JSON.stringify(state[k])}`);
    }
    if (state.numReplicas < 1) bad('numReplicas must be >= 1');
    if (strict) {
      if (state.numRows !== this.numRows) bad(`it was saved for ${state.numRows} rows, this dataset has ${this.numRows}; pass { strict: false } to load it anyway (resume will not be exact)`);
      if (state.numBucket !== this.bucket.numBucket || state.fingerprint !== this.configHash) {
        bad('it was saved with another bucket config, draw mode, frame interval or shuffle / dropLast setting; pass { strict: false } to load it anyway (resume will not be exact)');
      }
    }
    this.bucket.baseSeed(state.seed, state.epoch, this.numRows);
    if (state.seed !== this.seedValue) {
      this.groupingCache = undefined;
      this.planCache = undefined;
    }
    this.seedValue = state.seed;
    this.setEpoch(state.epoch);
    this.stepValue = state.numReplicas === this.numReplicas ? state.step : Math.floor(state.lastMicroBatchAccessIndex / this.numReplicas);
  }

  /** Samples and batches per bucket / resolution / aspect for the current epoch. */
  bucketStats(): BucketStats {
    return computeBucketStats(this.bucket, this.grouping(), { dropLast: this.dropLast, numReplicas: this.numReplicas });
  }

  /** `bucketStats()` as printable tables. */
  formatBucketStats(): string {
    return formatBucketStats(this.bucketStats());
  }
}
