/**
 * Every inference flow of Open-Sora 1.1 through `generate` of `@opensora/cli` (the function behind
 * `opensora sample`), on CPU:
 *
 *   text to image, text to video, image to video, extending a video, editing a video with an edit
 *   ratio, connecting two images, and a long video made of chained loops (with one prompt per
 *   segment), plus the reference's JSON-in-prompt form of the options.
 *
 * The model is a trained checkpoint when you pass one (`--model DIR`, e.g. the final checkpoint of
 * tiny-pretrain-to-stage3.ts, loaded with `loadModelStack`), otherwise a tiny STDiT2 with seeded
 * random weights, built with the built-in VAE and text encoder: the flows run the same way, the
 * pictures are noise. Conditioning is visible either way: every flow prints how far its
 * conditioned frames are from the frames they were given (in 0..255 levels).
 *
 * Run it: `npx tsx examples/src/inference-flows.ts [--model CHECKPOINT_DIR] [--out DIR] [--steps N]`
 */
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { formatBackend, initBackend, tf } from '@opensora/core';
import {
  generate,
  loadModelStack,
  loadReference,
  videoToUint8,
  type GenerateOptions,
  type GeneratedSample,
  type ModelStack,
  type Uint8Video,
} from '@opensora/cli';
import { animateImage, connectClips, editVideo, extendVideo, loopTotalFrames } from '@opensora/mask';
import { createScheduler } from '@opensora/scheduler';
import { STDiT2 } from '@opensora/stdit';
import { createTextEncoder } from '@opensora/text';
import { TINY_MODEL_CONFIG } from '@opensora/trainer';
import { createVae } from '@opensora/vae';

export interface InferenceExampleOptions {
  /** A trainer checkpoint folder or an official model folder; default: seeded random tiny weights. */
  model?: string;
  /** Output folder (default: a folder under the OS temp dir; it is cleared first). */
  outDir?: string;
  /** Sampling steps (default 10). */
  steps?: number;
  /**
   * Paste the given frames back over frozen frames after the last sampling step (the scheduler's
   * `keepConditionExact`). The reference re-predicts them at the last step, which brings them back
   * close to the condition with trained weights but not with random ones. Default: true with random
   * weights, false with a model.
   */
  exactConditions?: boolean;
  /** Pixel frames per clip (default 8) and frame size (default 32 x 32). */
  numFrames?: number;
  imageSize?: [number, number];
  log?: (line: string) => void;
}

export interface FlowResult {
  name: string;
  sample: GeneratedSample;
  /** Mean absolute difference (0..255) between conditioned frames and the frames they came from. */
  conditionError?: number;
}

export interface InferenceExampleResult {
  flows: Record<'t2i' | 't2i_b' | 't2v' | 'i2v' | 'extend' | 'edit' | 'connect' | 'loop', FlowResult>;
  /** Mean absolute difference between two unrelated samples: what "not conditioned" looks like. */
  unrelatedError: number;
  latentFrames: number;
}

/**
 * A model stack with seeded random weights: the trainer's tiny STDiT2 on the built-in VAE
 * (4 x 4 pixel patches) and the built-in text encoder, the parts the tiny training presets use.
 */
export async function randomTinyStack(seed = 0): Promise<ModelStack> {
  // Random weights decode to pixels far outside [-1, 1]; a long video re-encodes each decoded
  // clip, so the VAE's input range check is turned off here (trained weights stay in range).
  const vae = await createVae({ type: 'builtin', patchSize: 4, rangeTolerance: false });
  const textEncoder = await createTextEncoder({ type: 'builtin', modelMaxLength: 16 });
  const model = new STDiT2(
    {
      ...TINY_MODEL_CONFIG,
      patchSize: [1, 2, 2],
      inChannels: vae.latentChannels,
      captionChannels: textEncoder.captionChannels,
      modelMaxLength: textEncoder.modelMaxLength,
    },
    { seed },
  );
  return {
    model,
    vae,
    textEncoder,
    sources: { model: `tiny STDiT2, random weights (seed ${seed})`, vae: 'builtin', textEncoder: 'builtin' },
    dispose() {
      model.dispose();
      vae.dispose();
      textEncoder.dispose();
    },
  };
}

/** Mean |a - b| over one frame of each video (same size), in 0..255 levels. */
export function frameDiff(a: Uint8Video, fa: number, b: Uint8Video, fb: number): number {
  const n = a.height * a.width * 3;
  if (b.height * b.width * 3 !== n) throw new Error('frames of different sizes');
  const x = a.data.subarray(fa * n, (fa + 1) * n);
  const y = b.data.subarray(fb * n, (fb + 1) * n);
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.abs(x[i]! - y[i]!);
  return s / n;
}

