/** Typed, validated scheduler configs and the factory. */
import { ConfigError } from '@opensora/core';
import { DPMSolver } from './dpm-solver.js';
import { IDDPM } from './iddpm.js';
import { spaceTimesteps } from './schedule.js';
import { SpeeDiT } from './speed.js';
import type { Scheduler, SchedulerType } from './types.js';

export const SCHEDULER_TYPES: readonly SchedulerType[] = ['iddpm', 'iddpm-speed', 'dpm-solver'];

interface CommonConfig {
  /** Sampling steps: IDDPM respaces to this many (default: all 1000); DPM-Solver takes this many solver steps (default 20). */
  numSamplingSteps?: number;
  /** Guidance scale (default 4.0, the reference's; its inference config uses 7.0). */
  cfgScale?: number;
  /** Guide only the first c output channels (the official inference config uses 3). Unset/null: all epsilon channels. */
  cfgChannel?: number | null;
  /** Base schedule length (default 1000). */
  diffusionSteps?: number;
  /** Reference edit-mask timing (default true): see `IDDPMOptions.editEntryOffByOne`. */
  editEntryOffByOne?: boolean;
  /** Paste clean condition frames back over ratio-0 frames at the end (default false). */
  keepConditionExact?: boolean;
}

export interface IDDPMConfig extends CommonConfig {
  type: 'iddpm' | 'iddpm-speed';
  /** Respacing in spaceTimesteps form: "100", "10,15,20" or [10, 15, 20] (section counts), "ddim50"; "" = all steps. Exclusive with numSamplingSteps. */
  timestepRespacing?: string | number | number[];
  learnSigma?: boolean;
  sigmaSmall?: boolean;
  predictXstart?: boolean;
  useKl?: boolean;
  rescaleLearnedSigmas?: boolean;
  /** Min-SNR-γ weighting of the training loss (null/unset: none, as the reference); see `GaussianDiffusionOptions.snrGamma`. */
  snrGamma?: number | null;
}

export interface DPMSolverConfig extends CommonConfig {
  type: 'dpm-solver';
  /** First order on the last step when there are fewer than 10 steps (default true). */
  lowerOrderFinal?: boolean;
}

export type SchedulerConfig = IDDPMConfig | DPMSolverConfig;

const COMMON_KEYS = ['type', 'numSamplingSteps', 'cfgScale', 'cfgChannel', 'diffusionSteps', 'editEntryOffByOne', 'keepConditionExact'];
const IDDPM_KEYS = [...COMMON_KEYS, 'timestepRespacing', 'learnSigma', 'sigmaSmall', 'predictXstart', 'useKl', 'rescaleLearnedSigmas', 'snrGamma'];
const DPM_KEYS = [...COMMON_KEYS, 'lowerOrderFinal'];

const camel = (s: string) => s.replace(/_([a-z])/g, (_, ch: string) => ch.toUpperCase());

/**
 * Checks a scheduler config (from a file, the CLI or code) and returns it typed. Throws one
 * `ConfigError` listing every bad field with what was expected.
 */
