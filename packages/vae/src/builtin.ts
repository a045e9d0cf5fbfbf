/**
 * The built-in, weight-free VAE stand-in: space-to-depth patching followed by a fixed orthonormal
 * mix (a separable DCT-II over colour, time and the two patch axes). It is exactly invertible
 * (decode(encode(x)) == x up to float32 rounding), deterministic, needs no download, and is cheap.
 * It compresses nothing: a latent holds as many numbers as the pixels it came from
 * (latentChannels = C * pt * p * p), it only rearranges them into a compact grid.
 */
import { tf, InvalidArgumentError } from '@opensora/core';
import { checkPixelRange, checkRank5, floorSize, type InputCheckOptions, type MaybeSize3, type Size3, type VaeAdapter, type VaeEncodeOptions } from './adapter.js';
import { shapeError } from './errors.js';

export interface BuiltinVaeOptions extends InputCheckOptions {
  /** Spatial patch (pixels per latent along H and W), default 2. */
  patchSize?: number;
  /** Temporal patch (frames per latent frame), default 1 (as the reference VAE: no temporal compression). */
  temporalPatchSize?: number;
  /** Pixel channels, default 3. */
  inChannels?: number;
  /** Latents are the orthonormal coefficients times this, default 1. */
  scalingFactor?: number;
  /**
   * Sizes that are not multiples of the patch: 'crop' (default) drops the trailing rows/columns/frames,
   * which gives the reference's floor-division latent size (426 px -> 53 latent columns at patch 8 ->
   * 424 px decoded); 'error' refuses them.
   */
  onIndivisible?: 'crop' | 'error';
}

/** Orthonormal DCT-II matrix, m[k][i] = sqrt((k ? 2 : 1) / n) cos(pi (2i + 1) k / 2n). */
export function dctMatrix(n: number): Float64Array {
  const m = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const s = Math.sqrt((k === 0 ? 1 : 2) / n);
    for (let i = 0; i < n; i++) m[k * n + i] = s * Math.cos((Math.PI * (2 * i + 1) * k) / (2 * n));
  }
  return m;
}

/**
 * The mix M [D, D] (row = latent channel, column = patch element), D = C*pt*p*p. Patch elements are
 * ordered (c, t, y, x); latent channels ((kt*p + ky)*p + kx)*C + kc, so channels 0..C-1 are the
 * patch-mean (DC) terms of the C colour components (luma-like first): a p-times-scaled thumbnail.
 */
export function builtinMixMatrix(c: number, pt: number, p: number): Float64Array {
  const dc = dctMatrix(c);
  const dt = dctMatrix(pt);
  const dp = dctMatrix(p);
  const d = c * pt * p * p;
  const m = new Float64Array(d * d);
  for (let kt = 0; kt < pt; kt++)
    for (let ky = 0; ky < p; ky++)
      for (let kx = 0; kx < p; kx++)
        for (let kc = 0; kc < c; kc++) {
          const row = ((kt * p + ky) * p + kx) * c + kc;
          for (let ci = 0; ci < c; ci++)
            for (let t = 0; t < pt; t++)
              for (let y = 0; y < p; y++)
                for (let x = 0; x < p; x++) {
                  const col = ((ci * pt + t) * p + y) * p + x;
                  m[row * d + col] = dc[kc * c + ci]! * dt[kt * pt + t]! * dp[ky * p + y]! * dp[kx * p + x]!;
                }
        }
  return m;
}

function posInt(v: number, name: string): number {
  if (!(Number.isInteger(v) && v > 0)) throw new InvalidArgumentError(`BuiltinVae: ${name} must be a positive integer, got ${v}`);
  return v;
}

