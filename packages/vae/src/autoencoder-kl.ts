/**
 * diffusers `AutoencoderKL` (the SD-1.x KL-f8 VAE and any other config of the same family) on tfjs.
 * State-dict keys and shapes are diffusers'; tensors are kept in tfjs layout internally
 * (channels-last activations, conv filters [kh, kw, in, out], linear weights [in, out]).
 * The public encode/decode methods take and return the reference's NCHW layout; the `*NHWC`
 * variants skip the two transposes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { tf, Rng, type Seed } from '@opensora/core';
import { resolveAutoencoderKLConfig, type AutoencoderKLConfig } from './config.js';
import { autoencoderKLParamSpecs, modernizeKey, specSize, type ParamSpec } from './params.js';
import { attentionBlock, chain, conv2d, groupNorm, resnetBlock, upsampleNearest2x, type WeightGetter } from './layers.js';
import { fmtShape, ioError, listSome, shapeError, stateDictError } from './errors.js';
import { fromTorchLayout, toTorchLayout } from './layout.js';
import { openWeights, type TensorSource } from './weights.js';

/** GroupNorm / ResNet epsilon used throughout diffusers' VAE encoder and decoder. */
export const VAE_NORM_EPS = 1e-6;

export interface AutoencoderKLOptions {
  /**
   * `random` (default): PyTorch's default initialisation (kaiming-uniform weights, GroupNorm 1/0),
   * drawn from `seed`. `none`: allocate nothing; weights must come from `loadStateDict`.
   */
  init?: 'random' | 'none';
  seed?: Seed;
}

/** One state-dict value: a tensor, or raw data with its PyTorch shape. */
export type StateDictValue = tf.Tensor | { shape: readonly number[]; data: ArrayLike<number> };

export interface LoadStateDictOptions {
  /**
   * true (default): every expected key must be present and no unknown key may be. false: missing
   * keys keep their current values (they must have been initialised) and unknown keys are ignored.
   */
  strict?: boolean;
}

export interface LoadReport {
  loaded: string[];
  missing: string[];
  unexpected: string[];
}

export interface Posterior {
  /** [N, L, h, w] (NCHW) or [N, h, w, L] (NHWC). */
  mean: tf.Tensor4D;
  /** Clamped to [-30, 20] as diffusers' DiagonalGaussianDistribution does. */
  logvar: tf.Tensor4D;
}

function toNCHW(x: tf.Tensor4D): tf.Tensor4D {
  return tf.transpose(x, [0, 3, 1, 2]);
}
function toNHWC(x: tf.Tensor4D): tf.Tensor4D {
  return tf.transpose(x, [0, 2, 3, 1]);
}

function isTensorSource(v: unknown): v is TensorSource {
  return typeof v === 'object' && v !== null && typeof (v as TensorSource).keys === 'function' && typeof (v as TensorSource).readFloat32 === 'function' && typeof (v as TensorSource).info === 'function';
}

export class AutoencoderKL {
  readonly config: AutoencoderKLConfig;
  /** Pixel-to-latent spatial factor: 2^(number of blocks - 1), 8 for the SD VAE. */
  readonly spatialCompression: number;
  private readonly specs: ParamSpec[];
  private readonly specByName: Map<string, ParamSpec>;
  private readonly weights = new Map<string, tf.Tensor>();
  private disposed = false;

  constructor(config: Partial<AutoencoderKLConfig> & Record<string, unknown> = {}, options: AutoencoderKLOptions = {}) {
    this.config = resolveAutoencoderKLConfig(config);
    this.spatialCompression = 2 ** (this.config.block_out_channels.length - 1);
    this.specs = autoencoderKLParamSpecs(this.config);
    this.specByName = new Map(this.specs.map((s) => [s.name, s]));
    if ((options.init ?? 'random') === 'random') this.initRandom(options.seed ?? 0);
  }

  /** The state-dict entries (diffusers names, PyTorch shapes) of a config, from shapes alone. */
  static parameterSpecs(config: Partial<AutoencoderKLConfig> & Record<string, unknown> = {}): ParamSpec[] {
    return autoencoderKLParamSpecs(resolveAutoencoderKLConfig(config));
  }

  /** Number of parameters of a config, computed from shapes alone (nothing is allocated). */
  static countParameters(config: Partial<AutoencoderKLConfig> & Record<string, unknown> = {}): number {
    return AutoencoderKL.parameterSpecs(config).reduce((a, s) => a + specSize(s), 0);
  }

