/**
 * IDDPM (registered "iddpm" in the reference): the respaced Gaussian diffusion with the
 * ancestral sampler, classifier-free guidance on the first `cfgChannel` channels and the
 * masked-frame (edit ratio) mechanism.
 */
import { tf, InvalidArgumentError } from '@opensora/core';
import type { Rng } from '@opensora/core';
import { GaussianDiffusion, type LossType, type ModelVarType } from './diffusion.js';
import { GuidedModel } from './guidance.js';
import { anyEntry, checkSampleArgs, copyFrames, initialLatent, injectNoise, layoutOf, planEdits, StepProgress, xMaskAt } from './sampling.js';
import { fillStandardNormal } from './util.js';
import type { SampleArgs, Scheduler, SchedulerType } from './types.js';

export interface IDDPMOptions {
  /** Respace to this many steps (`timestepRespacing = String(n)`); exclusive with `timestepRespacing`. */
  numSamplingSteps?: number;
  /** Respacing in any `spaceTimesteps` form ("100", "10,15,20" or section counts as an array, "ddim50"); `''`/unset keeps all `diffusionSteps`. */
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
  /** Min-SNR-γ weighting of the epsilon loss in training; unset/null: none (the reference). */
  snrGamma?: number | null;
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
  snrGamma: number | null;
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
    snrGamma: o.snrGamma ?? null,
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
    const lay = layoutOf(z);
    const { batch, channels: c, size } = lay;
    const per = size / batch / c;
    const a = this.arrays;
    const learned = this.learnsSigma;
    const fixedLv = learned ? null : this.fixedVariance().lv;
    const startX = this.modelMeanType === 'start_x';
    const guided = new GuidedModel(args.model, batch, text, args.modelKwargs, this.cfgScale, this.cfgChannel);
    const progress = new StepProgress(args.progress, n, 'iddpm');
    let x = initialLatent(args, plan, lay, n);
    const start = plan && this.keepConditionExact ? x.slice() : null;
    try {
      for (let i = n - 1; i >= 0; i--) {
        const x0 = x;
        let cur = x0;
        if (plan && anyEntry(plan, (m) => m === i)) {
          const epsP = fillStandardNormal(rng, new Float32Array(size));
          cur = injectNoise(x0, plan, lay, i, a.sqrtAlphasCumprod[i]!, a.sqrtOneMinusAlphasCumprod[i]!, epsP);
        }
        const xMask = xMaskAt(plan, i, this.editEntryOffByOne);
        const { data, channels: k } = guided.call(cur, lay.shape, a.timestepMap[i]!, xMask, lay.frames);
        if (k !== (learned ? 2 * c : c)) {
          throw new InvalidArgumentError(`the model output has ${k} channels; expected ${learned ? 2 * c : c}`, {
            hint: learned ? 'a learned-sigma model outputs 2x the latent channels (epsilon, then the variance value)' : undefined,
          });
        }
        const noise = i !== 0 ? fillStandardNormal(rng, new Float32Array(size)) : null;
        const sr = a.sqrtRecipAlphasCumprod[i]!;
        const srm1 = a.sqrtRecipm1AlphasCumprod[i]!;
        const c1 = a.posteriorMeanCoef1[i]!;
        const c2 = a.posteriorMeanCoef2[i]!;
        const minLog = a.posteriorLogVarianceClipped[i]!;
        const maxLog = a.logBetas[i]!;
        const fixedStd = fixedLv ? Math.exp(0.5 * fixedLv[i]!) : 0;
        const next = new Float32Array(size);
        for (let b = 0; b < batch; b++) {
          for (let ch = 0; ch < c; ch++) {
            const o = (b * c + ch) * per;
            const oe = (b * k + ch) * per;
            const ov = (b * k + c + ch) * per;
            for (let j = 0; j < per; j++) {
              const xv = cur[o + j]!;
              const e = data[oe + j]!;
              const xhat = startX ? e : sr * xv - srm1 * e;
              let v = c1 * xhat + c2 * xv;
              if (noise) {
                let std = fixedStd;
                if (learned) {
                  const frac = (data[ov + j]! + 1) / 2;
                  std = Math.exp(0.5 * (frac * maxLog + (1 - frac) * minLog));
                }
                v += std * noise[o + j]!;
              }
              next[o + j] = v;
            }
          }
        }
        if (plan && anyEntry(plan, (m) => m < i)) copyFrames(next, x0, plan, lay, (m) => m < i);
        x = next;
        progress.tick(n - i, a.timestepMap[i]!);
      }
    } finally {
      guided.dispose();
      progress.done();
    }
    if (start && plan) copyFrames(x, start, plan, lay, (m) => m === 0);
    return tf.tensor(x, lay.shape, 'float32');
  }
}
