export * from './errors.js';
export * from './backend.js';
export * from './fs.js';
export * from './logging.js';
export * from './progress.js';
export * from './safetensors.js';
export * from './config.js';
export * from '@opensora/random';