export class BuiltinVae implements VaeAdapter {
  readonly type = 'builtin';
  readonly inChannels: number;
  readonly latentChannels: number;
  readonly spatialCompression: number;
  readonly temporalCompression: number;
  readonly scalingFactor: number;
  readonly onIndivisible: 'crop' | 'error';
  private readonly rangeTolerance: number | false | undefined;
  /** Encode matrix M^T [D(in), D(out)] and decode matrix M [D(out), D(in)], created lazily. */
  private enc: tf.Tensor2D | null = null;
  private dec: tf.Tensor2D | null = null;
  /** When pt = 1: the mix as a conv filter [p, p, C, D] for encode (a stride-p conv), and as a
   * [D, p*p*C] matrix with columns in (y, x, c) order for decode (matMul, then one transpose). */
  private encF: tf.Tensor4D | null = null;
  private decF: tf.Tensor2D | null = null;
  private readonly mix: Float64Array;

  constructor(options: BuiltinVaeOptions = {}) {
    this.inChannels = posInt(options.inChannels ?? 3, 'inChannels');
    this.spatialCompression = posInt(options.patchSize ?? 2, 'patchSize');
    this.temporalCompression = posInt(options.temporalPatchSize ?? 1, 'temporalPatchSize');
    this.scalingFactor = options.scalingFactor ?? 1;
    if (!(this.scalingFactor > 0) || !Number.isFinite(this.scalingFactor)) throw new InvalidArgumentError(`BuiltinVae: scalingFactor must be a positive number, got ${this.scalingFactor}`);
    this.onIndivisible = options.onIndivisible ?? 'crop';
    if (this.onIndivisible !== 'crop' && this.onIndivisible !== 'error') throw new InvalidArgumentError(`BuiltinVae: onIndivisible must be 'crop' or 'error', got ${String(this.onIndivisible)}`);
    this.rangeTolerance = options.rangeTolerance;
    this.latentChannels = this.inChannels * this.temporalCompression * this.spatialCompression ** 2;
    this.mix = builtinMixMatrix(this.inChannels, this.temporalCompression, this.spatialCompression);
  }

  private matrices(): [tf.Tensor2D, tf.Tensor2D] {
    if (!this.enc || !this.dec) {
      const d = this.latentChannels;
      const s = this.scalingFactor;
      const mt = new Float32Array(d * d);
      const m = new Float32Array(d * d);
      for (let r = 0; r < d; r++)
        for (let c = 0; c < d; c++) {
          mt[c * d + r] = this.mix[r * d + c]! * s;
          m[r * d + c] = this.mix[r * d + c]! / s;
        }
      this.enc = tf.keep(tf.tensor2d(mt, [d, d]));
      this.dec = tf.keep(tf.tensor2d(m, [d, d]));
    }
    return [this.enc, this.dec];
  }

  private filters(): [tf.Tensor4D, tf.Tensor2D] {
    if (!this.encF || !this.decF) {
      const d = this.latentChannels;
      const c = this.inChannels;
      const p = this.spatialCompression;
      const s = this.scalingFactor;
      const fe = new Float32Array(p * p * c * d);
      const fd = new Float32Array(p * p * c * d);
      for (let ch = 0; ch < d; ch++)
        for (let ci = 0; ci < c; ci++)
          for (let y = 0; y < p; y++)
            for (let x = 0; x < p; x++) {
              const v = this.mix[ch * d + (ci * p + y) * p + x]!;
              const yxc = (y * p + x) * c + ci;
              fe[yxc * d + ch] = v * s; // filter [y, x, c, ch]
              fd[ch * d + yxc] = v / s; // matrix [ch, (y, x, c)]
            }
      this.encF = tf.keep(tf.tensor4d(fe, [p, p, c, d]));
      this.decF = tf.keep(tf.tensor2d(fd, [d, d]));
    }
    return [this.encF, this.decF];
  }

  getLatentSize(size: Size3): [number, number, number];
  getLatentSize(size: MaybeSize3): [number | null, number | null, number | null];
  getLatentSize(size: MaybeSize3): [number | null, number | null, number | null] {
    return floorSize(size, this.temporalCompression, this.spatialCompression);
  }

  getDecodedSize(latentSize: Size3): [number, number, number] {
    const [t, h, w] = latentSize;
    return [t * this.temporalCompression, h * this.spatialCompression, w * this.spatialCompression];
  }

