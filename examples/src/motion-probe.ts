/**
 * The motion probe: does a checkpoint know what "moving <direction>" means, measured without
 * sampling? It renders clean clips of the demo's synthetic world (every direction, the demo's
 * colours and shapes, the trajectories `opensora data synth` draws), noises each one at several
 * timesteps with one shared noise, and compares the model's epsilon error (MSE) on four variants:
 *
 *   forward       the clip as captioned;
 *   reversed      the same frames in reverse order (the object moves the opposite way), same caption;
 *   static        every frame is the clip's middle frame, same caption;
 *   wrongCaption  the forward clip, captioned with the opposite direction.
 *
 * A model that reads the direction from the caption fits `forward` better than `wrongCaption`
 * (captionGap > 0); one that uses frame order at all fits `forward` better than `reversed`
 * (orderGap > 0); one that denoises every frame as the same still fits `static` best
 * (staticGap < 0). The learning check measures the same thing from samples, but a sample only
 * moves the right way once all of this has been learnt; the probe shows the way there.
 *
 * Run on a checkpoint: `npx tsx src/motion-probe.ts <checkpoint> [size]` (from examples/).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { enableFastKernels, initBackend, tf } from '@opensora/core';
import { denoiserFor, loadModelStack } from '@opensora/cli';
import { alphasCumprodOf, linearBetaSchedule } from '@opensora/scheduler';
import type { STDiT2 } from '@opensora/stdit';
import type { TextEncoderAdapter } from '@opensora/text';
import type { VaeAdapter } from '@opensora/vae';
import { frameToChw, renderSynthFrame, synthCaption, SYNTH_DIRECTION_NAMES, type SynthColor, type SynthDirection, type SynthScene } from '@opensora/data';
import type { RgbVideo } from './learning-check.js';

export type ProbeVariant = 'forward' | 'reversed' | 'static' | 'wrongCaption';
export const PROBE_VARIANTS: readonly ProbeVariant[] = ['forward', 'reversed', 'static', 'wrongCaption'];
export type ProbeScene = Pick<SynthScene, 'shape' | 'color' | 'direction' | 'background'>;

export const OPPOSITE_DIRECTION: Readonly<Record<SynthDirection, SynthDirection>> = { left: 'right', right: 'left', up: 'down', down: 'up' };

/**
 * A clean clip of `scene` (size x size, `frames` frames) in frame order `order`: 'forward' is the
 * trajectory of `opensora data synth` (travelling half the frame, centred), 'reversed' the same
 * frames backwards, 'static' the middle position in every frame.
 */
export function probeClip(scene: ProbeScene, size: number, frames: number, order: 'forward' | 'reversed' | 'static'): RgbVideo {
  if (!(Number.isInteger(size) && size >= 8 && size % 2 === 0)) throw new RangeError(`probe size must be an even integer >= 8, got ${size}`);
  if (!(Number.isInteger(frames) && frames >= 2)) throw new RangeError(`probe frames must be an integer >= 2, got ${frames}`);
  const plane = size * size * 3;
  const data = new Uint8Array(frames * plane);
  for (let t = 0; t < frames; t++) {
    const p = order === 'static' ? 0.5 : (order === 'forward' ? t : frames - 1 - t) / (frames - 1);
    renderSynthFrame(data.subarray(t * plane, (t + 1) * plane), size, size, scene, p, 0);
  }
  return { data, frames, height: size, width: size };
}

/** RgbVideo -> [1, 3, T, H, W] in [-1, 1], the VAE's input layout (the dataset reader's conversion). */
export function rgbVideoToPixels(v: RgbVideo): tf.Tensor {
  const plane = v.height * v.width * 3;
  const out = new Float32Array(v.frames * plane);
  for (let t = 0; t < v.frames; t++) frameToChw({ data: v.data.subarray(t * plane, (t + 1) * plane), width: v.width, height: v.height }, out, v.frames, t);
  return tf.tensor(out, [1, 3, v.frames, v.height, v.width]);
}

/** Predicts epsilon for noisy latents `xt` [B, C, T, h, w] at timestep `t`, one caption per item. */
export type ProbeDenoiser = (xt: tf.Tensor, t: number, captions: string[], pixelSize: number) => tf.Tensor;

