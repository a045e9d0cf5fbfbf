import { beforeAll, describe, expect, it } from 'vitest';
import { tf, initBackend, Rng } from '@opensora/core';
import {
  alphasCumprodOf,
  applyCfg,
  fillStandardNormal,
  createScheduler,
  DPMSolver,
  IDDPM,
  linearBetaSchedule,
  type DenoiseFn,
} from '../src/index.js';
import { maxAbsDiff, normal, values } from './helpers.js';

beforeAll(async () => {
  await initBackend('cpu');
});

const baseAc = alphasCumprodOf(linearBetaSchedule(1000));

/** Returns the true epsilon of x for a known x0 (IDDPM: original integer timesteps). */
function perfectIddpm(x0: tf.Tensor, varValue = 0): DenoiseFn {
  return ({ x, timestep }) =>
    tf.tidy(() => {
      const rows = x.shape[0]!;
      const tau = timestep.dataSync()[0]!;
      const a = baseAc[tau]!;
      const target = rows === x0.shape[0] ? x0 : tf.concat([x0, x0], 0);
      const eps = tf.div(tf.sub(x, tf.mul(Math.sqrt(a), target)), Math.sqrt(1 - a));
      return tf.concat([eps, tf.fill(x.shape, varValue)], 1);
    });
}

/** Returns the true epsilon for DPM-Solver's continuous schedule (model time τ = (t − 1/N)·N). */
function perfectDpm(x0: tf.Tensor, s: DPMSolver): DenoiseFn {
  return ({ x, timestep }) =>
    tf.tidy(() => {
      const tau = timestep.dataSync()[0]!;
      const t = tau / 1000 + 1 / 1000;
      const a = s.noiseSchedule.marginalAlpha(t);
      const sd = s.noiseSchedule.marginalStd(t);
      const target = x.shape[0] === x0.shape[0] ? x0 : tf.concat([x0, x0], 0);
      const eps = tf.div(tf.sub(x, tf.mul(a, target)), sd);
      return tf.concat([eps, tf.zerosLike(eps)], 1);
    });
}

/** A text-dependent model: eps = 0.5·x + mean(y) per row, variance value 0.2·mean(y). */
const textModel: DenoiseFn = ({ x, y }) =>
  tf.tidy(() => {
    const yt = y as tf.Tensor;
    const yb = tf.reshape(tf.mean(yt, [1, 2, 3]), [x.shape[0]!, 1, 1, 1, 1]);
    return tf.concat([tf.add(tf.mul(0.5, x), yb), tf.mul(tf.onesLike(x), tf.mul(0.2, yb))], 1);
  });

const SHAPE = [2, 4, 3, 4, 4];

