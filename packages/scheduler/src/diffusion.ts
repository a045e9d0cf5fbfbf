/**
 * The Gaussian diffusion of IDDPM over a (respaced) schedule: forward noising, the true
 * posterior, the model's reverse step with learned-range variance, and the training losses
 * (MSE on epsilon plus the variational bound for the variance, with the frame mask).
 */
import { tf, InvalidArgumentError } from '@opensora/core';
import type { Rng } from '@opensora/core';
import { linearBetaSchedule, respacedArrays, spaceTimesteps, type DiffusionArrays } from './schedule.js';
import type { DenoiseFn, FrameMaskLike, TimestepsLike, TrainingLosses, TrainingLossesArgs } from './types.js';
import { expandFrameMask, extract, flat, randn, splitChannels, stopGradient, toFrameMask, toTimesteps } from './util.js';

export type ModelMeanType = 'epsilon' | 'start_x';
export type ModelVarType = 'learned_range' | 'fixed_small' | 'fixed_large';
export type LossType = 'mse' | 'rescaled_mse' | 'kl' | 'rescaled_kl';

export interface GaussianDiffusionOptions {
  /** Number of steps of the base (linear) schedule. Default 1000. */
  diffusionSteps?: number;
  /** Kept timesteps, as `spaceTimesteps` accepts them; `''`/undefined keeps all. */
  timestepRespacing?: string | number | readonly number[];
  modelMeanType?: ModelMeanType;
  modelVarType?: ModelVarType;
  lossType?: LossType;
  /**
   * Min-SNR-γ loss weighting (Hang et al. 2023): the epsilon MSE of a sample at step t is scaled
   * by `min(SNR(t), γ) / SNR(t)`, SNR = ᾱ/(1−ᾱ), so the low-noise steps stop dominating the
   * gradient. Unset or null: no weighting (the reference). The variational-bound term is not
   * weighted.
   */
  snrGamma?: number | null;
}

export interface PMeanVarianceArgs {
  /** Model output `[B, 2C, ...]` for learned-range variance (`[B, C, ...]` otherwise). */
  modelOutput: tf.Tensor;
  /** The noisy latent `[B, C, ...]` at step `t`. */
  x: tf.Tensor;
  /** Respaced step indices. */
  t: TimestepsLike;
  /** Clamp the x0 prediction to [-1, 1] (the sampler uses false). */
  clipDenoised?: boolean;
}

export interface PMeanVariance {
  mean: tf.Tensor;
  variance: tf.Tensor;
  logVariance: tf.Tensor;
  predXstart: tf.Tensor;
}

const LN2 = Math.log(2);

/** `0.5·(−1 + lv2 − lv1 + exp(lv1 − lv2) + (m1 − m2)²·exp(−lv2))`: KL(N(m1, e^lv1) ‖ N(m2, e^lv2)) in nats. */
export function normalKl(mean1: tf.Tensor, logvar1: tf.Tensor, mean2: tf.Tensor, logvar2: tf.Tensor): tf.Tensor {
  return tf.tidy(() =>
    tf.mul(
      0.5,
      tf.addN([
        tf.sub(tf.sub(logvar2, logvar1), 1),
        tf.exp(tf.sub(logvar1, logvar2)),
        tf.mul(tf.square(tf.sub(mean1, mean2)), tf.exp(tf.neg(logvar2))),
      ]),
    ),
  );
}

/** The tanh approximation of the standard normal CDF. */
export function approxStandardNormalCdf(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() =>
    tf.mul(0.5, tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.mul(x, tf.mul(x, x)))))))),
  );
}

/**
 * Log-likelihood of `x` (data in [-1, 1] discretised to 8 bits, bin half-width 1/255) under a
 * Gaussian with `means` and `logScales` (log std), with the reference's edge cases and 1e-12 clamps.
 */
