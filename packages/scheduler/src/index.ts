/**
 * @opensora/scheduler: the diffusion schedulers of Open-Sora 1.1 (IDDPM with respacing,
 * SpeeDiT and DPM-Solver++), their training losses and their samplers, with classifier-free
 * guidance and the masked-frame (edit ratio) mechanism. Models plug in as plain functions
 * (`DenoiseFn`).
 */
export {
  linearBetaSchedule,
  alphasCumprodOf,
  spaceTimesteps,
  respacedArrays,
  arraysFromBetas,
  editEntryStep,
  pyRound,
  type DiffusionArrays,
} from './schedule.js';
export {
  GaussianDiffusion,
  normalKl,
  approxStandardNormalCdf,
  discretizedGaussianLogLikelihood,
  meanFlat,
  type GaussianDiffusionOptions,
  type PMeanVarianceArgs,
  type PMeanVariance,
  type ModelMeanType,
  type ModelVarType,
  type LossType,
} from './diffusion.js';
export { IDDPM, type IDDPMOptions } from './iddpm.js';
export { SpeeDiT, gradient32, type SpeeDiTOptions } from './speed.js';
export { DPMSolver, NoiseScheduleVP, type DPMSolverOptions } from './dpm-solver.js';
export { applyCfg, broadcastNullY, GuidedModel } from './guidance.js';
export { fillStandardNormal } from './util.js';
export {
  createScheduler,
  validateSchedulerConfig,
  SCHEDULER_TYPES,
  type SchedulerConfig,
  type IDDPMConfig,
  type DPMSolverConfig,
} from './config.js';
export type {
  DenoiseFn,
  TimestepsLike,
  FrameMaskLike,
  EditMaskLike,
  TrainingLossesArgs,
  TrainingLosses,
  TextConditioning,
  SampleArgs,
  ProgressInfo,
  Scheduler,
  SchedulerType,
} from './types.js';
