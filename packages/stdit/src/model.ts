/**
 * The STDiT2 model (Open-Sora 1.1): parameters under the official key names and shapes, the
 * forward pass of spec section 3, training-time caption dropout and drop path, gradient
 * checkpointing, freezing, and state-dict I/O.
 */
import { InvalidArgumentError, OpenSoraError, Rng, tf } from '@opensora/core';
import { blockForward, finalLayer, type BlockContext, type BlockParams, type FinalParams } from './block.js';
import { checkpointed } from './checkpoint.js';
import {
  countParameters,
  derived,
  parameterSpecs,
  resolveConfig,
  STDIT2_PRESETS,
  type ParamSpec,
  type ParameterCount,
  type STDiT2Config,
  type STDiT2ConfigInput,
  configFromOfficial,
} from './config.js';
import { posEmbed2D, posEmbedGeometry, ropeFreqs, ropeTables, rotateHalfMatrix, timestepFeatures } from './embeddings.js';
import { geluTanh, linear, silu } from './layers.js';
import { openWeights, readOfficialTensors, resolveCheckpoint, unexpectedKeys, writeCheckpoint, writePretrained } from './weights.js';

/** A per-sample scalar input: a [B] (or [B''] with B'' dividing B) tensor, an array, or one number. */
export type ScalarInput = tf.Tensor | ArrayLike<number> | number;

export interface STDiT2Inputs {
  /** Latent video [B, C, T, H, W]. */
  x: tf.Tensor;
  /** Diffusion timestep per sample, [B] (the original 0..999 timestep). */
  timestep: ScalarInput;
  /** Caption features [B, 1, L, captionChannels]. */
  y: tf.Tensor;
  /** Text mask [B', L] (0/1, int or float; B' divides B: tiled as under CFG), or null for all-valid. */
  mask?: tf.Tensor | null;
  /** Frame mask [B, T] bool: true = frame to generate (uses t), false = condition frame (uses t = 0). */
  xMask?: tf.Tensor | null;
  /** Number of frames, pixel height/width, aspect ratio, fps: [B''] each. */
  numFrames: ScalarInput;
  height: ScalarInput;
  width: ScalarInput;
  ar: ScalarInput;
  fps: ScalarInput;
}

export interface STDiT2ForwardOptions {
  /** Training mode: caption dropout and drop path are active (they need `rng`). */
  training?: boolean;
  /** Randomness for caption dropout and drop path (required when they are active). */
  rng?: Rng;
  /** Recompute each block in the backward pass (overrides `model.gradientCheckpointing`). */
  gradientCheckpointing?: boolean;
  /** Force caption dropout per sample (1/true = use the null caption), as the reference's force_drop_ids. */
  forceDropIds?: ArrayLike<number | boolean>;
  /** Receives intermediates (names as in the fixtures: x_embed, t, t_block, block0_out, ...). */
  debug?: (name: string, t: tf.Tensor) => void;
}

export interface LoadStateDictOptions {
  /** Require exactly the expected keys (default true). Shape mismatches are always errors. */
  strict?: boolean;
}

export interface LoadReport {
  loaded: string[];
  missing: string[];
  unexpected: string[];
}

export interface FromPretrainedOptions extends STDiT2Options {
  /** Config override: camelCase, the reference's snake_case, or a preset name. Default: config.json / metadata. */
  config?: STDiT2ConfigInput | Record<string, unknown> | string;
  /** Require every expected key and no unexpected one (default true). */
  strict?: boolean;
}

export interface STDiT2Options {
  /** Seed of the initialisation (default 0). */
  seed?: number | string;
  /**
   * 'random' (default): the reference initialisation (spec section 6).
   * 'empty': no parameters are allocated; `loadStateDict` creates them (used by fromPretrained).
   */
  init?: 'random' | 'empty';
}

function isTensor(v: unknown): v is tf.Tensor {
  return v instanceof tf.Tensor;
}

function readScalars(v: ScalarInput, name: string): number[] {
  if (typeof v === 'number') return [v];
  if (isTensor(v)) {
    if (v.rank > 2 || (v.rank === 2 && v.shape[1] !== 1)) {
      throw new InvalidArgumentError(`${name}: expected a [B] tensor, got shape [${v.shape.join(', ')}]`);
    }
    return Array.from(v.dataSync() as ArrayLike<number>, Number);
  }
  if (v && typeof (v as ArrayLike<number>).length === 'number') return Array.from(v as ArrayLike<number>, Number);
  throw new InvalidArgumentError(`${name}: expected a tensor, an array of numbers or a number`);
}