describe('IDDPM sampler', () => {
  it('a perfect epsilon denoiser reconstructs x0 through the 100-step loop', () => {
    const s = new IDDPM({ numSamplingSteps: 100, cfgScale: 7, cfgChannel: 3 });
    const rng = new Rng(1);
    const x0 = normal(rng, SHAPE);
    const z = normal(rng, SHAPE);
    const steps: number[] = [];
    const out = s.sample({ model: perfectIddpm(x0), z, rng: new Rng(2), progress: (p) => steps.push(p.timestep) });
    expect(out.shape).toEqual(SHAPE);
    expect(steps).toHaveLength(100);
    expect(steps[0]).toBe(999);
    expect(steps[99]).toBe(0);
    // The float32 arrays make the last posterior coefficient 0.999834 instead of 1 (reference behaviour).
    const c1 = s.arrays.posteriorMeanCoef1[0]!;
    expect(maxAbsDiff(out, tf.mul(c1, x0))).toBeLessThan(1e-4);
    expect(maxAbsDiff(out, x0)).toBeLessThan(1e-3);
  });

  it('also with guidance and a null caption (the guided eps is the same)', () => {
    const s = new IDDPM({ numSamplingSteps: 20, cfgScale: 4 });
    const rng = new Rng(3);
    const x0 = normal(rng, SHAPE);
    const z = normal(rng, SHAPE);
    const y = normal(rng, [2, 1, 5, 8]);
    const nullY = normal(rng, [5, 8]);
    const rows: number[] = [];
    const inner = perfectIddpm(x0);
    const model: DenoiseFn = (a) => {
      rows.push(a.x.shape[0]!);
      expect((a.y as tf.Tensor).shape).toEqual([4, 1, 5, 8]);
      return inner(a);
    };
    const out = s.sample({ model, z, text: { y, nullY }, rng: new Rng(4) });
    expect(rows.every((r) => r === 4)).toBe(true);
    expect(maxAbsDiff(out, x0)).toBeLessThan(1e-3);
  });

  it('cfgScale = 1 equals the conditional pass', () => {
    const rng = new Rng(5);
    const z = normal(rng, SHAPE);
    const y = normal(rng, [2, 1, 3, 4]);
    const nullY = tf.add(normal(rng, [1, 1, 3, 4]), 3);
    const mask = tf.tensor([[1, 0], [1, 1]], [2, 2], 'int32');
    const s = new IDDPM({ numSamplingSteps: 25, cfgScale: 1, cfgChannel: 3 });
    const guided = s.sample({ model: textModel, z, text: { y, nullY, mask }, rng: new Rng(6) });
    const cond = s.sample({ model: textModel, z, text: { y, mask }, rng: new Rng(6) });
    expect(maxAbsDiff(guided, cond)).toBeLessThan(1e-5);
    // and a larger scale moves it
    const s7 = new IDDPM({ numSamplingSteps: 25, cfgScale: 7, cfgChannel: 3 });
    const g7 = s7.sample({ model: textModel, z, text: { y, nullY, mask }, rng: new Rng(6) });
    expect(maxAbsDiff(g7, cond)).toBeGreaterThan(0.1);
  });

  it('tiles B-row kwargs and the text mask to 2B for the guided pass', () => {
    const s = new IDDPM({ numSamplingSteps: 2 });
    const rng = new Rng(7);
    const z = normal(rng, SHAPE);
    const y = normal(rng, [2, 1, 3, 4]);
    const nullY = normal(rng, [3, 4]);
    const tm = tf.tensor([[1, 1, 0], [1, 0, 0]], [2, 3], 'int32');
    const fps = tf.tensor1d([24, 8]);
    const seen: Record<string, number[]>[] = [];
    const model: DenoiseFn = (a) => {
      seen.push({ mask: values(a.mask as tf.Tensor), fps: values(a.fps as tf.Tensor), ys: [...(a.y as tf.Tensor).shape] });
      return textModel(a);
    };
    s.sample({ model, z, text: { y, nullY, mask: tm }, modelKwargs: { fps, note: 'kept' }, rng });
    expect(seen[0]!.mask).toEqual([1, 1, 0, 1, 0, 0, 1, 1, 0, 1, 0, 0]);
    expect(seen[0]!.fps).toEqual([24, 8, 24, 8]);
    expect(seen[0]!.ys).toEqual([4, 1, 3, 4]);
  });

  it('is reproducible for a seed and leaks no tensors', () => {
    const s = new IDDPM({ numSamplingSteps: 10 });
    const z = normal(new Rng(8), SHAPE);
    const a = s.sample({ model: textModel, z, text: { y: tf.ones([2, 1, 2, 2]) }, rng: new Rng(9) });
    const before = tf.memory().numTensors;
    const b = s.sample({ model: textModel, z, text: { y: tf.ones([2, 1, 2, 2]) }, rng: new Rng(9) });
    expect(tf.memory().numTensors).toBe(before + 1 + 1); // the result and the y created inline
    expect(maxAbsDiff(a, b)).toBe(0);
    const c = s.sample({ model: textModel, z, text: { y: tf.ones([2, 1, 2, 2]) }, rng: new Rng(10) });
    expect(maxAbsDiff(a, c)).toBeGreaterThan(0.01);
  });
});