  /**
   * Loads a diffusers AutoencoderKL folder: `config.json` plus `diffusion_pytorch_model.safetensors`
   * (or its sharded `.safetensors.index.json`, or `model.safetensors`). A pipeline folder with a
   * `vae/` subfolder is accepted too. Strict: a missing or mis-shaped key is an error that names it.
   */
  static async fromPretrained(dir: string, options: LoadStateDictOptions = {}): Promise<AutoencoderKL> {
    let root = path.resolve(dir);
    if (!fs.existsSync(root)) throw ioError(`VAE folder '${dir}' does not exist`, { hint: 'pass the folder that holds config.json and diffusion_pytorch_model.safetensors (e.g. a local copy of stabilityai/sd-vae-ft-ema)' });
    if (!fs.existsSync(path.join(root, 'config.json')) && fs.existsSync(path.join(root, 'vae', 'config.json'))) root = path.join(root, 'vae');
    const cfgPath = path.join(root, 'config.json');
    if (!fs.existsSync(cfgPath)) throw ioError(`No config.json in '${root}'`, { hint: 'a diffusers AutoencoderKL folder has config.json next to its weights' });
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(await fs.promises.readFile(cfgPath, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw ioError(`Cannot parse '${cfgPath}' as JSON: ${(e as Error).message}`, { cause: e });
    }
    if (json._class_name !== undefined && json._class_name !== 'AutoencoderKL') {
      throw ioError(`'${cfgPath}' describes a ${String(json._class_name)}, not an AutoencoderKL`);
    }
    const vae = new AutoencoderKL(json, { init: 'none' });
    const source = openWeights(root);
    try {
      vae.loadStateDict(source, { strict: options.strict ?? true });
    } catch (e) {
      vae.dispose();
      throw e;
    } finally {
      source.close?.();
    }
    return vae;
  }

  /** Every expected state-dict entry (diffusers name, PyTorch shape). */
  parameterSpecs(): ParamSpec[] {
    return this.specs.map((s) => ({ ...s, shape: [...s.shape] }));
  }

  numParameters(): number {
    return this.specs.reduce((a, s) => a + specSize(s), 0);
  }

  /** True once every parameter holds a value (after random init or a full load). */
  get initialized(): boolean {
    return this.weights.size === this.specs.length;
  }

  private initRandom(seed: Seed): void {
    const rng = new Rng(seed);
    for (const s of this.specs) {
      const data = new Float32Array(specSize(s));
      if (s.fanIn === 0) {
        if (s.name.endsWith('.weight')) data.fill(1);
      } else {
        const bound = 1 / Math.sqrt(s.fanIn);
        rng.fillUniform(data, -bound, bound);
      }
      this.setWeight(s, data);
    }
  }

  private setWeight(spec: ParamSpec, torchData: Float32Array): void {
    const { data, shape } = fromTorchLayout(spec, torchData);
    const t = tf.tensor(data, shape, 'float32');
    this.weights.get(spec.name)?.dispose();
    this.weights.set(spec.name, t);
  }

  /**
   * Loads diffusers-named weights in PyTorch layout: a record of tensors / {shape, data}, or a
   * lazy reader (`openSafetensors(...)` from core). Old attention names (query/key/value/proj_attn)
   * and 1x1-conv-shaped attention weights are accepted.
   */
  loadStateDict(source: Record<string, StateDictValue> | TensorSource, options: LoadStateDictOptions = {}): LoadReport {
    this.assertAlive();
    const strict = options.strict ?? true;
    const lookup = new Map<string, string>(); // modern name -> source key
    const srcKeys = isTensorSource(source) ? source.keys() : Object.keys(source);
    const unexpected: string[] = [];
    for (const k of srcKeys) {
      const m = modernizeKey(k);
      if (this.specByName.has(m)) lookup.set(m, k);
      else unexpected.push(k);
    }
    const missing = this.specs.filter((s) => !lookup.has(s.name)).map((s) => s.name);
    if (strict && missing.length > 0) {
      throw stateDictError(`AutoencoderKL state dict is missing ${missing.length} of ${this.specs.length} keys: ${listSome(missing)}`, {
        hint: 'the checkpoint does not match this config (block_out_channels, layers_per_block, latent_channels, mid_block_add_attention); check config.json',
        details: { missing, unexpected },
      });
    }
    if (!strict && missing.length > 0 && missing.some((m) => !this.weights.has(m))) {
      const unset = missing.filter((m) => !this.weights.has(m));
      throw stateDictError(`AutoencoderKL state dict is missing keys that have no value yet: ${listSome(unset)}`, { details: { missing: unset } });
    }
    if (strict && unexpected.length > 0) {
      throw stateDictError(`AutoencoderKL state dict has ${unexpected.length} unexpected keys: ${listSome(unexpected)}`, {
        hint: 'the checkpoint does not match this config, or it is not a diffusers AutoencoderKL; pass { strict: false } to ignore extra keys',
        details: { unexpected },
      });
    }
    // Check every shape before touching any weight, so a failed load leaves the model as it was.
    const get = (key: string): { shape: number[]; read: () => Float32Array } => {
      if (isTensorSource(source)) return { shape: [...source.info(key).shape], read: () => source.readFloat32(key) };
      const v = source[key]!;
      if (v instanceof tf.Tensor) return { shape: [...v.shape], read: () => v.dataSync() as Float32Array };
      return { shape: [...v.shape], read: () => Float32Array.from(v.data) };
    };
    const plan: Array<{ spec: ParamSpec; key: string }> = [];
    const badShapes: string[] = [];
    for (const spec of this.specs) {
      const key = lookup.get(spec.name);
      if (key === undefined) continue;
      const shape = get(key).shape;
      const ok =
        shape.length === spec.shape.length
          ? shape.every((v, i) => v === spec.shape[i])
          : spec.kind === 'linear' && shape.length === 4 && shape[0] === spec.shape[0] && shape[1] === spec.shape[1] && shape[2] === 1 && shape[3] === 1;
      if (!ok) badShapes.push(`${key}: expected ${fmtShape(spec.shape)}, got ${fmtShape(shape)}`);
      else plan.push({ spec, key });
    }
    if (badShapes.length > 0) {
      throw stateDictError(`AutoencoderKL state dict has ${badShapes.length} mis-shaped keys: ${listSome(badShapes, 6)}`, {
        hint: 'the checkpoint does not match this config; check config.json',
        details: { badShapes },
      });
    }
    for (const { spec, key } of plan) {
      const data = get(key).read();
      if (data.length !== specSize(spec)) throw stateDictError(`${key}: holds ${data.length} values, expected ${specSize(spec)}`);
      this.setWeight(spec, data);
    }
    return { loaded: plan.map((p) => p.spec.name), missing, unexpected };
  }

  /** The weights under diffusers names in PyTorch layout (new tensors: the caller disposes them). */
  stateDict(): Record<string, tf.Tensor> {
    this.assertReady();
    const out: Record<string, tf.Tensor> = {};
    for (const s of this.specs) {
      const t = this.weights.get(s.name)!;
      out[s.name] = tf.tensor(toTorchLayout(s, t.dataSync() as Float32Array), s.shape, 'float32');
    }
    return out;
  }

  private readonly w: WeightGetter = (name) => {
    const t = this.weights.get(name);
    if (!t) throw stateDictError(`AutoencoderKL weight '${name}' is not loaded`, { hint: 'load a state dict (fromPretrained / loadStateDict) or build with init: "random"' });
    return t;
  };

  private assertAlive(): void {
    if (this.disposed) throw new Error('AutoencoderKL: used after dispose()');
  }

  private assertReady(): void {
    this.assertAlive();
    if (!this.initialized) {
      const missing = this.specs.filter((s) => !this.weights.has(s.name)).map((s) => s.name);
      throw stateDictError(`AutoencoderKL has ${missing.length} weights that were never loaded: ${listSome(missing)}`, {
        hint: 'call loadStateDict / fromPretrained first, or construct with init: "random"',
      });
    }
  }

  private checkFrames(x: tf.Tensor, channels: number, what: string, layout: 'NCHW' | 'NHWC'): void {
    if (x.rank !== 4) throw shapeError(`AutoencoderKL.${what}: expected a rank-4 ${layout} tensor, got rank ${x.rank} ${fmtShape(x.shape)}`);
    const c = layout === 'NCHW' ? x.shape[1] : x.shape[3];
    if (c !== channels) throw shapeError(`AutoencoderKL.${what}: expected ${channels} channels, got ${c} (shape ${fmtShape(x.shape)}, ${layout})`);
    const h = layout === 'NCHW' ? x.shape[2]! : x.shape[1]!;
    const wd = layout === 'NCHW' ? x.shape[3]! : x.shape[2]!;
    const min = what.startsWith('encode') ? this.spatialCompression : 1;
    if (h < min || wd < min) throw shapeError(`AutoencoderKL.${what}: frames of ${h}x${wd} are smaller than the compression factor ${min}`);
  }

  /** Encoder + quant_conv on channels-last frames [N, H, W, in]: the posterior [N, floor(H/f), floor(W/f), L]. */
  encodeNHWC(x: tf.Tensor4D): Posterior {
    this.assertReady();
    this.checkFrames(x, this.config.in_channels, 'encodeNHWC', 'NHWC');
    const cfg = this.config;
    const g = cfg.norm_num_groups;
    const ch = cfg.block_out_channels;
    const L = cfg.latent_channels;
    const steps: Array<(h: tf.Tensor4D) => tf.Tensor4D> = [(h) => conv2d(this.w, 'encoder.conv_in', h)];
    let cin = ch[0]!;
    for (let i = 0; i < ch.length; i++) {
      const cout = ch[i]!;
      for (let j = 0; j < cfg.layers_per_block; j++) {
        const inC = j === 0 ? cin : cout;
        steps.push((h) => resnetBlock(this.w, `encoder.down_blocks.${i}.resnets.${j}`, h, g, VAE_NORM_EPS, inC !== cout));
      }
      if (i < ch.length - 1) steps.push((h) => conv2d(this.w, `encoder.down_blocks.${i}.downsamplers.0.conv`, h, 'down'));
      cin = cout;
    }
    steps.push(...this.midBlock('encoder.mid_block'));
    steps.push((h) => groupNorm(this.w, 'encoder.conv_norm_out', h, g, VAE_NORM_EPS, true));
    steps.push((h) => conv2d(this.w, 'encoder.conv_out', h));
    if (cfg.use_quant_conv) steps.push((h) => conv2d(this.w, 'quant_conv', h, '1x1'));
    const moments = chain(x, ...steps);
    const [mean, logvar] = tf.tidy(() => {
      const [m, lv] = tf.split(moments, [L, L], 3) as [tf.Tensor4D, tf.Tensor4D];
      return [m, tf.clipByValue(lv, -30, 20)];
    });
    if (moments !== x) moments.dispose();
    return { mean: mean as tf.Tensor4D, logvar: logvar as tf.Tensor4D };
  }

  /** post_quant_conv + decoder on channels-last latents [N, h, w, L]: frames [N, f*h, f*w, out]. */
  decodeNHWC(z: tf.Tensor4D): tf.Tensor4D {
    this.assertReady();
    this.checkFrames(z, this.config.latent_channels, 'decodeNHWC', 'NHWC');
    const cfg = this.config;
    const g = cfg.norm_num_groups;
    const rev = [...cfg.block_out_channels].reverse();
    const steps: Array<(h: tf.Tensor4D) => tf.Tensor4D> = [];
    if (cfg.use_post_quant_conv) steps.push((h) => conv2d(this.w, 'post_quant_conv', h, '1x1'));
    steps.push((h) => conv2d(this.w, 'decoder.conv_in', h));
    steps.push(...this.midBlock('decoder.mid_block'));
    let prev = rev[0]!;
    for (let i = 0; i < rev.length; i++) {
      const cout = rev[i]!;
      for (let j = 0; j < cfg.layers_per_block + 1; j++) {
        const inC = j === 0 ? prev : cout;
        steps.push((h) => resnetBlock(this.w, `decoder.up_blocks.${i}.resnets.${j}`, h, g, VAE_NORM_EPS, inC !== cout));
      }
      if (i < rev.length - 1) {
        steps.push((h) => upsampleNearest2x(h));
        steps.push((h) => conv2d(this.w, `decoder.up_blocks.${i}.upsamplers.0.conv`, h));
      }
      prev = cout;
    }
    steps.push((h) => groupNorm(this.w, 'decoder.conv_norm_out', h, g, VAE_NORM_EPS, true));
    steps.push((h) => conv2d(this.w, 'decoder.conv_out', h));
    return chain(z, ...steps);
  }

  private midBlock(name: string): Array<(h: tf.Tensor4D) => tf.Tensor4D> {
    const g = this.config.norm_num_groups;
    const steps: Array<(h: tf.Tensor4D) => tf.Tensor4D> = [(h) => resnetBlock(this.w, `${name}.resnets.0`, h, g, VAE_NORM_EPS, false)];
    if (this.config.mid_block_add_attention) steps.push((h) => attentionBlock(this.w, `${name}.attentions.0`, h, g, VAE_NORM_EPS));
    steps.push((h) => resnetBlock(this.w, `${name}.resnets.1`, h, g, VAE_NORM_EPS, false));
    return steps;
  }

  /** diffusers `vae.encode(x).latent_dist` on NCHW frames [N, in, H, W]: mean and clamped logvar, NCHW. */
  encode(x: tf.Tensor4D): Posterior {
    this.checkFrames(x, this.config.in_channels, 'encode', 'NCHW');
    const xn = toNHWC(x);
    try {
      const p = this.encodeNHWC(xn);
      const out = { mean: toNCHW(p.mean), logvar: toNCHW(p.logvar) };
      p.mean.dispose();
      p.logvar.dispose();
      return out;
    } finally {
      xn.dispose();
    }
  }

  /** diffusers `vae.decode(z).sample` on NCHW latents [N, L, h, w] (no scaling applied here). */
  decode(z: tf.Tensor4D): tf.Tensor4D {
    this.checkFrames(z, this.config.latent_channels, 'decode', 'NCHW');
    return tf.tidy(() => toNCHW(this.decodeNHWC(toNHWC(z))));
  }

  dispose(): void {
    for (const t of this.weights.values()) t.dispose();
    this.weights.clear();
    this.disposed = true;
  }
}
