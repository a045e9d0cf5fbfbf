/**
 * STDiT2Block (spec section 4) and T2IFinalLayer (spec section 5) as pure functions of tensors,
 * so that a block can be recomputed in the backward pass (gradient checkpointing).
 *
 * Layout: the residual stream is [B, T, S, D] (token n = t·S + s, as the reference's
 * "B (T S) C"). Modulation inputs are the t_block outputs already selected per frame:
 * tMod [B, Tm, 6, D] and tModT [B, Tm, 3, D], Tm = T with an x_mask and 1 without. Selecting
 * the modulation per frame before modulating gives bit-identical results to the reference,
 * which modulates twice and selects (t2i_modulate and the gate are elementwise).
 */
import { tf } from '@opensora/core';
import { applyRope, gatedResidual, geluTanh, layerNormModulate, linear, rmsNorm, sdpa } from './layers.js';

export interface AttnParams {
  qkvW: tf.Tensor;
  qkvB: tf.Tensor;
  qNorm?: tf.Tensor;
  kNorm?: tf.Tensor;
  projW: tf.Tensor;
  projB: tf.Tensor;
}

export interface BlockParams {
  table: tf.Tensor; // (6, D)
  tableT: tf.Tensor; // (3, D)
  attn: AttnParams;
  attnT: AttnParams;
  crossQW: tf.Tensor;
  crossQB: tf.Tensor;
  crossKvW: tf.Tensor;
  crossKvB: tf.Tensor;
  crossProjW: tf.Tensor;
  crossProjB: tf.Tensor;
  fc1W: tf.Tensor;
  fc1B: tf.Tensor;
  fc2W: tf.Tensor;
  fc2B: tf.Tensor;
}

/** Per-call context shared by all blocks. */
export interface BlockContext {
  numHeads: number;
  /** Caption tokens after y_embedder: [B, L, D]. */
  yTokens: tf.Tensor;
  /** Additive key bias for cross attention [B, 1, 1, L] (0 valid, -1e9 padded), or null. */
  yBias: tf.Tensor | null;
  /** [B, 1, 1, 1] 1/0 factor zeroing items with no text token at all, or null. */
  yValid: tf.Tensor | null;
  /** Per-frame t_block output [B, Tm, 6, D]. */
  tMod: tf.Tensor;
  /** Per-frame t_block_temp output [B, Tm, 3, D]. */
  tModT: tf.Tensor;
  /** RoPE tables [T, hd] and the rotate-half matrix [hd, hd]. */
  ropeCos: tf.Tensor;
  ropeSin: tf.Tensor;
  ropeRot: tf.Tensor;
  /** Drop-path factors [B, 1, 1, 1] for the spatial, temporal and MLP branches, or null. */
  dropS: tf.Tensor | null;
  dropT: tf.Tensor | null;
  dropM: tf.Tensor | null;
  /** Debug hook for intermediates (only called outside checkpointed recomputation). */
  debug?: ((name: string, t: tf.Tensor) => void) | undefined;
  debugPrefix?: string;
}

function split3(t: tf.Tensor, n: number): tf.Tensor[] {
  // t [B, Tm, n, D] -> n tensors [B, Tm, 1, D]
  return tf.split(t, n, 2);
}

/** Attention.forward on x [Bp, Lp, D] given as the 5D view, for both spatial and temporal use. */
function selfAttention(
  h2: tf.Tensor,
  p: AttnParams,
  B: number,
  T: number,
  S: number,
  nh: number,
  temporal: boolean,
  ctx: BlockContext,
): tf.Tensor {
  const D = h2.shape[1]!;
  const hd = D / nh;
  const qkv = linear(h2, p.qkvW, p.qkvB); // [B*T*S, 3D]
  let q: tf.Tensor;
  let k: tf.Tensor;
  let v: tf.Tensor;
  if (!temporal) {
    // "(B T) S (3 nh hd)" -> (3, B*T, nh, S, hd)
    const r = tf.transpose(tf.reshape(qkv, [B * T, S, 3, nh, hd]), [2, 0, 3, 1, 4]);
    [q, k, v] = tf.unstack(r, 0);
  } else {
    // "B T S (3 nh hd)" -> (3, B*S, nh, T, hd)
    const r = tf.transpose(tf.reshape(qkv, [B, T, S, 3, nh, hd]), [3, 0, 2, 4, 1, 5]);
    [q, k, v] = tf.unstack(tf.reshape(r, [3, B * S, nh, T, hd]), 0);
    const dbg = ctx.debug && ctx.debugPrefix;
    if (dbg) {
      ctx.debug!(`${ctx.debugPrefix}_tattn_q_pre_rope`, q!);
      ctx.debug!(`${ctx.debugPrefix}_tattn_k_pre_rope`, k!);
    }
    // RoPE first, then the q/k RMSNorm (v1.1 legacy order, spec section 13.1)
    q = applyRope(q!, ctx.ropeCos, ctx.ropeSin, ctx.ropeRot);
    k = applyRope(k!, ctx.ropeCos, ctx.ropeSin, ctx.ropeRot);
    if (dbg) {
      ctx.debug!(`${ctx.debugPrefix}_tattn_q_rope`, q);
      ctx.debug!(`${ctx.debugPrefix}_tattn_k_rope`, k);
    }
  }
  if (p.qNorm) q = rmsNorm(q!, p.qNorm);
  if (p.kNorm) k = rmsNorm(k!, p.kNorm);
  const o = sdpa(q!, k!, v!, 1 / Math.sqrt(hd));
  // back to token-major [B*T*S, D]
  const back = temporal
    ? tf.transpose(tf.reshape(o, [B, S, nh, T, hd]), [0, 3, 1, 2, 4]) // -> B T S nh hd
    : tf.transpose(o, [0, 2, 1, 3]); // (B T) S nh hd
  return linear(tf.reshape(back, [B * T * S, D]), p.projW, p.projB);
}