describe('applyCfg', () => {
  it('guides the first cfgChannel channels; the rest come from the conditional rows', () => {
    // rows: cond b0, cond b1, uncond b0, uncond b1; 8 channels, 1 element each
    const data: number[] = [];
    for (let r = 0; r < 4; r++) for (let c = 0; c < 8; c++) data.push(r < 2 ? 10 + c + r : c - r);
    const out = tf.tensor(data, [4, 8, 1]);
    const g = values(applyCfg(out, 7, 3));
    for (let b = 0; b < 2; b++) {
      for (let c = 0; c < 8; c++) {
        const cond = 10 + c + b;
        const unc = c - (b + 2);
        expect(g[b * 8 + c]).toBeCloseTo(c < 3 ? unc + 7 * (cond - unc) : cond, 5);
      }
    }
    // default: half the channels (the 4 epsilon channels)
    const g4 = values(applyCfg(out, 2));
    expect(g4[3]).toBeCloseTo(3 - 2 + 2 * (13 - 1), 5);
    expect(g4[4]).toBeCloseTo(14, 5);
    expect(() => applyCfg(out, 2, 9)).toThrow(/outside 1..8/);
  });
});

/** Runs a sampler with an edit mask and records the model's view per call. */
function editRun(s: IDDPM | DPMSolver, opts: { ratios: number[][]; xCond: tf.Tensor; z: tf.Tensor; model?: DenoiseFn; seed?: number }) {
  const calls: { xMask?: boolean[]; x: number[]; timestep: number }[] = [];
  const inner: DenoiseFn = opts.model ?? (({ x }) => tf.concat([tf.mul(0.1, x), tf.zerosLike(x)], 1));
  const model: DenoiseFn = (a) => {
    calls.push({ xMask: a.xMask ? Array.from(a.xMask.dataSync(), Boolean) : undefined, x: values(a.x), timestep: a.timestep.dataSync()[0]! });
    return inner(a);
  };
  const out = s.sample({ model, z: opts.z, mask: opts.ratios, xCond: opts.xCond, rng: new Rng(opts.seed ?? 11) });
  return { out, calls };
}

/** Values of frame f of sample b of a [B, C, T, H, W] array. */
function frame(v: number[], shape: number[], b: number, f: number): number[] {
  const [, C, T, H, W] = shape as [number, number, number, number, number];
  const r: number[] = [];
  for (let c = 0; c < C; c++) for (let k = 0; k < H * W; k++) r.push(v[(((b * C + c) * T + f) * H * W) + k]!);
  return r;
}

