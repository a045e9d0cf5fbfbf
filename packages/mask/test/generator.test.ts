import { Rng } from '@opensora/random';
import { describe, expect, it } from 'vitest';
import { DEFAULT_MASK_RATIOS, MASK_TYPES, MaskError, MaskGenerator, maskForType, type MaskType } from '../src/index.js';
import { loadFixture } from './fixtures.js';

interface TypeResult {
  masks?: Array<{ mask: string; prob: number; prob_exact: string }>;
  error?: string;
}
interface Fixture {
  valid_mask_names: string[];
  'stage_mask_ratios (configs/opensora-v1-1/train/stage1/2/3.py, identical)': Record<string, number>;
  stage_mask_ratios_float_sum: number;
  per_type_exact_enumeration: { T_values: number[]; results: Record<string, Record<string, TypeResult>> };
  get_masks_check: { input_shape: number[]; output_shape: number[] };
  stage_mixture_exact_distribution: { results: Record<string, { prob_of_ValueError: number; masks: Array<{ mask: string; prob: number }> }> };
}
const fx = loadFixture<Fixture>('mask_generator.json');

const key = (m: boolean[]): string => m.map((b) => (b ? '1' : '0')).join('');
const parseFrac = (s: string): number => {
  const [a, b] = s.split('/').map(Number);
  return a! / b!;
};

/** Exact distribution of maskForType: enumerate every path of randint outcomes. */
function enumerate(type: MaskType | 'none', T: number): Map<string, number> {
  const out = new Map<string, number>();
  const stack: number[][] = [[]];
  while (stack.length > 0) {
    const prefix = stack.pop()!;
    let i = 0;
    let prob = 1;
    const mask = maskForType(type, T, (lo, hi) => {
      expect(Number.isInteger(lo) && Number.isInteger(hi) && lo <= hi).toBe(true);
      const n = hi - lo + 1;
      prob /= n;
      if (i < prefix.length) return lo + prefix[i++]!;
      for (let c = 1; c < n; c++) stack.push([...prefix, c]);
      prefix.push(0);
      i++;
      return lo;
    });
    expect(mask).toHaveLength(T);
    expect(mask.includes(true)).toBe(true);
    out.set(key(mask), (out.get(key(mask)) ?? 0) + prob);
  }
  return out;
}

/** Our documented distributions where the reference crashes (T = 2, 3 quarter types) or masks every frame (T = 2 head_tail). */
const OURS_SMALL_T: Partial<Record<MaskType, Record<number, Record<string, number>>>> = {
  mask_quarter_random: { 2: { '01': 1 / 2, '10': 1 / 2 }, 3: { '011': 1 / 3, '101': 1 / 3, '110': 1 / 3 } },
  mask_quarter_head: { 2: { '01': 1 }, 3: { '011': 1 } },
  mask_quarter_tail: { 2: { '10': 1 }, 3: { '110': 1 } },
  mask_quarter_head_tail: { 2: { '01': 1 }, 3: { '010': 1 } },
  mask_image_random: { 3: { '011': 1 / 3, '101': 1 / 3, '110': 1 / 3 } },
  mask_image_head: { 3: { '011': 1 } },
  mask_image_tail: { 3: { '110': 1 } },
  mask_image_head_tail: { 2: { '01': 1 }, 3: { '010': 1 } },
  mask_no: { 3: { '111': 1 } },
};

/** Expected distribution per (type, T): the reference's where it is valid, ours where the issue asks for better. */
function expectedDist(type: MaskType, T: number): Map<string, number> {
  const ours = OURS_SMALL_T[type]?.[T];
  if (ours) return new Map(Object.entries(ours));
  const r = fx.per_type_exact_enumeration.results[type]![String(T)]!;
  expect(r.masks).toBeDefined();
  return new Map(r.masks!.map((m) => [m.mask, parseFrac(m.prob_exact)]));
}

const T_VALUES = [...fx.per_type_exact_enumeration.T_values, 3].sort((a, b) => a - b);

