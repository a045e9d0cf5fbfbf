/**
 * The diffusers `AutoencoderKL` configuration, with the field names of its `config.json`
 * (snake_case, as diffusers writes them), so that a config read from disk needs no translation.
 */
import { ConfigError } from '@opensora/core';

export interface AutoencoderKLConfig {
  in_channels: number;
  out_channels: number;
  down_block_types: string[];
  up_block_types: string[];
  block_out_channels: number[];
  layers_per_block: number;
  act_fn: string;
  latent_channels: number;
  norm_num_groups: number;
  sample_size: number;
  /** Read and kept, but the Open-Sora adapter uses its own factor (0.18215 by default, like the reference). */
  scaling_factor: number;
  use_quant_conv: boolean;
  use_post_quant_conv: boolean;
  mid_block_add_attention: boolean;
}

/**
 * diffusers' `AutoencoderKL.__init__` defaults: what a field missing from a config.json becomes.
 * (Not the SD VAE: see `SD_VAE_CONFIG` for that.)
 */
export const DIFFUSERS_AUTOENCODER_KL_DEFAULTS: Readonly<AutoencoderKLConfig> = Object.freeze({
  in_channels: 3,
  out_channels: 3,
  down_block_types: ['DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D'],
  block_out_channels: [64],
  layers_per_block: 1,
  act_fn: 'silu',
  latent_channels: 4,
  norm_num_groups: 32,
  sample_size: 32,
  scaling_factor: 0.18215,
  use_quant_conv: true,
  use_post_quant_conv: true,
  mid_block_add_attention: true,
});

/** `stabilityai/sd-vae-ft-ema`'s config.json (the VAE of Open-Sora 1.1): 83.65M parameters. */
export const SD_VAE_CONFIG: Readonly<AutoencoderKLConfig> = Object.freeze({
  in_channels: 3,
  out_channels: 3,
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
  block_out_channels: [128, 256, 512, 512],
  layers_per_block: 2,
  act_fn: 'silu',
  latent_channels: 4,
  norm_num_groups: 32,
  sample_size: 256,
  scaling_factor: 0.18215,
  use_quant_conv: true,
  use_post_quant_conv: true,
  mid_block_add_attention: true,
});

/**
 * A tiny config for tests and benchmarks: the SD VAE's shape (4 levels, compression 8, 4 latent
 * channels, 1 ResNet per level) with 8/16/32/32 channels: about 0.2M parameters.
 */
export const TINY_VAE_CONFIG: Readonly<AutoencoderKLConfig> = Object.freeze({
  ...DIFFUSERS_AUTOENCODER_KL_DEFAULTS,
  down_block_types: Array(4).fill('DownEncoderBlock2D'),
  up_block_types: Array(4).fill('UpDecoderBlock2D'),
  block_out_channels: [8, 16, 32, 32],
  layers_per_block: 1,
  norm_num_groups: 4,
  sample_size: 64,
});

const ACTIVATIONS = ['silu', 'swish'];

function isPosInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

/**
 * Fills the missing fields of a (possibly partial) diffusers config with diffusers' defaults,
 * ignores the bookkeeping fields (`_class_name`, `_diffusers_version`, ...) and validates the rest.
 * Block-type lists given without `block_out_channels` (or the reverse) are matched in length
 * the way diffusers requires; every problem is listed in one `ConfigError`.
 */
export function resolveAutoencoderKLConfig(input: Partial<AutoencoderKLConfig> & Record<string, unknown> = {}, source = 'AutoencoderKL config'): AutoencoderKLConfig {
  const d = DIFFUSERS_AUTOENCODER_KL_DEFAULTS;
  const pick = <K extends keyof AutoencoderKLConfig>(k: K): AutoencoderKLConfig[K] =>
    (input[k] === undefined || input[k] === null ? d[k] : input[k]) as AutoencoderKLConfig[K];
  const cfg: AutoencoderKLConfig = {
    in_channels: pick('in_channels'),
    out_channels: pick('out_channels'),
    down_block_types: [...pick('down_block_types')],
    up_block_types: [...pick('up_block_types')],
    block_out_channels: [...pick('block_out_channels')],
    layers_per_block: pick('layers_per_block'),
    act_fn: pick('act_fn'),
    latent_channels: pick('latent_channels'),
    norm_num_groups: pick('norm_num_groups'),
    sample_size: Array.isArray(input.sample_size) ? Number((input.sample_size as number[])[0]) : pick('sample_size'),
    scaling_factor: pick('scaling_factor'),
    use_quant_conv: pick('use_quant_conv'),
    use_post_quant_conv: pick('use_post_quant_conv'),
    mid_block_add_attention: pick('mid_block_add_attention'),
  };
  const problems: string[] = [];
  for (const k of ['in_channels', 'out_channels', 'layers_per_block', 'latent_channels', 'norm_num_groups'] as const) {
    if (!isPosInt(cfg[k])) problems.push(`${k}: expected a positive integer, got ${JSON.stringify(cfg[k])}`);
  }
  if (!Array.isArray(cfg.block_out_channels) || cfg.block_out_channels.length === 0 || !cfg.block_out_channels.every(isPosInt)) {
    problems.push(`block_out_channels: expected a non-empty list of positive integers, got ${JSON.stringify(cfg.block_out_channels)}`);
  } else {
    const n = cfg.block_out_channels.length;
    // Block-type lists default to one entry; stretch an untouched default to the channel list.
    if (input.down_block_types === undefined) cfg.down_block_types = Array(n).fill('DownEncoderBlock2D');
    if (input.up_block_types === undefined) cfg.up_block_types = Array(n).fill('UpDecoderBlock2D');
    if (cfg.down_block_types.length !== n) problems.push(`down_block_types: has ${cfg.down_block_types.length} entries but block_out_channels has ${n}`);
    if (cfg.up_block_types.length !== n) problems.push(`up_block_types: has ${cfg.up_block_types.length} entries but block_out_channels has ${n}`);
    cfg.down_block_types.forEach((t, i) => {
      if (t !== 'DownEncoderBlock2D') problems.push(`down_block_types[${i}]: only 'DownEncoderBlock2D' is supported, got '${t}'`);
    });
    cfg.up_block_types.forEach((t, i) => {
      if (t !== 'UpDecoderBlock2D') problems.push(`up_block_types[${i}]: only 'UpDecoderBlock2D' is supported, got '${t}'`);
    });
    if (isPosInt(cfg.norm_num_groups)) {
      for (const c of cfg.block_out_channels) {
        if (c % cfg.norm_num_groups !== 0) problems.push(`block_out_channels: ${c} is not divisible by norm_num_groups ${cfg.norm_num_groups} (GroupNorm needs whole groups)`);
      }
    }
  }
  if (!ACTIVATIONS.includes(String(cfg.act_fn))) problems.push(`act_fn: only ${ACTIVATIONS.join('/')} is supported, got '${cfg.act_fn}'`);
  if (typeof cfg.scaling_factor !== 'number' || !(cfg.scaling_factor > 0)) problems.push(`scaling_factor: expected a positive number, got ${JSON.stringify(cfg.scaling_factor)}`);
  for (const k of ['use_quant_conv', 'use_post_quant_conv', 'mid_block_add_attention'] as const) {
    if (typeof cfg[k] !== 'boolean') problems.push(`${k}: expected true or false, got ${JSON.stringify(cfg[k])}`);
  }
  if (problems.length > 0) {
    throw new ConfigError(`Invalid ${source}:\n  - ${problems.join('\n  - ')}`, { details: { problems } });
  }
  return cfg;
}