const maxDiff = (a: number[], b: number[]) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('masked frames (edit ratios) in the IDDPM sampler', () => {
  const rng = new Rng(12);
  const z = normal(rng, SHAPE);
  const xCond = normal(rng, SHAPE, 0.5);
  const xCond2 = normal(rng, SHAPE, 0.5);
  const ratios = [
    [0, 1, 0.3],
    [1, 0.29, 0],
  ];

  it('ratio 0 comes back as the condition (re-noised with std 0.01 at the last step), exact with keepConditionExact', () => {
    const s = new IDDPM({ numSamplingSteps: 100 });
    const { out, calls } = editRun(s, { ratios, xCond, z });
    const ov = values(out);
    const cv = values(xCond);
    const d00 = maxDiff(frame(ov, SHAPE, 0, 0), frame(cv, SHAPE, 0, 0));
    expect(d00).toBeGreaterThan(0); // not bit-identical: the reference re-predicts it at t = 0
    expect(d00).toBeLessThan(0.06);
    expect(maxDiff(frame(ov, SHAPE, 1, 2), frame(cv, SHAPE, 1, 2))).toBeLessThan(0.06);
    // until the last step the model sees the clean condition, flagged as condition (xMask false)
    const at = (i: number) => calls[99 - i]!;
    expect(frame(at(1).x, SHAPE, 0, 0)).toEqual(frame(cv, SHAPE, 0, 0));
    expect(at(0).xMask![0]).toBe(false); // off-by-one: false even at its entry step
    const exact = new IDDPM({ numSamplingSteps: 100, keepConditionExact: true });
    const r2 = editRun(exact, { ratios, xCond, z });
    const ev = values(r2.out);
    expect(frame(ev, SHAPE, 0, 0)).toEqual(frame(cv, SHAPE, 0, 0));
    expect(frame(ev, SHAPE, 1, 2)).toEqual(frame(cv, SHAPE, 1, 2));
  });

  it('ratio 1 frames are fully regenerated: independent of the condition latents', () => {
    const s = new IDDPM({ numSamplingSteps: 100 });
    const a = values(editRun(s, { ratios, xCond, z }).out);
    const b = values(editRun(s, { ratios, xCond: xCond2, z }).out);
    expect(frame(a, SHAPE, 0, 1)).toEqual(frame(b, SHAPE, 0, 1));
    expect(frame(a, SHAPE, 1, 0)).toEqual(frame(b, SHAPE, 1, 0));
    expect(maxDiff(frame(a, SHAPE, 0, 1), frame(values(xCond), SHAPE, 0, 1))).toBeGreaterThan(0.1);
    // ...and condition frames do depend on them
    expect(maxDiff(frame(a, SHAPE, 0, 0), frame(b, SHAPE, 0, 0))).toBeGreaterThan(0.1);
  });

  it('edit ratio e enters at step trunc(float32(e)·N): frozen above, re-noised at, denoised below', () => {
    const s = new IDDPM({ numSamplingSteps: 100 });
    const { calls } = editRun(s, { ratios, xCond, z });
    const cv = values(xCond);
    const at = (i: number) => calls[99 - i]!;
    // [0][2] has ratio 0.3 -> m = 30; [1][1] has 0.29 -> m = 29 (float32; doubles would give 28)
    const T = 3;
    const idx = (b: number, f: number) => b * T + f;
    for (let i = 99; i >= 0; i--) {
      const xm = at(i).xMask!;
      expect(xm[idx(0, 2)]).toBe(30 > i);
      expect(xm[idx(1, 1)]).toBe(29 > i);
      expect(xm[idx(0, 1)]).toBe(true);
      expect(xm[idx(0, 0)]).toBe(false);
    }
    expect(frame(at(31).x, SHAPE, 0, 2)).toEqual(frame(cv, SHAPE, 0, 2)); // still the clean condition
    expect(maxDiff(frame(at(30).x, SHAPE, 0, 2), frame(cv, SHAPE, 0, 2))).toBeGreaterThan(0.05); // re-noised
    expect(frame(at(30).x, SHAPE, 1, 1)).toEqual(frame(cv, SHAPE, 1, 1));
    // without the off-by-one the frame counts as generated from its entry step on
    const fixed = new IDDPM({ numSamplingSteps: 100, editEntryOffByOne: false });
    const r = editRun(fixed, { ratios, xCond, z });
    expect(r.calls[99 - 30]!.xMask![idx(0, 2)]).toBe(true);
    expect(r.calls[99 - 31]!.xMask![idx(0, 2)]).toBe(false);
    expect(r.calls[99]!.xMask).toBeUndefined(); // every frame counts as generated at i = 0
  });

  it('a perfect denoiser with condition frames reconstructs x0 everywhere', () => {
    const s = new IDDPM({ numSamplingSteps: 50, cfgScale: 7, cfgChannel: 3 });
    // the target: the condition latents on condition frames
    const x0 = normal(new Rng(13), SHAPE);
    const { out } = editRun(s, { ratios, xCond: x0, z, model: perfectIddpm(x0) });
    expect(maxAbsDiff(out, x0)).toBeLessThan(1e-3);
  });

  it('without a mask no xMask is passed; all-ones mask passes none either (same numbers)', () => {
    const s = new IDDPM({ numSamplingSteps: 5 });
    const r = editRun(s, { ratios: [[1, 1, 1], [1, 1, 1]], xCond, z });
    expect(r.calls.every((c) => c.xMask === undefined)).toBe(true);
    const plain = s.sample({ model: ({ x }) => tf.concat([tf.mul(0.1, x), tf.zerosLike(x)], 1), z, rng: new Rng(11) });
    expect(maxAbsDiff(plain, r.out)).toBe(0);
  });

  it('validates the mask', () => {
    const s = new IDDPM({ numSamplingSteps: 5 });
    const model: DenoiseFn = ({ x }) => tf.concat([x, x], 1);
    expect(() => s.sample({ model, z, mask: [[0, 1, 2], [1, 1, 1]], rng })).toThrow(/outside \[0, 1\]/);
    expect(() => s.sample({ model, z, mask: [[0, 1]], rng })).toThrow(/expected \[2, 3\]/);
    expect(() => s.sample({ model, z, xCond, rng })).toThrow(/needs an edit mask/);
  });
});

