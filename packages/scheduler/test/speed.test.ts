import { describe, expect, it } from 'vitest';
import { Rng } from '@opensora/core';
import { createScheduler, gradient32, SpeeDiT } from '../src/index.js';

describe('SpeeDiT constants (1000-step linear schedule)', () => {
  const s = new SpeeDiT({ timestepRespacing: '' });

  it('meaningful steps M = 700', () => {
    expect(s.meaningfulSteps).toBe(700);
  });

  it('p ∝ tanh(1e6(g − 1e-4)) + 1.5: plateaus, the 640-642 transition and Z', () => {
    const raw = Array.from(s.p, (v) => v * s.pNormalizer);
    expect(s.pNormalizer).toBeCloseTo(1782.69, 1); // spec: Z ≈ 1782.7
    expect(raw[100]).toBeCloseTo(2.5, 5);
    expect(raw[639]).toBeGreaterThan(2.47);
    expect(raw[640]).toBeCloseTo(2.249, 3);
    expect(raw[641]).toBeCloseTo(1.310, 3);
    expect(raw[642]).toBeCloseTo(0.640, 3);
    expect(raw[643]).toBeLessThan(0.52);
    expect(raw[900]).toBeCloseTo(0.5, 5);
    // per-step probability about 1.40e-3 early and 2.80e-4 late
    expect(s.p[0]).toBeCloseTo(1.40238e-3, 7);
    expect(s.p[999]).toBeCloseTo(2.80476e-4, 8);
    let sum = 0;
    for (const v of s.p) sum += v;
    expect(sum).toBeCloseTo(1, 5);
  });

  it('weights 1/(1 + snr) equal 1 − ᾱ_t', () => {
    for (const t of [0, 1, 100, 500, 999]) {
      expect(s.weights[t]).toBeCloseTo(1 - s.alphasCumprod[t]!, 6);
    }
    expect(s.weights[0]).toBeCloseTo(1e-4, 6);
  });

  it('t_sample: n//2+1 draws then their duals, first n kept', () => {
    const m = s.meaningfulSteps;
    const rng = new Rng(7);
    const one = s.sampleTimesteps(1, rng);
    expect(one.length).toBe(1);
    // n = 2: two base draws, no dual
    const r2a = new Rng(3);
    const two = s.sampleTimesteps(2, r2a);
    const r2b = new Rng(3);
    const four = s.sampleTimesteps(4, r2b);
    // n = 4 draws 3 base timesteps; the first two agree with n = 2 (same stream)
    expect(four[0]).toBe(two[0]);
    expect(four[1]).toBe(two[1]);
    const t0 = four[0]!;
    expect(four[3]).toBe(t0 < m ? m - t0 : t0 - m);
    // n = 8: 5 base + 3 duals
    const eight = s.sampleTimesteps(8, new Rng(11));
    for (let k = 0; k < 3; k++) {
      const t = eight[k]!;
      expect(eight[5 + k]).toBe(t < m ? m - t : t - m);
    }
  });

  it('draws follow p: about 2.5/(2.5·640 + 0.5·360) of the mass is early', () => {
    const rng = new Rng(123);
    let early = 0;
    const n = 20000;
    for (let i = 0; i < n; i++) {
      const [t] = s.sampleTimesteps(1, rng);
      if (t! < 640) early++;
    }
    // P(t < 640) = Σ_{t<640} p_t ≈ 2.5·640/1782.7 ≈ 0.8975
    let pe = 0;
    for (let t = 0; t < 640; t++) pe += s.p[t]!;
    expect(pe).toBeCloseTo(0.8975, 3);
    expect(Math.abs(early / n - pe)).toBeLessThan(0.01);
  });

  it('gradient32 matches numpy gradient (unit spacing, one-sided ends)', () => {
    expect(Array.from(gradient32(Float32Array.from([1, 2, 4, 7, 11])))).toEqual([1, 1.5, 2.5, 3.5, 4]);
  });

  it('createScheduler builds it from the config', () => {
    const c = createScheduler({ type: 'iddpm-speed', timestepRespacing: '' });
    expect(c).toBeInstanceOf(SpeeDiT);
    expect(c.numTimesteps).toBe(1000);
  });
});