export function validateSchedulerConfig(value: unknown, source = 'scheduler config'): SchedulerConfig {
  const problems: string[] = [];
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(`${source}: expected an object like { type: 'iddpm', numSamplingSteps: 100, cfgScale: 7, cfgChannel: 3 }, got ${value === null ? 'null' : typeof value}`);
  }
  const v = value as Record<string, unknown>;
  const type = v.type;
  if (typeof type !== 'string' || !(SCHEDULER_TYPES as readonly string[]).includes(type)) {
    problems.push(`type: expected one of ${SCHEDULER_TYPES.map((t) => `'${t}'`).join(', ')}, got ${JSON.stringify(type)}`);
  }
  const allowed = type === 'dpm-solver' ? DPM_KEYS : IDDPM_KEYS;
  for (const key of Object.keys(v)) {
    if (allowed.includes(key)) continue;
    const c = camel(key);
    if (allowed.includes(c)) problems.push(`${key}: unknown key; did you mean '${c}'?`);
    else if (IDDPM_KEYS.includes(key) || DPM_KEYS.includes(key)) problems.push(`${key}: not an option of type '${String(type)}'`);
    else problems.push(`${key}: unknown key (allowed: ${allowed.join(', ')})`);
  }
  const posInt = (k: string, min = 1) => {
    const x = v[k];
    if (x === undefined) return;
    if (typeof x !== 'number' || !Number.isInteger(x) || x < min) problems.push(`${k}: expected an integer >= ${min}, got ${JSON.stringify(x)}`);
  };
  const bool = (k: string) => {
    const x = v[k];
    if (x !== undefined && typeof x !== 'boolean') problems.push(`${k}: expected true or false, got ${JSON.stringify(x)}`);
  };
  posInt('numSamplingSteps', type === 'dpm-solver' ? 2 : 1);
  posInt('diffusionSteps');
  if (v.cfgScale !== undefined && (typeof v.cfgScale !== 'number' || !Number.isFinite(v.cfgScale))) {
    problems.push(`cfgScale: expected a finite number, got ${JSON.stringify(v.cfgScale)}`);
  }
  if (v.cfgChannel !== undefined && v.cfgChannel !== null) posInt('cfgChannel');
  if (v.snrGamma !== undefined && v.snrGamma !== null && !(typeof v.snrGamma === 'number' && Number.isFinite(v.snrGamma) && v.snrGamma > 0)) {
    problems.push(`snrGamma: expected a positive number (5 is the usual choice) or null, got ${JSON.stringify(v.snrGamma)}`);
  }
  for (const k of ['editEntryOffByOne', 'keepConditionExact', 'learnSigma', 'sigmaSmall', 'predictXstart', 'useKl', 'rescaleLearnedSigmas', 'lowerOrderFinal']) bool(k);
  const steps = typeof v.diffusionSteps === 'number' && Number.isInteger(v.diffusionSteps) && v.diffusionSteps > 0 ? v.diffusionSteps : 1000;
  if (typeof v.numSamplingSteps === 'number' && Number.isInteger(v.numSamplingSteps) && v.numSamplingSteps > steps) {
    problems.push(`numSamplingSteps: ${v.numSamplingSteps} is more than the ${steps} diffusion steps`);
  }
  const resp = v.timestepRespacing;
  if (resp !== undefined) {
    const okType = typeof resp === 'string' || typeof resp === 'number' || (Array.isArray(resp) && resp.every((x) => typeof x === 'number'));
    if (!okType) {
      problems.push(`timestepRespacing: expected a string ("100", "10,15,20", "ddim50", ""), a number or an array of numbers, got ${JSON.stringify(resp)}`);
    } else if (resp !== '' && !(Array.isArray(resp) && resp.length === 0)) {
      try {
        spaceTimesteps(steps, resp as string | number | number[]);
      } catch (e) {
        problems.push(`timestepRespacing: ${(e as Error).message}`);
      }
    }
    if (v.numSamplingSteps !== undefined && resp !== '') problems.push('timestepRespacing: give numSamplingSteps or timestepRespacing, not both');
  }
  if (problems.length) {
    throw new ConfigError(`${source} is invalid:\n  - ${problems.join('\n  - ')}`, { details: { problems } });
  }
  return v as unknown as SchedulerConfig;
}

/** Validates the config and builds the scheduler: `IDDPM`, `SpeeDiT` or `DPMSolver`. */
export function createScheduler(config: SchedulerConfig | Record<string, unknown>): Scheduler & (IDDPM | SpeeDiT | DPMSolver) {
  const c = validateSchedulerConfig(config);
  if (c.type === 'dpm-solver') {
    const { type: _t, ...rest } = c;
    return new DPMSolver(rest);
  }
  const { type, ...rest } = c;
  return type === 'iddpm-speed' ? new SpeeDiT(rest) : new IDDPM(rest);
}