export function discretizedGaussianLogLikelihood(x: tf.Tensor, means: tf.Tensor, logScales: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const centered = tf.sub(x, means);
    const invStdv = tf.exp(tf.neg(logScales));
    const cdfPlus = approxStandardNormalCdf(tf.mul(invStdv, tf.add(centered, 1 / 255)));
    const cdfMin = approxStandardNormalCdf(tf.mul(invStdv, tf.sub(centered, 1 / 255)));
    const logCdfPlus = tf.log(tf.maximum(cdfPlus, 1e-12));
    const logOneMinusCdfMin = tf.log(tf.maximum(tf.sub(1, cdfMin), 1e-12));
    const logCdfDelta = tf.log(tf.maximum(tf.sub(cdfPlus, cdfMin), 1e-12));
    return tf.where(tf.less(x, -0.999), logCdfPlus, tf.where(tf.greater(x, 0.999), logOneMinusCdfMin, logCdfDelta));
  });
}

/**
 * Mean over all non-batch dimensions; with a `[B, T]` frame mask (5-D input), the mean over the
 * generated frames only: `Σ x·mask / (Σ_t mask · C·H·W)`. A sample whose frames are all
 * condition frames gets 0 instead of the reference's 0/0.
 */
export function meanFlat(x: tf.Tensor, mask?: tf.Tensor): tf.Tensor {
  if (!mask) return tf.tidy(() => tf.mean(flat(x), 1));
  if (x.rank !== 5) throw new InvalidArgumentError(`a frame mask needs 5-D latents [B, C, T, H, W], got rank ${x.rank}`);
  return tf.tidy(() => maskedMean(flat(x), expandFrameMask(toFrameMask(mask, x.shape[0]!, x.shape[2]!), x.shape)));
}

/** Masked mean of a flat `[B, N]` tensor with a bool `[B, N]` selector. */
function maskedMean(x: tf.Tensor, sel: tf.Tensor): tf.Tensor {
  const mf = tf.cast(sel, 'float32');
  return tf.div(tf.sum(tf.mul(x, mf), 1), tf.maximum(tf.sum(mf, 1), 1));
}

/** A Gaussian diffusion over a respaced linear schedule (the reference's `SpacedDiffusion`). */
export class GaussianDiffusion {
  /** The float32 arrays of the respaced process. */
  readonly arrays: DiffusionArrays;
  /** The float64 base schedule. */
  readonly baseBetas: Float64Array;
  readonly modelMeanType: ModelMeanType;
  readonly modelVarType: ModelVarType;
  readonly lossType: LossType;
  /** Original number of steps (1000). */
  readonly originalNumSteps: number;

  constructor(options: GaussianDiffusionOptions = {}) {
    const steps = options.diffusionSteps ?? 1000;
    this.baseBetas = linearBetaSchedule(steps);
    const resp = options.timestepRespacing;
    const keep =
      resp === undefined || resp === '' || (Array.isArray(resp) && resp.length === 0)
        ? spaceTimesteps(steps, [steps])
        : spaceTimesteps(steps, resp as string | number | readonly number[]);
    this.arrays = respacedArrays(this.baseBetas, keep);
    this.originalNumSteps = steps;
    this.modelMeanType = options.modelMeanType ?? 'epsilon';
    this.modelVarType = options.modelVarType ?? 'learned_range';
    this.lossType = options.lossType ?? 'mse';
    const g = options.snrGamma ?? null;
    if (g !== null && !(Number.isFinite(g) && g > 0)) throw new InvalidArgumentError(`snrGamma must be a positive number (or null for no weighting), got ${g}`);
    this.snrGamma = g;
  }

  /** Min-SNR-γ of the epsilon loss, or null for none (see `GaussianDiffusionOptions.snrGamma`). */
  readonly snrGamma: number | null;

