/**
 * Optimisation pieces that work on named `tf.Variable`s: AdamW with decoupled weight decay,
 * gradient clipping by global norm, and an exponential moving average of the weights.
 *
 * The update rules are the reference's (ColossalAI HybridAdam in `adamw_mode`, which is
 * torch.optim.AdamW's formula; torch `clip_grad_norm_`; Open-Sora's `update_ema`), in float32.
 * Every operation is a fixed sequence of tfjs kernels, so the same inputs give the same bits.
 */
import { tf, InvalidArgumentError, OpenSoraError } from '@opensora/core';

export type NamedVariables = Map<string, tf.Variable>;
export type NamedTensors = Record<string, tf.Tensor>;

/** The reference's optimizer settings (train.py: `HybridAdam(lr=cfg.lr, weight_decay=0, adamw_mode=True)`). */
export const ADAMW_DEFAULTS = Object.freeze({
  lr: 2e-5,
  betas: [0.9, 0.999] as [number, number],
  eps: 1e-8,
  weightDecay: 0,
});

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/** What `AdamW.stateJson()` returns: everything but the moment tensors. */
export interface AdamWStateJson {
  type: 'adamw';
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  /** Updates applied so far (the bias-correction step count, the same for every parameter). */
  step: number;
  /** Per-parameter step counts, as the reference's optimizer state stores them. */
  paramSteps: Record<string, number>;
  /** Parameter names in the order the moments are stored. */
  params: string[];
}

function checkFinitePositive(name: string, v: number, allowZero = false): void {
  if (!Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
    throw new InvalidArgumentError(`AdamW: ${name} must be a ${allowZero ? 'non-negative' : 'positive'} finite number, got ${v}`);
  }
}

/**
 * AdamW (decoupled weight decay). Per parameter p with gradient g at step t (1-based):
 *   p <- p * (1 - lr * wd)
 *   m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
 *   p <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 */
export class AdamW {
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  private readonly params: NamedVariables;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  private readonly paramSteps = new Map<string, number>();
  private stepCount = 0;

  constructor(params: NamedVariables, options: AdamWOptions = {}) {
    this.lr = options.lr ?? ADAMW_DEFAULTS.lr;
    this.betas = options.betas ?? [...ADAMW_DEFAULTS.betas];
    this.eps = options.eps ?? ADAMW_DEFAULTS.eps;
    this.weightDecay = options.weightDecay ?? ADAMW_DEFAULTS.weightDecay;
    checkFinitePositive('lr', this.lr, true);
    checkFinitePositive('eps', this.eps);
    checkFinitePositive('weightDecay', this.weightDecay, true);
    for (const b of this.betas) {
      if (!(b >= 0 && b < 1)) throw new InvalidArgumentError(`AdamW: betas must be in [0, 1), got [${this.betas.join(', ')}]`);
    }
    this.params = params;
    for (const [name, p] of params) {
      this.m.set(name, tf.tidy(() => tf.variable(tf.zerosLike(p), false, `adamw/${name}/exp_avg/${uid()}`)));
      this.v.set(name, tf.tidy(() => tf.variable(tf.zerosLike(p), false, `adamw/${name}/exp_avg_sq/${uid()}`)));
      this.paramSteps.set(name, 0);
    }
  }

  /** Updates applied so far. */
  get step(): number {
    return this.stepCount;
  }

  /** Names of the parameters this optimizer updates. */
  get paramNames(): string[] {
    return [...this.params.keys()];
  }

