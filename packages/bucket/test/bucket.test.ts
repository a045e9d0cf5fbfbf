import { hashUniform } from '@opensora/random';
import { describe, expect, it } from 'vitest';
import { Bucket, BucketError, makeKernel, type BucketConfig, type BucketId } from '../src/index.js';
import { loadFixture } from './fixtures.js';

interface BucketCase {
  T: number;
  H: number;
  W: number;
  frame_interval: number;
  bucket_id: [string, number, string] | null;
  thw?: [number, number, number];
  batch_size?: number;
  prob?: number;
}
interface BucketFixture {
  configs: Record<
    string,
    {
      original_bucket_config_from_source: BucketConfig;
      bucket_config_as_passed: BucketConfig;
      bucket_internal: {
        'num_bucket (len(Bucket))': number;
        'hw_order (bucket_probs keys, desc pixel count)': string[];
        't_order_per_hw (desc)': Record<string, number[]>;
        bucket_id_map: Record<string, Record<string, number>>;
      };
      num_cases: number;
      num_null: number;
      cases: BucketCase[];
    }
  >;
}

const fixture = loadFixture<BucketFixture>('bucket_cases_public.json');
const STAGE2 = fixture.configs.stage2_keepprob1!.original_bucket_config_from_source;
const STAGE3 = fixture.configs.stage3_keepprob1!.original_bucket_config_from_source;

describe('Bucket against bucket_cases_public.json', () => {
  for (const [name, cfg] of Object.entries(fixture.configs)) {
    it(`${name}: construction internals`, () => {
      const b = new Bucket(cfg.bucket_config_as_passed);
      const internal = cfg.bucket_internal;
      expect(b.numBucket).toBe(internal['num_bucket (len(Bucket))']);
      expect(b.length).toBe(b.numBucket);
      expect([...b.resolutions]).toEqual(internal['hw_order (bucket_probs keys, desc pixel count)']);
      for (const c of b.config) expect(c.frames.map((f) => f.numFrames)).toEqual(internal['t_order_per_hw (desc)'][c.resolution]);
      for (const [res, m] of Object.entries(internal.bucket_id_map)) {
        for (const [t, slot] of Object.entries(m)) expect(b.getSlot(res, Number(t))).toBe(slot);
      }
      expect(b.buckets()).toHaveLength(b.numBucket);
    });

    for (const draw of ['hash', 'numpy'] as const) {
      it(`${name}: all ${cfg.cases.length} cases (${draw} draw)`, () => {
        const b = new Bucket(cfg.bucket_config_as_passed, { draw });
        let nulls = 0;
        for (const [i, c] of cfg.cases.entries()) {
          // Every non-zero keep probability is 1 here, so the seed must not matter.
          const id = b.getBucketId(c.T, c.H, c.W, c.frame_interval, 42 + i * b.numBucket);
          expect(id, JSON.stringify(c)).toEqual(c.bucket_id);
          if (id === null) {
            nulls++;
            continue;
          }
          expect(b.getThw(id)).toEqual(c.thw);
          expect(b.getBatchSize(id)).toBe(c.batch_size);
          expect(b.getProb(id)).toBe(c.prob);
          expect(b.idOf(b.indexOf(id))).toEqual(id);
        }
        expect(cfg.cases).toHaveLength(cfg.num_cases);
        expect(nulls).toBe(cfg.num_null);
      });
    }
  }

  it('the columnar assign() gives the same ids as getBucketId()', () => {
    const cfg = fixture.configs.stage1_keepprob1!;
    const b = new Bucket(cfg.bucket_config_as_passed);
    for (const fi of [1, 3]) {
      const cases = cfg.cases.filter((c) => c.frame_interval === fi);
      const out = b.assign(
        { numFrames: Int32Array.from(cases, (c) => c.T), height: Int32Array.from(cases, (c) => c.H), width: Int32Array.from(cases, (c) => c.W) },
        { frameInterval: fi, seed: 5 },
      );
      cases.forEach((c, i) => expect(out[i]! < 0 ? null : b.idOf(out[i]!)).toEqual(c.bucket_id));
      // Row objects work too.
      const out2 = b.assign(
        cases.map((c) => ({ num_frames: c.T, height: c.H, width: c.W })),
        { frameInterval: fi, seed: 5 },
      );
      expect([...out2]).toEqual([...out]);
    }
  });
});

