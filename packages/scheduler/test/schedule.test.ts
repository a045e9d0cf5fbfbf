import { describe, expect, it } from 'vitest';
import {
  alphasCumprodOf,
  editEntryStep,
  IDDPM,
  linearBetaSchedule,
  pyRound,
  spaceTimesteps,
} from '../src/index.js';

// The full 100-step respaced list from the spec (model.md section 11.3).
const SPEC_100 = [
  0, 10, 20, 30, 40, 50, 61, 71, 81, 91, 101, 111, 121, 131, 141, 151, 161, 172, 182, 192, 202, 212, 222, 232, 242, 252, 262,
  272, 283, 293, 303, 313, 323, 333, 343, 353, 363, 373, 383, 394, 404, 414, 424, 434, 444, 454, 464, 474, 484, 494, 505, 515,
  525, 535, 545, 555, 565, 575, 585, 595, 605, 616, 626, 636, 646, 656, 666, 676, 686, 696, 706, 716, 727, 737, 747, 757, 767,
  777, 787, 797, 807, 817, 827, 838, 848, 858, 868, 878, 888, 898, 908, 918, 928, 938, 949, 959, 969, 979, 989, 999,
];

function expectRel(actual: number, expected: number, rel = 1e-6): void {
  if (expected === 0) expect(actual).toBe(0);
  else expect(Math.abs(actual - expected) / Math.abs(expected)).toBeLessThan(rel);
}

describe('linear beta schedule (float64)', () => {
  it('spans 1e-4 .. 0.02 over 1000 steps like numpy linspace', () => {
    const b = linearBetaSchedule(1000);
    expect(b.length).toBe(1000);
    expect(b[0]).toBe(1e-4);
    expect(b[999]).toBe(0.02);
    expect(b[1]).toBeCloseTo(1e-4 + (0.02 - 1e-4) / 999, 15);
    expect(b[500]).toBe(500 * ((0.02 - 1e-4) / 999) + 1e-4);
  });
  it('scales with the step count (s = 1000/n)', () => {
    const b = linearBetaSchedule(100);
    expect(b[0]).toBeCloseTo(1e-3, 15);
    expect(b[99]).toBeCloseTo(0.2, 15);
  });
  it('gives the spec cumulative alphas', () => {
    const ac = alphasCumprodOf(linearBetaSchedule(1000));
    expect(ac[0]).toBe(0.9999);
    expect(ac[499]).toBeCloseTo(0.0785872, 7);
    expect(ac[999]! / 4.03583e-5).toBeCloseTo(1, 5);
  });
});

describe('spaceTimesteps', () => {
  it('"100" gives the spec list, equal to round(i*999/99)', () => {
    const s = spaceTimesteps(1000, '100');
    expect(s).toEqual(SPEC_100);
    expect(s).toEqual(Array.from({ length: 100 }, (_, i) => Math.round((i * 999) / 99)));
    expect(spaceTimesteps(1000, 100)).toEqual(SPEC_100);
    expect(spaceTimesteps(1000, [100])).toEqual(SPEC_100);
  });
  it('splits into sections ("10,15,20" over 300 steps)', () => {
    const s = spaceTimesteps(300, '10,15,20');
    expect(s.length).toBe(45);
    // first section: 100 steps strided to 10 -> stride 99/9 = 11
    expect(s.slice(0, 10)).toEqual([0, 11, 22, 33, 44, 55, 66, 77, 88, 99]);
    // second section starts at 100, 15 steps: stride 99/14
    expect(s[10]).toBe(100);
    expect(s[24]).toBe(199);
    expect(s[25]).toBe(200);
    expect(s[44]).toBe(299);
  });
  it('gives earlier sections the extra steps when it does not divide', () => {
    // 10 steps in 3 sections: sizes 4, 3, 3
    expect(spaceTimesteps(10, '2,2,2')).toEqual([0, 3, 4, 6, 7, 9]);
  });
  it('rounds half to even (Python round)', () => {
    expect(pyRound(0.5)).toBe(0);
    expect(pyRound(1.5)).toBe(2);
    expect(pyRound(2.5)).toBe(2);
    expect(pyRound(2.5000001)).toBe(3);
    // 6 steps in 11: stride 2.0; 4 in 8: stride 7/3
    expect(spaceTimesteps(8, '4')).toEqual([0, 2, 5, 7]);
    // 7 steps strided to 5: stride 1.5 -> 0, 1.5->2, 3, 4.5->4, 6
    expect(spaceTimesteps(7, '5')).toEqual([0, 2, 3, 4, 6]);
  });
  it('"ddimN" uses the integer stride that gives exactly N steps', () => {
    expect(spaceTimesteps(1000, 'ddim50')).toEqual(Array.from({ length: 50 }, (_, i) => i * 20));
    expect(spaceTimesteps(1000, 'ddim1000').length).toBe(1000);
    expect(spaceTimesteps(10, 'ddim4')).toEqual([0, 3, 6, 9]);
    expect(() => spaceTimesteps(1000, 'ddim999')).toThrow(/integer stride/);
  });
  it('a count of 1 keeps the first step of its section', () => {
    expect(spaceTimesteps(1000, '1')).toEqual([0]);
    expect(spaceTimesteps(1000, '1,1')).toEqual([0, 500]);
  });
  it('rejects bad section strings with clear errors', () => {
    expect(() => spaceTimesteps(1000, '1001')).toThrow(/cannot divide a section of 1000 steps into 1001/);
    expect(() => spaceTimesteps(1000, 'abc')).toThrow(/not an integer/);
    expect(() => spaceTimesteps(1000, '10,x')).toThrow(/not an integer/);
    expect(() => spaceTimesteps(1000, '')).toThrow(/empty/);
    expect(() => spaceTimesteps(1000, [-1])).toThrow(/>= 0/);
    expect(() => spaceTimesteps(1000, 'ddimx')).toThrow(/not an integer/);
    expect(() => spaceTimesteps(0, '1')).toThrow(/positive integer/);
  });
});