  /** `min(SNR(t), γ) / SNR(t)` per sample, or null without `snrGamma`. */
  snrWeights(t: Int32Array): Float32Array | null {
    const g = this.snrGamma;
    if (g === null) return null;
    const ab = this.arrays.alphasCumprod;
    return Float32Array.from(t, (i) => {
      const snr = ab[i]! / (1 - ab[i]!);
      return Math.min(snr, g) / snr;
    });
  }

  /** Number of respaced steps N′. */
  get numTimesteps(): number {
    return this.arrays.numTimesteps;
  }
  /** Respaced index → original timestep. */
  get timestepMap(): Int32Array {
    return this.arrays.timestepMap;
  }
  get betas(): Float32Array {
    return this.arrays.betas;
  }
  get alphasCumprod(): Float32Array {
    return this.arrays.alphasCumprod;
  }

  /** True when the model outputs 2C channels (epsilon and the variance value). */
  get learnsSigma(): boolean {
    return this.modelVarType === 'learned_range';
  }

  /** Original timesteps for respaced indices, as the float32 `[B]` tensor the model is called with. */
  modelTimesteps(t: Int32Array): tf.Tensor {
    const v = new Float32Array(t.length);
    for (let i = 0; i < t.length; i++) v[i] = this.arrays.timestepMap[t[i]!]!;
    return tf.tensor1d(v, 'float32');
  }

  /** `x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε`. */
  qSample(xStart: tf.Tensor, t: TimestepsLike, noise: tf.Tensor): tf.Tensor {
    const ti = toTimesteps(t, xStart.shape[0]!, this.numTimesteps);
    if (!noise.shape.every((d, i) => d === xStart.shape[i]) || noise.rank !== xStart.rank) {
      throw new InvalidArgumentError(`noise has shape [${noise.shape.join(', ')}], expected xStart's [${xStart.shape.join(', ')}]`);
    }
    return tf.tidy(() => tf.reshape(this.qSampleFlat(flat(xStart), ti, flat(noise)), xStart.shape));
  }

  private qSampleFlat(x0: tf.Tensor, t: Int32Array, noise: tf.Tensor): tf.Tensor {
    return tf.add(tf.mul(extract(this.arrays.sqrtAlphasCumprod, t), x0), tf.mul(extract(this.arrays.sqrtOneMinusAlphasCumprod, t), noise));
  }

  /** Mean and (log-)variance of q(x_{t−1} | x_t, x_0). */
  qPosteriorMeanVariance(xStart: tf.Tensor, xT: tf.Tensor, t: TimestepsLike): { mean: tf.Tensor; variance: tf.Tensor; logVarianceClipped: tf.Tensor } {
    const ti = toTimesteps(t, xT.shape[0]!, this.numTimesteps);
    return tf.tidy(() => {
      const x = flat(xT);
      const one = tf.onesLike(x);
      const r = (v: tf.Tensor) => tf.reshape(v, xT.shape);
      return {
        mean: r(this.posteriorMeanFlat(flat(xStart), x, ti)),
        variance: r(tf.mul(one, extract(this.arrays.posteriorVariance, ti))),
        logVarianceClipped: r(tf.mul(one, extract(this.arrays.posteriorLogVarianceClipped, ti))),
      };
    });
  }

  private posteriorMeanFlat(x0: tf.Tensor, xT: tf.Tensor, t: Int32Array): tf.Tensor {
    return tf.add(tf.mul(extract(this.arrays.posteriorMeanCoef1, t), x0), tf.mul(extract(this.arrays.posteriorMeanCoef2, t), xT));
  }

  /** `x̂0 = √(1/ᾱ_t)·x_t − √(1/ᾱ_t − 1)·ε`. */
  predictXstartFromEps(xT: tf.Tensor, t: TimestepsLike, eps: tf.Tensor): tf.Tensor {
    const ti = toTimesteps(t, xT.shape[0]!, this.numTimesteps);
    return tf.tidy(() => tf.reshape(this.predictXstartFlat(flat(xT), ti, flat(eps)), xT.shape));
  }