  /** Deterministic: `options.sample` and `options.rng` are accepted and ignored (there is no posterior). */
  encode(video: tf.Tensor, _options: VaeEncodeOptions = {}): tf.Tensor {
    const [b, c, t, h, w] = checkRank5(video, this.inChannels, 'BuiltinVae.encode', 'video');
    const p = this.spatialCompression;
    const pt = this.temporalCompression;
    const [lt, lh, lw] = this.getLatentSize([t, h, w]);
    if (lt === 0 || lh === 0 || lw === 0) {
      throw shapeError(`BuiltinVae.encode: a ${t}x${h}x${w} (TxHxW) video is smaller than one ${pt}x${p}x${p} patch`);
    }
    if (this.onIndivisible === 'error' && (t % pt !== 0 || h % p !== 0 || w % p !== 0)) {
      throw shapeError(`BuiltinVae.encode: size ${t}x${h}x${w} (TxHxW) is not divisible by the patch ${pt}x${p}x${p}`, {
        hint: `resize or crop to ${lt * pt}x${lh * p}x${lw * p}, or use onIndivisible: 'crop'`,
      });
    }
    checkPixelRange(video, 'BuiltinVae.encode', this.rangeTolerance);
    const d = this.latentChannels;
    return tf.tidy(() => {
      let x = video;
      if (lt * pt !== t || lh * p !== h || lw * p !== w) x = tf.slice(x, [0, 0, 0, 0, 0], [b, c, lt * pt, lh * p, lw * p]);
      if (pt === 1) {
        // Space-to-depth + mix = one stride-p p x p convolution on channels-last frames.
        const [encF] = this.filters();
        const frames = tf.reshape(tf.transpose(x, [0, 2, 3, 4, 1]), [b * lt, lh * p, lw * p, c]) as tf.Tensor4D;
        const z = tf.conv2d(frames, encF, p, 'valid');
        return tf.transpose(tf.reshape(z, [b, lt, lh, lw, d]), [0, 4, 1, 2, 3]);
      }
      const [enc] = this.matrices();
      const r = tf.reshape(x, [b, c, lt, pt, lh, p, lw, p]);
      const patches = tf.transpose(r, [0, 2, 4, 6, 1, 3, 5, 7]);
      const z = tf.matMul(tf.reshape(patches, [b * lt * lh * lw, d]) as tf.Tensor2D, enc);
      return tf.transpose(tf.reshape(z, [b, lt, lh, lw, d]), [0, 4, 1, 2, 3]);
    });
  }

  decode(latent: tf.Tensor): tf.Tensor {
    const [b, d, lt, lh, lw] = checkRank5(latent, this.latentChannels, 'BuiltinVae.decode', 'latent');
    const p = this.spatialCompression;
    const pt = this.temporalCompression;
    const c = this.inChannels;
    return tf.tidy(() => {
      if (pt === 1) {
        const [, decF] = this.filters();
        const zf = tf.reshape(tf.transpose(latent, [0, 2, 3, 4, 1]), [b * lt * lh * lw, d]) as tf.Tensor2D;
        // [N*h*w, (y, x, c)] -> [N, h, y, w, x, c] -> frames [N, H, W, C] -> [B, C, T, H, W]
        const r = tf.reshape(tf.matMul(zf, decF), [b * lt, lh, lw, p, p, c]);
        const frames = tf.reshape(tf.transpose(r, [0, 1, 3, 2, 4, 5]), [b, lt, lh * p, lw * p, c]);
        return tf.transpose(frames, [0, 4, 1, 2, 3]);
      }
      const [, dec] = this.matrices();
      const z = tf.reshape(tf.transpose(latent, [0, 2, 3, 4, 1]), [b * lt * lh * lw, d]) as tf.Tensor2D;
      const patches = tf.matMul(z, dec);
      const r = tf.reshape(patches, [b, lt, lh, lw, c, pt, p, p]);
      return tf.reshape(tf.transpose(r, [0, 4, 1, 5, 2, 6, 3, 7]), [b, c, lt * pt, lh * p, lw * p]);
    });
  }

  dispose(): void {
    for (const t of [this.enc, this.dec, this.encF, this.decF]) t?.dispose();
    this.enc = null;
    this.dec = null;
    this.encF = null;
    this.decF = null;
  }
}
