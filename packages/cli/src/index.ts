export { buildProgram, runCli, type CliIO } from './program.js';
export { EXIT, UsageError, describeFailure } from './errors.js';
export { runDoctor, formatDoctor, type DoctorReport } from './commands/doctor.js';
export { aspectKey, imageSizeFor } from './commands/sample.js';
export {
  generate,
  conditioningScalars,
  denoiserFor,
  IMAGE_FPS,
  type GenerateOptions,
  type GenerateResult,
  type GeneratedSample,
} from './generate.js';
export { loadModelStack, type ModelStack, type ModelStackOptions } from './models.js';
export { loadReference, type LoadedReference } from './references.js';
export { saveSample, videoToUint8, writeContactSheet, writeMp4, writePngAtomic, type SavedSample, type Uint8Video } from './output.js';