/** The denoiser of a model stack: the model's epsilon channels, no guidance (cfg 1). */
export function stackDenoiser(stack: { model: STDiT2; textEncoder: TextEncoderAdapter }, fps = 8): ProbeDenoiser {
  const den = denoiserFor(stack.model);
  return (xt, t, captions, pixelSize) =>
    tf.tidy(() => {
      const b = xt.shape[0]!;
      const enc = stack.textEncoder.encode(captions);
      const fill = (v: number) => tf.fill([b], v);
      const out = den({ x: xt, timestep: fill(t), y: enc.embeddings, mask: enc.mask, numFrames: fill(xt.shape[2]!), height: fill(pixelSize), width: fill(pixelSize), ar: fill(1), fps: fill(fps) });
      return out.slice([0, 0], [b, xt.shape[1]!]);
    });
}

export interface MotionProbeOptions {
  /** Frame size in pixels (square), default 32. */
  size?: number;
  /** Frames per clip, default 8. */
  frames?: number;
  /** Clips, cycling through the four directions, colours and shapes; default 8. */
  clips?: number;
  /** Timesteps of the 1000-step linear schedule, default [900, 700, 500, 300, 100]. */
  timesteps?: number[];
  /** Seed of the shared noise, default 0. */
  seed?: number;
  colors?: readonly SynthColor[];
  shapes?: readonly ProbeScene['shape'][];
  /** Replaces the model (tests give an oracle here). */
  denoise?: ProbeDenoiser;
}

export interface MotionProbeRow {
  t: number;
  /** Epsilon MSE of each variant at this timestep, averaged over the clips. */
  mse: Record<ProbeVariant, number>;
}

export interface MotionProbeResult {
  rows: MotionProbeRow[];
  /** Mean over timesteps of (wrongCaption - forward) / forward: > 0 when the caption's direction is used. */
  captionGap: number;
  /** Mean over timesteps of (reversed - forward) / forward: > 0 when frame order is used. */
  orderGap: number;
  /** Mean over timesteps of (static - forward) / forward: < 0 when the model prefers a still. */
  staticGap: number;
  clips: number;
}

/** Runs the probe; `stack.vae` encodes the clips, `options.denoise` (default: the stack's model) predicts. */
export function motionProbe(
  stack: { vae: VaeAdapter; model?: STDiT2; textEncoder?: TextEncoderAdapter },
  options: MotionProbeOptions = {},
): MotionProbeResult {
  const size = options.size ?? 32;
  const frames = options.frames ?? 8;
  const clips = options.clips ?? 8;
  const timesteps = options.timesteps ?? [900, 700, 500, 300, 100];
  const colors = options.colors ?? ['red', 'green', 'blue', 'yellow', 'white'];
  const shapes = options.shapes ?? ['square', 'circle'];
  if (!(Number.isInteger(clips) && clips >= 1)) throw new RangeError(`probe clips must be a positive integer, got ${clips}`);
  for (const t of timesteps) if (!(Number.isInteger(t) && t >= 0 && t < 1000)) throw new RangeError(`probe timesteps must be integers in [0, 999], got ${t}`);
  if (colors.length < 2) throw new RangeError('the probe needs at least two colours');
  let denoise = options.denoise;
  if (!denoise) {
    if (!stack.model || !stack.textEncoder) throw new TypeError('motionProbe needs a model and a text encoder, or options.denoise');
    denoise = stackDenoiser({ model: stack.model, textEncoder: stack.textEncoder });
  }
  const alphaBar = alphasCumprodOf(linearBetaSchedule(1000));
  const sums = timesteps.map(() => ({ forward: 0, reversed: 0, static: 0, wrongCaption: 0 }) as Record<ProbeVariant, number>);
  for (let i = 0; i < clips; i++) {
    const direction = SYNTH_DIRECTION_NAMES[i % SYNTH_DIRECTION_NAMES.length]!;
    const background = colors[i % colors.length]!;
    // an object colour other than the background's, cycling through all the others
    const color = colors[(i + 1 + (i % (colors.length - 1))) % colors.length]!;
    const scene: ProbeScene = { shape: shapes[Math.floor(i / SYNTH_DIRECTION_NAMES.length) % shapes.length]!, color, direction, background };
    const caption = synthCaption(scene);
    const wrong = synthCaption({ ...scene, direction: OPPOSITE_DIRECTION[direction] });
    // One batch of the four variants: the same noise for all, so the differences are the model's.
    const x0 = tf.tidy(() => {
      const enc = (order: 'forward' | 'reversed' | 'static') => stack.vae.encode(rgbVideoToPixels(probeClip(scene, size, frames, order)));
      const f = enc('forward');
      return tf.concat([f, enc('reversed'), enc('static'), f], 0);
    });
    const captions = [caption, caption, caption, wrong];
    timesteps.forEach((t, k) => {
      const errs = tf.tidy(() => {
        const one = tf.randomNormal([1, ...x0.shape.slice(1)], 0, 1, 'float32', 1 + (options.seed ?? 0) * 100_003 + i * 1009 + k);
        const eps = tf.tile(one, [4, 1, 1, 1, 1]);
        const a = alphaBar[t]!;
        const xt = tf.add(tf.mul(x0, Math.sqrt(a)), tf.mul(eps, Math.sqrt(1 - a)));
        const pred = denoise(xt, t, captions, size);
        return tf.mean(tf.square(tf.sub(pred, eps)), [1, 2, 3, 4]).dataSync();
      });
      PROBE_VARIANTS.forEach((v, j) => (sums[k]![v] += errs[j]! / clips));
    });
    x0.dispose();
  }
  const rows = timesteps.map((t, k) => ({ t, mse: sums[k]! }));
  const gap = (v: ProbeVariant) => rows.reduce((s, r) => s + (r.mse[v] - r.mse.forward) / r.mse.forward, 0) / rows.length;
  return { rows, captionGap: gap('wrongCaption'), orderGap: gap('reversed'), staticGap: gap('static'), clips };
}

