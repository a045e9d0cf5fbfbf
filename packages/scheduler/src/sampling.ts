/** Pieces shared by the samplers: argument checks, the edit-mask plan, progress. */
import { tf, createProgress, InvalidArgumentError } from '@opensora/core';
import type { Progress } from '@opensora/core';
import { editEntryStep } from './schedule.js';
import type { ProgressInfo, SampleArgs, TextConditioning } from './types.js';
import { frameSelect, toEditRatios } from './util.js';

/** The edit-mask plan of a sampling run over `numSteps` steps. */
export interface EditPlan {
  /** Entry step per [b, f]: `trunc(float32(ratio)·N)`; N = never entered (generated throughout). */
  entry: Int32Array;
  batch: number;
  frames: number;
}

export function planEdits(args: SampleArgs, numSteps: number): EditPlan | null {
  if (args.mask === undefined) return null;
  const { z } = args;
  if (z.rank !== 5) throw new InvalidArgumentError(`an edit mask needs 5-D latents z [B, C, T, H, W], got rank ${z.rank}`);
  const batch = z.shape[0]!;
  const frames = z.shape[2]!;
  const ratios = toEditRatios(args.mask, batch, frames);
  const entry = new Int32Array(ratios.length);
  for (let i = 0; i < ratios.length; i++) entry[i] = editEntryStep(ratios[i]!, numSteps);
  return { entry, batch, frames };
}

export function checkSampleArgs(args: SampleArgs): TextConditioning | undefined {
  const { z } = args;
  if (!(z instanceof tf.Tensor)) throw new InvalidArgumentError('sample: z must be a tf.Tensor [B, C, T, H, W]');
  if (z.rank < 2) throw new InvalidArgumentError(`sample: z must be at least [B, C], got shape [${z.shape.join(', ')}]`);
  if (!args.rng || typeof args.rng.normal !== 'function') {
    throw new InvalidArgumentError('sample: rng (a seeded Rng from @opensora/core) is required', { hint: 'new Rng(seed)' });
  }
  if (typeof args.model !== 'function') throw new InvalidArgumentError('sample: model must be a function (DenoiseFn)');
  if (args.xCond && (args.xCond.rank !== z.rank || !args.xCond.shape.every((d, i) => d === z.shape[i]))) {
    throw new InvalidArgumentError(`xCond has shape [${args.xCond.shape.join(', ')}], expected z's [${z.shape.join(', ')}]`);
  }
  if (args.xCond && args.mask === undefined) {
    throw new InvalidArgumentError('sample: xCond needs an edit mask saying which frames are conditions');
  }
  return args.text ?? args.prompts;
}

/** The starting latent: `z`, with `xCond` on the frames whose ratio is below 1. */
export function initialLatent(args: SampleArgs, plan: EditPlan | null, numSteps: number): tf.Tensor {
  if (!plan || !args.xCond) return args.z.clone();
  return tf.tidy(() => {
    const sel = frameSelect(plan.entry, plan.batch, plan.frames, (v) => v < numSteps, true);
    return tf.where(sel, args.xCond!, args.z);
  });
}

/** Frames with ratio 0 (entry step 0) pasted back from the clean start (`keepConditionExact`). */
export function pasteConditions(x: tf.Tensor, start: tf.Tensor, plan: EditPlan): tf.Tensor {
  return tf.tidy(() => tf.where(frameSelect(plan.entry, plan.batch, plan.frames, (v) => v === 0, true), start, x));
}

export class StepProgress {
  private bar: Progress | null = null;
  constructor(
    private readonly spec: SampleArgs['progress'],
    private readonly total: number,
    label: string,
  ) {
    if (spec === true) this.bar = createProgress({ total, label, unit: 'steps' });
  }
  tick(step: number, timestep: number): void {
    if (this.bar) this.bar.tick(1, { t: timestep });
    else if (typeof this.spec === 'function') this.spec({ step, total: this.total, timestep } satisfies ProgressInfo);
  }
  done(): void {
    this.bar?.done();
  }
}