/** Tiles per-sample values to B rows as the reference does (s.repeat(B // b)), validating divisibility. */
function tileTo(vals: number[], B: number, name: string): number[] {
  if (vals.length === B) return vals;
  if (vals.length === 0 || B % vals.length !== 0) {
    throw new InvalidArgumentError(`${name}: has ${vals.length} rows, which does not divide the batch size ${B}`);
  }
  const out: number[] = [];
  for (let r = 0; r < B / vals.length; r++) out.push(...vals);
  return out;
}

function fanInOut(shape: number[]): [number, number] {
  const out = shape[0]!;
  const inn = shape.slice(1).reduce((a, b) => a * b, 1);
  return [inn, out];
}

export class STDiT2 {
  readonly config: STDiT2Config;
  readonly outChannels: number;
  /** Recompute each block in the backward pass instead of storing its activations. */
  gradientCheckpointing = false;
  private readonly specs: ParamSpec[];
  private readonly specByName: Map<string, ParamSpec>;
  private readonly vars = new Map<string, tf.Variable>();
  private readonly frozen = new Set<string>();
  private ropeCache: Float32Array | null = null;
  private disposed = false;

  constructor(config: STDiT2ConfigInput = {}, options: STDiT2Options = {}) {
    this.config = resolveConfig(config);
    this.specs = parameterSpecs(this.config);
    this.specByName = new Map(this.specs.map((s) => [s.name, s]));
    this.outChannels = derived(this.config).outChannels;
    if ((options.init ?? 'random') === 'random') this.initialize(new Rng(options.seed ?? 0));
    if (this.config.freeze === 'not_temporal') this.freeze((n) => !n.includes('attn_temp'));
    else if (this.config.freeze === 'text') this.freeze((n) => n.includes('cross_attn'));
  }

  /** A model from a preset name (see `STDIT2_PRESETS`), with optional overrides. */
  static preset(name: string, overrides: STDiT2ConfigInput = {}, options: STDiT2Options = {}): STDiT2 {
    const p = STDIT2_PRESETS[name];
    if (!p) {
      throw new InvalidArgumentError(`Unknown STDiT2 preset '${name}'`, {
        hint: `use one of ${Object.keys(STDIT2_PRESETS).join(', ')}`,
      });
    }
    return new STDiT2({ ...p, ...overrides }, options);
  }

  /** The parameter count of a config from shapes only (nothing is allocated). */
  static countParameters(config: STDiT2ConfigInput | string): ParameterCount {
    const c = typeof config === 'string' ? STDIT2_PRESETS[config] : resolveConfig(config);
    if (!c) throw new InvalidArgumentError(`Unknown STDiT2 preset '${String(config)}'`);
    return countParameters(c);
  }

  /** A model from the reference's snake_case config (fixture metadata, hub config.json), as JSON text or object. */
  static fromOfficialConfig(json: string | Record<string, unknown>, options: STDiT2Options = {}): STDiT2 {
    return new STDiT2(configFromOfficial(json), options);
  }

  /**
   * Loads an official checkpoint: a directory with `model.safetensors` (or a sharded index)
   * and `config.json`, or a `.safetensors` file (config from its metadata or a sibling
   * config.json). Tensors are read one at a time straight into the model's variables, so
   * memory peaks near the model size plus one tensor. Applies the reference loader's
   * reparameterisation (dropped pos_embed keys, 4-D patch weight, y_embedding 120 -> 200).
   */
  static fromPretrained(pathOrDir: string, options: FromPretrainedOptions = {}): STDiT2 {
    const reader = openWeights(pathOrDir);
    try {
      const override = typeof options.config === 'string' ? STDIT2_PRESETS[options.config] : options.config;
      if (typeof options.config === 'string' && !override) {
        throw new InvalidArgumentError(`Unknown STDiT2 preset '${options.config}'`, { hint: `use one of ${Object.keys(STDIT2_PRESETS).join(', ')}` });
      }
      const { config } = resolveCheckpoint(pathOrDir, reader, override);
      const strict = options.strict ?? true;
      // non-strict: keys absent from the file keep the fresh initialisation, as in the reference
      const model = new STDiT2(config, { ...options, init: strict ? 'empty' : 'random' });
      const expected = model.specs;
      const unexpected = unexpectedKeys(reader, new Set(expected.map((s) => s.name)));
      const missing = expected.filter((s) => !reader.has(s.name)).map((s) => s.name);
      if (strict && (missing.length || unexpected.length)) {
        const parts: string[] = [];
        if (missing.length) parts.push(`${missing.length} missing: ${missing.join(', ')}`);
        if (unexpected.length) parts.push(`${unexpected.length} unexpected: ${unexpected.join(', ')}`);
        throw new OpenSoraError('E_STATE_DICT', `STDiT2.fromPretrained(${pathOrDir}): ${parts.join(' | ')}`, {
          hint: 'check the checkpoint matches its config (depth, hidden size, qkNorm), or pass { strict: false }',
          details: { missing, unexpected },
        });
      }
      try {
        for (const [name, t] of readOfficialTensors(reader, expected, config.modelMaxLength)) {
          model.loadStateDict({ [name]: t }, { strict: false });
          t.dispose();
        }
      } catch (e) {
        model.dispose();
        throw e;
      }
      return model;
    } finally {
      reader.close();
    }
  }

