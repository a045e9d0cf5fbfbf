/**
 * DPM-Solver++ (multistep, 2nd order; the reference's "dpm-solver") over the discrete linear
 * 1000-step schedule seen as a continuous VP process: `log α(t)` is the piecewise-linear
 * interpolation of `½·Σ log(1 − β)` at `t_n = (n + 1)/N`, time runs from 1 to 1/N uniformly
 * ("time_uniform"), and the model is called with `(t − 1/N)·N`. Classifier-free guidance and
 * the edit mask work as in the IDDPM sampler (the reference asserts there is no mask; the
 * mechanism here mirrors IDDPM's over the solver's steps).
 */
import { tf, InvalidArgumentError } from '@opensora/core';
import type { Rng } from '@opensora/core';
import { GuidedModel } from './guidance.js';
import { IDDPM } from './iddpm.js';
import { anyEntry, checkSampleArgs, copyFrames, initialLatent, injectNoise, layoutOf, planEdits, StepProgress, xMaskAt } from './sampling.js';
import { linearBetaSchedule } from './schedule.js';
import { fillStandardNormal } from './util.js';
import type { SampleArgs, Scheduler, SchedulerType, TrainingLosses, TrainingLossesArgs } from './types.js';

/** The discrete-time VP noise schedule of DPM-Solver (`NoiseScheduleVP('discrete', betas)`). */
export class NoiseScheduleVP {
  /** Number of discrete steps N. */
  readonly totalN: number;
  /** `t_n = (n + 1)/N` (float32 values). */
  readonly tArray: Float64Array;
  /** `log α_n = ½·Σ_{k≤n} log(1 − β_k)` (float32 values). */
  readonly logAlphaArray: Float64Array;
  readonly T = 1.0;

  constructor(betas: ArrayLike<number>) {
    const n = betas.length;
    this.totalN = n;
    this.tArray = new Float64Array(n);
    this.logAlphaArray = new Float64Array(n);
    let acc = 0;
    for (let i = 0; i < n; i++) {
      acc += Math.log(1 - betas[i]!);
      this.logAlphaArray[i] = Math.fround(0.5 * acc);
      this.tArray[i] = Math.fround((i + 1) / n);
    }
  }

  /** `log α(t)`: piecewise-linear in t through the keypoints, extended linearly beyond them. */
  marginalLogMeanCoeff(t: number): number {
    return interp(t, this.tArray, this.logAlphaArray);
  }
  marginalAlpha(t: number): number {
    return Math.exp(this.marginalLogMeanCoeff(t));
  }
  marginalStd(t: number): number {
    return Math.sqrt(1 - Math.exp(2 * this.marginalLogMeanCoeff(t)));
  }
  /** Half log-SNR `λ(t) = log α − log σ`. */
  marginalLambda(t: number): number {
    const la = this.marginalLogMeanCoeff(t);
    return la - 0.5 * Math.log(1 - Math.exp(2 * la));
  }
  /** The discrete-model input for continuous time t: `(t − 1/N)·N` (999 at t = 1, 0 at t = 1/N). */
  modelTime(t: number): number {
    return (t - 1 / this.totalN) * this.totalN;
  }
}

/** Piecewise-linear interpolation through ascending `xp`, extrapolating with the outer segments. */
function interp(x: number, xp: Float64Array, yp: Float64Array): number {
  const k = xp.length;
  if (k === 1) return yp[0]!;
  let i: number;
  if (x <= xp[0]!) i = 0;
  else if (x >= xp[k - 1]!) i = k - 2;
  else {
    let lo = 0;
    let hi = k - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (xp[mid]! <= x) lo = mid;
      else hi = mid;
    }
    i = lo;
  }
  const x0 = xp[i]!;
  const x1 = xp[i + 1]!;
  return yp[i]! + ((x - x0) * (yp[i + 1]! - yp[i]!)) / (x1 - x0);
}

