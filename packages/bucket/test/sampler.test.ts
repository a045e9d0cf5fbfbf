import { Rng } from '@opensora/random';
import { describe, expect, it } from 'vitest';
import {
  Bucket,
  BucketError,
  VariableVideoBatchSampler,
  assignBucketsParallel,
  formatBucketStats,
  groupAssignment,
  type BucketConfig,
  type SamplerBatch,
  type SamplerOptions,
} from '../src/index.js';

const CONFIG: BucketConfig = {
  '480p': { 1: [0.5, 6], 16: [0.5, 3], 32: [0, null] },
  '240p': { 1: [0.8, 8], 16: [0.9, 4], 32: [0.8, 2], 64: [0.8, 1] },
  '144p': { 1: [1, 12], 16: [1, 5], 32: [1, 3], 64: [1, 2] },
};

function synthRows(n: number, seed = 7): Array<{ num_frames: number; height: number; width: number }> {
  const rng = new Rng(seed);
  const sizes: Array<[number, number]> = [
    [720, 1280],
    [1280, 720],
    [480, 854],
    [360, 640],
    [240, 426],
    [144, 256],
    [512, 512],
    [100, 100],
  ];
  return Array.from({ length: n }, () => {
    const [height, width] = sizes[rng.int(sizes.length)]!;
    return { num_frames: rng.bool(0.25) ? 1 : rng.intRange(2, 300), height, width };
  });
}

const ROWS = synthRows(3000);

function epochBatches(s: VariableVideoBatchSampler): SamplerBatch[] {
  return [...s];
}

function make(opts: SamplerOptions = {}, rows = ROWS): VariableVideoBatchSampler {
  return new VariableVideoBatchSampler(rows, CONFIG, { seed: 42, frameInterval: 1, ...opts });
}

describe('VariableVideoBatchSampler invariants', () => {
  it('every batch comes from one bucket, with its thw and batch size, and rows that belong to it', () => {
    const s = make({ dropLast: true });
    const b = s.bucket;
    const assign = b.assign(ROWS, { seed: 42, epoch: 0 });
    const batches = epochBatches(s);
    expect(batches.length).toBeGreaterThan(50);
    for (const batch of batches) {
      expect(batch.thw).toEqual(b.getThw(batch.bucketId));
      expect(batch.indices).toHaveLength(b.getBatchSize(batch.bucketId)!);
      for (const i of batch.indices) expect(b.idOf(assign[i]!)).toEqual(batch.bucketId);
    }
    // Keep probabilities below 1 drop some rows from their first-choice resolution.
    expect(new Set(batches.map((x) => x.bucketId[0]))).toEqual(new Set(['480p', '240p', '144p']));
  });

  it('with dropLast each row appears at most once per epoch, and all but the bucket tails appear', () => {
    for (const R of [1, 3]) {
      const samplers = Array.from({ length: R }, (_, rank) => make({ dropLast: true, numReplicas: R, rank }));
      const stats = samplers[0]!.bucketStats(); // before iterating: the sampler moves to the next epoch at the end
      const length = samplers[0]!.length;
      const seen = new Set<number>();
      let count = 0;
      for (const s of samplers) {
        for (const batch of s) {
          for (const i of batch.indices) {
            expect(seen.has(i)).toBe(false);
            seen.add(i);
            count++;
          }
        }
      }
      const unused = stats.assigned - stats.dropped - count;
      // Only the rank truncation (fewer than R batches of at most 12 rows) leaves further rows out.
      expect(stats.numBatches - length * R).toBeLessThan(R);
      expect(stats.numBatches - length * R).toBeGreaterThanOrEqual(0);
      expect(unused).toBeGreaterThanOrEqual(0);
      expect(unused).toBeLessThan(R * 12);
      if (R === 1) expect(unused).toBe(0);
    }
  });

  it('ranks are disjoint within every step and have the same number of steps', () => {
    for (const dropLast of [true, false]) {
      const R = 4;
      const samplers = Array.from({ length: R }, (_, rank) => make({ dropLast, numReplicas: R, rank }));
      const lens = samplers.map((s) => s.length);
      expect(new Set(lens).size).toBe(1);
      const per = samplers.map(epochBatches);
      per.forEach((p) => expect(p).toHaveLength(lens[0]!));
      if (dropLast) {
        for (let step = 0; step < lens[0]!; step++) {
          const all = per.flatMap((p) => p[step]!.indices);
          expect(new Set(all).size).toBe(all.length);
        }
      }
    }
  });

  it('without dropLast every assigned row appears, batches are full (tails wrap around)', () => {
    const s = make({ dropLast: false });
    const stats = s.bucketStats();
    const seen = new Set<number>();
    for (const batch of s) {
      expect(batch.indices).toHaveLength(s.bucket.getBatchSize(batch.bucketId)!);
      batch.indices.forEach((i) => seen.add(i));
    }
    expect(seen.size).toBe(stats.assigned);
    expect(stats.dropped).toBe(0);
  });

  it('length and numBatches are exact', () => {
    const s = make({ dropLast: true });
    const stats = s.bucketStats();
    expect(s.length).toBe(epochBatches(make({ dropLast: true })).length);
    const reference = stats.buckets.reduce((t, e) => t + Math.floor(e.samples / e.batchSize), 0);
    expect(s.numBatches).toBe(reference);
    expect(stats.numSteps).toBe(s.length);
  });

  it('shuffles per epoch and per seed; the same seed and epoch give the same batches', () => {
    const key = (b: SamplerBatch[]): string => JSON.stringify(b.map((x) => x.indices));
    const e0 = key(epochBatches(make()));
    expect(key(epochBatches(make()))).toBe(e0);
    const s = make();
    s.setEpoch(1);
    expect(key(epochBatches(s))).not.toBe(e0);
    expect(key(epochBatches(make({ seed: 43 })))).not.toBe(e0);
  });

  it('shuffle: false keeps buckets in first-row order and rows in row order; dropLast drops the highest rows', () => {
    const s = make({ shuffle: false, dropLast: true });
    const g = s.grouping();
    const batches = epochBatches(s);
    let j = 0;
    let pos = 0;
    for (const batch of batches) {
      while (s.bucket.indexOf(batch.bucketId) !== g.order[j]) {
        j++;
        pos = 0;
      }
      const rows = [...g.rows.subarray(g.start[j]!, g.start[j + 1]!)];
      expect(batch.indices).toEqual(rows.slice(pos, pos + batch.indices.length));
      pos += batch.indices.length;
    }
    // First-appearance order: each bucket's first row increases along order.
    const firsts = Array.from(g.order, (_, k) => g.rows[g.start[k]!]!);
    expect(firsts).toEqual([...firsts].sort((a, b) => a - b));
  });
});