  /** Writes the state dict to one `.safetensors` file (official key names; config in the metadata). */
  async saveSafetensors(file: string): Promise<void> {
    await writeCheckpoint(file, this.stateDict(), this.config);
  }

  /** Writes `model.safetensors` and `config.json` (the reference's snake_case config) into `dir`. */
  async savePretrained(dir: string): Promise<void> {
    await writePretrained(dir, this.stateDict(), this.config);
  }

  // ----------------------------------------------------------------------------------------
  // parameters

  /** The reference initialisation (spec section 6), seeded. */
  private initialize(rng: Rng): void {
    const D = this.config.hiddenSize;
    const normal02 = new Set([
      't_embedder.mlp.0.weight',
      't_embedder.mlp.2.weight',
      't_block.1.weight',
      't_block_temp.1.weight',
      'y_embedder.y_proj.fc1.weight',
      'y_embedder.y_proj.fc2.weight',
    ]);
    for (const s of this.specs) {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      const name = s.name;
      if (name === 'rope.freqs') data.set(ropeFreqs(derived(this.config).headDim));
      else if (name === 'y_embedder.y_embedding') rng.fillNormal(data, 0, 1 / Math.sqrt(this.config.captionChannels));
      else if (name.endsWith('scale_shift_table') || name.endsWith('scale_shift_table_temporal')) rng.fillNormal(data, 0, 1 / Math.sqrt(D));
      else if (name.endsWith('q_norm.weight') || name.endsWith('k_norm.weight')) data.fill(1);
      else if (name === 'x_embedder.proj.bias') {
        const fanIn = this.config.inChannels * derived(this.config).patchVol;
        rng.fillUniform(data, -1 / Math.sqrt(fanIn), 1 / Math.sqrt(fanIn));
      } else if (name.endsWith('.bias')) {
        // zero (every Linear bias)
      } else if (/^blocks\.\d+\.(cross_attn|attn_temp)\.proj\.weight$/.test(name) || name === 'final_layer.linear.weight') {
        // zero-initialised
      } else if (normal02.has(name)) rng.fillNormal(data, 0, 0.02);
      else {
        const [fi, fo] = fanInOut(s.shape);
        const a = Math.sqrt(6 / (fi + fo));
        rng.fillUniform(data, -a, a);
      }
      const init = tf.tensor(data, s.shape, 'float32');
      this.vars.set(name, tf.variable(init, s.trainable && !this.frozen.has(name)));
      init.dispose();
    }
    this.ropeCache = null;
  }

  private v(name: string): tf.Variable {
    const t = this.vars.get(name);
    if (!t) {
      if (this.disposed) throw new OpenSoraError('E_STATE_DICT', 'this STDiT2 model was disposed');
      throw new OpenSoraError('E_STATE_DICT', `parameter '${name}' is not loaded`, {
        hint: 'load weights with loadStateDict / fromPretrained, or construct with init: "random"',
      });
    }
    return t;
  }

