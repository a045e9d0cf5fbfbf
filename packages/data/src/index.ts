// Public surface of @opensora/data.
export * from './errors.js';
export * from './binaries.js';
export * from './media.js';
export * from './decode.js';
export * from './csv.js';
export * from './synth.js';
export * from './transform.js';
export * from './sample.js';
export * from './reader.js';