  private predictXstartFlat(xT: tf.Tensor, t: Int32Array, eps: tf.Tensor): tf.Tensor {
    return tf.sub(tf.mul(extract(this.arrays.sqrtRecipAlphasCumprod, t), xT), tf.mul(extract(this.arrays.sqrtRecipm1AlphasCumprod, t), eps));
  }

  /**
   * The model's reverse step p(x_{t−1} | x_t) from a model output: learned-range variance
   * (`frac = (v+1)/2`, `log σ² = frac·log β′_t + (1 − frac)·log σ̃²_clip,t`), epsilon prediction.
   */
  pMeanVariance(args: PMeanVarianceArgs): PMeanVariance {
    const { modelOutput, x } = args;
    const batch = x.shape[0]!;
    const t = toTimesteps(args.t, batch, this.numTimesteps);
    const c = x.shape[1]!;
    const wantC = this.learnsSigma ? 2 * c : c;
    if (modelOutput.rank !== x.rank || modelOutput.shape[0] !== batch || modelOutput.shape[1] !== wantC || !modelOutput.shape.slice(2).every((d, i) => d === x.shape[i + 2])) {
      throw new InvalidArgumentError(
        `model output has shape [${modelOutput.shape.join(', ')}], expected [${batch}, ${wantC}, ${x.shape.slice(2).join(', ')}]`,
        { hint: this.learnsSigma ? 'a learned-sigma model outputs 2x the latent channels (epsilon, then the variance value)' : undefined },
      );
    }
    return tf.tidy(() => {
      const r = this.pMeanVarianceFlat(modelOutput, flat(x), t, args.clipDenoised ?? false);
      const back = (v: tf.Tensor) => tf.reshape(v, x.shape);
      return { mean: back(r.mean), variance: back(tf.exp(r.logVariance)), logVariance: back(r.logVariance), predXstart: back(r.predXstart) };
    });
  }

  /** pMeanVariance on the flat `[B, N]` layout (no checks). */
  private pMeanVarianceFlat(modelOutput: tf.Tensor, x: tf.Tensor, t: Int32Array, clip: boolean): { mean: tf.Tensor; logVariance: tf.Tensor; predXstart: tf.Tensor } {
    let out: tf.Tensor;
    let logVariance: tf.Tensor;
    if (this.learnsSigma) {
      const [eps, v] = splitChannels(modelOutput);
      out = eps;
      const minLog = extract(this.arrays.posteriorLogVarianceClipped, t);
      const maxLog = extract(this.arrays.logBetas, t);
      const frac = tf.div(tf.add(v, 1), 2);
      logVariance = tf.add(tf.mul(frac, maxLog), tf.mul(tf.sub(1, frac), minLog));
    } else {
      out = flat(modelOutput);
      logVariance = tf.mul(tf.onesLike(x), extract(this.fixedVariance().lv, t));
    }
    let predXstart = this.modelMeanType === 'start_x' ? out : this.predictXstartFlat(x, t, out);
    if (clip) predXstart = tf.clipByValue(predXstart, -1, 1);
    return { mean: this.posteriorMeanFlat(predXstart, x, t), logVariance, predXstart };
  }

