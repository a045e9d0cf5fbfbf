// Public surface of @opensora/stdit: the STDiT2 model of Open-Sora 1.1 on tfjs.
export * from './config.js';
export * from './embeddings.js';
export * from './layers.js';
export { blockForward, crossAttention, finalLayer } from './block.js';
export type { AttnParams, BlockParams, BlockContext, FinalParams } from './block.js';
export { checkpointed } from './checkpoint.js';
export * from './model.js';
export { adaptCaptionEmbedding, DROPPED_KEYS } from './weights.js';
