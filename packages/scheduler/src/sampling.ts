/** Pieces shared by the samplers: argument checks, the edit-mask plan, latent layout, progress. */
import { tf, createProgress, InvalidArgumentError } from '@opensora/core';
import type { Progress } from '@opensora/core';
import { editEntryStep } from './schedule.js';
import type { ProgressInfo, SampleArgs, TextConditioning } from './types.js';
import { toEditRatios } from './util.js';

/** Layout of a latent `[B, C, T, ...]` as flat data: per (b, c, f) a contiguous run of `hw` values. */
export interface Layout {
  shape: number[];
  batch: number;
  channels: number;
  /** Latent frames (1 when the latent is not 5-D). */
  frames: number;
  /** Values per frame and channel. */
  hw: number;
  size: number;
}

export function layoutOf(z: tf.Tensor): Layout {
  const shape = [...z.shape];
  const batch = shape[0]!;
  const channels = shape[1]!;
  const frames = shape.length >= 3 ? shape[2]! : 1;
  const hw = shape.slice(3).reduce((a, b) => a * b, 1);
  return { shape, batch, channels, frames, hw, size: z.size };
}

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

/** Calls `fn(start, end)` for every contiguous run of values whose frame satisfies `pred(entry)`. */
export function forFrames(plan: EditPlan, lay: Layout, pred: (m: number) => boolean, fn: (start: number, end: number) => void): void {
  const { batch, channels, frames, hw } = lay;
  let k = 0;
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < channels; c++) {
      for (let f = 0; f < frames; f++) {
        if (pred(plan.entry[b * frames + f]!)) fn(k, k + hw);
        k += hw;
      }
    }
  }
}

/** The starting latent as flat float32 data: `z`, with `xCond` on the frames whose ratio is below 1. */
export function initialLatent(args: SampleArgs, plan: EditPlan | null, lay: Layout, numSteps: number): Float32Array {
  const x = Float32Array.from(args.z.dataSync() as ArrayLike<number>);
  if (plan && args.xCond) {
    const c = args.xCond.dataSync() as ArrayLike<number>;
    forFrames(plan, lay, (m) => m < numSteps, (s, e) => {
      for (let k = s; k < e; k++) x[k] = c[k]!;
    });
  }
  return x;
}

/** `xMask` for step index i: 1 where the frame counts as generated (`m > i`, or `m >= i` without the off-by-one); undefined when all are. */
export function xMaskAt(plan: EditPlan | null, i: number, offByOne: boolean): Uint8Array | undefined {
  if (!plan) return undefined;
  const out = new Uint8Array(plan.entry.length);
  let all = true;
  for (let k = 0; k < out.length; k++) {
    const m = plan.entry[k]!;
    const g = offByOne ? m > i : m >= i;
    out[k] = g ? 1 : 0;
    if (!g) all = false;
  }
  // An all-true xMask is numerically the same as none (the model can skip its t0 path).
  return all ? undefined : out;
}

export function anyEntry(plan: EditPlan | null, pred: (m: number) => boolean): boolean {
  if (!plan) return false;
  for (let k = 0; k < plan.entry.length; k++) if (pred(plan.entry[k]!)) return true;
  return false;
}

/** Re-noise the frames entering at step i: `a·x0 + s·ε′` (ε′ drawn for the whole latent, as the reference's randn_like). */
export function injectNoise(x0: Float32Array, plan: EditPlan, lay: Layout, i: number, a: number, s: number, noise: Float32Array): Float32Array {
  const cur = x0.slice();
  forFrames(plan, lay, (m) => m === i, (st, e) => {
    for (let k = st; k < e; k++) cur[k] = a * x0[k]! + s * noise[k]!;
  });
  return cur;
}

/** Copy `src` into `dst` on the frames where `pred(entry)`. */
export function copyFrames(dst: Float32Array, src: Float32Array, plan: EditPlan, lay: Layout, pred: (m: number) => boolean): void {
  forFrames(plan, lay, pred, (s, e) => dst.set(src.subarray(s, e), s));
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
