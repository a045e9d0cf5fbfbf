/**
 * The AutoencoderKL building blocks on tfjs, channels-last (NHWC, what tfjs' conv2d takes).
 * Weights are held in tfjs layout: conv filters [kh, kw, in, out], linear weights [in, out].
 * The maths follows diffusers (ResnetBlock2D, Attention with a GroupNorm in front,
 * Downsample2D with padding 0, Upsample2D with nearest interpolation).
 */
import { tf } from '@opensora/core';

export type WeightGetter = (name: string) => tf.Tensor;

const SAME3: [[number, number], [number, number], [number, number], [number, number]] = [
  [0, 0],
  [1, 1],
  [1, 1],
  [0, 0],
];
/** diffusers Downsample2D(padding=0): F.pad(x, (0, 1, 0, 1)) then a stride-2 3x3 conv. */
const DOWN_PAD: [[number, number], [number, number], [number, number], [number, number]] = [
  [0, 0],
  [0, 1],
  [0, 1],
  [0, 0],
];

/** Conv2d with bias; `k` 1 (no padding) or 3 (padding 1), or the downsampler's stride-2 asymmetric form. */
export function conv2d(w: WeightGetter, name: string, x: tf.Tensor4D, mode: '1x1' | '3x3' | 'down' = '3x3'): tf.Tensor4D {
  const filter = w(`${name}.weight`) as tf.Tensor4D;
  const bias = w(`${name}.bias`) as tf.Tensor1D;
  return tf.fused.conv2d({
    x,
    filter,
    bias,
    strides: mode === 'down' ? 2 : 1,
    pad: mode === '1x1' ? 'valid' : mode === 'down' ? DOWN_PAD : SAME3,
  });
}

export function silu(x: tf.Tensor4D): tf.Tensor4D {
  return tf.mul(x, tf.sigmoid(x));
}

/**
 * GroupNorm over (channels of a group, H, W) per sample, biased variance, then the per-channel
 * affine; optionally followed by SiLU. Two-pass (the variance is taken around the mean, which
 * stays accurate for near-constant inputs such as flat-colour frames). Per-channel means over H*W
 * come from a global average pool (a contiguous NHWC reduction in XNNPACK, far faster than tfjs'
 * strided reductions) and are averaged into groups on the small [N, C] tensors. The per-channel
 * broadcasts then run on a wide view [N, HW/k, k*C] (channels repeat with period C), several
 * times faster than on an inner axis of C = 8 or 16.
 */
export function groupNorm(w: WeightGetter, name: string, x: tf.Tensor4D, groups: number, eps: number, act: boolean): tf.Tensor4D {
  const [n, h, wd, c] = x.shape;
  const hw = h * wd;
  const cg = c / groups;
  const k = wideFactor(hw, c);
  /** Per-channel means [N,1,1,C] -> each channel's group mean, [N, 1, k*C] (tiled k times). */
  const groupMean = (perChannel: tf.Tensor): tf.Tensor => {
    const g = tf.mean(tf.reshape(perChannel, [n, groups, cg]), 2, true);
    return tf.tile(tf.reshape(tf.broadcastTo(g, [n, groups, cg]), [n, 1, c]), [1, 1, k]);
  };
  const mean = groupMean(tf.avgPool(x, [h, wd], 1, 'valid'));
  const d = tf.sub(tf.reshape(x, [n, hw / k, k * c]), mean);
  const variance = groupMean(tf.avgPool(tf.reshape(tf.square(d), [n, h, wd, c]) as tf.Tensor4D, [h, wd], 1, 'valid'));
  const scale = tf.mul(tf.rsqrt(tf.add(variance, eps)), tf.tile(w(`${name}.weight`), [k]));
  const y = tf.reshape(tf.add(tf.mul(d, scale), tf.tile(w(`${name}.bias`), [k])), [n, h, wd, c]) as tf.Tensor4D;
  return act ? silu(y) : y;
}

/** The largest k dividing `hw` with k * c <= 1024 (1 when none). */
function wideFactor(hw: number, c: number): number {
  const limit = Math.max(1, Math.floor(1024 / c));
  for (let k = Math.min(limit, hw); k > 1; k--) if (hw % k === 0) return k;
  return 1;
}

/**
 * Runs `steps` one after another, each inside its own tidy, disposing each intermediate as soon as
 * the next step has consumed it (never `x` itself): peak memory stays at a few activations.
 */
