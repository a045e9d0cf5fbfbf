/**
 * IDDPM (registered "iddpm" in the reference): the respaced Gaussian diffusion with the
 * ancestral sampler, classifier-free guidance on the first `cfgChannel` channels and the
 * masked-frame (edit ratio) mechanism.
 */
import { tf, InvalidArgumentError } from '@opensora/core';
import type { Rng } from '@opensora/core';
import { GaussianDiffusion, type LossType, type ModelVarType } from './diffusion.js';
import { GuidedModel } from './guidance.js';
import { checkSampleArgs, initialLatent, pasteConditions, planEdits, StepProgress } from './sampling.js';
import type { SampleArgs, Scheduler, SchedulerType } from './types.js';
import { allOf, anyOf, frameSelect, randn } from './util.js';

export interface IDDPMOptions {
  /** Respace to this many steps (`timestepRespacing = String(n)`); exclusive with `timestepRespacing`. */
  numSamplingSteps?: number;
  /** Kept timesteps in any `spaceTimesteps` form; `''`/unset keeps all `diffusionSteps`. */
  timestepRespacing?: string | number | readonly number[];
  /** Guidance scale s (reference default 4.0; the official inference config uses 7.0). */
  cfgScale?: number;
  /** Guide only the first c output channels (official config: 3); unset = half the output channels. */
  cfgChannel?: number | null;
  /** Base schedule length (1000). */
  diffusionSteps?: number;
  /** The model outputs epsilon and a variance value (learned range). Default true. */
  learnSigma?: boolean;
  /** Without learned sigma: fixed small (posterior) variance instead of fixed large. */
  sigmaSmall?: boolean;
  /** The model predicts x0 instead of epsilon. */
  predictXstart?: boolean;
  /** Train on the rescaled variational bound only (RESCALED_KL). */
  useKl?: boolean;
  /** Scale the vb term by N′/1000 (RESCALED_MSE). */
  rescaleLearnedSigmas?: boolean;
  /**
   * Reference timing of the edit mask: at a frame's entry step (where it is re-noised) the model
   * is still told the frame is clean (`xMask` false). Default true (reference behaviour); false
   * marks the frame as generated from its entry step on.
   */
  editEntryOffByOne?: boolean;
  /** Paste the clean condition back over ratio-0 frames after the last step (the reference leaves the re-predicted frame). Default false. */
  keepConditionExact?: boolean;
}

export function diffusionOptionsFrom(o: IDDPMOptions): {
  diffusionSteps: number;
  timestepRespacing: string | number | readonly number[] | undefined;
  modelMeanType: 'epsilon' | 'start_x';
  modelVarType: ModelVarType;
  lossType: LossType;
} {
  if (o.numSamplingSteps !== undefined && o.timestepRespacing !== undefined && o.timestepRespacing !== '') {
    throw new InvalidArgumentError('give numSamplingSteps or timestepRespacing, not both (as in the reference)');
  }
  const learn = o.learnSigma ?? true;
  return {
    diffusionSteps: o.diffusionSteps ?? 1000,
    timestepRespacing: o.numSamplingSteps !== undefined ? String(o.numSamplingSteps) : o.timestepRespacing,
    modelMeanType: o.predictXstart ? 'start_x' : 'epsilon',
    modelVarType: learn ? 'learned_range' : o.sigmaSmall ? 'fixed_small' : 'fixed_large',
    lossType: o.useKl ? 'rescaled_kl' : o.rescaleLearnedSigmas ? 'rescaled_mse' : 'mse',
  };
}

export class IDDPM extends GaussianDiffusion implements Scheduler {
  readonly type: SchedulerType = 'iddpm';
  readonly cfgScale: number;
  readonly cfgChannel: number | null;
  readonly editEntryOffByOne: boolean;
  readonly keepConditionExact: boolean;
  readonly options: Readonly<IDDPMOptions>;