describe('respaced process (float32 arrays)', () => {
  it('100 steps: spec betas and cumulative alphas', () => {
    const d = new IDDPM({ numSamplingSteps: 100 });
    expect(Array.from(d.timestepMap)).toEqual(SPEC_100);
    expect(d.betas).toBeInstanceOf(Float32Array);
    expect(d.betas[0]).toBe(Math.fround(1e-4));
    expect(d.betas[1]).toBeCloseTo(0.002093637, 9);
    expect(d.betas[50]).toBeCloseTo(0.10525808, 8);
    expect(d.betas[99]).toBeCloseTo(0.18217953, 8);
    expect(d.alphasCumprod[50]).toBeCloseTo(0.07393913, 8);
    expect(d.alphasCumprod[99]! / 4.03583e-5).toBeCloseTo(1, 5);
  });
  it('betas are float64 respaced values rounded to float32', () => {
    const d = new IDDPM({ numSamplingSteps: 100 });
    const ac = alphasCumprodOf(linearBetaSchedule(1000));
    for (let i = 1; i < 100; i++) {
      const b64 = 1 - ac[SPEC_100[i]!]! / ac[SPEC_100[i - 1]!]!;
      expect(d.betas[i]).toBe(Math.fround(b64));
    }
  });
  it('the 1000-step identity respacing is float32 too', () => {
    const d = new IDDPM({ timestepRespacing: '' });
    expect(d.numTimesteps).toBe(1000);
    expect(Array.from(d.timestepMap)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    const b = linearBetaSchedule(1000);
    for (const i of [0, 1, 499, 999]) expect(d.betas[i]).toBe(Math.fround(b[i]!));
    expect(d.alphasCumprod[0]).toBe(Math.fround(0.9999));
    expect(d.alphasCumprod[499]).toBeCloseTo(0.0785872, 6);
  });
  it('derived arrays follow the posterior formulas (hand check at i = 0, 1, 50)', () => {
    const d = new IDDPM({ numSamplingSteps: 100 });
    const a = d.arrays;
    const f = Math.fround;
    for (const i of [0, 1, 50, 99]) {
      const b = a.betas[i]!;
      const ac = a.alphasCumprod[i]!;
      const prev = i === 0 ? 1 : a.alphasCumprod[i - 1]!;
      expect(a.alphasCumprodPrev[i]).toBe(prev);
      expectRel(a.posteriorVariance[i]!, (b * (1 - prev)) / (1 - ac));
      expectRel(a.posteriorMeanCoef1[i]!, (b * Math.sqrt(prev)) / (1 - ac));
      expectRel(a.posteriorMeanCoef2[i]!, ((1 - prev) * Math.sqrt(1 - b)) / (1 - ac));
      expect(a.sqrtRecipAlphasCumprod[i]).toBe(f(Math.sqrt(1 / ac)));
      expect(a.sqrtRecipm1AlphasCumprod[i]).toBe(f(Math.sqrt(1 / ac - 1)));
      expect(a.logBetas[i]).toBe(f(Math.log(b)));
    }
    // posterior variance is 0 at i = 0; the clipped log borrows index 1
    expect(a.posteriorVariance[0]).toBe(0);
    expect(a.posteriorLogVarianceClipped[0]).toBe(a.posteriorLogVarianceClipped[1]);
    expect(a.posteriorLogVarianceClipped[1]).toBe(f(Math.log(a.posteriorVariance[1]!)));
    // At i = 0 the posterior mean is x0 scaled by β′₀/(1 − ᾱ′₀): 1 in exact arithmetic, but
    // 1 − float32(0.9999) = 1.000166e-4 in float32, so the reference's final step scales by 0.999834.
    expect(a.posteriorMeanCoef1[0]).toBe(f(a.betas[0]! / f(1 - a.alphasCumprod[0]!)));
    expect(a.posteriorMeanCoef1[0]).toBeCloseTo(0.999834, 6);
    expect(a.posteriorMeanCoef2[0]).toBe(0);
    expect(a.alphasCumprodNext[99]).toBe(0);
  });
});

describe('edit ratio entry step (float32 product, truncated)', () => {
  it('matches the reference float32 mask, not JS doubles', () => {
    expect(editEntryStep(0.29, 100)).toBe(29); // 0.29*100 in doubles is 28.999999999999996
    expect(Math.trunc(0.29 * 100)).toBe(28);
    expect(editEntryStep(0.3, 100)).toBe(30);
    expect(editEntryStep(0, 100)).toBe(0);
    expect(editEntryStep(1, 100)).toBe(100);
    expect(editEntryStep(0.5, 20)).toBe(10);
  });
});
