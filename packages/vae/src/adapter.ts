/**
 * The narrow VAE interface that the trainer and the sampler use, and the input checks shared by
 * the adapters. Videos are [B, C, T, H, W] float32 in [-1, 1]; latents are [B, C', T', H', W'].
 */
import { tf, InvalidArgumentError, type Rng } from '@opensora/core';
import { fmtShape, shapeError } from './errors.js';

export type Size3 = readonly [number, number, number];
export type MaybeSize3 = readonly [number | null, number | null, number | null];

export interface VaeEncodeOptions {
  /** Sample the posterior (default: the adapter's setting, true for the SD VAE) or take its mean. */
  sample?: boolean;
  /** Generator for the posterior noise (default: the adapter's own seeded generator). */
  rng?: Rng;
}

export interface VaeAdapter {
  /** 'builtin' | 'sd-vae'. */
  readonly type: string;
  /** Pixel channels (3). */
  readonly inChannels: number;
  /** Latent channels (4 for the SD VAE). */
  readonly latentChannels: number;
  /** Pixels per latent along H and W (8 for the SD VAE). */
  readonly spatialCompression: number;
  /** Frames per latent frame (1 for per-frame 2D VAEs). */
  readonly temporalCompression: number;
  /** Latents are the VAE's raw latents times this (0.18215 for the SD VAE, as the reference). */
  readonly scalingFactor: number;
  /** (T, H, W) of pixels -> of latents: floor division, null passed through (as the reference). */
  getLatentSize(size: Size3): [number, number, number];
  getLatentSize(size: MaybeSize3): [number | null, number | null, number | null];
  /** (T, H, W) of latents -> of the pixels they decode to. */
  getDecodedSize(latentSize: Size3): [number, number, number];
  /** [B, inChannels, T, H, W] in [-1, 1] -> [B, latentChannels, T', H', W'] (scaled). */
  encode(video: tf.Tensor, options?: VaeEncodeOptions): tf.Tensor;
  /** [B, latentChannels, T', H', W'] (scaled) -> [B, inChannels, T, H, W], not clamped. */
  decode(latent: tf.Tensor): tf.Tensor;
  dispose(): void;
}

export interface InputCheckOptions {
  /**
   * How far outside [-1, 1] input pixels may go before encode refuses them (default 0.5, i.e.
   * values beyond +-1.5 are an error; decoded-then-re-encoded pixels overshoot a little).
   * false skips the check (and its device read-back).
   */
  rangeTolerance?: number | false;
}

export function floorSize(size: MaybeSize3, ft: number, fs: number): [number | null, number | null, number | null] {
  const [t, h, w] = size;
  return [t == null ? null : Math.floor(t / ft), h == null ? null : Math.floor(h / fs), w == null ? null : Math.floor(w / fs)];
}

/** Rank, dtype and channel checks of a [B, C, T, H, W] tensor. */
export function checkRank5(x: tf.Tensor, channels: number, who: string, what: 'video' | 'latent'): [number, number, number, number, number] {
  if (!(x instanceof tf.Tensor)) throw new InvalidArgumentError(`${who}: expected a tf.Tensor ${what}, got ${typeof x}`);
  if (x.rank !== 5) {
    throw shapeError(`${who}: expected a rank-5 ${what} [B, C, T, H, W], got rank ${x.rank} ${fmtShape(x.shape)}`, {
      hint: x.rank === 4 ? 'for images add a frame axis: x.expandDims(2) makes [B, C, 1, H, W]' : 'reshape to [batch, channels, frames, height, width]',
    });
  }
  if (x.dtype !== 'float32') throw new InvalidArgumentError(`${who}: expected a float32 ${what}, got ${x.dtype}`, { hint: 'cast with x.toFloat()' });
  if (x.shape[1] !== channels) {
    throw shapeError(`${who}: expected ${channels} channels on axis 1 of the ${what} [B, C, T, H, W], got ${x.shape[1]} (shape ${fmtShape(x.shape)})`, {
      hint: x.shape[4] === channels ? 'the tensor looks channels-last; transpose [B, T, H, W, C] to [B, C, T, H, W] with x.transpose([0, 4, 1, 2, 3])' : undefined,
    });
  }
  if (x.size === 0) throw shapeError(`${who}: the ${what} is empty ${fmtShape(x.shape)}`);
  return x.shape as [number, number, number, number, number];
}

/** Refuses pixel values far outside [-1, 1] (or NaN), with a hint on the usual mistakes. */
export function checkPixelRange(x: tf.Tensor, who: string, tolerance: number | false | undefined): void {
  if (tolerance === false) return;
  const tol = tolerance ?? 0.5;
  const [lo, hi] = tf.tidy(() => [tf.min(x).dataSync()[0]!, tf.max(x).dataSync()[0]!]);
  const limit = 1 + tol;
  if (!(lo >= -limit && hi <= limit)) {
    const nan = Number.isNaN(lo) || Number.isNaN(hi);
    throw new InvalidArgumentError(
      nan ? `${who}: the video holds NaN values` : `${who}: pixel values span [${lo}, ${hi}], far outside [-1, 1] (allowed: +-${limit})`,
      {
        hint: nan ? 'check the data loader' : lo >= 0 && hi > 2 ? 'this looks like 0..255 pixels: use x / 127.5 - 1' : 'normalise pixels to [-1, 1] (x * 2 - 1 for [0, 1] data), or set rangeTolerance',
        details: { min: lo, max: hi },
      },
    );
  }
}

/** [B, C, T, H, W] -> frames [B*T, H, W, C] (channels-last for the conv stack). */
export function videoToFrames(x: tf.Tensor): tf.Tensor4D {
  const [b, c, t, h, w] = x.shape as [number, number, number, number, number];
  return tf.tidy(() => tf.reshape(tf.transpose(x, [0, 2, 3, 4, 1]), [b * t, h, w, c]));
}

/** frames [B*T, H, W, C] -> [B, C, T, H, W]. */
export function framesToVideo(f: tf.Tensor4D, b: number, t: number): tf.Tensor {
  const [, h, w, c] = f.shape;
  return tf.tidy(() => tf.transpose(tf.reshape(f, [b, t, h, w, c]), [0, 4, 1, 2, 3]));
}