export interface DPMSolverOptions {
  /** Number of solver steps (= model evaluations). Default 20; 15 to 25 give usable samples. */
  numSamplingSteps?: number;
  /** Guidance scale (reference default 4.0). At 1 the unconditional pass is skipped, as in the reference's wrapper. */
  cfgScale?: number;
  /** Guide only the first c epsilon channels; unset = all (the reference guides all 4). */
  cfgChannel?: number | null;
  /** Base schedule length (1000). */
  diffusionSteps?: number;
  /** Use first order on the final step when there are fewer than 10 steps (the reference's default). */
  lowerOrderFinal?: boolean;
  /** Edit-mask entry timing, as in IDDPM (default true: `xMask` false at the entry step). */
  editEntryOffByOne?: boolean;
  /** Paste the clean condition back over ratio-0 frames at the end. Default false. */
  keepConditionExact?: boolean;
}

export class DPMSolver implements Scheduler {
  readonly type: SchedulerType = 'dpm-solver';
  readonly numSamplingSteps: number;
  readonly cfgScale: number;
  readonly cfgChannel: number | null;
  readonly lowerOrderFinal: boolean;
  readonly editEntryOffByOne: boolean;
  readonly keepConditionExact: boolean;
  readonly noiseSchedule: NoiseScheduleVP;
  /** The float64 base betas. */
  readonly betas: Float64Array;
  readonly options: Readonly<DPMSolverOptions>;
  private trainer: IDDPM | null = null;

  constructor(options: DPMSolverOptions = {}) {
    this.options = { ...options };
    this.numSamplingSteps = options.numSamplingSteps ?? 20;
    if (!Number.isInteger(this.numSamplingSteps) || this.numSamplingSteps < 2) {
      throw new InvalidArgumentError(`dpm-solver numSamplingSteps must be an integer >= 2 (its order), got ${this.numSamplingSteps}`);
    }
    this.cfgScale = options.cfgScale ?? 4.0;
    if (!Number.isFinite(this.cfgScale)) throw new InvalidArgumentError(`cfgScale must be a finite number, got ${this.cfgScale}`);
    this.cfgChannel = options.cfgChannel ?? null;
    this.lowerOrderFinal = options.lowerOrderFinal ?? true;
    this.editEntryOffByOne = options.editEntryOffByOne ?? true;
    this.keepConditionExact = options.keepConditionExact ?? false;
    this.betas = linearBetaSchedule(options.diffusionSteps ?? 1000);
    this.noiseSchedule = new NoiseScheduleVP(this.betas);
  }

  get numTimesteps(): number {
    return this.noiseSchedule.totalN;
  }

  /** The continuous times `linspace(1, 1/N, steps + 1)` of the solver. */
  timeSteps(): Float64Array {
    const s = this.numSamplingSteps;
    const tT = this.noiseSchedule.T;
    const t0 = 1 / this.noiseSchedule.totalN;
    const out = new Float64Array(s + 1);
    for (let j = 0; j <= s; j++) out[j] = Math.fround(tT + ((t0 - tT) * j) / s);
    out[s] = Math.fround(t0);
    return out;
  }

  /** The model inputs at the solver's evaluation times (`(t − 1/N)·N` for the first `steps` times). */
  modelTimesteps(): Float64Array {
    const ts = this.timeSteps();
    return Float64Array.from(ts.subarray(0, this.numSamplingSteps), (t) => this.noiseSchedule.modelTime(t));
  }

  /** Training goes through the 1000-step IDDPM process (the same model objective). */
  private trainingDiffusion(): IDDPM {
    this.trainer ??= new IDDPM({ diffusionSteps: this.noiseSchedule.totalN });
    return this.trainer;
  }
  sampleTimesteps(batchSize: number, rng: Rng): Int32Array {
    return this.trainingDiffusion().sampleTimesteps(batchSize, rng);
  }
  trainingLosses(args: TrainingLossesArgs): TrainingLosses {
    return this.trainingDiffusion().trainingLosses(args);
  }

