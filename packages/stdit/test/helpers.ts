import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openSafetensors, tf, type SafetensorsReader } from '@opensora/core';
import { STDiT2, type STDiT2Inputs } from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** `<repo root>/../shared/fixtures` (CI keeps a copy of shared/ beside the clone). */
export const FIXTURES = path.resolve(here, '../../../../shared/fixtures');
export const TINY_WEIGHTS = path.join(FIXTURES, 'stdit2_tiny_weights.safetensors');
export const TINY_CASES = path.join(FIXTURES, 'stdit2_tiny_cases_public.safetensors');

export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  if (a.shape.join(',') !== b.shape.join(',')) throw new Error(`shape mismatch [${a.shape}] vs [${b.shape}]`);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

export function loadTiny(): STDiT2 {
  return STDiT2.fromPretrained(TINY_WEIGHTS);
}

export function caseInputs(cases: SafetensorsReader, name: string): STDiT2Inputs {
  const g = (n: string) => cases.tensor(`${name}_${n}`);
  return {
    x: g('x'),
    timestep: g('timestep'),
    y: g('y'),
    mask: g('mask'),
    xMask: cases.has(`${name}_x_mask`) ? g('x_mask') : null,
    numFrames: g('num_frames'),
    height: g('height'),
    width: g('width'),
    ar: g('ar'),
    fps: g('fps'),
  };
}

export function openCases(): SafetensorsReader {
  return openSafetensors(TINY_CASES);
}

/** Deterministic pseudo-random float32 data in [-1, 1). */
export function pseudo(n: number, seed = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 4294967296) * 2 - 1;
  }
  return out;
}

/** Random inputs for a model config: x [B,C,T,H,W], y [B,1,L,Cc], sizes. */
export function randomInputs(
  model: STDiT2,
  B: number,
  T: number,
  H: number,
  W: number,
  opts: { seed?: number; L?: number; lens?: number[]; xMask?: boolean[][] } = {},
): STDiT2Inputs {
  const c = model.config;
  const L = opts.L ?? c.modelMaxLength;
  const seed = opts.seed ?? 1;
  const lens = opts.lens ?? new Array<number>(B).fill(L);
  const mask = lens.flatMap((n) => Array.from({ length: L }, (_, j) => (j < n ? 1 : 0)));
  return {
    x: tf.tensor(pseudo(B * c.inChannels * T * H * W, seed), [B, c.inChannels, T, H, W]),
    timestep: tf.tensor1d(Array.from({ length: B }, (_, b) => 37 + 400 * b)),
    y: tf.tensor(pseudo(B * L * c.captionChannels, seed + 1), [B, 1, L, c.captionChannels]),
    mask: tf.tensor2d(mask, [B, L], 'int32'),
    xMask: opts.xMask ? tf.tensor2d(opts.xMask.flat().map((v) => (v ? 1 : 0)), [B, T], 'bool') : null,
    numFrames: tf.fill([B], T),
    height: tf.fill([B], H * 8),
    width: tf.fill([B], W * 8),
    ar: tf.fill([B], H / W),
    fps: tf.fill([B], 24),
  };
}

export function disposeInputs(i: STDiT2Inputs): void {
  for (const v of Object.values(i)) if (v instanceof tf.Tensor) v.dispose();
}
