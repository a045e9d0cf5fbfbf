import { MaskError } from './errors.js';
import { planLoops, type LoopPlan, type PlanLoopsArgs } from './loops.js';
import { formatMaskStrategy, joinMaskStrategies, type MaskStrategyGroup } from './strategy.js';

/**
 * Named helpers that write mask strategies for the standard flows, so that users need not learn the
 * grammar. Each returns a strategy string (check or combine them with `parseMaskStrategy` /
 * `joinMaskStrategies`). Frame counts are latent frames.
 */

interface Common {
  /** Loop the group applies to (default 0, the first clip). */
  loop?: number;
  /** Which reference (index into the `;`-separated reference_path; default 0). */
  ref?: number;
}

function frames(name: string, v: unknown, min = 1): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw new MaskError('E_MASK_ARGUMENT', `${name} must be an integer >= ${min}, got ${String(v)}`, { field: name });
  }
  return v;
}

function group(g: Partial<MaskStrategyGroup>, c: Common): string {
  return formatMaskStrategy({ loopId: c.loop ?? 0, refId: c.ref ?? 0, refStart: 0, targetStart: 0, length: 1, editRatio: 0, ...g });
}

/**
 * Image to video: the image (reference frame 0) becomes a frozen frame of the clip, the first by
 * default (`"0"`); `at: 'end'` makes it the last (`"0,0,0,-1,1"`), a number puts it at that frame.
 */
export function animateImage(options: Common & { at?: 'start' | 'end' | number; editRatio?: number } = {}): string {
  const at = options.at ?? 'start';
  const targetStart = at === 'start' ? 0 : at === 'end' ? -1 : at;
  return group({ targetStart, editRatio: options.editRatio ?? 0 }, options);
}

/**
 * Video extension with `frames` frames of overlap. `forward` (default): the reference's last frames
 * start the new clip (`"0,0,-8,0,8"`), so the clip continues the video. `backward`: the reference's
 * first frames end the new clip (`"0,0,0,-8,8"`, the docs' "video extending" example), so the clip
 * leads into the video.
 */
export function extendVideo(options: Common & { frames: number; direction?: 'forward' | 'backward' }): string {
  const n = frames('frames', options.frames);
  return (options.direction ?? 'forward') === 'forward'
    ? group({ refStart: -n, targetStart: 0, length: n }, options)
    : group({ refStart: 0, targetStart: -n, length: n }, options);
}

/**
 * Video editing (SDEdit-like): `frames` reference frames go to the same positions with an edit ratio,
 * e.g. `editVideo({ frames: 32, editRatio: 0.4 })` is `"0,0,0,0,32,0.4"`: each frame is kept for the
 * first 60% of the sampling steps, then regenerated (0 = keep, 1 = regenerate fully).
 */
export function editVideo(
  options: Common & { frames: number; editRatio: number; refStart?: number; targetStart?: number },
): string {
  const n = frames('frames', options.frames);
  return group({ refStart: options.refStart ?? 0, targetStart: options.targetStart ?? 0, length: n, editRatio: options.editRatio }, options);
}

/**
 * Connects two clips or images: the last `frames` frames (default 1) of reference `first` (default
 * 0) start the clip, the first `frames` frames of reference `second` (default 1) end it:
 * `"0,0,-1,0,1;0,1,0,-1,1"`, the same as the docs' `"0;0,1,0,-1,1"` for two images.
 */
export function connectClips(options: { frames?: number; first?: number; second?: number; loop?: number } = {}): string {
  const n = frames('frames', options.frames ?? 1);
  const loop = options.loop ?? 0;
  return joinMaskStrategies(
    group({ refStart: -n, targetStart: 0, length: n }, { loop, ref: options.first ?? 0 }),
    group({ refStart: 0, targetStart: -n, length: n }, { loop, ref: options.second ?? 1 }),
  )!;
}

/**
 * A long video of `loop` clips, each conditioned on the last `conditionFrameLength` frames of the
 * previous one (see `planLoops`). With `referenceFrames`, the first clip is also conditioned on the
 * first `referenceFrames` frames of reference 0 (the docs' `"0,0,0,0,16"` with `--loop 16
 * --condition-frame-length 8`); otherwise the first clip is free (text to video).
 */
export function longVideo(args: Omit<PlanLoopsArgs, 'strategy'> & { referenceFrames?: number; strategy?: string | null }): LoopPlan {
  const first = args.referenceFrames !== undefined ? group({ length: frames('referenceFrames', args.referenceFrames) }, {}) : null;
  return planLoops({ ...args, strategy: joinMaskStrategies(args.strategy, first) });
}