  /** Trainable parameters (not frozen, buffers excluded), by official key name, in state-dict order. */
  parameters(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const s of this.specs) if (s.trainable && !this.frozen.has(s.name)) out.set(s.name, this.v(s.name));
    return out;
  }

  /** Every parameter (frozen ones included, buffers excluded). */
  namedParameters(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const s of this.specs) if (s.trainable) out.set(s.name, this.v(s.name));
    return out;
  }

  /** The learned-but-untrained null caption buffer `y_embedder.y_embedding` [L, captionChannels]. */
  get nullCaption(): tf.Variable {
    return this.v('y_embedder.y_embedding');
  }

  /** Names and shapes of the official state dict. */
  parameterSpecs(): ParamSpec[] {
    return this.specs.map((s) => ({ ...s, shape: [...s.shape] }));
  }

  countParameters(): ParameterCount {
    return countParameters(this.config);
  }

  /**
   * Freezes every parameter whose name matches (substring, RegExp or predicate). Frozen
   * parameters leave `parameters()` and stop being trainable. Returns the names frozen.
   */
  freeze(pattern: string | RegExp | ((name: string) => boolean)): string[] {
    return this.setFrozen(pattern, true);
  }

  /** Undoes `freeze` for the matching names. */
  unfreeze(pattern: string | RegExp | ((name: string) => boolean)): string[] {
    return this.setFrozen(pattern, false);
  }

  private setFrozen(pattern: string | RegExp | ((name: string) => boolean), frozen: boolean): string[] {
    const match =
      typeof pattern === 'function'
        ? pattern
        : typeof pattern === 'string'
          ? (n: string) => n.includes(pattern)
          : (n: string) => pattern.test(n);
    const changed: string[] = [];
    for (const s of this.specs) {
      if (!s.trainable || !match(s.name)) continue;
      if (frozen) this.frozen.add(s.name);
      else this.frozen.delete(s.name);
      const v = this.vars.get(s.name);
      if (v) v.trainable = !frozen;
      changed.push(s.name);
    }
    return changed;
  }

  /** Names of the frozen parameters. */
  frozenParameters(): string[] {
    return this.specs.filter((s) => this.frozen.has(s.name)).map((s) => s.name);
  }

  /**
   * The state dict: official key names, official shapes, in the reference's order (the live
   * variables, not copies: do not dispose them).
   */
  stateDict(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const s of this.specs) out.set(s.name, this.v(s.name));
    return out;
  }

  /**
   * Loads tensors by official name. With `strict` (default), missing or unexpected keys are an
   * error; a shape mismatch always is. The error names every offending key. The tensors are
   * not consumed: the model shares their data (no copy) and the caller may dispose them.
   */
  loadStateDict(record: Record<string, tf.Tensor> | Map<string, tf.Tensor>, options: LoadStateDictOptions = {}): LoadReport {
    const strict = options.strict ?? true;
    const entries = record instanceof Map ? [...record.entries()] : Object.entries(record);
    const given = new Map(entries);
    const missing = this.specs.filter((s) => !given.has(s.name)).map((s) => s.name);
    const unexpected = entries.filter(([k]) => !this.specByName.has(k)).map(([k]) => k);
    const mismatched: string[] = [];
    for (const [k, t] of entries) {
      const s = this.specByName.get(k);
      if (!s) continue;
      if (!isTensor(t)) mismatched.push(`${k}: not a tensor`);
      else if (t.shape.length !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i])) {
        mismatched.push(`${k}: expected shape [${s.shape.join(', ')}], got [${t.shape.join(', ')}]`);
      }
    }
    const problems: string[] = [];
    if (mismatched.length) problems.push(`${mismatched.length} mis-shaped: ${mismatched.join('; ')}`);
    if (strict && missing.length) problems.push(`${missing.length} missing: ${missing.join(', ')}`);
    if (strict && unexpected.length) problems.push(`${unexpected.length} unexpected: ${unexpected.join(', ')}`);
    if (problems.length) {
      throw new OpenSoraError('E_STATE_DICT', `STDiT2.loadStateDict: ${problems.join(' | ')}`, {
        hint: strict ? 'check the checkpoint matches the config (depth, hidden size, qkNorm, modelMaxLength), or pass { strict: false }' : 'check the checkpoint matches the config',
        details: { missing, unexpected, mismatched },
      });
    }
    const loaded: string[] = [];
    for (const s of this.specs) {
      const t = given.get(s.name);
      if (!t) continue;
      const value = t.dtype === 'float32' ? t : tf.cast(t, 'float32');
      const existing = this.vars.get(s.name);
      if (existing) {
        // assigning a variable its own data would free it first (tfjs Variable.assign)
        if (existing.dataId !== value.dataId) existing.assign(value);
      }
      else this.vars.set(s.name, tf.variable(value, s.trainable && !this.frozen.has(s.name)));
      if (value !== t) value.dispose();
      loaded.push(s.name);
    }
    this.ropeCache = null;
    return { loaded, missing, unexpected };
  }

  /** Releases every variable. */
  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
    this.vars.clear();
    this.disposed = true;
  }

  // ----------------------------------------------------------------------------------------
  // forward

  private blockParams(i: number): BlockParams {
    const b = `blocks.${i}`;
    const qk = this.config.qkNorm;
    const attn = (n: string) => ({
      qkvW: this.v(`${b}.${n}.qkv.weight`),
      qkvB: this.v(`${b}.${n}.qkv.bias`),
      ...(qk ? { qNorm: this.v(`${b}.${n}.q_norm.weight`), kNorm: this.v(`${b}.${n}.k_norm.weight`) } : {}),
      projW: this.v(`${b}.${n}.proj.weight`),
      projB: this.v(`${b}.${n}.proj.bias`),
    });
    return {
      table: this.v(`${b}.scale_shift_table`),
      tableT: this.v(`${b}.scale_shift_table_temporal`),
      attn: attn('attn'),
      attnT: attn('attn_temp'),
      crossQW: this.v(`${b}.cross_attn.q_linear.weight`),
      crossQB: this.v(`${b}.cross_attn.q_linear.bias`),
      crossKvW: this.v(`${b}.cross_attn.kv_linear.weight`),
      crossKvB: this.v(`${b}.cross_attn.kv_linear.bias`),
      crossProjW: this.v(`${b}.cross_attn.proj.weight`),
      crossProjB: this.v(`${b}.cross_attn.proj.bias`),
      fc1W: this.v(`${b}.mlp.fc1.weight`),
      fc1B: this.v(`${b}.mlp.fc1.bias`),
      fc2W: this.v(`${b}.mlp.fc2.weight`),
      fc2B: this.v(`${b}.mlp.fc2.bias`),
    };
  }

  /** TimestepEmbedder / SizeEmbedder MLP on host-computed 256-dim features: [n] -> [n, out]. */
  private embedScalars(prefix: string, values: number[]): tf.Tensor {
    const feats = tf.tensor2d(timestepFeatures(values, 256), [values.length, 256]);
    const h = silu(linear(feats, this.v(`${prefix}.mlp.0.weight`), this.v(`${prefix}.mlp.0.bias`)));
    return linear(h, this.v(`${prefix}.mlp.2.weight`), this.v(`${prefix}.mlp.2.bias`));
  }

  private ropeFreqValues(): Float32Array {
    if (!this.ropeCache) this.ropeCache = Float32Array.from(this.v('rope.freqs').dataSync() as Float32Array);
    return this.ropeCache;
  }

  /**
   * STDiT2.forward (spec section 3). Returns [B, outChannels, T, H, W] float32.
   */
  forward(inputs: STDiT2Inputs, options: STDiT2ForwardOptions = {}): tf.Tensor {
    const c = this.config;
    const d = derived(c);
    const D = d.D;
    const { x } = inputs;
    if (!isTensor(x) || x.rank !== 5) {
      throw new InvalidArgumentError(`STDiT2.forward: x must be a [B, C, T, H, W] tensor, got ${isTensor(x) ? `shape [${x.shape.join(', ')}]` : typeof x}`);
    }
    const [B, C, Tx, Hx, Wx] = x.shape as [number, number, number, number, number];
    if (C !== c.inChannels) throw new InvalidArgumentError(`STDiT2.forward: x has ${C} channels, the model expects inChannels = ${c.inChannels}`);
    const [pt, ph, pw] = c.patchSize;
    const T = Math.ceil(Tx / pt);
    const H = Math.ceil(Hx / ph);
    const W = Math.ceil(Wx / pw);
    const S = H * W;
    const N = T * S;
    const training = options.training ?? false;
    const rng = options.rng;
    const debug = options.debug;
    const checkpoint = options.gradientCheckpointing ?? this.gradientCheckpointing;

    // host-side scalars
    const timesteps = tileTo(readScalars(inputs.timestep, 'timestep'), B, 'timestep');
    const heightsRaw = readScalars(inputs.height, 'height');
    const widthsRaw = readScalars(inputs.width, 'width');
    const heights = tileTo(heightsRaw, B, 'height');
    const widths = tileTo(widthsRaw, B, 'width');
    const ars = tileTo(readScalars(inputs.ar, 'ar'), B, 'ar');
    const nfs = tileTo(readScalars(inputs.numFrames, 'numFrames'), B, 'numFrames');
    const fpss = tileTo(readScalars(inputs.fps, 'fps'), B, 'fps');

    // y and text mask
    const y = inputs.y;
    if (!isTensor(y) || y.rank !== 4 || y.shape[0] !== B || y.shape[1] !== 1 || y.shape[3] !== c.captionChannels) {
      throw new InvalidArgumentError(
        `STDiT2.forward: y must be [B=${B}, 1, L, captionChannels=${c.captionChannels}], got ${isTensor(y) ? `[${y.shape.join(', ')}]` : typeof y}`,
      );
    }
    const L = y.shape[2]!;
    let maskRows: number[][] | null = null;
    if (inputs.mask) {
      const m = inputs.mask;
      const m2 = m.rank === 4 ? m.reshape([m.shape[0]!, m.shape[3]!]) : m.rank === 3 ? m.reshape([m.shape[0]!, m.shape[2]!]) : m;
      if (m2.rank !== 2 || m2.shape[1] !== L) {
        throw new InvalidArgumentError(`STDiT2.forward: mask must be [B', L=${L}], got [${m.shape.join(', ')}]`);
      }
      const Bm = m2.shape[0]!;
      if (B % Bm !== 0) throw new InvalidArgumentError(`STDiT2.forward: mask has ${Bm} rows, which does not divide the batch size ${B}`);
      const vals = m2.dataSync();
      if (m2 !== m) m2.dispose();
      maskRows = [];
      for (let r = 0; r < B; r++) {
        const src = r % Bm;
        maskRows.push(Array.from({ length: L }, (_, j) => (Number(vals[src * L + j]) !== 0 ? 1 : 0)));
      }
    }
    let xMaskVals: boolean[] | null = null;
    if (inputs.xMask) {
      const xm = inputs.xMask;
      if (xm.rank !== 2 || xm.shape[0] !== B || xm.shape[1] !== Tx) {
        throw new InvalidArgumentError(`STDiT2.forward: xMask must be [B=${B}, T=${Tx}] bool, got [${xm.shape.join(', ')}]`);
      }
      if (pt !== 1) throw new InvalidArgumentError('STDiT2.forward: xMask needs a temporal patch size of 1 (as the reference)');
      xMaskVals = Array.from(xm.dataSync() as ArrayLike<number>, (v) => Number(v) !== 0);
    }

    // training randomness (drawn up front, so that a recomputed block sees the same draws)
    let dropIds: boolean[] | null = null;
    if (options.forceDropIds) {
      dropIds = Array.from(options.forceDropIds, (v) => v === true || v === 1);
      if (dropIds.length !== B) throw new InvalidArgumentError(`forceDropIds: expected ${B} entries, got ${dropIds.length}`);
    } else if (training && c.classDropoutProb > 0) {
      if (!rng) throw new InvalidArgumentError('STDiT2.forward: training with classDropoutProb > 0 needs options.rng (caption dropout)');
      dropIds = Array.from({ length: B }, () => rng.random() < c.classDropoutProb);
    }
    const dropRates = Array.from({ length: c.depth }, (_, i) => (c.depth > 1 ? (c.dropPath * i) / (c.depth - 1) : 0));
    let dropFactors: number[][][] | null = null; // [block][branch][b]
    if (training && c.dropPath > 0) {
      if (!rng) throw new InvalidArgumentError('STDiT2.forward: training with dropPath > 0 needs options.rng (drop path)');
      dropFactors = dropRates.map((p) =>
        [0, 1, 2].map(() => Array.from({ length: B }, () => (p === 0 ? 1 : rng.random() < 1 - p ? 1 / (1 - p) : 0))),
      );
    }
    if (training && y.shape[2] !== c.modelMaxLength) {
      throw new InvalidArgumentError(`STDiT2.forward: in training y must have modelMaxLength = ${c.modelMaxLength} tokens, got ${L}`);
    }
    if (dropIds && dropIds.some(Boolean) && L !== c.modelMaxLength) {
      throw new InvalidArgumentError(`STDiT2.forward: caption dropout needs y with modelMaxLength = ${c.modelMaxLength} tokens, got ${L}`);
    }

    return tf.tidy(() => {
      const dbg = (name: string, t: tf.Tensor) => {
        if (debug) debug(name, t);
      };
      // 3.2 / 3.3 data info and temporal condition
      const hw: number[] = [];
      for (let b = 0; b < B; b++) hw.push(heights[b]!, widths[b]!);
      const csize = tf.reshape(this.embedScalars('csize_embedder', hw), [B, 2 * d.sizeDim]);
      const arEmb = this.embedScalars('ar_embedder', ars);
      dbg('csize_emb', csize);
      dbg('ar_emb', arEmb);
      const dataInfo = tf.concat([csize, arEmb], 1);
      const flEmb = this.embedScalars('fl_embedder', nfs);
      const fpsEmb = this.embedScalars('fps_embedder', fpss);
      dbg('fl_emb', flEmb);
      dbg('fps_emb', fpsEmb);
      const fl = tf.add(flEmb, fpsEmb);

      // 3.4 / 3.5 patch embedding + position embedding
      const geom = posEmbedGeometry(H, W, heightsRaw[0]!, widthsRaw[0]!, c.inputSqSize);
      const pos = tf.tensor(posEmbed2D(D, geom), [1, 1, S, D]);
      dbg('pos_emb', tf.reshape(pos, [1, S, D]));
      const xe = this.patchEmbed(x, T, H, W); // [B, T, S, D]
      dbg('x_embed', tf.reshape(xe, [B, N, D]));
      let h = tf.add(xe, pos);

      // 3.6 timestep conditioning
      const t = this.embedScalars('t_embedder', timesteps);
      dbg('t', t);
      const tBlock = linear(silu(tf.add(t, dataInfo)), this.v('t_block.1.weight'), this.v('t_block.1.bias'));
      const tBlockT = linear(silu(tf.add(t, fl)), this.v('t_block_temp.1.weight'), this.v('t_block_temp.1.bias'));
      dbg('t_block', tBlock);
      dbg('t_block_temp', tBlockT);
      let tMod = tf.reshape(tBlock, [B, 1, 6, D]);
      let tModT = tf.reshape(tBlockT, [B, 1, 3, D]);
      let t0Spc: tf.Tensor | null = null;
      let xMaskT: tf.Tensor | null = null;
      if (xMaskVals) {
        const t0 = this.embedScalars('t_embedder', new Array<number>(B).fill(0));
        dbg('t0', t0);
        t0Spc = tf.add(t0, dataInfo);
        const t0Block = linear(silu(t0Spc), this.v('t_block.1.weight'), this.v('t_block.1.bias'));
        const t0BlockT = linear(silu(tf.add(t0, fl)), this.v('t_block_temp.1.weight'), this.v('t_block_temp.1.bias'));
        dbg('t0_block', t0Block);
        dbg('t0_block_temp', t0BlockT);
        xMaskT = tf.tensor2d(xMaskVals.map((v) => (v ? 1 : 0)), [B, T], 'bool');
        const cond = (n: number) => tf.broadcastTo(tf.reshape(xMaskT!, [B, T, 1, 1]), [B, T, n, D]);
        tMod = tf.where(cond(6), tf.broadcastTo(tMod, [B, T, 6, D]), tf.broadcastTo(tf.reshape(t0Block, [B, 1, 6, D]), [B, T, 6, D]));
        tModT = tf.where(cond(3), tf.broadcastTo(tModT, [B, T, 3, D]), tf.broadcastTo(tf.reshape(t0BlockT, [B, 1, 3, D]), [B, T, 3, D]));
      }

      // 3.7 caption tokens
      let yIn: tf.Tensor = y;
      if (dropIds && dropIds.some(Boolean)) {
        const cond = tf.broadcastTo(tf.tensor4d(dropIds.map((v) => (v ? 1 : 0)), [B, 1, 1, 1], 'bool'), y.shape);
        const nullY = tf.broadcastTo(tf.reshape(this.nullCaption, [1, 1, L, c.captionChannels]), y.shape);
        yIn = tf.where(cond, nullY, y);
      }
      const yProj = linear(
        geluTanh(linear(tf.reshape(yIn, [B * L, c.captionChannels]), this.v('y_embedder.y_proj.fc1.weight'), this.v('y_embedder.y_proj.fc1.bias'))),
        this.v('y_embedder.y_proj.fc2.weight'),
        this.v('y_embedder.y_proj.fc2.bias'),
      );
      const yTokens = tf.reshape(yProj, [B, L, D]);
      dbg('y_embed', tf.reshape(yTokens, [B, 1, L, D]));
      let yBias: tf.Tensor | null = null;
      let yValid: tf.Tensor | null = null;
      if (maskRows && maskRows.some((r) => r.some((v) => v === 0))) {
        yBias = tf.tensor4d(maskRows.flatMap((r) => r.map((v) => (v ? 0 : -1e9))), [B, 1, 1, L]);
        if (maskRows.some((r) => r.every((v) => v === 0))) {
          yValid = tf.tensor4d(maskRows.map((r) => (r.some((v) => v !== 0) ? 1 : 0)), [B, 1, 1, 1]);
        }
      }

      // RoPE tables over the T axis
      const rt = ropeTables(T, this.ropeFreqValues());
      const ropeCos = tf.tensor2d(rt.cos, [T, d.headDim]);
      const ropeSin = tf.tensor2d(rt.sin, [T, d.headDim]);
      const ropeRot = tf.tensor2d(rotateHalfMatrix(d.headDim), [d.headDim, d.headDim]);

      // 3.8 blocks
      for (let i = 0; i < c.depth; i++) {
        const f = dropFactors?.[i];
        const mk = (j: number) => (f && f[j]!.some((v) => v !== 1) ? tf.tensor4d(f[j]!, [B, 1, 1, 1]) : null);
        const ctx: BlockContext = {
          numHeads: c.numHeads,
          yTokens,
          yBias,
          yValid,
          tMod,
          tModT,
          ropeCos,
          ropeSin,
          ropeRot,
          dropS: mk(0),
          dropT: mk(1),
          dropM: mk(2),
          debug: checkpoint ? undefined : debug,
          debugPrefix: `b${i}`,
        };
        const p = this.blockParams(i);
        h = checkpoint ? checkpointed(h, p, ctx) : blockForward(h, p, ctx);
        dbg(`block${i}_out`, tf.reshape(h, [B, N, D]));
      }

      // 3.9 final layer, 3.10 unpatchify + crop
      const fp: FinalParams = {
        table: this.v('final_layer.scale_shift_table'),
        linW: this.v('final_layer.linear.weight'),
        linB: this.v('final_layer.linear.bias'),
      };
      const out = finalLayer(h, t, fp, xMaskT, t0Spc); // [B, T, S, pv * outC]
      dbg('final_layer_out', tf.reshape(out, [B, N, d.finalOut]));
      return this.unpatchify(out, T, H, W, Tx, Hx, Wx);
    });
  }

  /** PatchEmbed3D: zero-pad at the end to multiples of the patch, then a per-patch linear. -> [B, T, S, D]. */
  private patchEmbed(x: tf.Tensor, T: number, H: number, W: number): tf.Tensor {
    const c = this.config;
    const [B, C, Tx, Hx, Wx] = x.shape as [number, number, number, number, number];
    const [pt, ph, pw] = c.patchSize;
    let xp = x;
    if (T * pt !== Tx || H * ph !== Hx || W * pw !== Wx) {
      xp = tf.pad(x, [
        [0, 0],
        [0, 0],
        [0, T * pt - Tx],
        [0, H * ph - Hx],
        [0, W * pw - Wx],
      ]);
    }
    // [B, C, T, pt, H, ph, W, pw] -> [B, T, H, W, C, pt, ph, pw]
    const patches = tf.reshape(
      tf.transpose(tf.reshape(xp, [B, C, T, pt, H, ph, W, pw]), [0, 2, 4, 6, 1, 3, 5, 7]),
      [B * T * H * W, C * pt * ph * pw],
    );
    const e = linear(patches, this.v('x_embedder.proj.weight'), this.v('x_embedder.proj.bias'));
    return tf.reshape(e, [B, T, H * W, c.hiddenSize]);
  }

  /** "B (T H W) (pt ph pw C) -> B C (T pt) (H ph) (W pw)", then crop to (Tx, Hx, Wx). */
  private unpatchify(out: tf.Tensor, T: number, H: number, W: number, Tx: number, Hx: number, Wx: number): tf.Tensor {
    const [pt, ph, pw] = this.config.patchSize;
    const B = out.shape[0]!;
    const Co = this.outChannels;
    const r = tf.reshape(out, [B, T, H, W, pt, ph, pw, Co]);
    const v = tf.reshape(tf.transpose(r, [0, 7, 1, 4, 2, 5, 3, 6]), [B, Co, T * pt, H * ph, W * pw]);
    if (T * pt === Tx && H * ph === Hx && W * pw === Wx) return v;
    return tf.slice(v, [0, 0, 0, 0, 0], [B, Co, Tx, Hx, Wx]);
  }
}
