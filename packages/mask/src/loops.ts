import { MaskError } from './errors.js';
import { planSampleMask, type Placement } from './plan.js';
import { formatMaskStrategy, parseMaskStrategy, type MaskStrategyGroup } from './strategy.js';

/** Condition frame length of the 1.1 `sample-ref.py` config (`sample.py` has none). */
export const DEFAULT_CONDITION_FRAME_LENGTH = 4;

export interface PlanLoopsArgs {
  /** Latent frames per generated clip (T). */
  numFrames: number;
  /** Frames (L) each clip after the first takes from the end of the previous one; default 4. */
  conditionFrameLength?: number;
  /** Number of clips to generate (>= 1). */
  loop: number;
  /** The user's own strategy for this sample (groups may target any loop), or null. */
  strategy?: string | null;
  /**
   * Number of the sample's own references. When given, the chaining groups name the appended
   * previous clip by its index (as the reference does); otherwise they use -1 (the last reference,
   * which is the same clip).
   */
  referenceCount?: number;
  /**
   * Latent lengths of the sample's own references. When given, each loop's mask and placements are
   * planned (and validated) up front, so that a bad strategy fails before any sampling.
   */
  referenceLengths?: readonly number[];
}

export interface LoopStep {
  loopIndex: number;
  /** Index (in this sample's reference list) of the previous clip appended before this loop; null for loop 0. */
  previousClipRef: number | null;
  /** The group that copies the previous clip's last L frames to frames 0..L-1; null for loop 0. */
  chainGroup: MaskStrategyGroup | null;
  /** Frames of the previous clip this loop is conditioned on (T-L..T-1); empty for loop 0. */
  conditionFrames: number[];
  /** The same frames as indices into the final video. */
  conditionOutputFrames: number[];
  /** The strategy in effect at this loop (the user's, then every chaining group so far), as the reference builds it. */
  strategy: string | null;
  /** This clip's frames kept in the final video: keepFrom..numFrames-1 (0 for the first clip, L after). */
  keepFrom: number;
  /** Where the kept frames go in the final video: outputStart..outputEnd-1. */
  outputStart: number;
  outputEnd: number;
  /** Reference latent lengths at this loop (only when `referenceLengths` was given). */
  referenceLengths?: number[];
  /** This loop's float mask (only when `referenceLengths` was given). */
  mask?: number[];
  /** This loop's placements (only when `referenceLengths` was given). */
  placements?: Array<Placement | null>;
}

export interface LoopPlan {
  numFrames: number;
  conditionFrameLength: number;
  loop: number;
  /** `loop * (numFrames - L) + L` for loop > 1, numFrames for a single clip. */
  totalFrames: number;
  loops: LoopStep[];
}

function intArg(name: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw new MaskError('E_MASK_ARGUMENT', `${name} must be an integer >= ${min}, got ${String(v)}`, { field: name });
  }
  return v;
}

/** Total frames of a long video: `loop * (numFrames - L) + L` (each later clip repeats L frames). */
export function loopTotalFrames(numFrames: number, conditionFrameLength: number, loop: number): number {
  return loop <= 1 ? numFrames : loop * (numFrames - conditionFrameLength) + conditionFrameLength;
}

/**
 * Plans a long video made of `loop` clips of `numFrames` frames (the reference's inference-long):
 * each clip after the first is conditioned, frozen, on the last L = `conditionFrameLength` frames of
 * the previous clip (re-encoded and appended to the sample's references), placed at its frames
 * 0..L-1; the final video is clip 0 followed by each later clip without its first L frames.
 *
 * Each step's strategy is per sample: reset it for every new sample (the reference lets strategies
 * and references pile up across `num_sample` repetitions; that is not reproduced).
 * Frame counts are latent frames (equal to pixel frames with the 1.1 VAE, which has no temporal
 * compression). Requires 0 < L < numFrames when loop > 1.
 */
export function planLoops(args: PlanLoopsArgs): LoopPlan {
  const T = intArg('numFrames', args.numFrames, 1);
  const loop = intArg('loop', args.loop, 1);
  const L = intArg('conditionFrameLength', args.conditionFrameLength ?? DEFAULT_CONDITION_FRAME_LENGTH, 0);
  if (loop > 1 && !(L > 0 && L < T)) {
    throw new MaskError(
      'E_MASK_ARGUMENT',
      `conditionFrameLength must be between 1 and numFrames - 1 = ${T - 1} to chain ${loop} clips of ${T} frames, got ${L}`,
      { field: 'conditionFrameLength' },
    );
  }
  const userStrategy = args.strategy ?? null;
  if (userStrategy !== null) parseMaskStrategy(userStrategy); // validate up front
  const refLens = args.referenceLengths;
  if (refLens !== undefined && args.referenceCount !== undefined && args.referenceCount !== refLens.length) {
    throw new MaskError(
      'E_MASK_ARGUMENT',
      `referenceCount (${args.referenceCount}) and referenceLengths (${refLens.length} entries) disagree`,
      { field: 'referenceCount' },
    );
  }
  const nUser = args.referenceCount ?? refLens?.length;
  if (nUser !== undefined) intArg('referenceCount', nUser, 0);

  const loops: LoopStep[] = [];
  let strategy = userStrategy;
  for (let i = 0; i < loop; i++) {
    let chainGroup: MaskStrategyGroup | null = null;
    let previousClipRef: number | null = null;
    if (i > 0) {
      previousClipRef = nUser !== undefined ? nUser + i - 1 : null;
      chainGroup = { loopId: i, refId: previousClipRef ?? -1, refStart: -L, targetStart: 0, length: L, editRatio: 0 };
      const g = formatMaskStrategy(chainGroup);
      strategy = strategy === null ? g : `${strategy};${g}`;
    }
    const keepFrom = i === 0 ? 0 : L;
    const outputStart = i === 0 ? 0 : i * (T - L) + L;
    const conditionFrames: number[] = [];
    const conditionOutputFrames: number[] = [];
    if (i > 0) {
      for (let j = 0; j < L; j++) {
        conditionFrames.push(T - L + j);
        conditionOutputFrames.push(i * (T - L) + j);
      }
    }
    const step: LoopStep = {
      loopIndex: i,
      previousClipRef,
      chainGroup,
      conditionFrames,
      conditionOutputFrames,
      strategy,
      keepFrom,
      outputStart,
      outputEnd: i * (T - L) + T,
    };
    if (refLens !== undefined) {
      const lens = [...refLens, ...new Array<number>(i).fill(T)];
      const plan = planSampleMask(strategy, { loopIndex: i, targetFrames: T, referenceLengths: lens });
      step.referenceLengths = lens;
      step.mask = plan.mask;
      step.placements = plan.placements;
    }
    loops.push(step);
  }
  return { numFrames: T, conditionFrameLength: L, loop, totalFrames: loopTotalFrames(T, L, loop), loops };
}
