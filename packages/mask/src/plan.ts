import { MaskError, quote } from './errors.js';
import { formatMaskStrategy, parseMaskStrategy, validateMaskStrategyGroup, type MaskStrategyGroup } from './strategy.js';

/** Which reference frame lands on a target frame: `refs[sample][ref]` frame `frame`. */
export interface Placement {
  ref: number;
  frame: number;
}

/** A matching group after negative indices were resolved (all indices absolute and in range). */
export interface ResolvedGroup {
  /** 0-based index of the group in its strategy. */
  group: number;
  ref: number;
  refStart: number;
  targetStart: number;
  length: number;
  /** The edit ratio rounded to float32, as written into the mask. */
  editRatio: number;
  /** True when a one-frame reference is repeated over `length` target frames. */
  broadcast: boolean;
}

export interface SampleMaskPlan {
  /**
   * One value per target frame: 1 = generate from noise; otherwise the float32 edit ratio of the
   * condition placed there (0 = keep the reference frame). Feed it to the sampler as the
   * `[B, T]` float mask.
   */
  mask: number[];
  /** Per target frame, the reference frame copied into the initial latent there, or null. */
  placements: Array<Placement | null>;
  /** The groups of this loop, resolved, in application order (later ones win where they overlap). */
  groups: ResolvedGroup[];
}

export type StrategyInput = string | readonly MaskStrategyGroup[] | null | undefined;

export interface PlanMaskStrategyArgs {
  /** Per sample: a strategy string, parsed groups, or null/undefined for none. */
  strategies: readonly StrategyInput[];
  /** The loop iteration being generated (0 for the first clip); groups of other loops are ignored. */
  loopIndex?: number;
  /** Latent frames of the clip being generated. */
  targetFrames: number;
  /** Per sample, the latent frame count of each of its references (in reference order). */
  referenceLengths: readonly (readonly number[])[];
}

function assertInt(name: string, v: unknown, min: number): asserts v is number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw new MaskError('E_MASK_ARGUMENT', `${name} must be an integer >= ${min}, got ${String(v)}`, { field: name });
  }
}

/** One sample's plan (see `planMaskStrategy`). */
export function planSampleMask(
  strategy: StrategyInput,
  args: { loopIndex?: number; targetFrames: number; referenceLengths: readonly number[]; sample?: number },
): SampleMaskPlan {
  const loopIndex = args.loopIndex ?? 0;
  const T = args.targetFrames;
  assertInt('targetFrames', T, 1);
  assertInt('loopIndex', loopIndex, 0);
  const refLens = args.referenceLengths;
  if (!Array.isArray(refLens)) throw new MaskError('E_MASK_ARGUMENT', 'referenceLengths must be an array of frame counts');
  refLens.forEach((l, i) => assertInt(`referenceLengths[${i}]`, l, 1));

  const mask = new Array<number>(T).fill(1);
  const placements = new Array<Placement | null>(T).fill(null);
  const resolved: ResolvedGroup[] = [];
  if (strategy === null || strategy === undefined) return { mask, placements, groups: resolved };

  const groups = typeof strategy === 'string' ? parseMaskStrategy(strategy) : strategy.map((g, i) => validateMaskStrategyGroup(g, i));
  const text = typeof strategy === 'string' ? strategy : formatMaskStrategy(groups);
  const sampleNote = args.sample !== undefined ? `sample ${args.sample}: ` : '';
  const nRef = refLens.length;

  groups.forEach((g, gi) => {
    if (g.loopId !== loopIndex) return;
    const gText = typeof strategy === 'string' ? strategy.split(';')[gi]! : formatMaskStrategy(g);
    const where = `${sampleNote}mask strategy ${quote(text)}, group ${gi + 1} of ${groups.length} (${quote(gText)})`;
    const fail = (field: string, msg: string): never => {
      throw new MaskError('E_MASK_PLACEMENT', `${where}: ${msg}`, { input: text, group: gi, field, sample: args.sample });
    };
    // Reference index (Python list indexing: negative counts from the end).
    const ref = g.refId < 0 ? nRef + g.refId : g.refId;
    if (ref < 0 || ref >= nRef) {
      fail(
        'ref_id',
        nRef === 0
          ? `ref_id ${g.refId} needs a reference, but this sample has none (give a reference_path)`
          : `ref_id ${g.refId} is out of range; this sample has ${nRef} reference(s), indices 0..${nRef - 1} (or -${nRef}..-1)`,
      );
    }
    if (g.length === 0) return; // copies nothing, as in the reference
    const Tref = refLens[ref]!;
    const rs = g.refStart < 0 ? Tref + g.refStart : g.refStart;
    const ts = g.targetStart < 0 ? T + g.targetStart : g.targetStart;
    if (ts < 0 || ts >= T) {
      fail('target_start', `target_start ${g.targetStart} is outside the ${T}-frame clip (use 0..${T - 1}, or -${T}..-1 from the end)`);
    }
    if (ts + g.length > T) {
      fail(
        'length',
        `target frames ${ts}..${ts + g.length - 1} run past the ${T}-frame clip (last frame ${T - 1}); use length <= ${T - ts} or an earlier target_start`,
      );
    }
    if (rs < 0 || rs >= Tref) {
      fail(
        'ref_start',
        `ref_start ${g.refStart} is outside reference ${ref}, which has ${Tref} frame(s) (use 0..${Tref - 1}, or -${Tref}..-1 from the end)`,
      );
    }
    const broadcast = Tref === 1 && g.length > 1;
    if (!broadcast && rs + g.length > Tref) {
      fail(
        'length',
        `reference frames ${rs}..${rs + g.length - 1} run past reference ${ref}, which has ${Tref} frames (last frame ${Tref - 1}); use length <= ${Tref - rs} or an earlier ref_start`,
      );
    }
    const ratio = Math.fround(g.editRatio);
    for (let j = 0; j < g.length; j++) {
      mask[ts + j] = ratio;
      placements[ts + j] = { ref, frame: broadcast ? 0 : rs + j };
    }
    resolved.push({ group: gi, ref, refStart: rs, targetStart: ts, length: g.length, editRatio: ratio, broadcast });
  });
  return { mask, placements, groups: resolved };
}

