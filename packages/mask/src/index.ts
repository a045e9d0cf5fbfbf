// Public surface of @opensora/mask: training masks and the mask-strategy language (pure TypeScript).
export { MaskError, type MaskErrorCode, type MaskErrorDetails } from './errors.js';
export {
  MASK_TYPES,
  DEFAULT_MASK_RATIOS,
  MaskGenerator,
  maskForType,
  type MaskType,
  type MaskRatios,
  type RandInt,
  type MaskGeneratorOptions,
  type MaskGeneratorState,
  type DrawnMask,
} from './generator.js';
export {
  parseMaskStrategy,
  formatMaskStrategy,
  joinMaskStrategies,
  validateMaskStrategyGroup,
  MASK_STRATEGY_FIELDS,
  MASK_STRATEGY_DEFAULTS,
  type MaskStrategyGroup,
} from './strategy.js';
export {
  planMaskStrategy,
  planSampleMask,
  editRatioEntryStep,
  type Placement,
  type ResolvedGroup,
  type SampleMaskPlan,
  type StrategyInput,
  type PlanMaskStrategyArgs,
} from './plan.js';
export {
  parseReferencePaths,
  extractPromptOptions,
  splitLoopPrompts,
  type PromptOptions,
  type ExtractedPrompt,
} from './prompt.js';
export {
  planLoops,
  loopTotalFrames,
  DEFAULT_CONDITION_FRAME_LENGTH,
  type PlanLoopsArgs,
  type LoopStep,
  type LoopPlan,
} from './loops.js';
export { animateImage, extendVideo, editVideo, connectClips, longVideo } from './recipes.js';
