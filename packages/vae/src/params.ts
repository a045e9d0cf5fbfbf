/**
 * The parameter list of a diffusers `AutoencoderKL`: every key of its state dict, with the
 * PyTorch shape and the kind of layer it belongs to. Built from the config alone (no tensors),
 * so the parameter count of any config is known without allocating it.
 */
import type { AutoencoderKLConfig } from './config.js';

/** `conv`: PyTorch [out, in, kh, kw]; `linear`: [out, in]; `vector`: [C] (bias, GroupNorm affine). */
export type ParamKind = 'conv' | 'linear' | 'vector';

export interface ParamSpec {
  /** The diffusers state-dict key. */
  name: string;
  /** The PyTorch (checkpoint) shape. */
  shape: number[];
  kind: ParamKind;
  /** Fan-in, for the default (PyTorch-style) initialisation. */
  fanIn: number;
}

class SpecBuilder {
  readonly specs: ParamSpec[] = [];
  conv(name: string, cin: number, cout: number, k: number): void {
    const fanIn = cin * k * k;
    this.specs.push({ name: `${name}.weight`, shape: [cout, cin, k, k], kind: 'conv', fanIn });
    this.specs.push({ name: `${name}.bias`, shape: [cout], kind: 'vector', fanIn });
  }
  linear(name: string, cin: number, cout: number): void {
    this.specs.push({ name: `${name}.weight`, shape: [cout, cin], kind: 'linear', fanIn: cin });
    this.specs.push({ name: `${name}.bias`, shape: [cout], kind: 'vector', fanIn: cin });
  }
  norm(name: string, c: number): void {
    this.specs.push({ name: `${name}.weight`, shape: [c], kind: 'vector', fanIn: 0 });
    this.specs.push({ name: `${name}.bias`, shape: [c], kind: 'vector', fanIn: 0 });
  }
  resnet(name: string, cin: number, cout: number): void {
    this.norm(`${name}.norm1`, cin);
    this.conv(`${name}.conv1`, cin, cout, 3);
    this.norm(`${name}.norm2`, cout);
    this.conv(`${name}.conv2`, cout, cout, 3);
    if (cin !== cout) this.conv(`${name}.conv_shortcut`, cin, cout, 1);
  }
  attention(name: string, c: number): void {
    this.norm(`${name}.group_norm`, c);
    this.linear(`${name}.to_q`, c, c);
    this.linear(`${name}.to_k`, c, c);
    this.linear(`${name}.to_v`, c, c);
    this.linear(`${name}.to_out.0`, c, c);
  }
  midBlock(name: string, c: number, attention: boolean): void {
    this.resnet(`${name}.resnets.0`, c, c);
    if (attention) this.attention(`${name}.attentions.0`, c);
    this.resnet(`${name}.resnets.1`, c, c);
  }
}

/** Every state-dict entry of `AutoencoderKL(config)`, in diffusers' registration order. */
export function autoencoderKLParamSpecs(cfg: AutoencoderKLConfig): ParamSpec[] {
  const b = new SpecBuilder();
  const ch = cfg.block_out_channels;
  const n = ch.length;
  const last = ch[n - 1]!;
  const L = cfg.latent_channels;
  // Encoder
  b.conv('encoder.conv_in', cfg.in_channels, ch[0]!, 3);
  let cin = ch[0]!;
  for (let i = 0; i < n; i++) {
    const cout = ch[i]!;
    for (let j = 0; j < cfg.layers_per_block; j++) {
      b.resnet(`encoder.down_blocks.${i}.resnets.${j}`, j === 0 ? cin : cout, cout);
    }
    if (i < n - 1) b.conv(`encoder.down_blocks.${i}.downsamplers.0.conv`, cout, cout, 3);
    cin = cout;
  }
  b.midBlock('encoder.mid_block', last, cfg.mid_block_add_attention);
  b.norm('encoder.conv_norm_out', last);
  b.conv('encoder.conv_out', last, 2 * L, 3);
  // Decoder
  b.conv('decoder.conv_in', L, last, 3);
  b.midBlock('decoder.mid_block', last, cfg.mid_block_add_attention);
  const rev = [...ch].reverse();
  let prev = rev[0]!;
  for (let i = 0; i < n; i++) {
    const cout = rev[i]!;
    for (let j = 0; j < cfg.layers_per_block + 1; j++) {
      b.resnet(`decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? prev : cout, cout);
    }
    if (i < n - 1) b.conv(`decoder.up_blocks.${i}.upsamplers.0.conv`, cout, cout, 3);
    prev = cout;
  }
  b.norm('decoder.conv_norm_out', ch[0]!);
  b.conv('decoder.conv_out', ch[0]!, cfg.out_channels, 3);
  if (cfg.use_quant_conv) b.conv('quant_conv', 2 * L, 2 * L, 1);
  if (cfg.use_post_quant_conv) b.conv('post_quant_conv', L, L, 1);
  return b.specs;
}

export function specSize(s: ParamSpec): number {
  return s.shape.reduce((a, v) => a * v, 1);
}

/**
 * Key renames from older diffusers checkpoints (before 0.14) and from converted original SD
 * checkpoints: the mid-block attention was `query/key/value/proj_attn`. Maps an old key to the
 * current name, or returns it unchanged.
 */
export function modernizeKey(key: string): string {
  return key
    .replace(/(\.attentions\.\d+)\.query\./, '$1.to_q.')
    .replace(/(\.attentions\.\d+)\.key\./, '$1.to_k.')
    .replace(/(\.attentions\.\d+)\.value\./, '$1.to_v.')
    .replace(/(\.attentions\.\d+)\.proj_attn\./, '$1.to_out.0.');
}