/**
 * Plans the conditioning of a batch for one loop: for each sample, the float mask per target frame
 * and which reference frame is copied into each target frame of the initial latent.
 *
 * Rules (those of the reference's `apply_mask_strategy`): only groups with `loopId === loopIndex`
 * apply, in string order, later ones overwriting earlier ones; a negative `ref_id` counts from the
 * end of the sample's reference list, a negative `ref_start`/`target_start` from the end of the
 * reference/clip; a one-frame reference is repeated over `length` target frames; `length` 0 copies
 * nothing. Where the reference would clip a range silently (or crash with a shape error), this
 * throws a `MaskError` (`E_MASK_PLACEMENT`) naming the sample, group and field: every copied frame
 * must exist in both the reference and the clip.
 */
export function planMaskStrategy(args: PlanMaskStrategyArgs): SampleMaskPlan[] {
  const { strategies, referenceLengths } = args;
  if (!Array.isArray(strategies)) throw new MaskError('E_MASK_ARGUMENT', 'strategies must be an array (one entry per sample)');
  if (!Array.isArray(referenceLengths) || referenceLengths.length !== strategies.length) {
    throw new MaskError(
      'E_MASK_ARGUMENT',
      `referenceLengths must have one entry per sample: got ${Array.isArray(referenceLengths) ? referenceLengths.length : typeof referenceLengths} for ${strategies.length} strategies`,
    );
  }
  return strategies.map((s, i) =>
    planSampleMask(s, {
      loopIndex: args.loopIndex ?? 0,
      targetFrames: args.targetFrames,
      referenceLengths: referenceLengths[i]!,
      sample: i,
    }),
  );
}

/**
 * The sampler step at which a frame with this edit ratio enters denoising:
 * `trunc(float32(ratio) * numSteps)` computed in float32 as the reference does
 * (so 0.29 with 100 steps gives 29, not 28). 0 → 0 (kept until the last step), 1 → numSteps (never held).
 */
export function editRatioEntryStep(editRatio: number, numSteps: number): number {
  assertInt('numSteps', numSteps, 1);
  if (!(editRatio >= 0 && editRatio <= 1)) {
    throw new MaskError('E_MASK_ARGUMENT', `editRatio must be in [0, 1], got ${editRatio}`, { field: 'edit_ratio' });
  }
  return Math.trunc(Math.fround(Math.fround(editRatio) * numSteps));
}
