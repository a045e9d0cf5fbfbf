import { beforeAll, describe, expect, it } from 'vitest';
import { tf, initBackend, Rng } from '@opensora/core';
import { GaussianDiffusion, IDDPM, meanFlat, type DenoiseFn } from '../src/index.js';
import { kl, maxAbsDiff, nll, normal, values } from './helpers.js';

beforeAll(async () => {
  await initBackend('cpu');
});

describe('qSample and the posterior', () => {
  it('qSample = √ᾱ_t x0 + √(1−ᾱ_t) ε per sample', () => {
    const d = new IDDPM({ numSamplingSteps: 100 });
    const rng = new Rng(1);
    const x0 = normal(rng, [3, 2, 4]);
    const eps = normal(rng, [3, 2, 4]);
    const t = [0, 50, 99];
    const xt = d.qSample(x0, t, eps);
    const xv = values(x0);
    const ev = values(eps);
    const out = values(xt);
    const a = d.arrays;
    for (let i = 0; i < out.length; i++) {
      const b = Math.floor(i / 8);
      expect(out[i]).toBeCloseTo(a.sqrtAlphasCumprod[t[b]!]! * xv[i]! + a.sqrtOneMinusAlphasCumprod[t[b]!]! * ev[i]!, 5);
    }
    tf.dispose([x0, eps, xt]);
  });

  it('the posterior mean is the weighted average that inverts qSample (hand formula)', () => {
    const d = new IDDPM({ numSamplingSteps: 100 });
    const rng = new Rng(2);
    const x0 = normal(rng, [2, 3]);
    const xt = normal(rng, [2, 3]);
    const t = [1, 60];
    const q = d.qPosteriorMeanVariance(x0, xt, t);
    const ac = d.alphasCumprod;
    const be = d.betas;
    const x0v = values(x0);
    const xtv = values(xt);
    const mv = values(q.mean);
    const vv = values(q.variance);
    for (let i = 0; i < 6; i++) {
      const ti = t[Math.floor(i / 3)]!;
      const prev = ac[ti - 1]!;
      const c1 = (be[ti]! * Math.sqrt(prev)) / (1 - ac[ti]!);
      const c2 = ((1 - prev) * Math.sqrt(1 - be[ti]!)) / (1 - ac[ti]!);
      expect(mv[i]).toBeCloseTo(c1 * x0v[i]! + c2 * xtv[i]!, 5);
      expect(vv[i]! / ((be[ti]! * (1 - prev)) / (1 - ac[ti]!))).toBeCloseTo(1, 5);
    }
    tf.dispose([x0, xt, q.mean, q.variance, q.logVarianceClipped]);
  });

  it('pMeanVariance: learned range interpolates log β′ and log σ̃², eps → x̂0 → μ', () => {
    const d = new IDDPM({ numSamplingSteps: 100 });
    const rng = new Rng(3);
    const x = normal(rng, [2, 2, 3]);
    const eps = normal(rng, [2, 2, 3]);
    const v = tf.tensor([-1, 1, 0, 0.5, -0.5, 2, 1, -1, 0.25, 0, 0, 0], [2, 2, 3]);
    const out = tf.concat([eps, v], 1);
    const t = [0, 42];
    const r = d.pMeanVariance({ modelOutput: out, x, t });
    const a = d.arrays;
    const [xv, ev, vv] = [values(x), values(eps), values(v)];
    const [mean, lv, px] = [values(r.mean), values(r.logVariance), values(r.predXstart)];
    for (let i = 0; i < 12; i++) {
      const ti = t[Math.floor(i / 6)]!;
      const frac = (vv[i]! + 1) / 2;
      const logv = frac * Math.log(a.betas[ti]!) + (1 - frac) * a.posteriorLogVarianceClipped[ti]!;
      expect(lv[i]).toBeCloseTo(logv, 5);
      const x0 = Math.sqrt(1 / a.alphasCumprod[ti]!) * xv[i]! - Math.sqrt(1 / a.alphasCumprod[ti]! - 1) * ev[i]!;
      expect(px[i]).toBeCloseTo(x0, 4);
      expect(mean[i]).toBeCloseTo(a.posteriorMeanCoef1[ti]! * x0 + a.posteriorMeanCoef2[ti]! * xv[i]!, 4);
    }
    // v = -1 gives the clipped posterior variance, v = 1 gives β′ (t = 0 borrows σ̃²₁)
    expect(lv[0]).toBeCloseTo(Math.log(a.posteriorVariance[1]!), 5);
    expect(lv[1]).toBeCloseTo(Math.log(a.betas[0]!), 5);
    expect(values(r.variance)[1]).toBeCloseTo(a.betas[0]!, 7);
    tf.dispose([x, eps, v, out, r.mean, r.variance, r.logVariance, r.predXstart]);
  });

  it('pMeanVariance rejects a model output with the wrong channel count', () => {
    const d = new IDDPM({ numSamplingSteps: 10 });
    const x = tf.zeros([1, 4, 2]);
    expect(() => d.pMeanVariance({ modelOutput: tf.zeros([1, 4, 2]), x, t: 0 })).toThrow(/expected \[1, 8, 2\]/);
    expect(() => d.pMeanVariance({ modelOutput: tf.zeros([1, 8, 2]), x, t: 10 })).toThrow(/outside 0..9/);
  });

  it('fixed variances without learned sigma', () => {
    const small = new GaussianDiffusion({ timestepRespacing: '10', modelVarType: 'fixed_small' });
    const large = new GaussianDiffusion({ timestepRespacing: '10', modelVarType: 'fixed_large' });
    const x = tf.ones([1, 1]);
    const eps = tf.zeros([1, 1]);
    expect(values(small.pMeanVariance({ modelOutput: eps, x, t: 5 }).variance)[0]).toBeCloseTo(small.arrays.posteriorVariance[5]!, 7);
    expect(values(large.pMeanVariance({ modelOutput: eps, x, t: 5 }).variance)[0]).toBeCloseTo(large.arrays.betas[5]!, 7);
    expect(values(large.pMeanVariance({ modelOutput: eps, x, t: 0 }).variance)[0]).toBeCloseTo(large.arrays.posteriorVariance[1]!, 7);
  });
});

