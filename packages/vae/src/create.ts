/** `createVae(spec)`: the adapter named by a config (`type` plus options). */
import type { Rng } from '@opensora/core';
import { ConfigError, validateConfig, z } from '@opensora/core';
import type { VaeAdapter } from './adapter.js';
import { AutoencoderKL } from './autoencoder-kl.js';
import { BuiltinVae, type BuiltinVaeOptions } from './builtin.js';
import type { AutoencoderKLConfig } from './config.js';
import { VideoAutoencoderKL, type VideoAutoencoderKLOptions } from './sd-vae.js';

export interface BuiltinVaeSpec extends BuiltinVaeOptions {
  type: 'builtin';
}

export interface SdVaeSpec extends Omit<VideoAutoencoderKLOptions, 'rng'> {
  type: 'sd-vae';
  /** A diffusers AutoencoderKL folder (config.json + diffusion_pytorch_model.safetensors). */
  path?: string;
  /** Without `path`: build this config with random weights (tests, benchmarks). */
  config?: Partial<AutoencoderKLConfig>;
  /** Seed of the random weights when `config` is used (default 0). */
  initSeed?: number;
  rng?: Rng;
}

export type VaeSpec = BuiltinVaeSpec | SdVaeSpec;

const range = z.union([z.number().nonnegative(), z.literal(false)]).optional();

/** zod schema of a VAE spec, for embedding in trainer / CLI configs. */
export const vaeSpecSchema = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('builtin'),
      patchSize: z.number().int().positive().optional(),
      temporalPatchSize: z.number().int().positive().optional(),
      inChannels: z.number().int().positive().optional(),
      scalingFactor: z.number().positive().optional(),
      onIndivisible: z.enum(['crop', 'error']).optional(),
      rangeTolerance: range,
    })
    .strict(),
  z
    .object({
      type: z.literal('sd-vae'),
      path: z.string().min(1).optional(),
      config: z.record(z.string(), z.unknown()).optional(),
      initSeed: z.number().int().optional(),
      microBatchSize: z.number().int().positive().nullable().optional(),
      sample: z.boolean().optional(),
      seed: z.union([z.number(), z.string()]).optional(),
      scalingFactor: z.number().positive().optional(),
      rangeTolerance: range,
    })
    .strict(),
]);

/**
 * Builds the adapter a spec names. `{ type: 'builtin' }` needs nothing on disk; `{ type: 'sd-vae',
 * path }` loads a diffusers folder (e.g. stabilityai/sd-vae-ft-ema); `{ type: 'sd-vae', config }`
 * builds random weights.
 */
export async function createVae(spec: VaeSpec): Promise<VaeAdapter> {
  const { rng, ...plain } = spec as SdVaeSpec;
  validateConfig(vaeSpecSchema, plain, 'VAE spec');
  if (spec.type === 'builtin') {
    const { type: _t, ...opts } = spec;
    return new BuiltinVae(opts);
  }
  const { type: _t, path, config, initSeed, ...opts } = spec;
  const adapterOpts: VideoAutoencoderKLOptions = { ...opts, ...(rng ? { rng } : {}) };
  if (path !== undefined) return VideoAutoencoderKL.fromPretrained(path, adapterOpts);
  if (config !== undefined) return new VideoAutoencoderKL(new AutoencoderKL(config, { init: 'random', seed: initSeed ?? 0 }), adapterOpts);
  throw new ConfigError("VAE spec { type: 'sd-vae' } needs `path` (a local diffusers AutoencoderKL folder such as stabilityai/sd-vae-ft-ema) or `config` (random weights)", {
    hint: "or use { type: 'builtin' } to run without weights",
  });
}