describe('resume', () => {
  const run = (s: VariableVideoBatchSampler, steps: number): SamplerBatch[] => {
    const out: SamplerBatch[] = [];
    for (const b of s) {
      out.push(b);
      if (out.length === steps) break;
    }
    return out;
  };

  for (const [R, rank] of [
    [1, 0],
    [3, 2],
  ] as const) {
    it(`mid-epoch and at a later epoch gives the identical remaining sequence (numReplicas ${R})`, () => {
      const a = make({ dropLast: true, numReplicas: R, rank });
      epochBatches(a); // epoch 0; the sampler moves on to epoch 1
      expect(a.epoch).toBe(1);
      const first = run(a, 7);
      expect(first[6]!.step).toBe(6);
      const saved = JSON.parse(JSON.stringify(a.stateDict())) as ReturnType<typeof a.stateDict>;
      expect(saved).toMatchObject({ epoch: 1, step: 7, numReplicas: R, lastMicroBatchAccessIndex: 7 * R });
      const restOfA = epochBatches(a); // the rest of epoch 1
      a.setEpoch(2);
      const epoch2 = epochBatches(a);

      const b = make({ dropLast: true, numReplicas: R, rank });
      b.loadStateDict(saved);
      b.setEpoch(1); // a trainer's epoch loop calling setEpoch(epoch) keeps the resume point
      expect(b.step).toBe(7);
      expect(epochBatches(b)).toEqual(restOfA);
      b.setEpoch(2);
      expect(epochBatches(b)).toEqual(epoch2);

      // A state taken at an epoch boundary resumes with the next epoch.
      const c = make({ dropLast: true, numReplicas: R, rank });
      c.setEpoch(1);
      epochBatches(c);
      const boundary = c.stateDict();
      expect(boundary).toMatchObject({ epoch: 2, step: 0 });
      const d = make({ dropLast: true, numReplicas: R, rank });
      d.loadStateDict(boundary);
      expect(epochBatches(d)).toEqual(epoch2);
    });
  }

  it('stateDict(stepsDone) takes the trained step count when a loader prefetches', () => {
    const a = make();
    const it1 = a[Symbol.iterator]();
    for (let i = 0; i < 5; i++) it1.next(); // 5 prefetched, 3 trained
    const state = a.stateDict(3);
    const b = make();
    b.loadStateDict(state);
    expect(b.batchAt(3)).toEqual(a.batchAt(3));
    expect(epochBatches(b)[0]).toEqual(a.batchAt(3));
  });

  it('rejects malformed or foreign states; strict: false loads them anyway', () => {
    const a = make();
    const state = a.stateDict();
    expect(() => make().loadStateDict({ ...state, step: -1 })).toThrow(BucketError);
    expect(() => make().loadStateDict({ ...state, version: 2 as never })).toThrow(/version/);
    expect(() => make().loadStateDict(null as never)).toThrow(/Invalid sampler state/);
    const other = make({}, ROWS.slice(0, 100));
    expect(() => other.loadStateDict(state)).toThrow(/saved for 3000 rows/);
    expect(() => make({ frameInterval: 3 }).loadStateDict(state)).toThrow(/another bucket config/);
    try {
      other.loadStateDict(state);
    } catch (e) {
      expect((e as BucketError).code).toBe('E_BUCKET_STATE');
    }
    expect(() => other.loadStateDict(state, { strict: false })).not.toThrow();
  });

  it('a different numReplicas resumes approximately at lastMicroBatchAccessIndex / numReplicas', () => {
    const a = make({ numReplicas: 2, rank: 0 });
    const state = a.stateDict(6);
    const b = make({ numReplicas: 4, rank: 0 });
    b.loadStateDict(state);
    expect(b.step).toBe(3);
  });
});

