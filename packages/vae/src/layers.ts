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
 * stays accurate for near-constant inputs such as flat-colour frames). Statistics are reduced over
 * H*W per channel first (as matMuls with a row of ones) and combined into groups on the small
 * [N, C] sums; the full-size work is then one subtraction, one square, one multiply-add and the
 * activation.
 */
export function groupNorm(w: WeightGetter, name: string, x: tf.Tensor4D, groups: number, eps: number, act: boolean): tf.Tensor4D {
  const [n, h, wd, c] = x.shape;
  const cg = c / groups;
  const count = h * wd * cg;
  const x3 = tf.reshape(x, [n, h * wd, c]);
  /** [N, C] per-channel sums -> [N, 1, C] with each channel holding its group's total. */
  const groupTotals = (perChannel: tf.Tensor): tf.Tensor => {
    const g = tf.sum(tf.reshape(perChannel, [n, groups, cg]), 2, true);
    return tf.reshape(tf.broadcastTo(g, [n, groups, cg]), [n, 1, c]);
  };
  // Sums over H*W as [N,1,HW] x [N,HW,C] matMuls: far faster than tfjs' strided reductions.
  const ones = tf.ones([n, 1, h * wd]);
  const mean = tf.div(groupTotals(tf.matMul(ones, x3)), count);
  const d = tf.sub(x3, mean);
  const variance = tf.div(groupTotals(tf.matMul(ones, tf.square(d))), count);
  const scale = tf.mul(tf.rsqrt(tf.add(variance, eps)), w(`${name}.weight`));
  const y = tf.reshape(tf.add(tf.mul(d, scale), w(`${name}.bias`)), [n, h, wd, c]) as tf.Tensor4D;
  return act ? silu(y) : y;
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
