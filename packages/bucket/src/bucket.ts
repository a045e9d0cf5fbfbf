import { defineResolution, findResolution, listResolutions, type CustomResolution, type ResolvedResolution } from './aspect.js';
import { toColumns, type BucketColumns, type BucketRow, type NormalizedColumns } from './columns.js';
import { BucketError } from './errors.js';
import { makeKernel, type KernelTables } from './kernel.js';

/** `[keepProb, batchSize]`: the reference's `(keep_prob, batch_size)` tuple, `null` for `None`. */
export type BucketEntry = readonly [keepProb: number, batchSize: number | null];

/** `{ [resolution]: { [numFrames]: [keepProb, batchSize | null] } }`, the reference's `bucket_config` as JSON. */
export type BucketConfig = Readonly<Record<string, Readonly<Record<string | number, BucketEntry>>>>;

/** `[resolution, numFrames, aspectKey]` (a fresh array each time it is returned). */
export type BucketId = [resolution: string, numFrames: number, aspectRatio: string];

/** What methods taking a bucket id accept. */
export type BucketIdLike = readonly [resolution: string, numFrames: number, aspectRatio: string];

/**
 * How the keep-probability draw is made for a per-attempt seed s (the reference's
 * `seed + epoch + row * num_bucket + bucket_id[res][T]`):
 * - `'hash'` (default): `hashUniform(s)` of @opensora/random, a stateless hash (about 10x cheaper);
 * - `'numpy'`: `numpy.random.default_rng(s).random()` bit for bit (SeedSequence + PCG64), so that
 *   assignments equal the reference's exactly, real probabilities included.
 */
export type DrawMode = 'hash' | 'numpy';

export interface BucketOptions {
  /** Keep-probability draw; see DrawMode. Default 'hash'. */
  draw?: DrawMode;
  /** Resolutions known only to this bucket (same rules as registerResolution; built-in names are rejected). */
  resolutions?: Readonly<Record<string, CustomResolution>>;
}

/** One (resolution, T, aspect) bucket. */
export interface BucketInfo {
  /** Position in the bucket list, 0 .. numBucket - 1 (resolution order, T descending, table order). */
  readonly index: number;
  readonly id: BucketIdLike;
  /** `[T, H, W]` of the bucket. */
  readonly thw: readonly [number, number, number];
  readonly keepProb: number;
  readonly batchSize: number | null;
  /** The reference's `bucket_id[res][T]` counter (perturbs the draw seed). */
  readonly slot: number;
}

/** Largest safe integer seed sum. */
const MAX_SEED = Number.MAX_SAFE_INTEGER;

function checkSeed(seed: number, what = 'seed'): void {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new BucketError('E_BUCKET_ARG', `${what} must be a non-negative safe integer, got ${seed}`);
  }
}

function checkFrameInterval(fi: number): void {
  if (typeof fi !== 'number' || !Number.isFinite(fi) || fi <= 0) {
    throw new BucketError('E_BUCKET_ARG', `frameInterval must be a positive number, got ${fi}`);
  }
}

interface Slot {
  res: number;
  t: number;
  prob: number;
  bs: number | null;
  tripleOffset: number;
}

/**
 * The three-level bucket of Open-Sora 1.1 (resolution, number of frames, aspect ratio), with the
 * reference's semantics: resolutions by pixel count descending, frame keys descending, 0.8 pixel slack,
 * strict `T > t * frameInterval`, only the largest fitting T tried per resolution, `keepProb == 1` skips
 * the draw, closest aspect key by |key - H / W| with the first key winning ties.
 */
export class Bucket {
  /** Number of (resolution, T, aspect) buckets: the reference's `num_bucket` / `len(bucket)`. */
  readonly numBucket: number;
  /** Resolution names in processing order (pixel count descending, stable). */
  readonly resolutions: readonly string[];
  readonly draw: DrawMode;
  /** @internal Flat tables for the assignment kernel (also sent to worker threads). */
  readonly tables: KernelTables;
  /** The validated config, normalised (frame keys as numbers, descending). */
  readonly config: ReadonlyArray<{ resolution: string; frames: ReadonlyArray<{ numFrames: number; keepProb: number; batchSize: number | null }> }>;

  private readonly res: ResolvedResolution[];
  private readonly resIndex = new Map<string, number>();
  private readonly slots: Slot[] = [];
  private readonly slotIndex: Array<Map<number, number>> = [];
  private readonly keyIndex: Array<Map<string, number>> = [];
  private readonly tripleSlot: Int32Array;
  private readonly tripleAr: Int32Array;
  private readonly kernel = makeKernel();