describe('worked examples of spec section 2.5 (real keep probabilities, numpy draw, fi=3, seed 42 + id * num_bucket)', () => {
  const ex = (s: string): BucketId | null => {
    if (s === 'None') return null;
    const [r, t, a] = s.split(',');
    return [r!, Number(t), a!];
  };
  // (T, H, W) -> [stage2 id0, id1, id2], [stage3 id0, id1, id2]
  const table: Array<[[number, number, number], string[], string[]]> = [
    [[1, 720, 1280], ['480p,1,0.56', '1024,1,0.57', '1024,1,0.57'], ['360p,1,0.56', '720p,1,0.56', '480p,1,0.56']],
    [[1, 512, 512], ['512,1,1.0', '512,1,1.0', '256,1,1.0'], ['360p,1,1.00', '512,1,1.0', '360p,1,1.00']],
    [[300, 720, 1280], ['240p,64,0.56', '240p,64,0.56', '512,64,0.57'], ['480p,64,0.56', '240p,64,0.56', '480p,64,0.56']],
    [[100, 720, 1280], ['240p,32,0.56', '144p,32,0.56', '240p,32,0.56'], ['720p,32,0.56', '720p,32,0.56', '720p,32,0.56']],
    [[49, 360, 640], ['512,16,0.57', '512,16,0.57', '512,16,0.57'], ['360p,16,0.56', '512,16,0.57', '240p,16,0.56']],
    [[48, 360, 640], ['None', 'None', 'None'], ['None', 'None', 'None']],
    [[450, 1080, 1920], ['256,128,0.57', '240p,128,0.56', '240p,128,0.56'], ['512,128,0.57', '512,128,0.57', '512,128,0.57']],
    [[200, 1280, 720], ['240p,64,1.78', '240p,64,1.78', '512,64,1.75'], ['720p,32,1.78', '720p,32,1.78', '720p,32,1.78']],
    [[1, 200, 200], ['144p,1,1.00', '144p,1,1.00', '144p,1,1.00'], ['144p,1,1.00', '144p,1,1.00', '144p,1,1.00']],
  ];
  const b2 = new Bucket(STAGE2, { draw: 'numpy' });
  const b3 = new Bucket(STAGE3, { draw: 'numpy' });
  it('num_bucket is 729 (stage2) and 848 (stage3)', () => {
    expect(b2.numBucket).toBe(729);
    expect(b3.numBucket).toBe(848);
  });
  for (const [[T, H, W], s2, s3] of table) {
    it(`(${T}, ${H}, ${W})`, () => {
      for (let id = 0; id < 3; id++) {
        expect(b2.getBucketId(T, H, W, 3, 42 + id * b2.numBucket)).toEqual(ex(s2[id]!));
        expect(b3.getBucketId(T, H, W, 3, 42 + id * b3.numBucket)).toEqual(ex(s3[id]!));
      }
    });
  }
  it('the sampler-style columnar path agrees (row i, epoch 0, seed 42)', () => {
    const rows = table.map(([[T, H, W]]) => ({ num_frames: T, height: H, width: W }));
    const a = b2.assign(rows, { frameInterval: 3, seed: 42 });
    rows.forEach((r, i) => expect(a[i]! < 0 ? null : b2.idOf(a[i]!)).toEqual(b2.getBucketId(r.num_frames, r.height, r.width, 3, 42 + i * b2.numBucket)));
  });
});