export function chain(x: tf.Tensor4D, ...steps: Array<(h: tf.Tensor4D) => tf.Tensor4D>): tf.Tensor4D {
  let h = x;
  for (const step of steps) {
    const prev = h;
    h = tf.tidy(() => step(prev));
    if (prev !== x) prev.dispose();
  }
  return h;
}

/** diffusers ResnetBlock2D without time embedding, dropout 0, output_scale_factor 1. */
export function resnetBlock(w: WeightGetter, name: string, x: tf.Tensor4D, groups: number, eps: number, hasShortcut: boolean): tf.Tensor4D {
  const h = chain(
    x,
    (t) => groupNorm(w, `${name}.norm1`, t, groups, eps, true),
    (t) => conv2d(w, `${name}.conv1`, t),
    (t) => groupNorm(w, `${name}.norm2`, t, groups, eps, true),
    (t) => conv2d(w, `${name}.conv2`, t),
  );
  const out = tf.tidy(() => tf.add(hasShortcut ? conv2d(w, `${name}.conv_shortcut`, x, '1x1') : x, h) as tf.Tensor4D);
  h.dispose();
  return out;
}

function linear(w: WeightGetter, name: string, x2d: tf.Tensor2D): tf.Tensor2D {
  return tf.add(tf.matMul(x2d, w(`${name}.weight`) as tf.Tensor2D), w(`${name}.bias`)) as tf.Tensor2D;
}

/** Largest score block (queries x keys) computed at once: 2^22 floats = 16 MiB. */
const ATTN_BLOCK = 1 << 22;

/**
 * The mid-block self-attention: GroupNorm, single head over all H*W positions
 * (head dim = channels, scale 1/sqrt(C)), output projection, residual. Computed frame by frame
 * and in blocks of queries, so the score matrix never exceeds ATTN_BLOCK floats, with plain
 * (untransposed) 2-D matMuls only.
 */
export function attentionBlock(w: WeightGetter, name: string, x: tf.Tensor4D, groups: number, eps: number, maxScores = ATTN_BLOCK): tf.Tensor4D {
  const [n, h, wd, c] = x.shape;
  const s = h * wd;
  const [q, kT, v] = tf.tidy(() => {
    const hn = tf.reshape(groupNorm(w, `${name}.group_norm`, x, groups, eps, false), [n * s, c]) as tf.Tensor2D;
    // Fold the 1/sqrt(C) scale into q.
    const qq = tf.mul(linear(w, `${name}.to_q`, hn), 1 / Math.sqrt(c)) as tf.Tensor2D;
    const k = tf.reshape(linear(w, `${name}.to_k`, hn), [n, s, c]);
    return [qq, tf.transpose(k, [0, 2, 1]), linear(w, `${name}.to_v`, hn)] as [tf.Tensor2D, tf.Tensor3D, tf.Tensor2D];
  });
  const block = Math.max(1, Math.min(s, Math.floor(maxScores / s)));
  const rows: tf.Tensor2D[] = [];
  try {
    for (let f = 0; f < n; f++) {
      const kf = tf.tidy(() => tf.reshape(tf.slice(kT, [f, 0, 0], [1, c, s]), [c, s]) as tf.Tensor2D);
      const vf = tf.slice(v, [f * s, 0], [s, c]);
      for (let r = 0; r < s; r += block) {
        const m = Math.min(block, s - r);
        rows.push(tf.tidy(() => tf.matMul(tf.softmax(tf.matMul(tf.slice(q, [f * s + r, 0], [m, c]), kf), -1), vf)));
      }
      tf.dispose([kf, vf]);
    }
    return tf.tidy(() => {
      const o = (rows.length === 1 ? rows[0]! : tf.concat(rows, 0)) as tf.Tensor2D;
      return tf.add(tf.reshape(linear(w, `${name}.to_out.0`, o), [n, h, wd, c]), x) as tf.Tensor4D;
    });
  } finally {
    tf.dispose([q, kT, v, ...rows]);
  }
}

/** Nearest-neighbour 2x: each pixel repeated into a 2x2 block (F.interpolate(scale 2, 'nearest'): source = floor(dst / 2)). */
export function upsampleNearest2x(x: tf.Tensor4D): tf.Tensor4D {
  const [, h, wd] = x.shape;
  return tf.image.resizeNearestNeighbor(x, [2 * h, 2 * wd], false, false);
}