/** One STDiT2Block on x [B, T, S, D]. */
export function blockForward(x: tf.Tensor, p: BlockParams, ctx: BlockContext): tf.Tensor {
  return tf.tidy(() => {
    const [B, T, S, D] = x.shape as [number, number, number, number];
    const nh = ctx.numHeads;
    const Tm = ctx.tMod.shape[1]!;
    // (B, Tm, 6, D) + table -> shift/scale/gate for msa and mlp
    const mods = tf.add(ctx.tMod, tf.reshape(p.table, [1, 1, 6, D]));
    const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = split3(mods, 6) as [
      tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor,
    ];
    const modsT = tf.add(ctx.tModT, tf.reshape(p.tableT, [1, 1, 3, D]));
    const [shiftTmp, scaleTmp, gateTmp] = split3(modsT, 3) as [tf.Tensor, tf.Tensor, tf.Tensor];
    void Tm;

    // 1. spatial attention
    let h = layerNormModulate(x, shiftMsa, scaleMsa);
    let a = selfAttention(tf.reshape(h, [B * T * S, D]), p.attn, B, T, S, nh, false, ctx);
    x = gatedResidual(x, gateMsa, tf.reshape(a, [B, T, S, D]), ctx.dropS);

    // 2. temporal attention (RoPE over T)
    h = layerNormModulate(x, shiftTmp, scaleTmp);
    a = selfAttention(tf.reshape(h, [B * T * S, D]), p.attnT, B, T, S, nh, true, ctx);
    x = gatedResidual(x, gateTmp, tf.reshape(a, [B, T, S, D]), ctx.dropT);

    // 3. cross attention: no norm, no modulation, no gate, no drop path
    x = tf.add(x, crossAttention(x, p, ctx));

    // 4. MLP
    h = layerNormModulate(x, shiftMlp, scaleMlp);
    const m = linear(geluTanh(linear(tf.reshape(h, [B * T * S, D]), p.fc1W, p.fc1B)), p.fc2W, p.fc2B);
    x = gatedResidual(x, gateMlp, tf.reshape(m, [B, T, S, D]), ctx.dropM);
    return x;
  });
}

/**
 * MultiHeadCrossAttention with block-diagonal masking: the queries of item b attend only to the
 * valid text tokens of item b (padded-key form with an additive bias, spec section 2.9).
 */
export function crossAttention(x: tf.Tensor, p: BlockParams, ctx: BlockContext): tf.Tensor {
  const [B, T, S, D] = x.shape as [number, number, number, number];
  const nh = ctx.numHeads;
  const hd = D / nh;
  const N = T * S;
  const L = ctx.yTokens.shape[1]!;
  const q = tf.transpose(tf.reshape(linear(tf.reshape(x, [B * N, D]), p.crossQW, p.crossQB), [B, N, nh, hd]), [0, 2, 1, 3]);
  const kv = tf.transpose(
    tf.reshape(linear(tf.reshape(ctx.yTokens, [B * L, D]), p.crossKvW, p.crossKvB), [B, L, 2, nh, hd]),
    [2, 0, 3, 1, 4],
  );
  const [k, v] = tf.unstack(kv, 0) as [tf.Tensor, tf.Tensor];
  let o = sdpa(q, k, v, 1 / Math.sqrt(hd), ctx.yBias ?? undefined); // [B, nh, N, hd]
  if (ctx.yValid) o = tf.mul(o, ctx.yValid);
  const back = tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [B * N, D]);
  return tf.reshape(linear(back, p.crossProjW, p.crossProjB), [B, T, S, D]);
}

export interface FinalParams {
  table: tf.Tensor; // (2, D)
  linW: tf.Tensor; // (out, D)
  linB: tf.Tensor;
}

/**
 * T2IFinalLayer on x [B, T, S, D] with the bare timestep embedding t [B, D]. With an x_mask
 * ([B, T] bool), frames marked false use t0 (t0 + data_info) and the reference's double
 * normalisation: LayerNorm applied again to the already-modulated x (spec 13.2).
 */
export function finalLayer(
  x: tf.Tensor,
  t: tf.Tensor,
  p: FinalParams,
  xMask: tf.Tensor | null,
  t0: tf.Tensor | null,
): tf.Tensor {
  return tf.tidy(() => {
    const [B, T, S, D] = x.shape as [number, number, number, number];
    const mods = tf.add(tf.reshape(p.table, [1, 2, D]), tf.reshape(t, [B, 1, D]));
    const [shift, scale] = tf.split(tf.reshape(mods, [B, 2, 1, 1, D]), 2, 1).map((m) => tf.reshape(m, [B, 1, 1, D])) as [
      tf.Tensor,
      tf.Tensor,
    ];
    let h = layerNormModulate(x, shift, scale);
    if (xMask && t0) {
      const mods0 = tf.add(tf.reshape(p.table, [1, 2, D]), tf.reshape(t0, [B, 1, D]));
      const [shift0, scale0] = tf.split(tf.reshape(mods0, [B, 2, 1, 1, D]), 2, 1).map((m) => tf.reshape(m, [B, 1, 1, D])) as [
        tf.Tensor,
        tf.Tensor,
      ];
      const h0 = layerNormModulate(h, shift0, scale0);
      const cond = tf.broadcastTo(tf.reshape(xMask, [B, T, 1, 1]), [B, T, S, D]);
      h = tf.where(cond, h, h0);
    }
    return tf.reshape(linear(tf.reshape(h, [B * T * S, D]), p.linW, p.linB), [B, T, S, -1]);
  });
}