describe('DPM-Solver++', () => {
  it('model times run from 999 down; 20 evaluations by default', () => {
    const s = new DPMSolver();
    const mt = s.modelTimesteps();
    expect(mt).toHaveLength(20);
    expect(mt[0]).toBeCloseTo(999, 3);
    expect(mt[19]).toBeGreaterThan(0);
    expect(s.timeSteps()[20]).toBeCloseTo(0.001, 9);
    // log α at the keypoints is half the log cumulative alpha
    expect(s.noiseSchedule.marginalLogMeanCoeff(1)).toBeCloseTo(0.5 * Math.log(baseAc[999]!), 5);
    expect(s.noiseSchedule.marginalLogMeanCoeff(0.5)).toBeCloseTo(0.5 * Math.log(baseAc[499]!), 5);
    expect(s.noiseSchedule.modelTime(1)).toBeCloseTo(999, 9);
  });

  for (const steps of [20, 8]) {
    it(`a perfect denoiser lands on x0 (up to the 1/N end time's noise), ${steps} steps`, () => {
      const s = new DPMSolver({ numSamplingSteps: steps, cfgScale: 4 });
      const rng = new Rng(20);
      const x0 = normal(rng, SHAPE);
      const z = normal(rng, SHAPE);
      let calls = 0;
      const inner = perfectDpm(x0, s);
      const model: DenoiseFn = (a) => {
        calls++;
        return inner(a);
      };
      const out = s.sample({ model, z, rng });
      expect(calls).toBe(steps);
      const ns = s.noiseSchedule;
      const aT = ns.marginalAlpha(1);
      const sT = ns.marginalStd(1);
      const a0 = ns.marginalAlpha(0.001);
      const s0 = ns.marginalStd(0.001);
      // the exact ODE solution: x(t) = α_t x0 + σ_t ε with ε fixed by z
      const expected = tf.tidy(() => tf.add(tf.mul(a0, x0), tf.mul(s0 / sT, tf.sub(z, tf.mul(aT, x0)))));
      expect(maxAbsDiff(out, expected)).toBeLessThan(1e-4);
      expect(maxAbsDiff(out, x0)).toBeLessThan(0.06);
    });
  }

  it('cfgScale = 1 is the conditional pass (the unconditional pass is skipped)', () => {
    const rng = new Rng(21);
    const z = normal(rng, SHAPE);
    const y = normal(rng, [2, 1, 3, 4]);
    const nullY = tf.add(normal(rng, [3, 4]), 2);
    const rows: number[] = [];
    const model: DenoiseFn = (a) => {
      rows.push(a.x.shape[0]!);
      return textModel(a);
    };
    const s1 = new DPMSolver({ numSamplingSteps: 10, cfgScale: 1 });
    const guided = s1.sample({ model, z, text: { y, nullY }, rng: new Rng(1) });
    const cond = s1.sample({ model: textModel, z, text: { y }, rng: new Rng(1) });
    expect(rows.every((r) => r === 2)).toBe(true);
    expect(maxAbsDiff(guided, cond)).toBe(0);
    const s4 = new DPMSolver({ numSamplingSteps: 10, cfgScale: 4 });
    rows.length = 0;
    const g4 = s4.sample({ model, z, text: { y, nullY }, rng: new Rng(1) });
    expect(rows.every((r) => r === 4)).toBe(true);
    expect(maxAbsDiff(g4, cond)).toBeGreaterThan(0.1);
    // guidance arithmetic at a scale of 1 through the guided path too
    const s1g = new DPMSolver({ numSamplingSteps: 10, cfgScale: 1.0000001 });
    expect(maxAbsDiff(s1g.sample({ model: textModel, z, text: { y, nullY }, rng: new Rng(1) }), cond)).toBeLessThan(1e-4);
  });

  it('edit masks: ratio 0 ≈ condition, ratio 1 independent of it, entry timing as IDDPM', () => {
    const rng = new Rng(22);
    const z = normal(rng, SHAPE);
    const xCond = normal(rng, SHAPE, 0.5);
    const xCond2 = normal(rng, SHAPE, 0.5);
    const ratios = [
      [0, 1, 0.5],
      [1, 0.25, 0],
    ];
    const s = new DPMSolver({ numSamplingSteps: 20 });
    const a = editRun(s, { ratios, xCond, z });
    const b = editRun(s, { ratios, xCond: xCond2, z });
    const [av, bv, cv] = [values(a.out), values(b.out), values(xCond)];
    expect(frame(av, SHAPE, 0, 1)).toEqual(frame(bv, SHAPE, 0, 1));
    expect(frame(av, SHAPE, 1, 0)).toEqual(frame(bv, SHAPE, 1, 0));
    // ratio 0.5 of 20 steps -> entry at remaining index 10, i.e. evaluation j = 9
    const T = 3;
    for (let j = 0; j < 20; j++) {
      const i = 19 - j;
      expect(a.calls[j]!.xMask![0 * T + 2]).toBe(10 > i);
      expect(a.calls[j]!.xMask![1 * T + 1]).toBe(5 > i);
    }
    expect(frame(a.calls[8]!.x, SHAPE, 0, 2)).toEqual(frame(cv, SHAPE, 0, 2));
    expect(maxDiff(frame(a.calls[9]!.x, SHAPE, 0, 2), frame(cv, SHAPE, 0, 2))).toBeGreaterThan(0.01);
    // a perfect denoiser with conditions: ratio-0 frames come back as the condition (within the
    // 1/N end time's noise, std 0.01) and everything lands on x0
    const x0 = normal(new Rng(23), SHAPE);
    const p = editRun(s, { ratios, xCond: x0, z, model: perfectDpm(x0, s) });
    const [pv, x0v] = [values(p.out), values(x0)];
    expect(maxDiff(frame(pv, SHAPE, 0, 0), frame(x0v, SHAPE, 0, 0))).toBeLessThan(0.05);
    expect(maxDiff(frame(pv, SHAPE, 1, 2), frame(x0v, SHAPE, 1, 2))).toBeLessThan(0.05);
    expect(maxAbsDiff(p.out, x0)).toBeLessThan(0.06);
    // an imperfect denoiser (epsilon off by up to 0.1) keeps ratio-0 frames close to the condition
    const perfect = perfectDpm(x0, s);
    const rough: DenoiseFn = (args) => tf.tidy(() => tf.add(perfect(args), tf.mul(0.1, tf.sin(tf.concat([args.x, args.x], 1)))));
    const q = values(editRun(s, { ratios, xCond: x0, z, model: rough }).out);
    expect(maxDiff(frame(q, SHAPE, 0, 0), frame(x0v, SHAPE, 0, 0))).toBeLessThan(0.1);
    expect(maxDiff(frame(q, SHAPE, 1, 2), frame(x0v, SHAPE, 1, 2))).toBeLessThan(0.1);
    const exact = new DPMSolver({ numSamplingSteps: 20, keepConditionExact: true });
    const e = values(editRun(exact, { ratios, xCond, z }).out);
    expect(frame(e, SHAPE, 0, 0)).toEqual(frame(cv, SHAPE, 0, 0));
  });

  it('trains through the 1000-step IDDPM objective', () => {
    const s = new DPMSolver();
    expect(s.numTimesteps).toBe(1000);
    const t = s.sampleTimesteps(4, new Rng(1));
    expect(t.every((v) => v >= 0 && v < 1000)).toBe(true);
    const x0 = normal(new Rng(2), [2, 4, 2, 2, 2]);
    const r = s.trainingLosses({ model: ({ x }) => tf.concat([x, x], 1), xStart: x0, t: [0, 999], rng: new Rng(3) });
    expect(values(r.loss).every(Number.isFinite)).toBe(true);
  });
});