  constructor(bucketConfig: BucketConfig, options: BucketOptions = {}) {
    const draw = options.draw ?? 'hash';
    if (draw !== 'hash' && draw !== 'numpy') throw new BucketError('E_BUCKET_ARG', `draw must be 'hash' or 'numpy', got ${JSON.stringify(draw)}`);
    this.draw = draw;
    const local = new Map<string, ResolvedResolution>();
    for (const [name, spec] of Object.entries(options.resolutions ?? {})) local.set(name, defineResolution(name, spec));

    if (bucketConfig === null || typeof bucketConfig !== 'object' || Array.isArray(bucketConfig)) {
      throw new BucketError('E_BUCKET_CONFIG', 'The bucket config must be an object { [resolution]: { [numFrames]: [keepProb, batchSize | null] } }');
    }
    const names = Object.keys(bucketConfig);
    if (names.length === 0) throw new BucketError('E_BUCKET_CONFIG', 'The bucket config is empty; give at least one resolution, e.g. { "144p": { "16": [1.0, 8] } }');

    const parsed: Array<{ res: ResolvedResolution; frames: Array<{ numFrames: number; keepProb: number; batchSize: number | null }> }> = [];
    for (const name of names) {
      const res = findResolution(name, local);
      if (!res) {
        const known = [...listResolutions(), ...local.keys()].map((n) => JSON.stringify(n)).join(', ');
        throw new BucketError('E_BUCKET_CONFIG', `Unknown resolution ${JSON.stringify(name)} in the bucket config; known: ${known} (register your own with registerResolution)`);
      }
      const entries = bucketConfig[name];
      if (entries === null || typeof entries !== 'object' || Array.isArray(entries) || Object.keys(entries).length === 0) {
        throw new BucketError('E_BUCKET_CONFIG', `Resolution ${JSON.stringify(name)}: expected a non-empty map { [numFrames]: [keepProb, batchSize | null] }`);
      }
      const frames: Array<{ numFrames: number; keepProb: number; batchSize: number | null }> = [];
      for (const [key, value] of Object.entries(entries as Record<string, BucketEntry>)) {
        const at = `Resolution ${JSON.stringify(name)}, frames ${JSON.stringify(key)}`;
        if (!/^[0-9]+$/.test(key) || Number(key) < 1 || !Number.isSafeInteger(Number(key))) {
          throw new BucketError('E_BUCKET_CONFIG', `${at}: the frame key must be a positive integer (1 = images)`);
        }
        if (!Array.isArray(value) || value.length !== 2) {
          throw new BucketError('E_BUCKET_CONFIG', `${at}: expected [keepProb, batchSize | null], got ${JSON.stringify(value)}`);
        }
        const [p, bs] = value as [unknown, unknown];
        if (typeof p !== 'number' || !(p >= 0 && p <= 1)) {
          throw new BucketError('E_BUCKET_CONFIG', `${at}: keep probability ${JSON.stringify(p)} is outside [0, 1]`);
        }
        if (bs !== null && !(typeof bs === 'number' && Number.isSafeInteger(bs) && bs > 0)) {
          throw new BucketError('E_BUCKET_CONFIG', `${at}: batch size ${JSON.stringify(bs)} must be a positive integer or null`);
        }
        if (p > 0 && bs === null) {
          throw new BucketError('E_BUCKET_CONFIG', `${at}: keep probability ${p} > 0 needs a batch size (null is only allowed with keep probability 0)`);
        }
        frames.push({ numFrames: Number(key), keepProb: p, batchSize: bs as number | null });
      }
      frames.sort((a, b) => b.numFrames - a.numFrames);
      parsed.push({ res, frames });
    }
    // Stable sort by pixel count, descending.
    const order = parsed.map((p, i) => ({ p, i })).sort((a, b) => b.p.res.pixels - a.p.res.pixels || a.i - b.i);
    this.res = order.map((o) => o.p.res);
    this.resolutions = Object.freeze(this.res.map((r) => r.name));
    this.config = Object.freeze(order.map((o) => Object.freeze({ resolution: o.p.res.name, frames: Object.freeze(o.p.frames.map((f) => Object.freeze(f))) })));

    let triple = 0;
    const numRes = this.res.length;
    const slotStart = new Int32Array(numRes + 1);
    const imageSlot = new Int32Array(numRes).fill(-1);
    const arStart = new Int32Array(numRes + 1);
    order.forEach((o, r) => {
      this.resIndex.set(o.p.res.name, r);
      const km = new Map<string, number>();
      o.p.res.keys.forEach((k, i) => km.set(k, i));
      this.keyIndex.push(km);
      const sm = new Map<number, number>();
      slotStart[r] = this.slots.length;
      arStart[r + 1] = arStart[r]! + o.p.res.keys.length;
      for (const f of o.p.frames) {
        if (f.numFrames === 1) imageSlot[r] = this.slots.length;
        sm.set(f.numFrames, this.slots.length);
        this.slots.push({ res: r, t: f.numFrames, prob: f.keepProb, bs: f.batchSize, tripleOffset: triple });
        triple += o.p.res.keys.length;
      }
      this.slotIndex.push(sm);
    });
    slotStart[numRes] = this.slots.length;
    this.numBucket = triple;
    if (triple > 0x7fffffff) throw new BucketError('E_BUCKET_CONFIG', `Too many buckets (${triple})`);

    const arValues = new Float64Array(arStart[numRes]!);
    this.res.forEach((r, i) => arValues.set(r.values, arStart[i]!));
    this.tripleSlot = new Int32Array(triple);
    this.tripleAr = new Int32Array(triple);
    this.slots.forEach((s, si) => {
      const nk = this.res[s.res]!.keys.length;
      for (let a = 0; a < nk; a++) {
        this.tripleSlot[s.tripleOffset + a] = si;
        this.tripleAr[s.tripleOffset + a] = a;
      }
    });
    this.tables = {
      numBucket: triple,
      numRes,
      threshold: Float64Array.from(this.res, (r) => r.pixels * 0.8),
      imageSlot,
      slotStart,
      slotT: Int32Array.from(this.slots, (s) => s.t),
      slotProb: Float64Array.from(this.slots, (s) => s.prob),
      slotTripleOffset: Int32Array.from(this.slots, (s) => s.tripleOffset),
      arStart,
      arValues,
      drawMode: draw === 'numpy' ? 1 : 0,
    };
  }

