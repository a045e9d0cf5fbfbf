import { Rng, type RngState, type Seed } from '@opensora/random';
import { MaskError } from './errors.js';

/** The nine training mask types of Open-Sora 1.1, in the order of the stage configs. */
export const MASK_TYPES = [
  'mask_no',
  'mask_quarter_random',
  'mask_quarter_head',
  'mask_quarter_tail',
  'mask_quarter_head_tail',
  'mask_image_random',
  'mask_image_head',
  'mask_image_tail',
  'mask_image_head_tail',
] as const;

export type MaskType = (typeof MASK_TYPES)[number];

/** Ratios of the 1.1 stage 1/2/3 configs (25% of samples get condition frames). */
export const DEFAULT_MASK_RATIOS: Readonly<Record<MaskType, number>> = Object.freeze({
  mask_no: 0.75,
  mask_quarter_random: 0.025,
  mask_quarter_head: 0.025,
  mask_quarter_tail: 0.025,
  mask_quarter_head_tail: 0.05,
  mask_image_random: 0.025,
  mask_image_head: 0.025,
  mask_image_tail: 0.025,
  mask_image_head_tail: 0.05,
});

export type MaskRatios = Partial<Record<MaskType, number>>;

/** Inclusive uniform integer draw, `randint(lo, hi)` with lo <= hi. */
export type RandInt = (lo: number, hi: number) => number;

function assertFrames(numFrames: number): void {
  if (!Number.isSafeInteger(numFrames) || numFrames < 1) {
    throw new MaskError('E_MASK_ARGUMENT', `numFrames must be an integer >= 1, got ${String(numFrames)}`, { field: 'numFrames' });
  }
}

/**
 * The mask of one type for a clip of `numFrames` frames, drawing its random sizes/positions from
 * `randint` in the reference's order (quarter types: size k in 1..q; `*_random`: then the start
 * in 0..T-k). `true` = frame to generate, `false` = condition frame.
 *
 * Same masks and probabilities as the reference for every type and every T >= 4, and for T = 2
 * and 3 where the reference works. Where it does not:
 * - T = 2 or 3 with a quarter type: the reference crashes (q = T // 4 = 0); here q = max(1, T // 4),
 *   so one frame is conditioned (T = 3 head_tail: the first and the last).
 * - A mask with no frame left to generate (T = 2 with either head_tail type): the last frame is
 *   generated instead, so such samples condition on the first frame only.
 * - T = 1 (images) is never masked; no extra draw is made.
 */
export function maskForType(type: MaskType | 'none', numFrames: number, randint: RandInt): boolean[] {
  assertFrames(numFrames);
  const T = numFrames;
  const mask = new Array<boolean>(T).fill(true);
  if (T <= 1 || type === 'none' || type === 'mask_no') return mask;
  const q = Math.max(1, Math.floor(T / 4));
  const clear = (from: number, to: number): void => {
    for (let i = from; i < to; i++) mask[i] = false;
  };
  switch (type) {
    case 'mask_quarter_random': {
      const k = randint(1, q);
      const p = randint(0, T - k);
      clear(p, p + k);
      break;
    }
    case 'mask_quarter_head':
      clear(0, randint(1, q));
      break;
    case 'mask_quarter_tail':
      clear(T - randint(1, q), T);
      break;
    case 'mask_quarter_head_tail': {
      const k = randint(1, q);
      clear(0, k);
      clear(T - k, T);
      break;
    }
    case 'mask_image_random': {
      const p = randint(0, T - 1);
      clear(p, p + 1);
      break;
    }
    case 'mask_image_head':
      clear(0, 1);
      break;
    case 'mask_image_tail':
      clear(T - 1, T);
      break;
    case 'mask_image_head_tail':
      clear(0, 1);
      clear(T - 1, T);
      break;
    default: {
      const never: never = type;
      throw new MaskError('E_MASK_ARGUMENT', `unknown mask type ${String(never)}`);
    }
  }
  if (!mask.includes(true)) mask[T - 1] = true;
  return mask;
}

export interface MaskGeneratorOptions {
  /** Seed of the generator's own RNG (default 0). Ignored when `rng` is given. */
  seed?: Seed;
  /** Use this RNG (it is advanced by the generator). */
  rng?: Rng;
}

/** JSON-safe state for checkpoints (`state()` / `setState()`). */
export interface MaskGeneratorState {
  kind: 'MaskGenerator';
  ratios: Array<[MaskType, number]>;
  rng: RngState;
}

export interface DrawnMask {
  /** The chosen type, or 'none' when a float shortfall of the ratio sum left u uncovered (all frames generated). */
  type: MaskType | 'none';
  mask: boolean[];
}

