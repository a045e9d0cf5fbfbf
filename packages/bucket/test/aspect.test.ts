import { afterEach, describe, expect, it } from 'vitest';
import {
  ASPECT_RATIOS,
  Bucket,
  BucketError,
  RESOLUTION_NAMES,
  aspectRatiosTable,
  formatFixedPython,
  getClosestRatio,
  getHW,
  getResolution,
  listResolutions,
  registerResolution,
  unregisterResolution,
} from '../src/index.js';
import { loadFixture } from './fixtures.js';

interface AspectFixture {
  tables: Record<string, { entries_in_dict_order: Array<[string, [number, number]]>; num_entries: number }>;
  ASPECT_RATIOS: {
    order_in_dict: string[];
    resolutions: Record<string, { pixel_count: number; table_variable: string; min_pixels_to_enter_bucket: { pixel_count_times_0_8_float: number } }>;
    bucket_hw_order_all_names_sorted_desc_by_pixel_count: string[];
  };
  other_module_objects: { AR: number[]; get_aspect_ratios_dict_default_ts_360x640: Record<string, [number, number]> };
}

interface ClosestFixture {
  cases: Array<{ height: number; width: number; resolution: string; expected_key: string; category: string; exact_float_tie_between?: string[] }>;
}

const aspect = loadFixture<AspectFixture>('aspect.json');
const closest = loadFixture<ClosestFixture>('closest_ratio_public.json');

describe('ASPECT_RATIOS', () => {
  it('equals every table of aspect.json, key order included', () => {
    expect([...RESOLUTION_NAMES]).toEqual(aspect.ASPECT_RATIOS.order_in_dict);
    expect(Object.keys(ASPECT_RATIOS).sort()).toEqual([...aspect.ASPECT_RATIOS.order_in_dict].sort());
    for (const name of aspect.ASPECT_RATIOS.order_in_dict) {
      const ref = aspect.ASPECT_RATIOS.resolutions[name]!;
      const ours = ASPECT_RATIOS[name]!;
      expect(ours.pixels).toBe(ref.pixel_count);
      const table = aspect.tables[ref.table_variable]!;
      expect(Object.entries(ours.ratios).map(([k, v]) => [k, [...v]])).toEqual(table.entries_in_dict_order);
      expect(Object.keys(ours.ratios)).toHaveLength(table.num_entries);
      expect(ours.pixels * 0.8).toBe(ref.min_pixels_to_enter_bucket.pixel_count_times_0_8_float);
    }
  });

  it('keeps the 4k quirk: 0.62 before 0.56', () => {
    const keys = Object.keys(ASPECT_RATIOS['4k']!.ratios);
    expect(keys.indexOf('0.62')).toBe(keys.indexOf('0.56') - 1);
  });

  it('sorted by pixel count descending gives the reference bucket order', () => {
    const sorted = [...RESOLUTION_NAMES].sort((a, b) => ASPECT_RATIOS[b]!.pixels - ASPECT_RATIOS[a]!.pixels);
    expect(sorted).toEqual(aspect.ASPECT_RATIOS.bucket_hw_order_all_names_sorted_desc_by_pixel_count);
  });

  it('tables are hard-coded, not regenerated: get_h_w differs where the spec says', () => {
    const diffs = (name: string): number =>
      Object.entries(ASPECT_RATIOS[name]!.ratios).filter(([, [h, w]], i) => {
        const [gh, gw] = getHW(aspect.other_module_objects.AR[i]!, ASPECT_RATIOS[name]!.pixels);
        return gh !== h || gw !== w;
      }).length;
    expect(diffs('360p')).toBe(0);
    expect(diffs('720p')).toBe(0);
    expect(diffs('1080p')).toBe(0);
    expect(diffs('240p')).toBe(1);
    expect(diffs('480p')).toBe(2);
    expect(diffs('144p')).toBe(13);
    expect(getHW(2 / 3, 102240)).toEqual([262, 394]); // the table has 262x393
  });

  it('aspectRatiosTable reproduces get_aspect_ratios_dict(360*640, AR)', () => {
    const ours = aspectRatiosTable(360 * 640, aspect.other_module_objects.AR);
    expect(ours).toEqual(Object.entries(aspect.other_module_objects.get_aspect_ratios_dict_default_ts_360x640));
  });
});

describe('getClosestRatio', () => {
  it(`passes all ${closest.cases.length} cases of closest_ratio_public.json (ties included)`, () => {
    let ties = 0;
    for (const c of closest.cases) {
      const got = getClosestRatio(c.height, c.width, ASPECT_RATIOS[c.resolution]!.ratios);
      expect(got, `${c.height}x${c.width} in ${c.resolution} (${c.category})`).toBe(c.expected_key);
      if (c.exact_float_tie_between) {
        ties++;
        expect(c.exact_float_tie_between[0]).toBe(got);
      }
    }
    expect(ties).toBeGreaterThan(200);
  });

  it('first key in table order wins an exact tie, and extremes map to the end keys', () => {
    expect(getClosestRatio(49, 100, ASPECT_RATIOS['144p']!.ratios)).toBe('0.48'); // 0.49: tie 0.48 | 0.50
    expect(getClosestRatio(1, 2, [['0.6', [1, 1]], ['0.4', [1, 1]]])).toBe('0.6'); // order, not value, breaks the tie
    expect(getClosestRatio(100, 10000, ASPECT_RATIOS['144p']!.ratios)).toBe('0.38');
    expect(getClosestRatio(100, 10000, ASPECT_RATIOS['256']!.ratios)).toBe('0.25');
    expect(getClosestRatio(10000, 100, ASPECT_RATIOS['1024']!.ratios)).toBe('4.0');
    expect(() => getClosestRatio(1, 1, {})).toThrow(BucketError);
  });
});

