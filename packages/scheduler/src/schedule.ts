/**
 * Noise schedules and respacing, as plain numbers (no tensors).
 *
 * The base schedule is float64, as in the reference. The respaced process stores its betas as
 * float32 and derives every other array from them in float32 (the reference does this even for
 * the 1000-step identity respacing used in training), so the arrays here are `Float32Array`s.
 */
import { InvalidArgumentError } from '@opensora/core';

const f32 = Math.fround;

/**
 * The linear beta schedule of Ho et al. extended to any number of steps, in float64:
 * `linspace(1e-4·s, 0.02·s, n)` with `s = 1000 / n`, computed like numpy's `linspace`
 * (`start + i·step`, the last element set to `stop` exactly).
 */
export function linearBetaSchedule(numTimesteps: number): Float64Array {
  if (!Number.isInteger(numTimesteps) || numTimesteps < 1) {
    throw new InvalidArgumentError(`linearBetaSchedule(numTimesteps): expected a positive integer, got ${numTimesteps}`);
  }
  const scale = 1000 / numTimesteps;
  const start = scale * 0.0001;
  const stop = scale * 0.02;
  const out = new Float64Array(numTimesteps);
  if (numTimesteps === 1) {
    out[0] = start;
    return out;
  }
  const step = (stop - start) / (numTimesteps - 1);
  for (let i = 0; i < numTimesteps; i++) out[i] = i * step + start;
  out[numTimesteps - 1] = stop;
  return out;
}

/** Cumulative product of `1 − β` in float64. */
export function alphasCumprodOf(betas: ArrayLike<number>): Float64Array {
  const out = new Float64Array(betas.length);
  let acc = 1;
  for (let i = 0; i < betas.length; i++) {
    acc *= 1 - betas[i]!;
    out[i] = acc;
  }
  return out;
}

/** Python's `round()` for doubles: nearest integer, ties to even. */
export function pyRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function parseIntStrict(s: string, what: string): number {
  const t = s.trim();
  if (!/^[+-]?\d+$/.test(t)) {
    throw new InvalidArgumentError(`spaceTimesteps: ${what} '${s}' is not an integer`, {
      hint: 'use "N", "N1,N2,...", "ddimN" or an array of integers',
    });
  }
  return Number.parseInt(t, 10);
}

/**
 * The timesteps of the original process kept by a respacing, sorted ascending (the reference
 * returns a set; its respaced process walks the base schedule in order, so the order is ascending).
 *
 * Forms of `sectionCounts` (as the reference accepts them):
 * - `"100"` or `100`: one section of `numTimesteps` steps strided to 100 steps;
 * - `"10,15,20"` or `[10, 15, 20]`: the process is cut into equal sections (earlier sections get
 *   one extra step when it does not divide evenly), each strided to its count;
 * - `"ddimN"`: the integer stride from the DDIM paper that gives exactly N steps.
 *
 * Striding within a section of `size` steps to `count` steps: `stride = (size − 1)/(count − 1)`
 * as a double, accumulated by repeated addition from 0, each kept step being Python's `round`
 * (half to even) of the running value. A count of 1 keeps the first step of the section.
 */
export function spaceTimesteps(numTimesteps: number, sectionCounts: string | number | readonly number[]): number[] {
  if (!Number.isInteger(numTimesteps) || numTimesteps < 1) {
    throw new InvalidArgumentError(`spaceTimesteps: numTimesteps must be a positive integer, got ${numTimesteps}`);
  }
  let counts: number[];
  if (typeof sectionCounts === 'string') {
    const s = sectionCounts.trim();
    if (s.startsWith('ddim')) {
      const desired = parseIntStrict(s.slice(4), 'the ddim step count');
      for (let stride = 1; stride < numTimesteps; stride++) {
        if (Math.ceil(numTimesteps / stride) === desired) {
          const out: number[] = [];
          for (let t = 0; t < numTimesteps; t += stride) out.push(t);
          return out;
        }
      }
      throw new InvalidArgumentError(
        `spaceTimesteps: cannot create exactly ${desired} steps out of ${numTimesteps} with an integer stride ('${sectionCounts}')`,
        { hint: 'pick a ddim count that some integer stride produces, or use the plain "N" form' },
      );
    }
    if (s === '') {
      throw new InvalidArgumentError('spaceTimesteps: empty section string', {
        hint: 'an empty timestepRespacing means "keep all steps"; pass that to the scheduler, or give "N" here',
      });
    }
    counts = s.split(',').map((p) => parseIntStrict(p, 'section count'));
  } else if (typeof sectionCounts === 'number') {
    counts = [sectionCounts];
  } else {
    counts = [...sectionCounts];
  }
  if (counts.length === 0) throw new InvalidArgumentError('spaceTimesteps: no section counts given');
  for (const c of counts) {
    if (!Number.isInteger(c) || c < 0) {
      throw new InvalidArgumentError(`spaceTimesteps: section counts must be integers >= 0, got ${c}`);
    }
  }
  const sizePer = Math.floor(numTimesteps / counts.length);
  const extra = numTimesteps % counts.length;
  let startIdx = 0;
  const all = new Set<number>();
  counts.forEach((count, i) => {
    const size = sizePer + (i < extra ? 1 : 0);
    if (size < count) {
      throw new InvalidArgumentError(`spaceTimesteps: cannot divide a section of ${size} steps into ${count} steps`, {
        hint: `section ${i} of '${String(sectionCounts)}' asks for more steps than the section has`,
      });
    }
    const stride = count <= 1 ? 1 : (size - 1) / (count - 1);
    let cur = 0.0;
    for (let k = 0; k < count; k++) {
      all.add(startIdx + pyRound(cur));
      cur += stride;
    }
    startIdx += size;
  });
  if (all.size === 0) throw new InvalidArgumentError(`spaceTimesteps: '${String(sectionCounts)}' keeps no timesteps`);
  return [...all].sort((a, b) => a - b);
}

