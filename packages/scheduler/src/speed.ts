/**
 * SpeeDiT ("iddpm-speed", the reference's `SpeeDiffusion`): importance-sampled timesteps with
 * a dual draw around the "meaningful steps" boundary, and P2 loss weights (γ = 1, k = 1) on the
 * MSE term. Everything is computed from the respaced process's float32 arrays, as in the reference.
 */
import { InvalidArgumentError } from '@opensora/core';
import type { Rng } from '@opensora/core';
import { IDDPM, type IDDPMOptions } from './iddpm.js';
import type { SchedulerType, TimestepsLike } from './types.js';
import { toTimesteps } from './util.js';

const f32 = Math.fround;

/** numpy/torch `gradient` with unit spacing and first-order edges, in float32. */
export function gradient32(y: Float32Array): Float32Array {
  const n = y.length;
  const g = new Float32Array(n);
  if (n < 2) return g;
  g[0] = f32(y[1]! - y[0]!);
  g[n - 1] = f32(y[n - 1]! - y[n - 2]!);
  for (let i = 1; i < n - 1; i++) g[i] = f32(f32(y[i + 1]! - y[i - 1]!) / 2);
  return g;
}

export type SpeeDiTOptions = Omit<IDDPMOptions, 'cfgChannel'> & { cfgChannel?: number | null };

export class SpeeDiT extends IDDPM {
  override readonly type: SchedulerType = 'iddpm-speed';
  /** `M` = (first index where the gradient of √(1−ᾱ) drops below 5e-5) + 1: 700 for the 1000-step linear schedule. */
  readonly meaningfulSteps: number;
  /** The timestep distribution `p_t ∝ tanh(1e6·(g_t − 1e-4)) + 1.5`, L1-normalised (float32). */
  readonly p: Float32Array;
  /** The normaliser Z = Σ (tanh(…) + 1.5). */
  readonly pNormalizer: number;
  /** P2 weights `1/(k + snr_t)^γ` with k = γ = 1 (≈ 1 − ᾱ_t), float32. */
  readonly weights: Float32Array;
  /** Signal-to-noise ratio `1/(1 − ᾱ_t) − 1`, float32. */
  readonly snr: Float32Array;
  private readonly cdf: Float64Array;

  constructor(options: SpeeDiTOptions = {}) {
    super(options);
    const a = this.arrays;
    const n = a.numTimesteps;
    const g = gradient32(a.sqrtOneMinusAlphasCumprod);
    const thr = f32(5e-5);
    let first = -1;
    for (let i = 0; i < n; i++) {
      if (g[i]! < thr) {
        first = i;
        break;
      }
    }
    // numpy's argmax of an all-false array is 0.
    this.meaningfulSteps = (first < 0 ? 0 : first) + 1;
    const raw = new Float32Array(n);
    let z = 0;
    const c1e4 = f32(1e-4);
    for (let i = 0; i < n; i++) {
      raw[i] = f32(f32(Math.tanh(f32(f32(g[i]! - c1e4) * 1e6))) + 1.5);
      z += Math.abs(raw[i]!);
    }
    this.pNormalizer = z;
    const denom = Math.max(z, 1e-12);
    this.p = Float32Array.from(raw, (v) => f32(v / denom));
    this.cdf = new Float64Array(n);
    let acc = 0;
    for (let i = 0; i < n; i++) {
      acc += this.p[i]!;
      this.cdf[i] = acc;
    }
    this.snr = new Float32Array(n);
    this.weights = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const s = f32(f32(1 / f32(1 - a.alphasCumprod[i]!)) - 1);
      this.snr[i] = s;
      this.weights[i] = f32(1 / f32(1 + s));
    }
  }

  /** One draw from `p` (multinomial with replacement), by inverse CDF on one uniform. */
  private drawOne(rng: Rng): number {
    const total = this.cdf[this.cdf.length - 1]!;
    const u = rng.random() * total;
    let lo = 0;
    let hi = this.cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.cdf[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /**
   * SpeeDiT's `t_sample(n)`: `n//2 + 1` draws from `p`, their duals (`M − t` below M, `t − M`
   * above), and the first n of the concatenation (so n = 2 has no dual; n = 4 gives one).
   */
  override sampleTimesteps(batchSize: number, rng: Rng): Int32Array {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new InvalidArgumentError(`batchSize must be a positive integer, got ${batchSize}`);
    const k = Math.floor(batchSize / 2) + 1;
    const base: number[] = [];
    for (let i = 0; i < k; i++) base.push(this.drawOne(rng));
    const m = this.meaningfulSteps;
    const dual = base.map((t) => (t < m ? m - t : t - m));
    return Int32Array.from([...base, ...dual].slice(0, batchSize));
  }

  protected override lossWeights(t: Int32Array): Float32Array {
    return Float32Array.from(t, (i) => this.weights[i]!);
  }

  /** Uses the given `t` (trainer-drawn, for exact resume); without it, draws from SpeeDiT's distribution (the reference always does). */
  protected override resolveTrainingTimesteps(t: TimestepsLike | undefined, batch: number, rng: Rng | undefined): Int32Array {
    if (t !== undefined) return toTimesteps(t, batch, this.numTimesteps);
    if (!rng) throw new InvalidArgumentError('SpeeDiT trainingLosses: give t or rng', { hint: 'rng draws t from the SpeeDiT distribution' });
    return this.sampleTimesteps(batch, rng);
  }
}