describe('createScheduler', () => {
  it('builds each type', () => {
    const a = createScheduler({ type: 'iddpm', numSamplingSteps: 100, cfgScale: 7, cfgChannel: 3 });
    expect(a).toBeInstanceOf(IDDPM);
    expect(a.numSamplingSteps).toBe(100);
    expect((a as IDDPM).cfgChannel).toBe(3);
    const b = createScheduler({ type: 'dpm-solver', numSamplingSteps: 15 });
    expect(b).toBeInstanceOf(DPMSolver);
    expect(b.numSamplingSteps).toBe(15);
    const c = createScheduler({ type: 'iddpm', timestepRespacing: 'ddim25' });
    expect(c.numSamplingSteps).toBe(25);
    expect(createScheduler({ type: 'iddpm' }).numSamplingSteps).toBe(1000);
  });

  it('reports every bad field at once', () => {
    let err: unknown;
    try {
      createScheduler({ type: 'iddpm', numSamplingSteps: 0, cfgScale: 'x', cfg_channel: 3, timestepRespacing: 'ddim999' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(Error);
    const msg = (err as Error).message;
    expect((err as { code: string }).code).toBe('E_CONFIG');
    expect(msg).toMatch(/numSamplingSteps: expected an integer >= 1, got 0/);
    expect(msg).toMatch(/cfgScale: expected a finite number/);
    expect(msg).toMatch(/cfg_channel: unknown key; did you mean 'cfgChannel'/);
    expect(msg).toMatch(/timestepRespacing: .*integer stride/);
    expect(() => createScheduler({ type: 'ddim' })).toThrow(/type: expected one of 'iddpm', 'iddpm-speed', 'dpm-solver'/);
    expect(() => createScheduler({ type: 'iddpm', numSamplingSteps: 10, timestepRespacing: '10' })).toThrow(/not both/);
    expect(() => createScheduler({ type: 'dpm-solver', timestepRespacing: '10' })).toThrow(/not an option of type 'dpm-solver'/);
    expect(() => createScheduler({ type: 'dpm-solver', numSamplingSteps: 1 })).toThrow(/integer >= 2/);
    expect(() => createScheduler({ type: 'iddpm', snrGamma: -2 })).toThrow(/snrGamma: expected a positive number/);
    expect(() => createScheduler({ type: 'dpm-solver', snrGamma: 5 })).toThrow(/snrGamma: not an option of type 'dpm-solver'/);
    expect((createScheduler({ type: 'iddpm-speed', snrGamma: 5 }) as IDDPM).snrGamma).toBe(5);
  });
});

describe('the fused sampling step agrees with the tensor formulas', () => {
  it('one guided IDDPM step = pMeanVariance(applyCfg(model output)) + σ·ε', () => {
    const s = new IDDPM({ timestepRespacing: '2,0', diffusionSteps: 10, cfgScale: 5, cfgChannel: 3 });
    // 10 steps in 2 sections: [0, 4] kept from the first, none from the second
    expect(Array.from(s.timestepMap)).toEqual([0, 4]);
    const rng = new Rng(30);
    const z = normal(rng, SHAPE);
    const y = normal(rng, [2, 1, 3, 4]);
    const nullY = normal(rng, [3, 4]);
    const outs: tf.Tensor[] = [];
    const model: DenoiseFn = (a) => {
      const o = textModel(a);
      outs.push(tf.keep(o.clone()));
      return o;
    };
    const noiseRng = new Rng(31);
    const res = s.sample({ model, z, text: { y, nullY }, rng: noiseRng.clone() });
    // replay: step i = 1 then i = 0, with the same noise stream
    const replayRng = noiseRng.clone();
    const g1 = applyCfg(outs[0]!, 5, 3);
    const p1 = s.pMeanVariance({ modelOutput: g1, x: z, t: 1 });
    const eps = tf.tensor(fillStandardNormal(replayRng, new Float32Array(z.size)), z.shape);
    const x1 = tf.add(p1.mean, tf.mul(tf.exp(tf.mul(0.5, p1.logVariance)), eps));
    const g0 = applyCfg(outs[1]!, 5, 3);
    const p0 = s.pMeanVariance({ modelOutput: g0, x: x1, t: 0 });
    expect(maxAbsDiff(res, p0.mean)).toBeLessThan(1e-5);
  });
});