/** A reference file as the sampler sees it (decoded, resized, in [-1, 1]), back in uint8. */
export async function referenceFrames(file: string, size: [number, number]): Promise<Uint8Video> {
  const ref = await loadReference(file, size);
  const x = tf.tensor(ref.data, ref.shape);
  try {
    return videoToUint8(x);
  } finally {
    x.dispose();
  }
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

export async function main(o: InferenceExampleOptions = {}): Promise<InferenceExampleResult> {
  const log = o.log ?? ((s: string) => console.log(s));
  const out = path.resolve(o.outDir ?? path.join(tmpdir(), 'opensora-inference-example'));
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const T = o.numFrames ?? 8;
  const size = o.imageSize ?? [32, 32];
  log(`backend: ${formatBackend(await initBackend())}`);

  const stack = o.model ? await loadModelStack({ model: o.model }) : await randomTinyStack();
  log(`model: ${stack.sources.model}; VAE ${stack.sources.vae}; text encoder ${stack.sources.textEncoder}`);
  const scheduler = createScheduler({
    type: 'dpm-solver',
    numSamplingSteps: o.steps ?? 10,
    cfgScale: 4.0,
    keepConditionExact: o.exactConditions ?? !o.model,
  });
  // Mask strategies count latent frames; with the built-in VAE (no temporal compression) they equal pixel frames.
  const lt = stack.vae.getLatentSize([T, ...size])[0]!;
  const common = {
    model: stack.model,
    vae: stack.vae,
    textEncoder: stack.textEncoder,
    scheduler,
    imageSize: size,
    numFrames: T,
    fps: 8,
    seed: 1,
    saveDir: out,
    keepFrames: true,
    contactSheet: true,
  } satisfies Partial<GenerateOptions>;
  const run = async (name: string, o2: Partial<GenerateOptions> & { prompts: string[] }): Promise<GeneratedSample> => {
    const [s] = (await generate({ ...common, sampleName: name, ...o2 })).samples;
    log(`${name.padEnd(8)} ${s!.frames} frame(s) ${s!.height}x${s!.width} -> ${path.relative(out, s!.path)}`);
    return s!;
  };
  const video = (s: GeneratedSample) => s.video!;

  try {
    // Text to image (numFrames 1: a png) and text to video (an mp4).
    const t2i = await run('t2i', { prompts: ['a red square on a blue background'], numFrames: 1 });
    const t2iB = await run('t2i_b', { prompts: ['a yellow circle on a green background'], numFrames: 1, seed: 2 });
    const t2v = await run('t2v', { prompts: ['a white diamond moving left on a purple background'] });
    const unrelatedError = frameDiff(video(t2i), 0, video(t2iB), 0);

    // Image to video: the image becomes frame 0, frozen ("0").
    const i2v = await run('i2v', {
      prompts: ['a red square moving down on a blue background'],
      referencePaths: [t2i.path],
      maskStrategies: [animateImage()],
    });
    // Extending a video: its last half starts the new clip ("0,0,-k,0,k").
    const k = Math.max(1, Math.floor(lt / 2));
    const ext = await run('extend', {
      prompts: ['a white diamond moving left on a purple background'],
      referencePaths: [t2v.path],
      maskStrategies: [extendVideo({ frames: k })],
    });
    // Editing a video: every frame starts from the reference, held for the first half of the steps.
    const edit = await run('edit', {
      prompts: ['a white diamond moving right on a purple background'],
      referencePaths: [t2v.path],
      maskStrategies: [editVideo({ frames: lt, editRatio: 0.5 })],
    });
    // Connecting two images: the first starts the clip, the second ends it; here through the
    // reference's JSON-in-prompt form instead of the per-prompt lists.
    const options = JSON.stringify({ reference_path: `${t2i.path};${t2iB.path}`, mask_strategy: connectClips() });
    const connect = await run('connect', { prompts: [`a red square turning into a yellow circle${options}`] });
    // A long video: 3 loops, each conditioned on the last L latent frames of the previous clip,
    // with one prompt per segment (`|0|` for loop 0 on, `|2|` for loop 2 on).
    const L = Math.max(1, Math.floor(lt / 2));
    const loop = await run('loop', {
      prompts: ['|0|a red circle moving right on a blue background|2|a red circle moving left on a blue background'],
      loop: 3,
      conditionFrameLength: L,
    });
    log(`loop: 3 clips of ${T} frames, ${L} condition frames each: ${loop.frames} frames (${loopTotalFrames(T, L, 3)} expected)`);

    // Conditioned frames are compared with the reference files as they were read back (the mp4's
    // lossy H.264 round trip included), which is what the sampler was given.
    const t2vRead = await referenceFrames(t2v.path, size);
    const pixelFrames = (latent: number) => Math.round((latent * T) / lt);
    const flows: InferenceExampleResult['flows'] = {
      t2i: { name: 'text to image', sample: t2i },
      t2i_b: { name: 'text to image (second)', sample: t2iB },
      t2v: { name: 'text to video', sample: t2v },
      i2v: { name: 'image to video', sample: i2v, conditionError: frameDiff(video(i2v), 0, video(t2i), 0) },
      extend: {
        name: 'video extension',
        sample: ext,
        conditionError: mean(Array.from({ length: pixelFrames(k) }, (_, j) => frameDiff(video(ext), j, t2vRead, T - pixelFrames(k) + j))),
      },
      edit: { name: 'video editing, ratio 0.5 (partly regenerated)', sample: edit, conditionError: mean(Array.from({ length: T }, (_, j) => frameDiff(video(edit), j, t2vRead, j))) },
      connect: {
        name: 'connecting two images',
        sample: connect,
        conditionError: (frameDiff(video(connect), 0, video(t2i), 0) + frameDiff(video(connect), T - 1, video(t2iB), 0)) / 2,
      },
      loop: { name: 'long video (3 loops)', sample: loop },
    };
    log('');
    log(`conditioned frames vs their source (mean |difference| in 0..255; two unrelated samples differ by ${unrelatedError.toFixed(1)}):`);
    for (const f of Object.values(flows)) if (f.conditionError !== undefined) log(`  ${f.name.padEnd(46)} ${f.conditionError.toFixed(1)}`);
    log(`samples and contact sheets: ${out}`);
    return { flows, unrelatedError, latentFrames: lt };
  } finally {
    stack.dispose();
  }
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const { values } = parseArgs({ options: { model: { type: 'string' }, out: { type: 'string' }, steps: { type: 'string' } } });
  main({ model: values.model, outDir: values.out, steps: values.steps ? Number(values.steps) : undefined }).catch((e: unknown) => {
    console.error(`inference example failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  });
}