/** Every array of a (respaced) Gaussian diffusion, float32 like the reference's respaced process. */
export interface DiffusionArrays {
  /** Number of (respaced) steps N′. */
  numTimesteps: number;
  /** Respaced index → original timestep (what the model is called with). */
  timestepMap: Int32Array;
  betas: Float32Array;
  logBetas: Float32Array;
  alphas: Float32Array;
  alphasCumprod: Float32Array;
  alphasCumprodPrev: Float32Array;
  alphasCumprodNext: Float32Array;
  sqrtAlphasCumprod: Float32Array;
  sqrtOneMinusAlphasCumprod: Float32Array;
  logOneMinusAlphasCumprod: Float32Array;
  sqrtRecipAlphasCumprod: Float32Array;
  sqrtRecipm1AlphasCumprod: Float32Array;
  posteriorVariance: Float32Array;
  posteriorLogVarianceClipped: Float32Array;
  posteriorMeanCoef1: Float32Array;
  posteriorMeanCoef2: Float32Array;
}

/**
 * The respaced process: `β′_i = 1 − ᾱ[map_i]/ᾱ[map_{i−1}]` (ᾱ[map_{−1}] = 1) in float64 from the
 * float64 base schedule, then stored as float32; `ᾱ′` is the float32 running product of the
 * float32 `1 − β′` (numpy's float32 `cumprod`); every other array is computed from those float32
 * values and rounded to float32 once.
 */
export function respacedArrays(baseBetas: ArrayLike<number>, useTimesteps: readonly number[]): DiffusionArrays {
  const base = alphasCumprodOf(baseBetas);
  const keep = new Set(useTimesteps);
  for (const t of keep) {
    if (!Number.isInteger(t) || t < 0 || t >= base.length) {
      throw new InvalidArgumentError(`respacing keeps timestep ${t}, outside 0..${base.length - 1}`);
    }
  }
  const map: number[] = [];
  const newBetas: number[] = [];
  let last = 1.0;
  for (let i = 0; i < base.length; i++) {
    if (keep.has(i)) {
      newBetas.push(1 - base[i]! / last);
      last = base[i]!;
      map.push(i);
    }
  }
  return arraysFromBetas(Float32Array.from(newBetas), Int32Array.from(map));
}

/** Derived float32 arrays from float32 betas (see `respacedArrays`). */
export function arraysFromBetas(betas: Float32Array, timestepMap: Int32Array): DiffusionArrays {
  const n = betas.length;
  for (let i = 0; i < n; i++) {
    const b = betas[i]!;
    if (!(b > 0 && b <= 1)) throw new InvalidArgumentError(`beta ${i} is ${b}; betas must lie in (0, 1]`);
  }
  const mk = () => new Float32Array(n);
  const alphas = mk();
  const ac = mk();
  let acc = 1;
  for (let i = 0; i < n; i++) {
    alphas[i] = f32(1 - betas[i]!);
    acc = f32(acc * alphas[i]!);
    ac[i] = acc;
  }
  const acPrev = mk();
  const acNext = mk();
  const sqrtAc = mk();
  const sqrt1m = mk();
  const log1m = mk();
  const sqrtRecip = mk();
  const sqrtRecipm1 = mk();
  const postVar = mk();
  const postLogVar = mk();
  const coef1 = mk();
  const coef2 = mk();
  const logBetas = mk();
  for (let i = 0; i < n; i++) {
    const a = ac[i]!;
    const prev = i === 0 ? 1 : ac[i - 1]!;
    const b = betas[i]!;
    acPrev[i] = prev;
    acNext[i] = i === n - 1 ? 0 : ac[i + 1]!;
    sqrtAc[i] = f32(Math.sqrt(a));
    const om = f32(1 - a);
    sqrt1m[i] = f32(Math.sqrt(om));
    log1m[i] = f32(Math.log(om));
    sqrtRecip[i] = f32(Math.sqrt(1 / a));
    sqrtRecipm1[i] = f32(Math.sqrt(1 / a - 1));
    postVar[i] = f32((b * (1 - prev)) / om);
    coef1[i] = f32((b * Math.sqrt(prev)) / om);
    coef2[i] = f32(((1 - prev) * Math.sqrt(alphas[i]!)) / om);
    logBetas[i] = f32(Math.log(b));
  }
  for (let i = 0; i < n; i++) {
    // Index 0 borrows index 1 (the posterior variance is 0 at the start of the chain).
    const v = n > 1 ? postVar[i === 0 ? 1 : i]! : postVar[0]!;
    postLogVar[i] = f32(Math.log(v));
  }
  return {
    numTimesteps: n,
    timestepMap,
    betas,
    logBetas,
    alphas,
    alphasCumprod: ac,
    alphasCumprodPrev: acPrev,
    alphasCumprodNext: acNext,
    sqrtAlphasCumprod: sqrtAc,
    sqrtOneMinusAlphasCumprod: sqrt1m,
    logOneMinusAlphasCumprod: log1m,
    sqrtRecipAlphasCumprod: sqrtRecip,
    sqrtRecipm1AlphasCumprod: sqrtRecipm1,
    posteriorVariance: postVar,
    posteriorLogVarianceClipped: postLogVar,
    posteriorMeanCoef1: coef1,
    posteriorMeanCoef2: coef2,
  };
}

/** The entry step of an edit ratio: `trunc(float32(float32(ratio) · N))`, as the reference's float32 mask. */
export function editEntryStep(ratio: number, numSteps: number): number {
  return Math.trunc(f32(f32(ratio) * numSteps));
}
