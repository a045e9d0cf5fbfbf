/**
 * `VideoAutoencoderKL`: the reference's video wrapper around a 2-D AutoencoderKL
 * (`opensora/models/vae/vae.py`). Frames are processed independently: [B, C, T, H, W] is
 * flattened to B*T frames, run through the VAE `microBatchSize` frames at a time (chunks may span
 * batch items), and put back. encode = posterior sample (or mean) * 0.18215; decode = VAE(z / 0.18215).
 */
import { tf, InvalidArgumentError, Rng, type Seed } from '@opensora/core';
import { AutoencoderKL } from './autoencoder-kl.js';
import {
  checkPixelRange,
  checkRank5,
  floorSize,
  framesToVideo,
  videoToFrames,
  type InputCheckOptions,
  type MaybeSize3,
  type Size3,
  type VaeAdapter,
  type VaeEncodeOptions,
} from './adapter.js';
import { shapeError } from './errors.js';

/** The reference's hard-coded latent scale (SD-1.x). */
export const SD_VAE_SCALING_FACTOR = 0.18215;

export interface VideoAutoencoderKLOptions extends InputCheckOptions {
  /** Frames per VAE call (the reference's micro_batch_size: 4 in the configs). null = all at once. Default 4. */
  microBatchSize?: number | null;
  /** Sample the posterior on encode (the reference's behaviour, default true) or take its mean. */
  sample?: boolean;
  /** Seed of the adapter's own noise generator (default 0); ignored when `rng` is given. */
  seed?: Seed;
  /** The noise generator (its state advances with each sampled encode). */
  rng?: Rng;
  /** Latent scale (default 0.18215, hard-coded in the reference; not read from config.json). */
  scalingFactor?: number;
}

export class VideoAutoencoderKL implements VaeAdapter {
  readonly type = 'sd-vae';
  readonly model: AutoencoderKL;
  readonly inChannels: number;
  readonly latentChannels: number;
  readonly spatialCompression: number;
  readonly temporalCompression = 1;
  readonly scalingFactor: number;
  readonly microBatchSize: number | null;
  readonly sample: boolean;
  /** The generator used for posterior noise when encode is not given one. */
  rng: Rng;
  private readonly rangeTolerance: number | false | undefined;

  /** Wraps `model`; the adapter owns it from now on (dispose() disposes it). */
  constructor(model: AutoencoderKL, options: VideoAutoencoderKLOptions = {}) {
    const mb = options.microBatchSize === undefined ? 4 : options.microBatchSize;
    if (mb !== null && !(Number.isInteger(mb) && mb > 0)) throw new InvalidArgumentError(`microBatchSize must be a positive integer or null, got ${mb}`);
    const sf = options.scalingFactor ?? SD_VAE_SCALING_FACTOR;
    if (!(sf > 0) || !Number.isFinite(sf)) throw new InvalidArgumentError(`scalingFactor must be a positive number, got ${sf}`);
    this.model = model;
    this.inChannels = model.config.in_channels;
    this.latentChannels = model.config.latent_channels;
    this.spatialCompression = model.spatialCompression;
    this.scalingFactor = sf;
    this.microBatchSize = mb;
    this.sample = options.sample ?? true;
    this.rng = options.rng ?? new Rng(options.seed ?? 0);
    this.rangeTolerance = options.rangeTolerance;
  }

  /** Loads a diffusers AutoencoderKL folder (e.g. a local stabilityai/sd-vae-ft-ema) and wraps it. */
  static async fromPretrained(dir: string, options: VideoAutoencoderKLOptions = {}): Promise<VideoAutoencoderKL> {
    return new VideoAutoencoderKL(await AutoencoderKL.fromPretrained(dir), options);
  }

  getLatentSize(size: Size3): [number, number, number];
  getLatentSize(size: MaybeSize3): [number | null, number | null, number | null];
  getLatentSize(size: MaybeSize3): [number | null, number | null, number | null] {
    return floorSize(size, 1, this.spatialCompression);
  }

  getDecodedSize(latentSize: Size3): [number, number, number] {
    const [t, h, w] = latentSize;
    return [t, h * this.spatialCompression, w * this.spatialCompression];
  }

  private chunks(n: number): Array<[number, number]> {
    const mb = this.microBatchSize ?? n;
    const out: Array<[number, number]> = [];
    for (let s = 0; s < n; s += mb) out.push([s, Math.min(mb, n - s)]);
    return out;
  }

  encode(video: tf.Tensor, options: VaeEncodeOptions = {}): tf.Tensor {
    const [b, , t, h, w] = checkRank5(video, this.inChannels, 'VideoAutoencoderKL.encode', 'video');
    if (h < this.spatialCompression || w < this.spatialCompression) {
      throw shapeError(`VideoAutoencoderKL.encode: frames of ${h}x${w} are smaller than the compression factor ${this.spatialCompression}`);
    }
    checkPixelRange(video, 'VideoAutoencoderKL.encode', this.rangeTolerance);
    const sample = options.sample ?? this.sample;
    const rng = options.rng ?? this.rng;
    const frames = videoToFrames(video);
    const parts: tf.Tensor4D[] = [];
    try {
      for (const [start, n] of this.chunks(b * t)) {
        const chunk = tf.slice(frames, [start, 0, 0, 0], [n, -1, -1, -1]);
        const post = this.model.encodeNHWC(chunk);
        chunk.dispose();
        const z = tf.tidy(() => {
          let lat: tf.Tensor4D = post.mean;
          if (sample) {
            // Noise drawn frame by frame in the reference's NCHW order, so chunking does not change it.
            const [nn, hh, ww, cc] = post.mean.shape;
            const eps = rng.fillNormal(new Float32Array(nn * cc * hh * ww));
            const epsNHWC = tf.transpose(tf.tensor4d(eps, [nn, cc, hh, ww]), [0, 2, 3, 1]);
            lat = tf.add(post.mean, tf.mul(tf.exp(tf.mul(post.logvar, 0.5)), epsNHWC));
          }
          return tf.mul(lat, this.scalingFactor) as tf.Tensor4D;
        });
        post.mean.dispose();
        post.logvar.dispose();
        parts.push(z);
      }
      return tf.tidy(() => framesToVideo(parts.length === 1 ? parts[0]! : tf.concat(parts, 0), b, t));
    } finally {
      frames.dispose();
      for (const p of parts) p.dispose();
    }
  }

  decode(latent: tf.Tensor): tf.Tensor {
    const [b, , t] = checkRank5(latent, this.latentChannels, 'VideoAutoencoderKL.decode', 'latent');
    const frames = tf.tidy(() => tf.div(videoToFrames(latent), this.scalingFactor) as tf.Tensor4D);
    const parts: tf.Tensor4D[] = [];
    try {
      for (const [start, n] of this.chunks(b * t)) {
        const chunk = tf.slice(frames, [start, 0, 0, 0], [n, -1, -1, -1]);
        parts.push(this.model.decodeNHWC(chunk));
        chunk.dispose();
      }
      return tf.tidy(() => framesToVideo(parts.length === 1 ? parts[0]! : tf.concat(parts, 0), b, t));
    } finally {
      frames.dispose();
      for (const p of parts) p.dispose();
    }
  }

  dispose(): void {
    this.model.dispose();
  }
}