  /**
   * Applies one update from `grads` (name -> gradient). Parameters without a gradient are left
   * alone (their step count does not advance), like torch with `grad is None`.
   * The gradients are not disposed.
   */
  applyGradients(grads: NamedTensors): void {
    for (const name of Object.keys(grads)) {
      if (!this.params.has(name)) {
        throw new InvalidArgumentError(`AdamW: gradient for unknown parameter '${name}'`, {
          details: { known: this.params.size },
        });
      }
    }
    this.stepCount += 1;
    const [b1, b2] = this.betas;
    const lr = this.lr;
    const wd = this.weightDecay;
    for (const [name, p] of this.params) {
      const g = grads[name];
      if (!g) continue;
      const t = (this.paramSteps.get(name) ?? 0) + 1;
      this.paramSteps.set(name, t);
      const bc1 = 1 - Math.pow(b1, t);
      const bc2 = 1 - Math.pow(b2, t);
      const m = this.m.get(name)!;
      const v = this.v.get(name)!;
      tf.tidy(() => {
        const mNew = tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1));
        const vNew = tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2));
        m.assign(mNew);
        v.assign(vNew);
        const base = wd > 0 ? tf.mul(p, 1 - lr * wd) : p;
        const denom = tf.add(tf.div(tf.sqrt(vNew), Math.sqrt(bc2)), this.eps);
        const upd = tf.mul(tf.div(mNew, denom), lr / bc1);
        p.assign(tf.sub(base, upd));
      });
    }
  }

  /** The moment tensors, keyed `<param>.exp_avg` / `<param>.exp_avg_sq` (not copies: do not dispose). */
  stateTensors(): NamedTensors {
    const out: NamedTensors = {};
    for (const name of this.params.keys()) {
      out[`${name}.exp_avg`] = this.m.get(name)!;
      out[`${name}.exp_avg_sq`] = this.v.get(name)!;
    }
    return out;
  }

  stateJson(): AdamWStateJson {
    return {
      type: 'adamw',
      lr: this.lr,
      betas: [...this.betas],
      eps: this.eps,
      weightDecay: this.weightDecay,
      step: this.stepCount,
      paramSteps: Object.fromEntries(this.paramSteps),
      params: [...this.params.keys()],
    };
  }

  /**
   * Restores moments and step counts saved by `stateTensors()` / `stateJson()`. Every parameter
   * must be present with the right shape, except those the saved run did not train (frozen
   * there): they start fresh, and their names are returned. `resetSteps` keeps the moments but
   * zeroes the counters.
   * Hyper-parameters (lr...) stay those of this optimizer: the config decides them.
   */
  loadState(tensors: NamedTensors, json: AdamWStateJson, options: { resetSteps?: boolean } = {}): string[] {
    if (!json || json.type !== 'adamw') {
      throw new OpenSoraError('E_STATE_DICT', `Optimizer state is not an AdamW state (type ${String(json?.type)})`);
    }
    const problems: string[] = [];
    // A parameter the saved optimizer did not train (frozen in that run: `json.params` lists the
    // ones it had) starts with zero moments and step 0, as a fresh AdamW would.
    const saved = Array.isArray(json.params) ? new Set(json.params) : null;
    const fresh = new Set<string>();
    for (const [name, p] of this.params) {
      if (saved && !saved.has(name) && !(`${name}.exp_avg` in tensors)) {
        fresh.add(name);
        tf.tidy(() => {
          this.m.get(name)!.assign(tf.zerosLike(p));
          this.v.get(name)!.assign(tf.zerosLike(p));
        });
        continue;
      }
      for (const [suffix, store] of [
        ['exp_avg', this.m],
        ['exp_avg_sq', this.v],
      ] as const) {
        const t = tensors[`${name}.${suffix}`];
        if (!t) problems.push(`missing ${name}.${suffix}`);
        else if (!shapesEqual(t.shape, p.shape)) problems.push(`${name}.${suffix} has shape [${t.shape}] but the parameter is [${p.shape}]`);
        else store.get(name)!.assign(t.dtype === 'float32' ? t : tf.cast(t, 'float32'));
      }
    }
    if (problems.length) {
      throw new OpenSoraError('E_STATE_DICT', `Optimizer state does not match the model: ${problems.slice(0, 8).join('; ')}${problems.length > 8 ? ` (+${problems.length - 8} more)` : ''}`, {
        hint: 'resume with the same model config, or load weights only (ckptPath)',
        details: { problems },
      });
    }
    if (options.resetSteps) {
      this.stepCount = 0;
      for (const name of this.params.keys()) this.paramSteps.set(name, 0);
    } else {
      this.stepCount = json.step;
      for (const name of this.params.keys()) this.paramSteps.set(name, fresh.has(name) ? 0 : (json.paramSteps?.[name] ?? json.step));
    }
    return [...fresh];
  }

  dispose(): void {
    for (const t of this.m.values()) t.dispose();
    for (const t of this.v.values()) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}

export interface ClipResult {
  /** The (possibly scaled) gradients: new tensors, owned by the caller. */
  grads: NamedTensors;
  /** The global L2 norm before clipping (NaN/Infinity if a gradient is not finite). */
  norm: number;
  /** The factor applied (1 when no clipping happened). */
  scale: number;
}

