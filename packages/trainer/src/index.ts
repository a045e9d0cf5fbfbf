// @opensora/trainer: multi-stage STDiT2 training with exact resume.
export * from './config.js';
export * from './optim.js';
export * from './checkpoint.js';
export * from './metrics.js';