function validateRatios(maskRatios: MaskRatios | Iterable<readonly [string, number]>): Array<[MaskType, number]> {
  if (maskRatios === null || typeof maskRatios !== 'object') {
    throw new MaskError('E_MASK_RATIOS', `mask ratios must be an object {name: probability}, got ${String(maskRatios)}`);
  }
  const entries: Array<readonly [string, unknown]> =
    Symbol.iterator in maskRatios ? [...(maskRatios as Iterable<readonly [string, number]>)] : Object.entries(maskRatios);
  const seen = new Set<string>();
  const out: Array<[MaskType, number]> = [];
  for (const [name, value] of entries) {
    if (!(MASK_TYPES as readonly string[]).includes(name)) {
      throw new MaskError('E_MASK_RATIOS', `unknown mask type ${JSON.stringify(name)}; valid names are ${MASK_TYPES.join(', ')}`, {
        field: name,
      });
    }
    if (seen.has(name)) throw new MaskError('E_MASK_RATIOS', `mask type ${name} is given twice`, { field: name });
    seen.add(name);
    if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
      throw new MaskError('E_MASK_RATIOS', `mask ratio ${name} = ${String(value)} must be a number in [0, 1]`, { field: name });
    }
    out.push([name as MaskType, value]);
  }
  let sum = 0;
  for (const [, v] of out) sum += v;
  if (!(Math.abs(sum - 1) <= 1e-6)) {
    throw new MaskError(
      'E_MASK_RATIOS',
      `mask ratios must sum to 1 (within 1e-6), but ${out.map(([k, v]) => `${k}=${v}`).join(' + ') || '(none)'} = ${sum}`,
    );
  }
  return out;
}

/**
 * Random training masks (the reference's `MaskGenerator`): each sample draws a type with the
 * configured probabilities (walking the ratios in insertion order), then that type's frames.
 * `true` = generate (noised, in the loss; STDiT2's `x_mask` convention), `false` = condition frame.
 */
export class MaskGenerator {
  readonly ratios: ReadonlyArray<readonly [MaskType, number]>;
  private rng: Rng;
  private readonly randint: RandInt;

  constructor(maskRatios: MaskRatios | Iterable<readonly [string, number]> = DEFAULT_MASK_RATIOS, options: MaskGeneratorOptions = {}) {
    this.ratios = Object.freeze(validateRatios(maskRatios).map((e) => Object.freeze(e) as readonly [MaskType, number]));
    this.rng = options.rng ?? new Rng(options.seed ?? 0);
    this.randint = (lo, hi) => lo + this.rng.int(hi - lo + 1);
  }

  /** Restores a generator saved with `state()`. */
  static fromState(state: MaskGeneratorState): MaskGenerator {
    const g = new MaskGenerator(MaskGenerator.checkState(state).ratios);
    g.setState(state);
    return g;
  }

  private static checkState(state: MaskGeneratorState): MaskGeneratorState {
    if (!state || state.kind !== 'MaskGenerator' || !Array.isArray(state.ratios) || typeof state.rng !== 'object') {
      throw new MaskError(
        'E_MASK_ARGUMENT',
        `invalid MaskGenerator state ${JSON.stringify(state)?.slice(0, 200)}: expected {kind: 'MaskGenerator', ratios, rng}`,
      );
    }
    return state;
  }

  /** Draws a type (one uniform number), then its mask. */
  draw(numFrames: number): DrawnMask {
    assertFrames(numFrames);
    const u = this.rng.random();
    let acc = 0;
    let type: MaskType | 'none' = 'none';
    for (const [name, p] of this.ratios) {
      acc += p;
      if (u < acc) {
        type = name;
        break;
      }
    }
    return { type, mask: maskForType(type, numFrames, this.randint) };
  }

  /** One sample's mask over `numFrames` frames. */
  getMask(numFrames: number): boolean[] {
    return this.draw(numFrames).mask;
  }

  /** `batchSize` independent masks (a `[B, T]` bool mask as rows). */
  getMasks(batchSize: number, numFrames: number): boolean[][] {
    if (!Number.isSafeInteger(batchSize) || batchSize < 0) {
      throw new MaskError('E_MASK_ARGUMENT', `batchSize must be an integer >= 0, got ${String(batchSize)}`, { field: 'batchSize' });
    }
    assertFrames(numFrames);
    const out: boolean[][] = [];
    for (let b = 0; b < batchSize; b++) out.push(this.getMask(numFrames));
    return out;
  }

  state(): MaskGeneratorState {
    return { kind: 'MaskGenerator', ratios: this.ratios.map(([k, v]) => [k, v]), rng: this.rng.state() };
  }

  /**
   * Restores the RNG position saved by `state()`, for exact resume. The saved ratios must equal this
   * generator's (a resumed run with different ratios would not continue the same stream).
   */
  setState(state: MaskGeneratorState): void {
    MaskGenerator.checkState(state);
    const same =
      state.ratios.length === this.ratios.length &&
      state.ratios.every((e, i) => Array.isArray(e) && e[0] === this.ratios[i]![0] && e[1] === this.ratios[i]![1]);
    if (!same) {
      throw new MaskError(
        'E_MASK_ARGUMENT',
        `MaskGenerator state was saved with ratios ${JSON.stringify(state.ratios)}, but this generator has ${JSON.stringify(this.ratios)}`,
      );
    }
    try {
      this.rng.setState(state.rng);
    } catch (e) {
      throw new MaskError('E_MASK_ARGUMENT', `invalid MaskGenerator state: ${(e as Error).message}`);
    }
  }
}