/** Global L2 norm of a set of gradients, as a JS number (one device sync). */
export function globalNorm(grads: NamedTensors): number {
  const names = Object.keys(grads);
  if (names.length === 0) return 0;
  const sq = tf.tidy(() => {
    let acc: tf.Tensor = tf.scalar(0);
    for (const n of names) acc = tf.add(acc, tf.sum(tf.square(grads[n]!)));
    return acc;
  });
  const v = sq.dataSync()[0]!;
  sq.dispose();
  return Math.sqrt(v);
}

/**
 * Clips gradients by their global norm (torch `clip_grad_norm_`): when the norm exceeds
 * `maxNorm`, every gradient is multiplied by `maxNorm / (norm + 1e-6)`. `maxNorm <= 0` disables
 * clipping. Returns new tensors; the inputs are not disposed.
 */
export function clipByGlobalNorm(grads: NamedTensors, maxNorm: number): ClipResult {
  const norm = globalNorm(grads);
  let scale = 1;
  if (maxNorm > 0 && Number.isFinite(norm)) {
    const coef = maxNorm / (norm + 1e-6);
    if (coef < 1) scale = coef;
  }
  const out: NamedTensors = {};
  for (const [n, g] of Object.entries(grads)) out[n] = scale === 1 ? tf.clone(g) : tf.tidy(() => tf.mul(g, scale));
  return { grads: out, norm, scale };
}

export interface EmaOptions {
  /** Decay per update (the reference: 0.9999). */
  decay?: number;
  /** Parameter names the EMA does not track (the reference skips `pos_embed`). */
  skip?: string[];
}

/** Exponential moving average of named weights: `ema <- decay * ema + (1 - decay) * param`. */
export class Ema {
  readonly decay: number;
  private readonly shadow = new Map<string, tf.Variable>();

  constructor(params: NamedVariables, options: EmaOptions = {}) {
    this.decay = options.decay ?? 0.9999;
    if (!(this.decay >= 0 && this.decay <= 1)) throw new InvalidArgumentError(`EMA decay must be in [0, 1], got ${this.decay}`);
    const skip = new Set(options.skip ?? ['pos_embed']);
    for (const [name, p] of params) {
      if (skip.has(name)) continue;
      this.shadow.set(name, tf.tidy(() => tf.variable(tf.clone(p), false, `ema/${name}/${uid()}`)));
    }
  }

  get names(): string[] {
    return [...this.shadow.keys()];
  }

  /** One EMA step from the current parameter values (`decay` overrides, e.g. 0 to copy). */
  update(params: NamedVariables, decay = this.decay): void {
    for (const [name, s] of this.shadow) {
      const p = params.get(name);
      if (!p) throw new InvalidArgumentError(`EMA: parameter '${name}' is missing from the model`);
      tf.tidy(() => {
        s.assign(decay === 0 ? p : tf.add(tf.mul(s, decay), tf.mul(p, 1 - decay)));
      });
    }
  }

  /** The averaged weights (not copies: do not dispose). */
  stateTensors(): NamedTensors {
    return Object.fromEntries(this.shadow);
  }

  /**
   * Loads averaged weights; names this EMA tracks must be present with the right shape, except
   * `fresh` ones (parameters the saved run kept frozen, so never averaged): those keep the value
   * this EMA started from, the current weights.
   */
  load(tensors: NamedTensors, options: { fresh?: Iterable<string> } = {}): void {
    const problems: string[] = [];
    const fresh = new Set(options.fresh ?? []);
    for (const [name, s] of this.shadow) {
      const t = tensors[name];
      if (!t && fresh.has(name)) continue;
      if (!t) problems.push(`missing ${name}`);
      else if (!shapesEqual(t.shape, s.shape)) problems.push(`${name} has shape [${t.shape}], expected [${s.shape}]`);
      else s.assign(t.dtype === 'float32' ? t : tf.cast(t, 'float32'));
    }
    if (problems.length) {
      throw new OpenSoraError('E_STATE_DICT', `EMA state does not match the model: ${problems.slice(0, 8).join('; ')}`, { details: { problems } });
    }
  }

  dispose(): void {
    for (const t of this.shadow.values()) t.dispose();
    this.shadow.clear();
  }
}

function shapesEqual(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

let uidCounter = 0;
function uid(): string {
  uidCounter += 1;
  return `${uidCounter}`;
}