describe('grouping, workers and stats', () => {
  it('groupAssignment orders buckets by first row and keeps row order', () => {
    const g = groupAssignment(Int32Array.from([3, -1, 1, 3, 0, 1, -1]), 4, 5);
    expect([...g.order]).toEqual([3, 1, 0]);
    expect([...g.start]).toEqual([0, 2, 4, 5]);
    expect([...g.rows]).toEqual([0, 3, 2, 5, 4]);
    expect(g.unassigned).toBe(2);
    expect(g.epoch).toBe(5);
  });

  it('worker-thread assignment equals the inline one', async () => {
    for (const draw of ['hash', 'numpy'] as const) {
      const b = new Bucket(CONFIG, { draw });
      const inline = b.assign(ROWS, { seed: 9, epoch: 2, frameInterval: 2 });
      const par = await assignBucketsParallel(b, ROWS, { seed: 9, epoch: 2, frameInterval: 2, workers: 2, minRowsForWorkers: 0 });
      expect([...par]).toEqual([...inline]);
    }
  });

  it('prepare() on worker threads gives the same epoch as inline grouping', async () => {
    const rows = synthRows(210_000, 3);
    const cols = {
      numFrames: Int32Array.from(rows, (r) => r.num_frames),
      height: Int32Array.from(rows, (r) => r.height),
      width: Int32Array.from(rows, (r) => r.width),
    };
    const a = new VariableVideoBatchSampler(cols, CONFIG, { seed: 1, workers: 2, dropLast: true });
    await a.prepare();
    const b = new VariableVideoBatchSampler(cols, CONFIG, { seed: 1, dropLast: true });
    expect(a.length).toBe(b.length);
    for (const step of [0, 1, 100, a.length - 1]) expect(a.batchAt(step)).toEqual(b.batchAt(step));
  });

  it('stats: samples and batches per bucket, resolution, (resolution, T) and aspect, and a printed table', () => {
    const s = make({ dropLast: true });
    const st = s.bucketStats();
    expect(st.numRows).toBe(3000);
    expect(st.assigned + st.unassigned).toBe(3000);
    expect(st.buckets.reduce((t, e) => t + e.samples, 0)).toBe(st.assigned);
    expect(st.byResolution.reduce((t, e) => t + e.samples, 0)).toBe(st.assigned);
    expect(st.byResolutionFrames.reduce((t, e) => t + e.batches, 0)).toBe(st.numBatches);
    expect(st.byAspectRatio.reduce((t, e) => t + e.samples, 0)).toBe(st.assigned);
    expect(st.byResolution.map((r) => r.resolution)).toEqual(['480p', '240p', '144p']);
    // 100x100 rows are below every threshold; 480p x 32 has keep prob 0.
    expect(st.unassigned).toBeGreaterThan(0);
    expect(st.byResolutionFrames.find((r) => r.resolution === '480p' && r.numFrames === 32)).toBeUndefined();
    const text = formatBucketStats(st);
    expect(text).toContain('By resolution:');
    expect(text).toContain('By aspect ratio (h/w):');
    expect(text).toMatch(/144p\s+16\s+0\.56\s+16x144x256/);
    expect(s.formatBucketStats()).toBe(text);
  });
});

describe('sampler arguments', () => {
  it('rejects bad options with clear errors', () => {
    expect(() => make({ numReplicas: 0 })).toThrow(/numReplicas/);
    expect(() => make({ numReplicas: 2, rank: 2 })).toThrow(/rank must be an integer in 0..1/);
    expect(() => make({ frameInterval: 0 })).toThrow(/frameInterval/);
    expect(() => make({ seed: -3 })).toThrow(/seed/);
    expect(() => make().setEpoch(-1)).toThrow(/epoch/);
    expect(() => make().batchAt(1e9)).toThrow(/step must be/);
    expect(() => new VariableVideoBatchSampler([{ num_frames: 'x', height: 1, width: 1 }], CONFIG)).toThrow(/Row 0: num_frames is NaN/);
  });

  it('an empty dataset has zero steps', () => {
    const s = make({}, []);
    expect(s.length).toBe(0);
    expect(epochBatches(s)).toEqual([]);
  });

  it('accepts a Bucket instance and camelCase rows', () => {
    const b = new Bucket(CONFIG);
    const s = new VariableVideoBatchSampler(
      ROWS.map((r) => ({ numFrames: r.num_frames, height: r.height, width: r.width })),
      b,
      { seed: 42 },
    );
    expect(s.bucket).toBe(b);
    expect(epochBatches(s)).toEqual(epochBatches(make()));
  });
});
