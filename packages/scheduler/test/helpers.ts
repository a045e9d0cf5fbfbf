import { tf } from '@opensora/core';
import type { Rng } from '@opensora/core';

/** A float32 tensor of standard normals from a seeded Rng. */
export function normal(rng: Rng, shape: number[], std = 1): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(rng.fillNormal(new Float32Array(n), 0, std), shape);
}

export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

export function values(t: tf.Tensor): number[] {
  return Array.from(t.dataSync());
}

/** The float32 approx-CDF in doubles (reference formula). */
export function cdf(x: number): number {
  return 0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}

/** −log of the discretised Gaussian likelihood, in doubles. */
export function nll(x: number, mean: number, logScale: number): number {
  const c = x - mean;
  const inv = Math.exp(-logScale);
  const cp = cdf(inv * (c + 1 / 255));
  const cm = cdf(inv * (c - 1 / 255));
  let lp: number;
  if (x < -0.999) lp = Math.log(Math.max(cp, 1e-12));
  else if (x > 0.999) lp = Math.log(Math.max(1 - cm, 1e-12));
  else lp = Math.log(Math.max(cp - cm, 1e-12));
  return -lp;
}

export function kl(m1: number, lv1: number, m2: number, lv2: number): number {
  return 0.5 * (-1 + lv2 - lv1 + Math.exp(lv1 - lv2) + (m1 - m2) ** 2 * Math.exp(-lv2));
}
