/**
 * The primitive layers of STDiT2 (spec section 2) as pure functions of tensors. Parameters are
 * tensors in the official PyTorch layout: a Linear weight is (out, in) and y = x·Wᵀ + b.
 */
import { fusedAttention, fusedGatedResidual, fusedGeluTanh, fusedLayerNormModulate, fusedOpsAvailable, fusedRmsNorm, tf } from '@opensora/core';

/*
 * With the fast kernels on (core's enableFastKernels), GELU, LayerNorm+modulate, RMSNorm and
 * the attention core run as single fused native kernels with hand-written backward kernels;
 * otherwise as the plain tfjs compositions below. Both compute the same maths in float32.
 */

/**
 * Plain-tfjs linear arranged for tfjs-wasm's fast path (plain 2-D matMul without transposes):
 * forward x·(Wᵀ) with the small weight transposed explicitly; backward dx = dy·W (plain) and
 * dW = (dyᵀ)·x (explicit transpose, then plain). tfjs's own gradient of x·Wᵀ would run
 * transposed products, ~12x slower there.
 */
const linearPlain = tf.customGrad((...args: unknown[]) => {
  const [x, w, save] = args as [tf.Tensor2D, tf.Tensor2D, (t: tf.Tensor[]) => void];
  save([x, w]);
  return {
    value: tf.matMul(x, tf.transpose(w)),
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const d = (Array.isArray(dy) ? dy[0]! : dy) as tf.Tensor2D;
      const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
      return [tf.matMul(d, ws), tf.matMul(tf.transpose(d), xs)];
    },
  };
}) as unknown as (x: tf.Tensor2D, w: tf.Tensor2D) => tf.Tensor2D;

/** y = x·Wᵀ + b over the last axis; `w` is (out, in) or any shape whose trailing dims flatten to `in`. */
export function linear(x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor): tf.Tensor {
  const outDim = w.shape[0]!;
  const inDim = w.size / outDim;
  const lead = x.shape.slice(0, -1);
  const x2 = x.rank === 2 ? (x as tf.Tensor2D) : tf.reshape(x, [-1, inDim]) as tf.Tensor2D;
  const w2 = w.rank === 2 ? (w as tf.Tensor2D) : tf.reshape(w, [outDim, inDim]) as tf.Tensor2D;
  let y: tf.Tensor;
  if (fusedOpsAvailable()) {
    // one native Gemm with the transposes and the bias (tfjs-wasm's own _FusedMatMul adds the
    // bias wrongly when transposeB is set, so this form is only used with the fast kernels)
    y = b ? tf.fused.matMul({ a: x2, b: w2, transposeB: true, bias: b }) : tf.matMul(x2, w2, false, true);
  } else {
    const xw = linearPlain(x2, w2);
    y = b ? tf.add(xw, b) : xw;
  }
  return x.rank === 2 ? y : tf.reshape(y, [...lead, outDim]);
}

/** LayerNorm over the last axis, no affine, biased variance: (x − μ)/√(σ² + eps). */
export function layerNorm(x: tf.Tensor, eps = 1e-6): tf.Tensor {
  return tf.tidy(() => {
    const axis = x.rank - 1;
    const mean = tf.mean(x, axis, true);
    const xc = tf.sub(x, mean);
    const variance = tf.mean(tf.square(xc), axis, true);
    return tf.mul(xc, tf.rsqrt(tf.add(variance, eps)));
  });
}

/** LlamaRMSNorm: x·rsqrt(mean(x²) + eps) · weight over the last axis. */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps = 1e-6): tf.Tensor {
  if (fusedOpsAvailable()) return fusedRmsNorm(x, weight, eps);
  return tf.tidy(() => {
    const variance = tf.mean(tf.square(x), x.rank - 1, true);
    return tf.mul(weight, tf.mul(x, tf.rsqrt(tf.add(variance, eps))));
  });
}

/** t2i_modulate(LayerNorm(x), shift, scale); shift/scale have x's rank and broadcast against it. */
export function layerNormModulate(x: tf.Tensor, shift: tf.Tensor, scale: tf.Tensor, eps = 1e-6): tf.Tensor {
  if (fusedOpsAvailable() && shift.rank === x.rank && scale.rank === x.rank && shift.shape.join() === scale.shape.join()) {
    return fusedLayerNormModulate(x, shift, scale, eps);
  }
  return tf.tidy(() => modulate(layerNorm(x, eps), shift, scale));
}

/**
 * The gated residual x + drop_path(g·a): g [.., 1, D] broadcasts against a; `drop` is the
 * per-sample drop-path factor (0 or 1/keep, [B, 1, .., 1]) or null.
 */
export function gatedResidual(x: tf.Tensor, g: tf.Tensor, a: tf.Tensor, drop: tf.Tensor | null = null): tf.Tensor {
  if (fusedOpsAvailable() && g.rank === a.rank && x.shape.join() === a.shape.join()) {
    return tf.tidy(() => fusedGatedResidual(x, drop ? tf.mul(g, drop) : g, a));
  }
  return tf.tidy(() => {
    const y = tf.mul(g, a);
    return tf.add(x, drop ? tf.mul(y, drop) : y);
  });
}

/** t2i_modulate: x·(1 + scale) + shift. */
export function modulate(x: tf.Tensor, shift: tf.Tensor, scale: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.add(tf.mul(x, tf.add(scale, 1)), shift));
}

const GELU_BETA = Math.sqrt(2 / Math.PI);

/** GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  if (fusedOpsAvailable()) return fusedGeluTanh(x);
  return tf.tidy(() => {
    const x3 = tf.mul(tf.mul(x, x), x);
    const inner = tf.mul(tf.add(x, tf.mul(x3, 0.044715)), GELU_BETA);
    return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
  });
}

/** SiLU: x·σ(x). */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
}

/**
 * Rotary embedding over axis -2 (positions) with interleaved pairs:
 * x·cos + rotate_half(x)·sin, rotate_half(x) = x·R (see `rotateHalfMatrix`).
 * `cos`/`sin` broadcast against x ([T, hd] for x [..., T, hd]); `rot` is R as a [hd, hd] tensor.
 */
export function applyRope(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor, rot: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const hd = x.shape[x.rank - 1]!;
    const rotated = tf.reshape(tf.matMul(tf.reshape(x, [-1, hd]), rot), x.shape);
    return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
  });
}

/**
 * Scaled dot-product attention over the last two axes: softmax((q·scale)·kᵀ + bias)·v.
 * q [..., Lq, d], k/v [..., Lk, d], optional additive bias broadcast to [..., Lq, Lk].
 */
export function sdpa(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, scale: number, bias?: tf.Tensor): tf.Tensor {
  if (fusedOpsAvailable() && q.rank === k.rank && q.rank === v.rank && q.shape.slice(0, -2).join() === k.shape.slice(0, -2).join()) {
    return fusedAttention(q, k, v, scale, bias);
  }
  return tf.tidy(() => {
    let s = tf.matMul(tf.mul(q, scale), k, false, true);
    if (bias) s = tf.add(s, bias);
    const p = tf.softmax(s, -1);
    return tf.matMul(p, v);
  });
}
