export { BucketError, type BucketErrorCode } from './errors.js';
export * from './aspect-tables.js';
export {
  RESOLUTION_NAMES,
  getClosestRatio,
  getHW,
  aspectRatiosTable,
  formatFixedPython,
  registerResolution,
  unregisterResolution,
  listResolutions,
  getResolution,
  defineResolution,
  type CustomResolution,
  type RatioEntries,
  type RatioTableInput,
  type ResolvedResolution,
} from './aspect.js';
export { Bucket, type BucketConfig, type BucketEntry, type BucketId, type BucketIdLike, type BucketInfo, type BucketOptions, type DrawMode } from './bucket.js';
export { toColumns, type BucketColumns, type BucketRow, type NormalizedColumns } from './columns.js';
export { makeKernel, type Kernel, type KernelTables, type NumericColumn } from './kernel.js';
export { groupAssignment, assignBucketsParallel, type Grouping, type AssignOptions, type ParallelAssignOptions } from './group.js';
export { VariableVideoBatchSampler, type SamplerBatch, type SamplerOptions, type SamplerState } from './sampler.js';
export { computeBucketStats, formatBucketStats, type BucketStats, type BucketStatsEntry, type StatsOptions } from './stats.js';
export { OPENSORA_V1_1_BUCKET_CONFIGS } from './configs.js';