  /**
   * Multistep DPM-Solver++ of order 2 (first order on the first step, and on the last when
   * `lowerOrderFinal` and fewer than 10 steps). The model output's first C channels are
   * epsilon (a learned-sigma model's variance channels are dropped). With an edit mask, the
   * remaining-step index i = steps−1−j of evaluation j plays IDDPM's step index: frames whose
   * entry step m equals i are re-noised to the current level before the evaluation, frames with
   * m < i stay frozen (their data prediction is the frozen latent itself), a frame's first step
   * after entering is first order (it has no history), and `xMask` follows the same rule as IDDPM's.
   */
  sample(args: SampleArgs): tf.Tensor {
    const text = checkSampleArgs(args);
    const steps = this.numSamplingSteps;
    const plan = planEdits(args, steps);
    const { z, rng } = args;
    const lay = layoutOf(z);
    const { batch, channels: c, size } = lay;
    const per = size / batch / c;
    const ns = this.noiseSchedule;
    const ts = this.timeSteps();
    const guided = new GuidedModel(args.model, batch, text, args.modelKwargs, this.cfgScale, this.cfgChannel, true);
    const progress = new StepProgress(args.progress, steps, 'dpm-solver');
    let x = initialLatent(args, plan, lay, steps);
    const start = plan && this.keepConditionExact ? x.slice() : null;
    const hist: { t: number; d: Float32Array }[] = [];
    try {
      for (let j = 0; j < steps; j++) {
        const s = ts[j]!;
        const tNext = ts[j + 1]!;
        const i = steps - 1 - j;
        const alphaS = ns.marginalAlpha(s);
        const sigmaS = ns.marginalStd(s);
        const tModel = ns.modelTime(s);
        const x0 = x;
        let cur = x0;
        if (plan && anyEntry(plan, (m) => m === i)) {
          cur = injectNoise(x0, plan, lay, i, alphaS, sigmaS, fillStandardNormal(rng, new Float32Array(size)));
        }
        const { data, channels: k } = guided.call(cur, lay.shape, tModel, xMaskAt(plan, i, this.editEntryOffByOne), lay.frames);
        if (k !== c && k !== 2 * c) throw new InvalidArgumentError(`model output has ${k} channels; expected ${c} (epsilon) or ${2 * c}`);
        // Data prediction D_s = (x − σ_s ε)/α_s (a learned-sigma model's variance channels are dropped).
        const d = new Float32Array(size);
        for (let b = 0; b < batch; b++) {
          for (let ch = 0; ch < c; ch++) {
            const o = (b * c + ch) * per;
            const oe = (b * k + ch) * per;
            for (let q = 0; q < per; q++) d[o + q] = (cur[o + q]! - sigmaS * data[oe + q]!) / alphaS;
          }
        }
        if (plan) {
          // Frozen frames: their data prediction is the frozen latent itself.
          if (anyEntry(plan, (m) => m < i)) copyFrames(d, cur, plan, lay, (m) => m < i);
          // A frame entering now has no history: its previous prediction is the current one (first-order step).
          if (hist.length > 0 && anyEntry(plan, (m) => m === i)) copyFrames(hist[hist.length - 1]!.d, d, plan, lay, (m) => m === i);
        }
        hist.push({ t: s, d });
        if (hist.length > 2) hist.shift();
        const order = j === 0 || (this.lowerOrderFinal && steps < 10 && j === steps - 1) ? 1 : 2;
        const lamS = ns.marginalLambda(s);
        const h = ns.marginalLambda(tNext) - lamS;
        const ratio = ns.marginalStd(tNext) / sigmaS;
        const alphaT = ns.marginalAlpha(tNext);
        const phi1 = Math.expm1(-h);
        const k1 = alphaT * phi1;
        const next = new Float32Array(size);
        if (order === 1) {
          for (let q = 0; q < size; q++) next[q] = ratio * cur[q]! - k1 * d[q]!;
        } else {
          const prev = hist[0]!;
          const r0 = (lamS - ns.marginalLambda(prev.t)) / h;
          const k2 = (0.5 * k1) / r0;
          const pd = prev.d;
          for (let q = 0; q < size; q++) next[q] = ratio * cur[q]! - k1 * d[q]! - k2 * (d[q]! - pd[q]!);
        }
        if (plan && anyEntry(plan, (m) => m < i)) copyFrames(next, x0, plan, lay, (m) => m < i);
        x = next;
        progress.tick(j + 1, tModel);
      }
    } finally {
      guided.dispose();
      progress.done();
    }
    if (start && plan) copyFrames(x, start, plan, lay, (m) => m === 0);
    return tf.tensor(x, lay.shape, 'float32');
  }
}
