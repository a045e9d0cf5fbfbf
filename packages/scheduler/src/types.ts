import type { tf, Rng } from '@opensora/core';

/**
 * A denoiser as the scheduler sees it: any function from the noisy latent and the (original,
 * not respaced) timestep to the model output. `x` is `[B, C, T, H, W]`, `timestep` a float32
 * `[B]` tensor, `xMask` an optional bool `[B, T]` tensor (true = frame is generated, false =
 * condition frame, modulated with timestep 0). Every other key (`y`, the text `mask`, the size
 * vectors...) is passed through from the caller. The output is `[B, 2C, T, H, W]` (epsilon and
 * the learned-range variance value, as STDiT2 with `pred_sigma`) or `[B, C, T, H, W]`.
 *
 * The scheduler disposes the returned tensor; the model must not keep it.
 */
export type DenoiseFn = (args: { x: tf.Tensor; timestep: tf.Tensor; xMask?: tf.Tensor; [k: string]: unknown }) => tf.Tensor;

/** Timestep indices: a `[B]` int tensor, an `Int32Array`, a number array, or one number for the whole batch. */
export type TimestepsLike = tf.Tensor | Int32Array | readonly number[] | number;

/** A frame mask `[B, T]`: a tensor (bool, or numbers where non-zero = true) or nested booleans. */
export type FrameMaskLike = tf.Tensor | readonly (readonly boolean[])[] | readonly (readonly number[])[];

/** Per-frame edit ratios `[B, T]` in [0, 1]: a tensor or nested numbers. */
export type EditMaskLike = tf.Tensor | readonly (readonly number[])[];

export interface TrainingLossesArgs {
  model: DenoiseFn;
  /** Clean latents `[B, C, T, H, W]` (or any `[B, C, ...]` when no frame mask is used). */
  xStart: tf.Tensor;
  /**
   * Timestep indices of the (respaced) process, one per sample. Required for `iddpm`; for
   * `iddpm-speed` it may be omitted, and is then drawn from SpeeDiT's distribution with `rng`.
   * The trainer passes explicit `t` (from `sampleTimesteps`) so that a resumed run is exact.
   */
  t?: TimestepsLike;
  /** Extra model inputs (`y`, `mask`, sizes...), passed through to the model. */
  modelKwargs?: Record<string, unknown>;
  /** The noise ε, same shape as `xStart`. Drawn from `rng` when omitted. */
  noise?: tf.Tensor;
  /** Training frame mask `[B, T]`, true = generate. Condition frames are noised at t = 0, left out of the loss, and passed to the model as `xMask`. */
  mask?: FrameMaskLike;
  /** Source of `noise` (and of `t` for SpeeDiT) when they are not given. */
  rng?: Rng;
}

/** Per-sample loss terms, each `[B]`. */
export interface TrainingLosses {
  /** mse + vb (what the trainer averages and backpropagates). */
  loss: tf.Tensor;
  mse: tf.Tensor;
  /** The variational-bound term for the learned variance (absent when the variance is not learned). */
  vb?: tf.Tensor;
  /** The timestep indices used (useful when SpeeDiT drew them). */
  t: Int32Array;
}

/** Text conditioning for sampling. */
export interface TextConditioning {
  /** Prompt embeddings `[B, 1, L, C]`. */
  y: tf.Tensor;
  /** Token mask `[B, L]` (1 = real token), passed to the model as `mask`; the null branch reuses it, as in the reference. */
  mask?: tf.Tensor;
  /**
   * The null caption for classifier-free guidance: `[B, 1, L, C]`, `[1, 1, L, C]`, `[1, L, C]` or
   * `[L, C]` (e.g. the model's `y_embedding`). Without it there is no guidance: one conditional pass per step.
   */
  nullY?: tf.Tensor;
}

export interface ProgressInfo {
  /** 1-based step number. */
  step: number;
  total: number;
  /** Original timestep the model was called with at this step. */
  timestep: number;
}

export interface SampleArgs {
  model: DenoiseFn;
  /** Initial latent `[B, C, T, H, W]`: Gaussian noise, possibly with condition latents already placed (as `apply_mask_strategy` does). */
  z: tf.Tensor;
  /** Text conditioning (`prompts` is accepted as an alias). */
  text?: TextConditioning;
  prompts?: TextConditioning;
  /** Other model inputs (`numFrames`, `height`, `width`, `ar`, `fps`...). Tensors with B rows are tiled to 2B for the guided pass. */
  modelKwargs?: Record<string, unknown>;
  /**
   * Per-frame edit ratios `[B, T]` in [0, 1] (1 = generate from noise; 0 = keep the condition
   * frame; in between = SDEdit from that fraction of the steps). Without it: plain generation, no `xMask`.
   */
  mask?: EditMaskLike;
  /** Clean condition latents `[B, C, T, H, W]`; when given they replace `z` on every frame whose ratio is below 1. */
  xCond?: tf.Tensor;
  /** Seeded source of all sampling noise. */
  rng: Rng;
  /** true: a progress bar (core's `createProgress`); a function: called after every step. */
  progress?: boolean | ((info: ProgressInfo) => void);
}

export type SchedulerType = 'iddpm' | 'iddpm-speed' | 'dpm-solver';

/** What every scheduler offers (`createScheduler` returns one). */
export interface Scheduler {
  readonly type: SchedulerType;
  /** Number of timesteps of the training process (what `sampleTimesteps` draws from). */
  readonly numTimesteps: number;
  /** Number of sampling steps `sample` takes. */
  readonly numSamplingSteps: number;
  sampleTimesteps(batchSize: number, rng: Rng): Int32Array;
  trainingLosses(args: TrainingLossesArgs): TrainingLosses;
  sample(args: SampleArgs): tf.Tensor;
}