describe('keep-probability draws', () => {
  const k = makeKernel();
  it('numpy draw: default_rng(s).random() test vectors of the spec', () => {
    const spec: Array<[number, number]> = [
      [0, 0.6369616873214543],
      [1, 0.5118216247002567],
      [2, 0.2616121342493164],
      [42, 0.7739560485559633],
      [43, 0.6522992627009107],
      [100, 0.8349816305020089],
      [12345, 0.22733602246716966],
    ];
    for (const [s, v] of spec) expect(k.numpyFirstDraw(s)).toBe(v);
  });
  it('numpy draw: seeds across the 32-bit boundary (values from numpy 1.24.2)', () => {
    const vectors: Array<[number, number]> = [
      [3, 0.08564916714362436],
      [7, 0.625095466604667],
      [1000, 0.5213857379750627],
      [65535, 0.8333169062535851],
      [65536, 0.4392437061792587],
      [2147483647, 0.27085409914511427],
      [2147483648, 0.902868423177299],
      [4294967295, 0.2519435680449965],
      [4294967296, 0.8897387912781343],
      [4294967297, 0.33187239186810047],
      [1099511627781, 0.004739459374490829],
      [7290000000, 0.4821633720373556],
      [9007199254740991, 0.7862681066761149],
      [123456789012345, 0.5300069678854166],
    ];
    for (const [s, v] of vectors) expect(k.numpyFirstDraw(s)).toBe(v);
  });
  it('hash draw equals hashUniform(s) of @opensora/random', () => {
    const seeds = [0, 1, 2, 42, 4294967295, 4294967296, 7290000000, 2 ** 53 - 1];
    for (let i = 0; i < 500; i++) seeds.push(Math.floor(((i * 2654435761) % 4294967296) * 1999.5), i * 729 + 42);
    for (const s of seeds) expect(k.hashDraw(s)).toBe(hashUniform(s));
  });
  it('accepts with the keep probability (hash and numpy draws)', () => {
    for (const draw of ['hash', 'numpy'] as const) {
      const b = new Bucket({ '240p': { 16: [0.3, 2] }, '144p': { 16: [1, 4] } }, { draw });
      let hits = 0;
      const n = 20000;
      for (let i = 0; i < n; i++) if (b.getBucketId(100, 720, 1280, 1, 42 + i * b.numBucket)![0] === '240p') hits++;
      expect(Math.abs(hits / n - 0.3)).toBeLessThan(0.015);
    }
  });
  it('is deterministic for a seed, and the draw depends on the seed', () => {
    const b = new Bucket(STAGE2);
    const ids = (seed: number): string => JSON.stringify(Array.from({ length: 200 }, (_, i) => b.getBucketId(1, 720, 1280, 1, seed + i * b.numBucket)));
    expect(ids(42)).toBe(ids(42));
    expect(ids(42)).not.toBe(ids(43));
    const a1 = b.assign({ numFrames: [100, 1, 300], height: [720, 720, 1080], width: [1280, 1280, 1920] }, { seed: 42, epoch: 3, frameInterval: 3 });
    const a2 = b.assign({ numFrames: [100, 1, 300], height: [720, 720, 1080], width: [1280, 1280, 1920] }, { seed: 42, epoch: 3, frameInterval: 3 });
    expect([...a1]).toEqual([...a2]);
    // Row i of epoch e uses the per-sample seed seed + e + i * numBucket, whatever the other rows are.
    expect(a1[2]! < 0 ? null : b.idOf(a1[2]!)).toEqual(b.getBucketId(300, 1080, 1920, 3, 42 + 3 + 2 * b.numBucket));
  });
});