  /** A string that changes whenever the config or a resolution table used by it changes. */
  get signature(): string {
    return JSON.stringify([this.draw, this.config, this.res.map((r) => [r.name, r.pixels, r.keys, r.sizes])]);
  }

  /** Same as numBucket (the reference's `len(bucket)`). */
  get length(): number {
    return this.numBucket;
  }

  /** Number of (resolution, T) pairs; the reference's `bucket_id` counter runs over them. */
  get numSlots(): number {
    return this.slots.length;
  }

  /**
   * The reference's `get_bucket_id(T, H, W, frame_interval, seed)`: `[resolution, numFrames, aspectKey]`,
   * or null when the sample fits no bucket (or every keep-probability draw failed). `seed` is the
   * per-sample seed; the sampler passes `seed + epoch + row * numBucket`.
   */
  getBucketId(T: number, H: number, W: number, frameInterval = 1, seed = 0): BucketId | null {
    const i = this.getBucketIndex(T, H, W, frameInterval, seed);
    return i < 0 ? null : this.idOf(i);
  }

  /** Like getBucketId but returns the bucket's index (see `buckets()`), or -1. */
  getBucketIndex(T: number, H: number, W: number, frameInterval = 1, seed = 0): number {
    for (const [name, v] of [
      ['T', T],
      ['H', H],
      ['W', W],
    ] as const) {
      if (typeof v !== 'number' || !(v >= 0) || v === Infinity) throw new BucketError('E_BUCKET_ARG', `getBucketId: ${name} must be a finite non-negative number, got ${v}`);
    }
    checkFrameInterval(frameInterval);
    checkSeed(seed);
    if (seed + this.slots.length > MAX_SEED) throw new BucketError('E_BUCKET_ARG', `seed ${seed} is too large (seed + ${this.slots.length} must stay below 2^53)`);
    return this.kernel.assignOne(this.tables, T, H, W, frameInterval, seed);
  }

  /** The bucket id of a bucket index. */
  idOf(index: number): BucketId {
    if (!Number.isInteger(index) || index < 0 || index >= this.numBucket) {
      throw new BucketError('E_BUCKET_ARG', `Bucket index ${index} is out of range 0..${this.numBucket - 1}`);
    }
    const s = this.slots[this.tripleSlot[index]!]!;
    const r = this.res[s.res]!;
    return [r.name, s.t, r.keys[this.tripleAr[index]!]!];
  }

  /** The index of a bucket id (see `buckets()`). */
  indexOf(id: BucketIdLike): number {
    const { slot, ar } = this.locate(id, true);
    return this.slots[slot]!.tripleOffset + ar;
  }