  private fixedCache: { v: Float32Array; lv: Float32Array } | null = null;
  /** Fixed (log-)variance per step when the variance is not learned. FIXED_SMALL: the posterior variance; FIXED_LARGE: [σ̃²₁, β′₁, β′₂, ...] (the reference's intent; its own branch crashes). */
  fixedVariance(): { v: Float32Array; lv: Float32Array } {
    if (this.fixedCache) return this.fixedCache;
    const a = this.arrays;
    const n = a.numTimesteps;
    let v: Float32Array;
    let lv: Float32Array;
    if (this.modelVarType === 'fixed_small') {
      v = a.posteriorVariance;
      lv = a.posteriorLogVarianceClipped;
    } else {
      v = new Float32Array(n);
      lv = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        v[i] = i === 0 ? a.posteriorVariance[Math.min(1, n - 1)]! : a.betas[i]!;
        lv[i] = Math.fround(Math.log(v[i]!));
      }
    }
    this.fixedCache = { v, lv };
    return this.fixedCache;
  }

  /**
   * The variational-bound term in bits: KL(q(x_{t−1}|x_t,x_0) ‖ p(x_{t−1}|x_t)) for t > 0 and the
   * discretised decoder NLL at t = 0, each averaged with `meanFlat` (frame mask applied).
   */
  vbTermsBpd(modelOutput: tf.Tensor, xStart: tf.Tensor, xT: tf.Tensor, t: TimestepsLike, mask?: FrameMaskLike): tf.Tensor {
    const ti = toTimesteps(t, xT.shape[0]!, this.numTimesteps);
    return tf.tidy(() => {
      const sel = mask !== undefined ? expandFrameMask(prepareMask(mask, xStart), xStart.shape) : undefined;
      return this.vbFlat(modelOutput, flat(xStart), flat(xT), ti, sel);
    });
  }

  private vbFlat(modelOutput: tf.Tensor, x0: tf.Tensor, xT: tf.Tensor, t: Int32Array, sel: tf.Tensor | undefined): tf.Tensor {
    const mean = (v: tf.Tensor) => (sel ? maskedMean(v, sel) : tf.mean(v, 1));
    const trueMean = this.posteriorMeanFlat(x0, xT, t);
    const trueLogVar = tf.mul(tf.onesLike(xT), extract(this.arrays.posteriorLogVarianceClipped, t));
    const out = this.pMeanVarianceFlat(modelOutput, xT, t, false);
    const kl = tf.div(mean(normalKl(trueMean, trueLogVar, out.mean, out.logVariance)), LN2);
    const nll = tf.div(mean(tf.neg(discretizedGaussianLogLikelihood(x0, out.mean, tf.mul(0.5, out.logVariance)))), LN2);
    const isZero = tf.tensor1d(Uint8Array.from(t, (v) => (v === 0 ? 1 : 0)), 'bool');
    return tf.where(isZero, nll, kl);
  }

  /** Per-sample loss weights (none for plain IDDPM; SpeeDiT overrides). */
  protected lossWeights(_t: Int32Array): Float32Array | null {
    return null;
  }

  /** Resolves `t` for a training step (SpeeDiT may draw it). */
  protected resolveTrainingTimesteps(t: TimestepsLike | undefined, batch: number, _rng: Rng | undefined): Int32Array {
    if (t === undefined) {
      throw new InvalidArgumentError('trainingLosses: t is required', {
        hint: 'draw it with scheduler.sampleTimesteps(batchSize, rng) and pass it, so that a resumed run is exact',
      });
    }
    return toTimesteps(t, batch, this.numTimesteps);
  }

  /**
   * Training losses for one batch. With a frame mask, condition frames (false) get the t = 0
   * noise level with the same ε, are left out of the loss, and the mask goes to the model as `xMask`.
   */
  trainingLosses(args: TrainingLossesArgs): TrainingLosses {
    const { model, xStart } = args;
    const batch = xStart.shape[0]!;
    const t = this.resolveTrainingTimesteps(args.t, batch, args.rng);
    if (args.noise && (args.noise.rank !== xStart.rank || !args.noise.shape.every((d, i) => d === xStart.shape[i]))) {
      throw new InvalidArgumentError(`noise has shape [${args.noise.shape.join(', ')}], expected xStart's [${xStart.shape.join(', ')}]`);
    }
    if (!args.noise && !args.rng) {
      throw new InvalidArgumentError('trainingLosses: give either noise or rng', { hint: 'pass rng (a seeded Rng) to draw the noise' });
    }
    const isKl = this.lossType === 'kl' || this.lossType === 'rescaled_kl';
    if (isKl && args.mask) throw new InvalidArgumentError('a frame mask is not supported with KL loss types (as in the reference)');
    const own = this.lossWeights(t);
    const snr = this.snrWeights(t);
    const weights = own && snr ? own.map((w, i) => w * snr[i]!) : (own ?? snr);
    const out = tf.tidy(() => {
      const noise = args.noise ?? randn(args.rng!, xStart.shape);
      const mask = args.mask !== undefined ? prepareMask(args.mask, xStart) : undefined;
      const sel = mask ? expandFrameMask(mask, xStart.shape) : undefined;
      const x0 = flat(xStart);
      const eps = flat(noise);
      let xT = this.qSampleFlat(x0, t, eps);
      if (sel) xT = tf.where(sel, xT, this.qSampleFlat(x0, new Int32Array(batch), eps));
      const kwargs: Record<string, unknown> = { ...(args.modelKwargs ?? {}) };
      if (mask && kwargs.xMask === undefined) kwargs.xMask = mask;
      const modelOutput = callModel(model, { ...kwargs, x: tf.reshape(xT, xStart.shape), timestep: this.modelTimesteps(t) });
      const c = xStart.shape[1]!;
      const wantC = this.learnsSigma ? 2 * c : c;
      if (modelOutput.shape[0] !== batch || modelOutput.shape[1] !== wantC || modelOutput.size !== (xStart.size / c) * wantC) {
        throw new InvalidArgumentError(
          `model output has shape [${modelOutput.shape.join(', ')}]; expected [${batch}, ${wantC}, ${xStart.shape.slice(2).join(', ')}]`,
          { hint: this.learnsSigma ? 'a learned-sigma model outputs 2x the latent channels (epsilon, then the variance value)' : undefined },
        );
      }
      if (isKl) {
        let vb = this.vbFlat(modelOutput, x0, xT, t, undefined);
        if (this.lossType === 'rescaled_kl') vb = tf.mul(vb, this.numTimesteps);
        return { loss: vb, mse: tf.zerosLike(vb), vb };
      }
      let epsHat: tf.Tensor;
      let vb: tf.Tensor | undefined;
      if (this.learnsSigma) {
        const [e, v] = splitChannels(modelOutput);
        epsHat = e;
        // Learn the variance through the bound without letting it move the mean prediction.
        const frozen = tf.concat([tf.reshape(stopGradient(e), [batch, 1, -1]), tf.reshape(v, [batch, 1, -1])], 1);
        vb = this.vbFlat(frozen, x0, xT, t, sel);
        if (this.lossType === 'rescaled_mse') vb = tf.mul(vb, this.numTimesteps / 1000);
      } else {
        epsHat = flat(modelOutput);
      }
      const target = this.modelMeanType === 'start_x' ? x0 : eps;
      let sq = tf.square(tf.sub(target, epsHat));
      if (weights) sq = tf.mul(sq, tf.tensor2d(weights, [batch, 1]));
      const mse = sel ? maskedMean(sq, sel) : tf.mean(sq, 1);
      const loss = vb ? tf.add(mse, vb) : mse;
      return vb ? { loss, mse, vb } : { loss, mse };
    });
    return { ...out, t };
  }
}

function prepareMask(mask: FrameMaskLike, xStart: tf.Tensor): tf.Tensor {
  if (xStart.rank !== 5) throw new InvalidArgumentError(`a frame mask needs 5-D latents [B, C, T, H, W], got rank ${xStart.rank}`);
  return toFrameMask(mask, xStart.shape[0]!, xStart.shape[2]!);
}

function callModel(model: DenoiseFn, args: { x: tf.Tensor; timestep: tf.Tensor; [k: string]: unknown }): tf.Tensor {
  const out = model(args);
  if (!(out instanceof tf.Tensor)) throw new InvalidArgumentError('the model (DenoiseFn) must return a tf.Tensor');
  return out;
}