describe('Bucket semantics', () => {
  it('images (T = 1) only enter image entries; a failed draw moves to the next resolution', () => {
    const b = new Bucket({ '480p': { 1: [0, null], 16: [1, 4] }, '240p': { 16: [1, 8] }, '144p': { 1: [1, 16] } });
    expect(b.getBucketId(1, 720, 1280)).toEqual(['144p', 1, '0.56']);
    expect(b.getBucketId(17, 720, 1280)).toEqual(['480p', 16, '0.56']);
    expect(new Bucket({ '240p': { 16: [1, 8] } }).getBucketId(1, 720, 1280)).toBeNull();
  });

  it('frameInterval > 1 needs strictly more than T * fi frames', () => {
    const b = new Bucket({ '144p': { 16: [1, 4], 32: [1, 2] } });
    expect(b.getBucketId(48, 144, 256, 3)).toBeNull();
    expect(b.getBucketId(49, 144, 256, 3)).toEqual(['144p', 16, '0.56']);
    expect(b.getBucketId(96, 144, 256, 3)).toEqual(['144p', 16, '0.56']);
    expect(b.getBucketId(97, 144, 256, 3)).toEqual(['144p', 32, '0.56']);
    expect(b.getBucketId(17, 144, 256, 1)).toEqual(['144p', 16, '0.56']);
    expect(b.getBucketId(16, 144, 256, 1)).toBeNull();
  });

  it('the 0.8 pixel threshold: just below skips, exactly at and above enters', () => {
    const b = new Bucket({ '240p': { 1: [1, 8] }, '144p': { 1: [1, 16] } });
    // 240p: 0.8 * 102240 = 81792
    expect(b.getBucketId(1, 284, 288)![0]).toBe('240p'); // 81792
    expect(b.getBucketId(1, 283, 289)![0]).toBe('144p'); // 81787
    // 144p: 0.8 * 36864 = 29491.2
    expect(b.getBucketId(1, 128, 231)![0]).toBe('144p'); // 29568
    expect(b.getBucketId(1, 128, 230)).toBeNull(); // 29440
    expect(b.getBucketId(1, 1, 29491)).toBeNull();
    expect(b.getBucketId(1, 1, 29492)).toEqual(['144p', 1, '0.38']);
  });

  it('portrait and landscape pick mirrored keys', () => {
    const b = new Bucket({ '360p': { 16: [1, 2] }, '512': { 16: [1, 2] } });
    expect(b.getBucketId(30, 1280, 720)).toEqual(['512', 16, '1.75']);
    expect(b.getBucketId(30, 720, 1280)).toEqual(['512', 16, '0.57']);
    const p = new Bucket({ '360p': { 16: [1, 2] } });
    expect(p.getBucketId(30, 1280, 720)).toEqual(['360p', 16, '1.78']);
    expect(p.getThw(['360p', 16, '1.78'])).toEqual([16, 640, 360]);
    expect(p.getBucketId(30, 720, 1280)).toEqual(['360p', 16, '0.56']);
    expect(p.getThw(['360p', 16, '0.56'])).toEqual([16, 360, 640]);
  });

  it('samples that fit no bucket give null', () => {
    const b = new Bucket(STAGE2);
    expect(b.getBucketId(10, 720, 1280, 1, 0)).toBeNull(); // too few frames for T = 16
    expect(b.getBucketId(100, 100, 100, 1, 0)).toBeNull(); // too small for 144p
    expect(b.getBucketId(0, 720, 1280, 1, 0)).toBeNull();
    expect(b.getBucketIndex(0, 720, 1280)).toBe(-1);
  });

  it('a zero keep probability abandons the whole resolution (smaller T are not tried)', () => {
    // stage2: 720p {32: (0.0, None), 16: ...}, 480p {32: (0.0, None), 16: ...}
    for (const draw of ['hash', 'numpy'] as const) {
      const b = new Bucket(STAGE2, { draw });
      for (let i = 0; i < 300; i++) {
        const long = b.getBucketId(200, 720, 1280, 3, 42 + i * b.numBucket)!;
        expect(['720p', '480p']).not.toContain(long[0]);
        expect(long[1]).not.toBe(128); // 512 x 128 has keep prob 0 too
      }
      const seen = new Set<string>();
      for (let i = 0; i < 300; i++) seen.add(b.getBucketId(60, 720, 1280, 3, 42 + i * b.numBucket)![0]);
      expect(seen.has('720p')).toBe(true); // 60 frames: T = 16 fits 720p, keep prob 0.1
    }
    const zero = new Bucket({ '144p': { 16: [0, null] } });
    expect(zero.getBucketId(100, 144, 256)).toBeNull();
    expect(zero.getBatchSize(['144p', 16])).toBeNull();
  });

  it('getBatchSize / getProb accept 2- and 3-element ids', () => {
    const b = new Bucket(STAGE2);
    expect(b.getBatchSize(['240p', 16])).toBe(17);
    expect(b.getBatchSize(['240p', 16, '0.56'])).toBe(17);
    expect(b.getProb(['240p', 16])).toBe(0.9);
    expect(b.getThw(['1080p', 1, '0.56'])).toEqual([1, 1080, 1920]);
    expect(() => b.getThw(['240p', 16] as never)).toThrow(BucketError);
    expect(() => b.getThw(['240p', 17, '0.56'])).toThrow(/no frame entry/);
    expect(() => b.getThw(['240p', 16, '0.57'])).toThrow(/no aspect key/);
    expect(() => b.getThw(['4k', 16, '0.56'])).toThrow(/not in this bucket/);
    const info = b.buckets()[0]!;
    expect(info).toMatchObject({ index: 0, id: ['1080p', 1, '0.38'], thw: [1, 882, 2352], keepProb: 0.4, batchSize: 8, slot: 0 });
  });

  it('validation errors name the resolution and frame key at fault', () => {
    const msg = (cfg: unknown): string => {
      try {
        new Bucket(cfg as BucketConfig);
      } catch (e) {
        expect(e).toBeInstanceOf(BucketError);
        expect((e as BucketError).code).toBe('E_BUCKET_CONFIG');
        return (e as Error).message;
      }
      throw new Error('expected an error');
    };
    expect(msg({ '2k': { 16: [1, 2] } })).toMatch(/Unknown resolution "2k"/);
    expect(msg({ '4K': { 1: [1, 2] } })).toMatch(/Unknown resolution "4K".*"4k"/);
    expect(msg({ '240p': { 16: [1.5, 2] } })).toMatch(/"240p", frames "16": keep probability 1.5 is outside \[0, 1\]/);
    expect(msg({ '240p': { 16: [-0.1, 2] } })).toMatch(/outside \[0, 1\]/);
    expect(msg({ '720p': { 1: [20, 40] } })).toMatch(/"720p", frames "1": keep probability 20/); // the benchmark config's typo
    expect(msg({ '240p': { 32: [0.5, null] } })).toMatch(/"240p", frames "32".*needs a batch size/);
    expect(msg({ '240p': { 32: [0.5, [2, 4]] } })).toMatch(/batch size \[2,4\]/);
    expect(msg({ '240p': { 32: [0.5, 0] } })).toMatch(/batch size 0/);
    expect(msg({ '240p': { '16.5': [1, 2] } })).toMatch(/"240p", frames "16.5": the frame key must be a positive integer/);
    expect(msg({ '240p': { abc: [1, 2] } })).toMatch(/frames "abc"/);
    expect(msg({ '240p': { 0: [1, 2] } })).toMatch(/frames "0"/);
    expect(msg({ '240p': { 16: [1] } })).toMatch(/expected \[keepProb, batchSize \| null\]/);
    expect(msg({ '240p': {} })).toMatch(/"240p": expected a non-empty map/);
    expect(msg({})).toMatch(/empty/);
    expect(msg(null)).toMatch(/must be an object/);
    expect(() => new Bucket({ '240p': { 16: [0, null] } })).not.toThrow();
  });

  it('argument errors', () => {
    const b = new Bucket(STAGE2);
    expect(() => b.getBucketId(16, 720, 1280, 0)).toThrow(/frameInterval/);
    expect(() => b.getBucketId(16, 720, 1280, 1, -1)).toThrow(/seed/);
    expect(() => b.getBucketId(16, 720, 1280, 1, 1.5)).toThrow(/seed/);
    expect(() => b.getBucketId(NaN, 720, 1280)).toThrow(/T must be/);
    expect(() => b.assign({ numFrames: [1, NaN], height: [1, 1], width: [1, 1] })).toThrow(/Row 1: num_frames is NaN/);
    expect(() => b.assign([{ num_frames: 3, height: 10 } as never])).toThrow(/Row 0: width/);
    expect(() => b.assign({ numFrames: [1], height: [1, 1], width: [1, 1] })).toThrow(/differ in length/);
    expect(() => new Bucket(STAGE2, { draw: 'torch' as never })).toThrow(/draw/);
  });
});

describe('OPENSORA_V1_1_BUCKET_CONFIGS', () => {
  it('equal the reference configs of the fixture and give the spec bucket counts', async () => {
    const { OPENSORA_V1_1_BUCKET_CONFIGS: C } = await import('../src/index.js');
    const norm = (c: BucketConfig): unknown => new Bucket(c).config;
    expect(norm(C.stage1)).toEqual(norm(fixture.configs.stage1_keepprob1!.original_bucket_config_from_source));
    expect(norm(C.stage2)).toEqual(norm(STAGE2));
    expect(norm(C.stage3)).toEqual(norm(STAGE3));
    // spec 2.2: stage1 = 359, stage2 = 729, stage3 = 848, image = 154, video = 290
    expect([C.stage1, C.stage2, C.stage3, C.image, C.video].map((c) => new Bucket(c).numBucket)).toEqual([359, 729, 848, 154, 290]);
  });
});
