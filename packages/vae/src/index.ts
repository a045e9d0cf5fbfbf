// Public surface of @opensora/vae.
export type { VaeAdapter, VaeEncodeOptions, InputCheckOptions, Size3, MaybeSize3 } from './adapter.js';
export { checkPixelRange } from './adapter.js';
export {
  AutoencoderKL,
  VAE_NORM_EPS,
  type AutoencoderKLOptions,
  type LoadStateDictOptions,
  type LoadReport,
  type Posterior,
  type StateDictValue,
} from './autoencoder-kl.js';
export {
  SD_VAE_CONFIG,
  TINY_VAE_CONFIG,
  DIFFUSERS_AUTOENCODER_KL_DEFAULTS,
  resolveAutoencoderKLConfig,
  type AutoencoderKLConfig,
} from './config.js';
export { autoencoderKLParamSpecs, modernizeKey, type ParamSpec, type ParamKind } from './params.js';
export { fromTorchLayout, toTorchLayout } from './layout.js';
export { openWeights, WEIGHT_FILE_CANDIDATES, type TensorSource } from './weights.js';
export { VideoAutoencoderKL, SD_VAE_SCALING_FACTOR, type VideoAutoencoderKLOptions } from './sd-vae.js';
export { BuiltinVae, builtinMixMatrix, dctMatrix, type BuiltinVaeOptions } from './builtin.js';
export { createVae, vaeSpecSchema, type VaeSpec, type BuiltinVaeSpec, type SdVaeSpec } from './create.js';