const pct = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`;

/** The three gaps on one line. */
export function formatProbeGaps(r: MotionProbeResult): string {
  return `caption gap ${pct(r.captionGap)}, order gap ${pct(r.orderGap)}, static gap ${pct(r.staticGap)}`;
}

/** The probe as a table plus its three gaps in percent. */
export function formatMotionProbe(r: MotionProbeResult, title = 'motion probe'): string {
  const f = (x: number) => x.toExponential(3);
  const lines = [`${title} (epsilon MSE, ${r.clips} clips, shared noise)`, `${'t'.padStart(5)}  ${PROBE_VARIANTS.map((v) => v.padStart(12)).join('  ')}`];
  for (const row of r.rows) lines.push(`${String(row.t).padStart(5)}  ${PROBE_VARIANTS.map((v) => f(row.mse[v]).padStart(12)).join('  ')}`);
  lines.push(`caption gap ${pct(r.captionGap)} (wrong direction in the caption; > 0: the caption's direction is used)`);
  lines.push(`order gap ${pct(r.orderGap)} (frames reversed; > 0: frame order is used)`);
  lines.push(`static gap ${pct(r.staticGap)} (every frame the middle one; < 0: the model prefers a still)`);
  return lines.join('\n');
}

/** Loads `model` (a checkpoint folder, or 'tiny' for random weights), runs the probe and prints it. */
export async function main(o: { model?: string; size?: number; log?: (s: string) => void } & Omit<MotionProbeOptions, 'size' | 'denoise'> = {}): Promise<MotionProbeResult> {
  const { model = 'tiny', size = 32, log = (s: string) => console.log(s), ...rest } = o;
  await initBackend();
  if (process.env.OPENSORA_ACCEL !== 'none') enableFastKernels({ engine: 'onnxruntime' });
  const stack = await loadModelStack({ model });
  try {
    const r = motionProbe(stack, { ...rest, size });
    log(formatMotionProbe(r, `motion probe of ${model} at ${size}x${size}`));
    return r;
  } finally {
    stack.dispose();
  }
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const [model, sizeArg] = process.argv.slice(2);
  if (!model) {
    console.error('usage: tsx src/motion-probe.ts <checkpoint folder | tiny> [size, default 32]');
    process.exitCode = 2;
  } else {
    main({ model, size: sizeArg === undefined ? 32 : Number(sizeArg) }).catch((e: unknown) => {
      console.error(`motion probe failed: ${e instanceof Error ? e.message : String(e)}`);
      process.exitCode = 1;
    });
  }
}
