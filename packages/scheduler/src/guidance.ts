/**
 * Classifier-free guidance, as the reference's `forward_with_cfg`: the model runs on
 * `[x; x]` with `y = [y_cond; y_null]`; only the first `cfgChannel` output channels are guided
 * (`uncond + s·(cond − uncond)`), the rest come from the conditional pass.
 */
import { tf, InvalidArgumentError } from '@opensora/core';
import type { DenoiseFn, TextConditioning } from './types.js';

/**
 * Guided output of a `[2B, K, ...]` model output whose first B rows are the conditional pass
 * and last B rows the unconditional one: `[B, K, ...]` with channels `< cfgChannel` guided and
 * channels `>= cfgChannel` from the conditional rows. `cfgChannel` defaults to `K / 2`
 * (the epsilon channels of a learned-sigma model).
 */
export function applyCfg(out: tf.Tensor, cfgScale: number, cfgChannel?: number | null): tf.Tensor {
  return tf.tidy(() => {
    const rows = out.shape[0]!;
    const k = out.shape[1]!;
    if (rows % 2 !== 0) throw new InvalidArgumentError(`applyCfg: the model output has ${rows} rows; expected [cond; uncond] (2B rows)`);
    const b = rows / 2;
    const c = cfgChannel ?? Math.floor(k / 2);
    if (!(c >= 1 && c <= k)) throw new InvalidArgumentError(`cfgChannel ${c} is outside 1..${k} (the model's output channels)`);
    const rest = out.shape.slice(2);
    const cond = tf.slice(out, [0, 0, ...rest.map(() => 0)], [b, c, ...rest]);
    const uncond = tf.slice(out, [b, 0, ...rest.map(() => 0)], [b, c, ...rest]);
    const guided = tf.add(uncond, tf.mul(cfgScale, tf.sub(cond, uncond)));
    if (c === k) return guided;
    const condRest = tf.slice(out, [0, c, ...rest.map(() => 0)], [b, k - c, ...rest]);
    return tf.concat([guided, condRest], 1);
  });
}

/** The null caption broadcast to the shape of `y` (`[B, 1, L, C]`). */
export function broadcastNullY(nullY: tf.Tensor, y: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    let n = nullY;
    while (n.rank < y.rank) n = tf.expandDims(n, 0);
    const ok = n.rank === y.rank && n.shape.every((d, i) => d === y.shape[i] || (i === 0 && d === 1));
    if (!ok) {
      throw new InvalidArgumentError(
        `nullY has shape [${nullY.shape.join(', ')}], which does not broadcast to y's [${y.shape.join(', ')}]`,
        { hint: 'pass the null caption as [B,1,L,C], [1,1,L,C], [1,L,C] or [L,C] with the same L and C as y' },
      );
    }
    return n.shape[0] === y.shape[0] ? n.clone() : tf.tile(n, [y.shape[0]!, ...new Array<number>(y.rank - 1).fill(1)]);
  });
}

/**
 * Calls the model with or without guidance. Built once per sampling run: it owns the doubled
 * conditioning tensors and must be disposed.
 */
export class GuidedModel {
  readonly guided: boolean;
  private readonly kwargs: Record<string, unknown>;
  private readonly owned: tf.Tensor[] = [];

  constructor(
    private readonly model: DenoiseFn,
    readonly batch: number,
    text: TextConditioning | undefined,
    modelKwargs: Record<string, unknown> | undefined,
    private readonly cfgScale: number,
    private readonly cfgChannel: number | null | undefined,
    /** Skip the unconditional pass when cfgScale is 1 (DPM-Solver's wrapper does; the IDDPM sampler does not). */
    skipUncondAtScaleOne = false,
  ) {
    const base: Record<string, unknown> = { ...(modelKwargs ?? {}) };
    for (const key of ['x', 'timestep', 'xMask']) {
      if (key in base) throw new InvalidArgumentError(`modelKwargs must not contain '${key}': the scheduler sets it`);
    }
    if (text?.y && text.y.shape[0] !== batch) {
      throw new InvalidArgumentError(`y has ${text.y.shape[0]} rows but z has ${batch}`);
    }
    this.guided = !!(text?.nullY && text.y) && !(skipUncondAtScaleOne && cfgScale === 1);
    if (!this.guided) {
      if (text?.y) base.y = text.y;
      if (text?.mask) base.mask = text.mask;
      this.kwargs = base;
      return;
    }
    const y = text!.y;
    const nullY = broadcastNullY(text!.nullY!, y);
    const y2 = tf.concat([y, nullY], 0);
    nullY.dispose();
    this.owned.push(y2);
    const kw: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(base)) {
      if (v instanceof tf.Tensor && v.rank >= 1 && v.shape[0] === batch) {
        const t2 = tf.concat([v, v], 0);
        this.owned.push(t2);
        kw[k] = t2;
      } else {
        kw[k] = v;
      }
    }
    if (text!.mask) {
      // The reference tiles the prompt's token mask: the null branch uses the caption's lengths.
      const m2 = tf.concat([text!.mask, text!.mask], 0);
      this.owned.push(m2);
      kw.mask = m2;
    }
    kw.y = y2;
    this.kwargs = kw;
  }

  /**
   * Model output for the B rows of `x` at original timestep `timestep` (float), guided when the
   * run is guided. `xMask` is `[B, T]` bool or undefined.
   */
  call(x: tf.Tensor, timestep: number, xMask: tf.Tensor | undefined): tf.Tensor {
    return tf.tidy(() => {
      const rows = this.guided ? 2 * this.batch : this.batch;
      const xIn = this.guided ? tf.concat([x, x], 0) : x;
      const t = tf.fill([rows], timestep, 'float32');
      const args: { x: tf.Tensor; timestep: tf.Tensor; xMask?: tf.Tensor; [k: string]: unknown } = { ...this.kwargs, x: xIn, timestep: t };
      if (xMask) args.xMask = this.guided ? tf.concat([xMask, xMask], 0) : xMask;
      const out = this.model(args);
      if (!(out instanceof tf.Tensor)) throw new InvalidArgumentError('the model (DenoiseFn) must return a tf.Tensor');
      if (out.shape[0] !== rows) {
        throw new InvalidArgumentError(`the model returned ${out.shape[0]} rows for an input of ${rows} rows`);
      }
      return this.guided ? applyCfg(out, this.cfgScale, this.cfgChannel) : out.clone();
    });
  }

  dispose(): void {
    for (const t of this.owned) t.dispose();
    this.owned.length = 0;
  }
}