describe('maskForType: exact distributions', () => {
  it('names and defaults match the reference', () => {
    expect([...MASK_TYPES]).toEqual(fx.valid_mask_names);
    const stage = fx['stage_mask_ratios (configs/opensora-v1-1/train/stage1/2/3.py, identical)'];
    expect(Object.entries(DEFAULT_MASK_RATIOS)).toEqual(Object.entries(stage));
  });

  for (const type of MASK_TYPES) {
    it(`${type}: same masks with the same probabilities for T in ${T_VALUES.join(', ')}`, () => {
      for (const T of T_VALUES) {
        const got = enumerate(type, T);
        const want = expectedDist(type, T);
        expect([...got.keys()].sort(), `${type} T=${T}`).toEqual([...want.keys()].sort());
        for (const [m, p] of want) expect(got.get(m)!, `${type} T=${T} ${m}`).toBeCloseTo(p, 12);
        const ref = fx.per_type_exact_enumeration.results[type]![String(T)];
        if (ref?.masks && !OURS_SMALL_T[type]?.[T]) {
          for (const m of ref.masks) expect(got.get(m.mask)!).toBeCloseTo(m.prob, 12);
        }
      }
    });
  }

  it('deviates from the reference only where it crashes or conditions on every frame', () => {
    for (const type of MASK_TYPES) {
      for (const T of fx.per_type_exact_enumeration.T_values) {
        const ref = fx.per_type_exact_enumeration.results[type]![String(T)]!;
        if (OURS_SMALL_T[type]?.[T]) {
          const refBad = ref.error !== undefined || ref.masks!.some((m) => !m.mask.includes('1'));
          expect(refBad, `${type} T=${T}`).toBe(true);
        } else {
          expect(ref.error, `${type} T=${T}`).toBeUndefined();
        }
      }
    }
  });

  it('a single frame is never masked, whatever the type', () => {
    for (const type of [...MASK_TYPES, 'none' as const]) expect(enumerate(type, 1)).toEqual(new Map([['1', 1]]));
  });
});

/** Upper tail of chi-square(df) at x, Wilson-Hilferty normal approximation; returns the z score. */
function chiSquareZ(x: number, df: number): number {
  const k = 2 / (9 * df);
  return (Math.cbrt(x / df) - (1 - k)) / Math.sqrt(k);
}

/**
 * Checks observed counts against exact probabilities: every observed mask is possible, each mask's
 * count is within 5 binomial sigmas, and the chi-square (bins with expected < 5 pooled) is below z = 4.5.
 */
function checkCounts(counts: Map<string, number>, probs: Map<string, number>, n: number, label: string): void {
  for (const m of counts.keys()) expect(probs.has(m), `${label}: impossible mask ${m}`).toBe(true);
  for (const [m, p] of probs) {
    const c = counts.get(m) ?? 0;
    expect(Math.abs(c - n * p), `${label}: ${m} count ${c} vs ${n * p}`).toBeLessThanOrEqual(5 * Math.sqrt(n * p * (1 - p)) + 1);
  }
  const bins = [...probs].map(([m, p]) => ({ e: n * p, o: counts.get(m) ?? 0 })).sort((a, b) => a.e - b.e);
  const pooled: Array<{ e: number; o: number }> = [];
  let acc = { e: 0, o: 0 };
  for (const b of bins) {
    acc = { e: acc.e + b.e, o: acc.o + b.o };
    if (acc.e >= 5) {
      pooled.push(acc);
      acc = { e: 0, o: 0 };
    }
  }
  if (acc.e > 0) {
    if (pooled.length) {
      const last = pooled[pooled.length - 1]!;
      last.e += acc.e;
      last.o += acc.o;
    } else pooled.push(acc);
  }
  if (pooled.length < 2) return;
  const chi2 = pooled.reduce((s, b) => s + (b.o - b.e) ** 2 / b.e, 0);
  expect(chiSquareZ(chi2, pooled.length - 1), `${label}: chi2 ${chi2.toFixed(1)} on ${pooled.length - 1} df`).toBeLessThan(4.5);
}