  constructor(options: IDDPMOptions = {}) {
    super(diffusionOptionsFrom(options));
    this.options = { ...options };
    this.cfgScale = options.cfgScale ?? 4.0;
    this.cfgChannel = options.cfgChannel ?? null;
    this.editEntryOffByOne = options.editEntryOffByOne ?? true;
    this.keepConditionExact = options.keepConditionExact ?? false;
    if (!Number.isFinite(this.cfgScale)) throw new InvalidArgumentError(`cfgScale must be a finite number, got ${this.cfgScale}`);
  }

  get numSamplingSteps(): number {
    return this.numTimesteps;
  }

  /** Uniform timestep indices in `[0, numTimesteps)`, as the training script draws them. */
  sampleTimesteps(batchSize: number, rng: Rng): Int32Array {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new InvalidArgumentError(`batchSize must be a positive integer, got ${batchSize}`);
    const out = new Int32Array(batchSize);
    for (let i = 0; i < batchSize; i++) out[i] = rng.int(this.numTimesteps);
    return out;
  }

  /**
   * The ancestral sampling loop over respaced steps N′−1 … 0 (the reference's `IDDPM.sample` /
   * `p_sample_loop` with `clip_denoised = False`). The model is called with the original
   * timesteps. With `text.nullY`, classifier-free guidance runs on `[x; x]`; only the first
   * half is kept (the reference's second half never feeds back into it), so noise is drawn for
   * B rows. With an edit mask, per step and frame (m = entry step): frames with m == i are
   * re-noised to level i; `xMask = m > i` (or `m >= i` without the off-by-one); after the step,
   * frames with m < i are reset to their value before the step. Noise order per step: the
   * re-noising ε′ (only when some frame enters), the model, the step noise ε (not at i = 0).
   */
  sample(args: SampleArgs): tf.Tensor {
    const text = checkSampleArgs(args);
    const n = this.numTimesteps;
    const plan = planEdits(args, n);
    const { z, rng } = args;
    const batch = z.shape[0]!;
    const guided = new GuidedModel(args.model, batch, text, args.modelKwargs, this.cfgScale, this.cfgChannel);
    const progress = new StepProgress(args.progress, n, 'iddpm');
    let x = initialLatent(args, plan, n);
    const start = plan && this.keepConditionExact ? x.clone() : null;
    const a = this.arrays;
    try {
      for (let i = n - 1; i >= 0; i--) {
        const next = tf.tidy(() => {
          const x0 = x;
          let cur = x0;
          let xMask: tf.Tensor | undefined;
          if (plan) {
            const { entry, batch: b, frames } = plan;
            if (anyOf(entry, (v) => v === i)) {
              const epsP = randn(rng, x0.shape);
              const xNoise = tf.add(tf.mul(a.sqrtAlphasCumprod[i]!, x0), tf.mul(a.sqrtOneMinusAlphasCumprod[i]!, epsP));
              cur = tf.where(frameSelect(entry, b, frames, (v) => v === i, true), xNoise, x0);
            }
            const gen = this.editEntryOffByOne ? (v: number) => v > i : (v: number) => v >= i;
            // An all-true xMask is numerically the same as none (the model skips its t0 path).
            if (!allOf(entry, gen)) xMask = frameSelect(entry, b, frames, gen, false);
          }
          const out = guided.call(cur, a.timestepMap[i]!, xMask);
          const pmv = this.pMeanVariance({ modelOutput: out, x: cur, t: i, clipDenoised: false });
          let sample = pmv.mean;
          if (i !== 0) sample = tf.add(sample, tf.mul(tf.exp(tf.mul(0.5, pmv.logVariance)), randn(rng, cur.shape)));
          if (plan && anyOf(plan.entry, (v) => v < i)) {
            sample = tf.where(frameSelect(plan.entry, plan.batch, plan.frames, (v) => v < i, true), x0, sample);
          }
          return sample;
        });
        x.dispose();
        x = next;
        progress.tick(n - i, a.timestepMap[i]!);
      }
    } catch (e) {
      x.dispose();
      start?.dispose();
      throw e;
    } finally {
      guided.dispose();
      progress.done();
    }
    if (start && plan) {
      const pasted = pasteConditions(x, start, plan);
      x.dispose();
      start.dispose();
      x = pasted;
    }
    return x;
  }
}