describe('formatFixedPython', () => {
  it('rounds the exact binary value half to even like Python', () => {
    expect(formatFixedPython(0.125)).toBe('0.12'); // toFixed gives 0.13
    expect(formatFixedPython(0.375)).toBe('0.38');
    expect(formatFixedPython(9 / 16)).toBe('0.56');
    expect(formatFixedPython(1 / 1.85)).toBe('0.54');
    expect(formatFixedPython(2.675)).toBe('2.67'); // 2.67499999... in binary
    expect(formatFixedPython(1)).toBe('1.00');
    expect(formatFixedPython(1234.5, 0)).toBe('1234');
    expect(formatFixedPython(-0.5, 1)).toBe('-0.5');
  });
});

describe('custom resolutions', () => {
  afterEach(() => {
    unregisterResolution('64px');
    unregisterResolution('96px');
  });

  it('registers a table generated from aspect ratios and buckets with it', () => {
    const spec = registerResolution('64px', { pixels: 64 * 64, aspectRatios: [9 / 16, 1, 16 / 9] });
    expect(Object.entries(spec.ratios)).toEqual([
      ['0.56', [48, 86]],
      ['1.00', [64, 64]],
      ['1.78', [86, 48]],
    ]);
    registerResolution('96px', { pixels: 96 * 96, ratios: { '0.50': [64, 128], '1.00': [96, 96] } });
    expect(listResolutions().slice(-2)).toEqual(['64px', '96px']);
    expect(getResolution('96px')!.pixels).toBe(9216);
    const b = new Bucket({ '64px': { 1: [1, 8], 8: [1, 4] }, '96px': { 8: [1, 2] } });
    expect(b.resolutions).toEqual(['96px', '64px']);
    expect(b.numBucket).toBe(2 + 3 * 2);
    expect(b.getBucketId(20, 100, 200, 2, 0)).toEqual(['96px', 8, '0.50']);
    expect(b.getThw(['96px', 8, '0.50'])).toEqual([8, 64, 128]);
    expect(b.getBucketId(1, 60, 60)).toEqual(['64px', 1, '1.00']);
    expect(b.getBucketId(9, 50, 90)).toEqual(['64px', 8, '0.56']);
    expect(b.getThw(['64px', 8, '0.56'])).toEqual([8, 48, 86]);
    expect(b.getBucketId(9, 40, 40)).toBeNull(); // 1600 < 0.8 * 4096
  });

  it('re-registering the identical table is a no-op, a different one an error', () => {
    registerResolution('64px', { pixels: 4096, aspectRatios: [1] });
    expect(() => registerResolution('64px', { pixels: 4096, aspectRatios: [1] })).not.toThrow();
    expect(() => registerResolution('64px', { pixels: 4096, aspectRatios: [1, 2] })).toThrow(/already registered/);
  });

  it('rejects clashes, empty tables and non-positive sizes with clear errors', () => {
    const err = (fn: () => unknown): BucketError => {
      try {
        fn();
      } catch (e) {
        expect(e).toBeInstanceOf(BucketError);
        return e as BucketError;
      }
      throw new Error('expected an error');
    };
    expect(err(() => registerResolution('240p', { pixels: 100, aspectRatios: [1] })).message).toMatch(/clashes with the built-in/);
    expect(err(() => registerResolution('240p', { pixels: 100, aspectRatios: [1] })).code).toBe('E_BUCKET_RESOLUTION');
    expect(err(() => registerResolution('64px', { pixels: 4096, ratios: {} })).message).toMatch(/empty/);
    expect(err(() => registerResolution('64px', { pixels: 4096, aspectRatios: [] })).message).toMatch(/non-empty/);
    expect(err(() => registerResolution('64px', { pixels: 0, aspectRatios: [1] })).message).toMatch(/pixels must be a positive/);
    expect(err(() => registerResolution('64px', { pixels: -5, aspectRatios: [1] })).message).toMatch(/pixels must be a positive/);
    expect(err(() => registerResolution('64px', { pixels: 4096, ratios: { '1.0': [0, 64] } })).message).toMatch(/positive integers/);
    expect(err(() => registerResolution('64px', { pixels: 4096, ratios: { abc: [64, 64] } })).message).toMatch(/positive number/);
    expect(err(() => registerResolution('64px', { pixels: 4096, aspectRatios: [0] })).message).toMatch(/positive number/);
    expect(err(() => registerResolution('64px', { pixels: 1, aspectRatios: [0.01] })).message).toMatch(/too small/);
    expect(err(() => registerResolution('64px', { pixels: 4096, aspectRatios: [0.5, 0.501] })).message).toMatch(/same key/);
    expect(err(() => registerResolution('', { pixels: 4096, aspectRatios: [1] })).message).toMatch(/non-empty string/);
    expect(err(() => registerResolution('64px', { pixels: 4096 })).message).toMatch(/exactly one/);
    expect(() => unregisterResolution('144p')).toThrow(BucketError);
  });

  it('per-bucket resolutions do not touch the registry', () => {
    const b = new Bucket({ tiny: { 4: [1, 2] } }, { resolutions: { tiny: { pixels: 32 * 32, aspectRatios: [1] } } });
    expect(b.getBucketId(5, 32, 32)).toEqual(['tiny', 4, '1.00']);
    expect(getResolution('tiny')).toBeUndefined();
    expect(() => new Bucket({ tiny: { 4: [1, 2] } })).toThrow(/Unknown resolution "tiny"/);
  });
});