function sampleCounts(gen: MaskGenerator, T: number, n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const k = key(gen.getMask(T));
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}

describe('MaskGenerator: sampled frequencies', () => {
  const N = 12_000;
  for (const type of MASK_TYPES) {
    it(`${type}: only possible masks, frequencies within sampling error`, () => {
      const gen = new MaskGenerator({ [type]: 1 }, { seed: `stats-${type}` });
      for (const T of T_VALUES) checkCounts(sampleCounts(gen, T, N), expectedDist(type, T), N, `${type} T=${T}`);
    });
  }

  it('stage ratios: the mixture matches the reference distribution (T >= 4, T = 1) and ours for T = 2', () => {
    const n = 40_000;
    const gen = new MaskGenerator(DEFAULT_MASK_RATIOS, { seed: 1234 });
    for (const [Ts, r] of Object.entries(fx.stage_mixture_exact_distribution.results)) {
      const T = Number(Ts);
      if (r.prob_of_ValueError > 0) continue;
      const probs = new Map(r.masks.map((m) => [m.mask, m.prob]));
      expect([...probs.values()].reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
      checkCounts(sampleCounts(gen, T, n), probs, n, `stage T=${T}`);
    }
    // T = 2: the reference fails 12.5% of the time and masks every frame 5% of the time.
    checkCounts(sampleCounts(gen, 2, n), new Map([['11', 0.75], ['01', 0.175], ['10', 0.075]]), n, 'stage T=2');
  });

  it('type selection follows the ratios (insertion order, first cumulative sum above u)', () => {
    const n = 100_000;
    const gen = new MaskGenerator({ mask_image_head: 0.1, mask_no: 0.6, mask_quarter_tail: 0.3 }, { seed: 9 });
    const counts = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const t = gen.draw(8).type;
      counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    checkCounts(counts, new Map([['mask_image_head', 0.1], ['mask_no', 0.6], ['mask_quarter_tail', 0.3]]), n, 'types');
    expect(gen.ratios.map(([k]) => k)).toEqual(['mask_image_head', 'mask_no', 'mask_quarter_tail']);
  });

  it('a float shortfall of the ratio sum gives "none" (all frames generated)', () => {
    const rng = new Rng(1);
    const gen = new MaskGenerator({ mask_image_head: 1 - 5e-7 }, { rng });
    // Force u into the uncovered top of [0, 1).
    const orig = rng.random.bind(rng);
    rng.random = () => 0.9999999;
    expect(gen.draw(4)).toEqual({ type: 'none', mask: [true, true, true, true] });
    rng.random = orig;
  });
});

describe('MaskGenerator: API, validation and resume', () => {
  it('getMask / getMasks shapes and the x_mask convention (true = generate)', () => {
    const gen = new MaskGenerator({ mask_image_head: 1 }, { seed: 0 });
    expect(gen.getMask(4)).toEqual([false, true, true, true]);
    const masks = gen.getMasks(3, 16);
    expect(masks).toHaveLength(3);
    for (const m of masks) expect(m).toEqual([false, ...new Array(15).fill(true)]);
    expect(gen.getMasks(0, 4)).toEqual([]);
    // The reference's get_masks(x) for x [B, C, T, H, W] gives [B, T].
    const [B, , T] = fx.get_masks_check.input_shape as [number, number, number];
    const rows = new MaskGenerator(DEFAULT_MASK_RATIOS, { seed: 1 }).getMasks(B, T);
    expect([rows.length, rows[0]!.length]).toEqual(fx.get_masks_check.output_shape);
    expect(new MaskGenerator().ratios).toEqual(Object.entries(DEFAULT_MASK_RATIOS));
  });

  it('draws one uniform number per sample even for single frames', () => {
    const gen = new MaskGenerator(DEFAULT_MASK_RATIOS, { seed: 5 });
    const rng = new Rng(5);
    for (let i = 0; i < 10; i++) {
      expect(gen.getMask(1)).toEqual([true]);
      rng.random();
    }
    expect(gen.state().rng).toEqual(rng.state());
  });

  it('resumes exactly from a saved state (JSON round trip)', () => {
    const a = new MaskGenerator(DEFAULT_MASK_RATIOS, { seed: 'resume' });
    a.getMasks(37, 16);
    const saved = JSON.parse(JSON.stringify(a.state()));
    const next = a.getMasks(200, 17);
    const b = new MaskGenerator(DEFAULT_MASK_RATIOS, { seed: 'other' });
    b.setState(saved);
    expect(b.getMasks(200, 17)).toEqual(next);
    expect(MaskGenerator.fromState(saved).getMasks(200, 17)).toEqual(next);
    // Same seed, same stream.
    expect(new MaskGenerator(DEFAULT_MASK_RATIOS, { seed: 3 }).getMasks(50, 8)).toEqual(
      new MaskGenerator(DEFAULT_MASK_RATIOS, { seed: 3 }).getMasks(50, 8),
    );
  });

  it('rejects states from other ratios or malformed states', () => {
    const s = new MaskGenerator(DEFAULT_MASK_RATIOS, { seed: 1 }).state();
    expect(() => new MaskGenerator({ mask_no: 1 }).setState(s)).toThrow(/saved with ratios/);
    expect(() => new MaskGenerator().setState({ ...s, rng: { ...s.rng, s: [0, 0, 0, 0] } })).toThrow(MaskError);
    expect(() => MaskGenerator.fromState({} as never)).toThrow(MaskError);
  });

  it('validates ratios: names, range, sum within 1e-6 (the message shows the sum)', () => {
    const err = (r: unknown): MaskError => {
      try {
        new MaskGenerator(r as never);
      } catch (e) {
        expect(e).toBeInstanceOf(MaskError);
        expect((e as MaskError).code).toBe('E_MASK_RATIOS');
        return e as MaskError;
      }
      throw new Error('expected an error');
    };
    expect(err({ mask_random: 1 }).message).toMatch(/unknown mask type "mask_random"; valid names are mask_no, mask_quarter_random/);
    expect(err({ mask_no: -0.1, mask_image_head: 1.1 }).field).toBe('mask_no');
    expect(err({ mask_no: 1.5 }).message).toMatch(/in \[0, 1\]/);
    expect(err({ mask_no: Number.NaN }).field).toBe('mask_no');
    expect(err({ mask_no: '0.5' }).field).toBe('mask_no');
    expect(err({ mask_no: 0.5, mask_image_head: 0.4 }).message).toMatch(/mask_no=0\.5 \+ mask_image_head=0\.4 = 0\.9/);
    expect(err({}).message).toMatch(/\(none\) = 0/);
    expect(err(null).message).toMatch(/must be an object/);
    expect(err([['mask_no', 0.5], ['mask_no', 0.5]]).message).toMatch(/given twice/);
    // Within tolerance, any subset, any order; the stage float sum 1.0000000000000002 is fine.
    expect(fx.stage_mask_ratios_float_sum).toBe(1.0000000000000002);
    expect(() => new MaskGenerator({ mask_no: 0.5, mask_image_tail: 0.5000009 })).not.toThrow();
    expect(() => new MaskGenerator({ mask_no: 0.5, mask_image_tail: 0.500002 })).toThrow(MaskError);
    expect(() => new MaskGenerator(new Map([['mask_image_tail', 0.25], ['mask_no', 0.75]]))).not.toThrow();
  });

  it('validates frame and batch counts', () => {
    const gen = new MaskGenerator();
    for (const bad of [0, -1, 2.5, Number.NaN]) expect(() => gen.getMask(bad)).toThrow(MaskError);
    expect(() => gen.getMasks(-1, 4)).toThrow(MaskError);
  });
});