describe('meanFlat', () => {
  it('averages over generated frames only', () => {
    const x = tf.tensor(Array.from({ length: 2 * 1 * 3 * 1 * 2 }, (_, i) => i), [2, 1, 3, 1, 2]);
    const mask = tf.tensor([[1, 0, 1], [0, 0, 0]], [2, 3], 'bool');
    const r = values(meanFlat(x, mask));
    expect(r[0]).toBeCloseTo((0 + 1 + 4 + 5) / 4, 6);
    expect(r[1]).toBe(0); // all-condition sample: 0 instead of 0/0
    expect(values(meanFlat(x))).toEqual([2.5, 8.5]);
  });
});

/** Model: eps-hat = 0.5·x + 0.1, v = tanh(x); records its inputs. */
function recordingModel(calls: { timestep: number[]; xMask?: boolean[] }[]): DenoiseFn {
  return ({ x, timestep, xMask }) => {
    calls.push({ timestep: values(timestep), xMask: xMask ? Array.from(xMask.dataSync(), Boolean) : undefined });
    return tf.tidy(() => tf.concat([tf.add(tf.mul(0.5, x), 0.1), tf.tanh(x)], 1));
  };
}

describe('trainingLosses', () => {
  const B = 3;
  const C = 2;
  const T = 3;
  const H = 2;
  const W = 1;
  const shape = [B, C, T, H, W];

  function handLoss(d: GaussianDiffusion, x0: number[], eps: number[], t: number[], mask: boolean[][] | null, weights?: Float32Array) {
    const a = d.arrays;
    const per = C * T * H * W;
    const res: { mse: number; vb: number }[] = [];
    for (let b = 0; b < B; b++) {
      let mse = 0;
      let klSum = 0;
      let nllSum = 0;
      let count = 0;
      for (let j = 0; j < per; j++) {
        const f = Math.floor(j / (H * W)) % T;
        const gen = mask ? mask[b]![f]! : true;
        const ti = t[b]!;
        const k = b * per + j;
        const tq = gen ? ti : 0;
        const xt = a.sqrtAlphasCumprod[tq]! * x0[k]! + a.sqrtOneMinusAlphasCumprod[tq]! * eps[k]!;
        const e = 0.5 * xt + 0.1;
        const v = Math.tanh(xt);
        const frac = (v + 1) / 2;
        const lv = frac * a.logBetas[ti]! + (1 - frac) * a.posteriorLogVarianceClipped[ti]!;
        const xh = a.sqrtRecipAlphasCumprod[ti]! * xt - a.sqrtRecipm1AlphasCumprod[ti]! * e;
        const mean = a.posteriorMeanCoef1[ti]! * xh + a.posteriorMeanCoef2[ti]! * xt;
        const tm = a.posteriorMeanCoef1[ti]! * x0[k]! + a.posteriorMeanCoef2[ti]! * xt;
        if (!gen) continue;
        count++;
        mse += (weights ? weights[ti]! : 1) * (eps[k]! - e) ** 2;
        klSum += kl(tm, a.posteriorLogVarianceClipped[ti]!, mean, lv);
        nllSum += nll(x0[k]!, mean, 0.5 * lv);
      }
      const vb = (t[b] === 0 ? nllSum : klSum) / count / Math.LN2;
      res.push({ mse: mse / count, vb });
    }
    return res;
  }

  it('MSE + VB per sample match the hand computation, model sees original timesteps', () => {
    const d = new IDDPM({ timestepRespacing: '' });
    const rng = new Rng(5);
    const x0 = normal(rng, shape, 0.8);
    const eps = normal(rng, shape);
    const t = [0, 1, 999];
    const calls: { timestep: number[]; xMask?: boolean[] }[] = [];
    const r = d.trainingLosses({ model: recordingModel(calls), xStart: x0, t, noise: eps });
    expect(calls).toHaveLength(1);
    expect(calls[0]!.timestep).toEqual([0, 1, 999]);
    expect(calls[0]!.xMask).toBeUndefined();
    const hand = handLoss(d, values(x0), values(eps), t, null);
    const [loss, mse, vb] = [values(r.loss), values(r.mse), values(r.vb!)];
    for (let b = 0; b < B; b++) {
      expect(mse[b]! / hand[b]!.mse).toBeCloseTo(1, 4);
      expect(vb[b]! / hand[b]!.vb).toBeCloseTo(1, 3);
      expect(loss[b]).toBeCloseTo(mse[b]! + vb[b]!, 4);
    }
    expect(Array.from(r.t)).toEqual(t);
  });

  it('snrGamma weights each sample\'s MSE by min(SNR, γ)/SNR and leaves vb alone; bad values are refused', () => {
    const plain = new IDDPM({ timestepRespacing: '' });
    const minSnr = new IDDPM({ timestepRespacing: '', snrGamma: 1 });
    const rng = new Rng(9);
    const x0 = normal(rng, shape, 0.8);
    const eps = normal(rng, shape);
    const t = [10, 300, 900];
    const ab = plain.arrays.alphasCumprod;
    const w = t.map((i) => Math.min(ab[i]! / (1 - ab[i]!), 1) / (ab[i]! / (1 - ab[i]!)));
    // low noise is scaled down (SNR > 1), high noise is not (SNR < 1)
    expect(w[0]).toBeLessThan(0.02);
    expect(w[2]).toBe(1);
    expect(Array.from(minSnr.snrWeights(Int32Array.from(t))!)).toEqual(w.map((x) => Math.fround(x)));
    expect(plain.snrWeights(Int32Array.from(t))).toBeNull();
    const a = plain.trainingLosses({ model: recordingModel([]), xStart: x0, t, noise: eps });
    const b = minSnr.trainingLosses({ model: recordingModel([]), xStart: x0, t, noise: eps });
    const [ma, mb, va, vb] = [values(a.mse), values(b.mse), values(a.vb!), values(b.vb!)];
    for (let i = 0; i < B; i++) {
      expect(mb[i]! / ma[i]!).toBeCloseTo(w[i]!, 5);
      expect(vb[i]).toBe(va[i]);
    }
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) expect(() => new IDDPM({ snrGamma: bad })).toThrow(/snrGamma must be a positive number/);
  });

  it('respaced training maps t to the original timestep; rescaled MSE scales vb by N′/1000', () => {
    const plain = new IDDPM({ numSamplingSteps: 100 });
    const resc = new IDDPM({ numSamplingSteps: 100, rescaleLearnedSigmas: true });
    const rng = new Rng(6);
    const x0 = normal(rng, shape);
    const eps = normal(rng, shape);
    const calls: { timestep: number[] }[] = [];
    const t = [3, 50, 99];
    const a = plain.trainingLosses({ model: recordingModel(calls), xStart: x0, t, noise: eps });
    const b = resc.trainingLosses({ model: recordingModel(calls), xStart: x0, t, noise: eps });
    expect(calls[0]!.timestep).toEqual([30, 505, 999]);
    const va = values(a.vb!);
    const vb = values(b.vb!);
    for (let i = 0; i < B; i++) expect(vb[i]).toBeCloseTo(va[i]! * 0.1, 6);
  });

  it('frame mask: condition frames noised at t = 0 with the same ε, excluded, passed as xMask', () => {
    const d = new IDDPM({ timestepRespacing: '' });
    const rng = new Rng(8);
    const x0 = normal(rng, shape, 0.5);
    const eps = normal(rng, shape);
    const t = [0, 400, 999];
    const mask = [
      [true, false, true],
      [false, true, true],
      [true, true, true],
    ];
    let seenX: number[] = [];
    const calls: { timestep: number[]; xMask?: boolean[] }[] = [];
    const rec = recordingModel(calls);
    const model: DenoiseFn = (args) => {
      seenX = values(args.x);
      return rec(args);
    };
    const r = d.trainingLosses({ model, xStart: x0, t, noise: eps, mask });
    expect(calls[0]!.xMask).toEqual(mask.flat());
    // model input: condition frames at the t = 0 noise level
    const a = d.arrays;
    const xv = values(x0);
    const ev = values(eps);
    for (let k = 0; k < seenX.length; k++) {
      const b = Math.floor(k / (C * T * H * W));
      const f = Math.floor(k / (H * W)) % T;
      const tq = mask[b]![f] ? t[b]! : 0;
      expect(seenX[k]).toBeCloseTo(a.sqrtAlphasCumprod[tq]! * xv[k]! + a.sqrtOneMinusAlphasCumprod[tq]! * ev[k]!, 5);
    }
    const hand = handLoss(d, xv, ev, t, mask);
    const [mse, vb] = [values(r.mse), values(r.vb!)];
    for (let b = 0; b < B; b++) {
      expect(mse[b]! / hand[b]!.mse).toBeCloseTo(1, 4);
      expect(vb[b]! / hand[b]!.vb).toBeCloseTo(1, 3);
    }
  });

  it('the vb term does not move the epsilon prediction (stop-gradient), only the variance', () => {
    const d = new IDDPM({ timestepRespacing: '' });
    const rng = new Rng(9);
    const x0 = normal(rng, shape);
    const eps = normal(rng, shape);
    const w = tf.variable(tf.scalar(0.3));
    const u = tf.variable(tf.scalar(0.2));
    const model: DenoiseFn = ({ x }) => tf.concat([tf.mul(w, x), tf.tanh(tf.mul(u, x))], 1);
    const t = [5, 500, 900];
    const all = tf.variableGrads(() => tf.mean(d.trainingLosses({ model, xStart: x0, t, noise: eps }).loss) as tf.Scalar, [w, u]);
    const mseOnly = tf.variableGrads(() => tf.mean(d.trainingLosses({ model, xStart: x0, t, noise: eps }).mse) as tf.Scalar, [w, u]);
    expect(values(all.grads.w ?? all.grads[w.name]!)[0]).toBeCloseTo(values(mseOnly.grads[w.name]!)[0]!, 6);
    expect(Math.abs(values(all.grads[u.name]!)[0]!)).toBeGreaterThan(1e-6);
    expect(values(mseOnly.grads[u.name]!)[0]).toBe(0);
  });

  it('validates inputs', () => {
    const d = new IDDPM({ timestepRespacing: '' });
    const x0 = tf.zeros(shape);
    const model: DenoiseFn = ({ x }) => tf.concat([x, x], 1);
    expect(() => d.trainingLosses({ model, xStart: x0, noise: x0 })).toThrow(/t is required/);
    expect(() => d.trainingLosses({ model, xStart: x0, t: [0, 1, 2] })).toThrow(/noise or rng/);
    expect(() => d.trainingLosses({ model, xStart: x0, t: [0, 1], noise: x0 })).toThrow(/2 entries but the batch has 3/);
    expect(() => d.trainingLosses({ model, xStart: x0, t: [0, 1, 1000], noise: x0 })).toThrow(/outside 0..999/);
    expect(() => d.trainingLosses({ model, xStart: x0, t: [0, 1, 2], noise: x0, mask: [[true]] })).toThrow(/expected \[3, 3\]/);
    expect(() => d.trainingLosses({ model: ({ x }) => x, xStart: x0, t: [0, 1, 2], noise: x0 })).toThrow(/model output has shape \[3, 2, 3, 2, 1\]; expected \[3, 4, 3, 2, 1\]/);
  });

  it('SpeeDiT weights the MSE by 1 − ᾱ_t and leaves vb unweighted', async () => {
    const { SpeeDiT } = await import('../src/index.js');
    const s = new SpeeDiT({ timestepRespacing: '' });
    const d = new IDDPM({ timestepRespacing: '' });
    const rng = new Rng(10);
    const x0 = normal(rng, shape);
    const eps = normal(rng, shape);
    const t = [10, 600, 990];
    const calls: { timestep: number[] }[] = [];
    const a = s.trainingLosses({ model: recordingModel(calls), xStart: x0, t, noise: eps });
    const b = d.trainingLosses({ model: recordingModel(calls), xStart: x0, t, noise: eps });
    const [ma, mb, va, vb] = [values(a.mse), values(b.mse), values(a.vb!), values(b.vb!)];
    for (let i = 0; i < B; i++) {
      expect(ma[i]! / mb[i]!).toBeCloseTo(s.weights[t[i]!]!, 5);
      expect(va[i]).toBeCloseTo(vb[i]!, 6);
    }
    // without t it draws from its own distribution with rng
    const c = s.trainingLosses({ model: recordingModel(calls), xStart: x0, noise: eps, rng: new Rng(1) });
    expect(Array.from(c.t)).toEqual(Array.from(s.sampleTimesteps(3, new Rng(1))));
  });
});

