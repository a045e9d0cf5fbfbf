// @opensora/trainer: multi-stage STDiT2 training with exact resume.
export * from './config.js';
export * from './optim.js';
export * from './checkpoint.js';
export * from './metrics.js';
export * from './types.js';
export * from './components.js';
export * from './train.js';
export * from './pipeline.js';
