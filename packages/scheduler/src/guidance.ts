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
   * Runs the model on the B rows of `x` (flat data of shape `shape`) at original timestep
   * `timestep` (float) and returns the B-row output as flat data `[B, K, ...]`, guided when the
   * run is guided: `[x; x]` goes in, channels `< cfgChannel` come out as
   * `uncond + s·(cond − uncond)`, the others from the conditional rows (the reference's first
   * half). `xMask` is `[B, T]` (1 = generate) or undefined.
   */
  call(x: Float32Array, shape: readonly number[], timestep: number, xMask: Uint8Array | undefined, frames: number): { data: Float32Array; channels: number } {
    const b = this.batch;
    const rows = this.guided ? 2 * b : b;
    const n = x.length;
    let input: Float32Array = x;
    if (this.guided) {
      input = new Float32Array(2 * n);
      input.set(x);
      input.set(x, n);
    }
    let mask: Uint8Array | undefined = xMask;
    if (xMask && this.guided) {
      mask = new Uint8Array(2 * xMask.length);
      mask.set(xMask);
      mask.set(xMask, xMask.length);
    }
    const xt = tf.tensor(input, [rows, ...shape.slice(1)], 'float32');
    const tt = tf.fill([rows], timestep, 'float32');
    const mt = mask ? tf.tensor2d(mask, [rows, frames], 'bool') : undefined;
    let data: Float32Array;
    let k: number;
    try {
      const args: { x: tf.Tensor; timestep: tf.Tensor; xMask?: tf.Tensor; [key: string]: unknown } = { ...this.kwargs, x: xt, timestep: tt };
      if (mt) args.xMask = mt;
      const out = tf.tidy(() => this.model(args));
      if (!(out instanceof tf.Tensor)) throw new InvalidArgumentError('the model (DenoiseFn) must return a tf.Tensor');
      try {
        k = out.shape[1] ?? 0;
        if (out.shape[0] !== rows || out.size !== (n / shape[1]!) * k * (rows / b)) {
          throw new InvalidArgumentError(
            `the model returned shape [${out.shape.join(', ')}] for an input of shape [${rows}, ${shape.slice(1).join(', ')}]`,
            { hint: 'the output must be [rows, K, ...same spatial dims] with K = 2C (learned sigma) or C' },
          );
        }
        data = (out.dtype === 'float32' ? out.dataSync() : Float32Array.from(out.dataSync() as ArrayLike<number>)) as Float32Array;
      } finally {
        out.dispose();
      }
    } finally {
      xt.dispose();
      tt.dispose();
      mt?.dispose();
    }
    if (!this.guided) return { data, channels: k };
    // Guidance on the first cfgChannel channels; the rest from the conditional rows.
    const c = this.cfgChannel ?? Math.floor(k / 2);
    if (!(c >= 1 && c <= k)) throw new InvalidArgumentError(`cfgChannel ${c} is outside 1..${k} (the model's output channels)`);
    const s = n / b / shape[1]!;
    const half = b * k * s;
    const out = new Float32Array(half);
    const scale = this.cfgScale;
    for (let bi = 0; bi < b; bi++) {
      for (let ci = 0; ci < k; ci++) {
        const o = (bi * k + ci) * s;
        if (ci < c) {
          for (let j = 0; j < s; j++) {
            const co = data[o + j]!;
            const u = data[half + o + j]!;
            out[o + j] = u + scale * (co - u);
          }
        } else {
          out.set(data.subarray(o, o + s), o);
        }
      }
    }
    return { data: out, channels: k };
  }

  dispose(): void {
    for (const t of this.owned) t.dispose();
    this.owned.length = 0;
  }
}