  private locate(id: readonly unknown[], needAr: boolean): { slot: number; ar: number } {
    if (!Array.isArray(id) || id.length < 2 || id.length > 3 || (needAr && id.length !== 3)) {
      throw new BucketError('E_BUCKET_ARG', `Expected a bucket id [resolution, numFrames${needAr ? ', aspectKey' : ''}], got ${JSON.stringify(id)}`);
    }
    const [name, t, ar] = id as [string, number, string | undefined];
    const r = this.resIndex.get(name);
    if (r === undefined) throw new BucketError('E_BUCKET_ARG', `Resolution ${JSON.stringify(name)} is not in this bucket (has ${this.resolutions.join(', ')})`);
    const slot = this.slotIndex[r]!.get(Number(t));
    if (slot === undefined) throw new BucketError('E_BUCKET_ARG', `Resolution ${JSON.stringify(name)} has no frame entry ${JSON.stringify(t)}`);
    let a = -1;
    if (needAr || ar !== undefined) {
      const k = this.keyIndex[r]!.get(String(ar));
      if (k === undefined) throw new BucketError('E_BUCKET_ARG', `Resolution ${JSON.stringify(name)} has no aspect key ${JSON.stringify(ar)}`);
      a = k;
    }
    return { slot, ar: a };
  }

  /** The reference's `get_thw(id)`: `[T, H, W]` with (H, W) from the resolution's table. */
  getThw(id: BucketIdLike): [number, number, number] {
    const { slot, ar } = this.locate(id, true);
    const s = this.slots[slot]!;
    const hw = this.res[s.res]!.sizes[ar]!;
    return [s.t, hw[0], hw[1]];
  }

  /** The reference's `get_batch_size(id)` (a 2- or 3-element id); null for keep-probability-0 entries. */
  getBatchSize(id: BucketIdLike | readonly [string, number]): number | null {
    return this.slots[this.locate(id, false).slot]!.bs;
  }

  /** The reference's `get_prob(id)`: the keep probability of (resolution, T). */
  getProb(id: BucketIdLike | readonly [string, number]): number {
    return this.slots[this.locate(id, false).slot]!.prob;
  }

  /** The reference's `bucket_id[res][T]` counter of a (resolution, T) pair. */
  getSlot(resolution: string, numFrames: number): number {
    return this.locate([resolution, numFrames], false).slot;
  }

  /** Every bucket, in index order. */
  buckets(): BucketInfo[] {
    const out: BucketInfo[] = [];
    for (let i = 0; i < this.numBucket; i++) out.push(this.info(i));
    return out;
  }

  /** One bucket's description. */
  info(index: number): BucketInfo {
    const id = this.idOf(index);
    const s = this.slots[this.tripleSlot[index]!]!;
    const hw = this.res[s.res]!.sizes[this.tripleAr[index]!]!;
    return Object.freeze({ index, id: Object.freeze(id), thw: Object.freeze([s.t, hw[0], hw[1]] as const), keepProb: s.prob, batchSize: s.bs, slot: this.tripleSlot[index]! });
  }

  /** @internal (slot of a bucket index, for the sampler's hot path). */
  batchSizeOfIndex(index: number): number | null {
    return this.slots[this.tripleSlot[index]!]!.bs;
  }

  /**
   * Assigns every row a bucket index (-1 = none) with the sampler's seeds: row i uses
   * `seed + epoch + i * numBucket`. Columnar, single-threaded; see `assignBucketsParallel` for threads.
   */
  assign(
    data: readonly BucketRow[] | BucketColumns | NormalizedColumns,
    options: { frameInterval?: number; seed?: number; epoch?: number; out?: Int32Array } = {},
  ): Int32Array {
    const cols = toColumns(data);
    const fi = options.frameInterval ?? 1;
    const base = this.baseSeed(options.seed ?? 0, options.epoch ?? 0, cols.length);
    checkFrameInterval(fi);
    const out = options.out ?? new Int32Array(cols.length);
    if (out.length < cols.length) throw new BucketError('E_BUCKET_ARG', `out has ${out.length} entries, needs ${cols.length}`);
    this.kernel.assignRange(this.tables, cols.numFrames, cols.height, cols.width, fi, base, 0, cols.length, out);
    return out;
  }

  /** @internal Validates seed + epoch and that every per-attempt seed of n rows stays a safe integer. */
  baseSeed(seed: number, epoch: number, n: number): number {
    checkSeed(seed);
    checkSeed(epoch, 'epoch');
    const base = seed + epoch;
    if (base + Math.max(0, n - 1) * this.numBucket + this.slots.length > MAX_SEED) {
      throw new BucketError('E_BUCKET_ARG', `seed + epoch + rows * numBucket exceeds 2^53 (seed ${seed}, epoch ${epoch}, ${n} rows, ${this.numBucket} buckets); use a smaller seed`);
    }
    return base;
  }
}