describe('property: the training loss is finite and >= 0 at every timestep', () => {
  it('all 1000 timesteps, random latents/noise/model outputs, with and without a frame mask', () => {
    const d = new IDDPM({ timestepRespacing: '' });
    const rng = new Rng(2024);
    const B = 1000;
    const shape = [B, 2, 3, 2, 2];
    const t = Array.from({ length: B }, (_, i) => i);
    const x0 = normal(rng, shape, 1.5);
    const eps = normal(rng, shape);
    const randOut = normal(rng, [B, 4, 3, 2, 2]);
    const model: DenoiseFn = () => randOut.clone();
    const mask = Array.from({ length: B }, (_, b) => [b % 3 !== 0, true, b % 2 === 0]);
    for (const m of [undefined, mask]) {
      const r = d.trainingLosses({ model, xStart: x0, t, noise: eps, mask: m });
      for (const key of ['loss', 'mse', 'vb'] as const) {
        const v = values(r[key]!);
        expect(v).toHaveLength(B);
        for (let i = 0; i < B; i++) {
          expect(Number.isFinite(v[i]!), `${key}[t=${i}] = ${v[i]}`).toBe(true);
          expect(v[i]!, `${key}[t=${i}]`).toBeGreaterThanOrEqual(0);
        }
      }
      tf.dispose([r.loss, r.mse, r.vb!]);
    }
    // a near-perfect model (true epsilon, minimum variance) still gives a non-negative loss
    const perfect: DenoiseFn = () => tf.concat([eps, tf.fill([B, 2, 3, 2, 2], -1)], 1);
    const r = d.trainingLosses({ model: perfect, xStart: x0, t, noise: eps });
    const v = values(r.loss);
    for (let i = 0; i < B; i++) {
      expect(Number.isFinite(v[i]!)).toBe(true);
      expect(v[i]!).toBeGreaterThanOrEqual(0);
    }
    expect(maxAbsDiff(r.mse, tf.zeros([B]))).toBe(0);
  });
});
