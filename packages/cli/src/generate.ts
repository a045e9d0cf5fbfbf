/**
 * The inference flow of the reference's `scripts/inference-long.py` (which subsumes
 * `inference.py`): prompts (with JSON-in-prompt options and `|k|` loop segments), references
 * encoded by the VAE, the mask strategy applied to the initial latent, IDDPM or DPM-Solver
 * sampling with classifier-free guidance, chained loops for long videos, decoding and saving
 * (`sample_<idx>[-k].mp4|png`). Spec: flows.md sections 2 to 4.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Rng, bf16ToF32, createLogger, f32ToBf16, tf, InvalidArgumentError } from '@opensora/core';
import {
  extractPromptOptions,
  joinMaskStrategies,
  parseReferencePaths,
  planMaskStrategy,
  splitLoopPrompts,
} from '@opensora/mask';
import type { Scheduler } from '@opensora/scheduler';
import type { STDiT2 } from '@opensora/stdit';
import type { TextEncoderAdapter } from '@opensora/text';
import type { VaeAdapter } from '@opensora/vae';
import { cleanCaption } from '@opensora/data';
import { loadReference as defaultLoadReference, type LoadedReference } from './references.js';
import { saveSample, videoToUint8, type SavedSample, type Uint8Video } from './output.js';

const log = createLogger({ name: 'opensora:sample' });

/** `IMG_FPS` of the reference: the fps condition for single images. */
export const IMAGE_FPS = 120;

export interface GenerateOptions {
  model: STDiT2;
  vae: VaeAdapter;
  textEncoder: TextEncoderAdapter;
  scheduler: Scheduler;
  prompts: string[];
  /** Per prompt: `;`-separated reference paths, or null. */
  referencePaths?: Array<string | null>;
  /** Per prompt: a mask strategy string, or null. */
  maskStrategies?: Array<string | null>;
  /** [H, W] in pixels. */
  imageSize: [number, number];
  /** Pixel frames per clip (1 = image). */
  numFrames: number;
  /** fps condition (the file is written at fps / frameInterval). Default 24. */
  fps?: number;
  frameInterval?: number;
  loop?: number;
  conditionFrameLength?: number;
  numSample?: number;
  batchSize?: number;
  seed?: number;
  saveDir: string;
  sampleName?: string;
  promptAsPath?: boolean;
  contactSheet?: boolean;
  /** 'bf16' reproduces the reference's bf16 rounding of the conditioning scalars and the timestep. */
  dtype?: 'fp32' | 'bf16';
  /** Show a progress bar per sampling run. */
  progress?: boolean;
  /** Clean prompts as the reference does (T5 caption cleaning, twice). Default true. */
  cleanPrompts?: boolean;
  /** Loads a reference as pixels [C, T, H, W] in [-1, 1] at the target size. */
  loadReference?: (p: string, size: [number, number]) => Promise<LoadedReference>;
  /** Called with every saved file. */
  onSaved?: (s: SavedSample) => void;
  /** Also return each sample's uint8 frames (for analysis). */
  keepFrames?: boolean;
}

export interface GeneratedSample extends SavedSample {
  /** The uint8 frames, when `keepFrames` was set. */
  video?: Uint8Video;
}

export interface GenerateResult {
  samples: GeneratedSample[];
}

function bf16(x: number): number {
  return bf16ToF32(f32ToBf16([x]))[0]!;
}

/** The conditioning scalars of flows.md 3.3 (`ar` = H/W at inference, fps = 120 for images). */
export function conditioningScalars(imageSize: [number, number], numFrames: number, fps: number, dtype: 'fp32' | 'bf16') {
  const [h, w] = imageSize;
  const r = dtype === 'bf16' ? bf16 : (v: number) => Math.fround(v);
  return {
    height: r(h),
    width: r(w),
    numFrames: r(numFrames),
    ar: r(h / w),
    fps: r(numFrames === 1 ? IMAGE_FPS : fps),
  };
}

/** Wraps an STDiT2 into the scheduler's denoiser interface. */
export function denoiserFor(model: STDiT2, dtype: 'fp32' | 'bf16' = 'fp32') {
  return (args: { x: tf.Tensor; timestep: tf.Tensor; xMask?: tf.Tensor; [k: string]: unknown }): tf.Tensor => {
    const timestep =
      dtype === 'bf16' ? tf.tensor(Array.from(args.timestep.dataSync(), (v) => bf16(v)), args.timestep.shape, 'float32') : args.timestep;
    try {
      return model.forward(
        {
          x: args.x,
          timestep,
          y: args.y as tf.Tensor,
          mask: args.mask as tf.Tensor | undefined,
          xMask: args.xMask,
          numFrames: args.numFrames as tf.Tensor,
          height: args.height as tf.Tensor,
          width: args.width as tf.Tensor,
          ar: args.ar as tf.Tensor,
          fps: args.fps as tf.Tensor,
        },
        { training: false },
      );
    } finally {
      if (timestep !== args.timestep) timestep.dispose();
    }
  };
}

function sampleBaseName(o: { sampleName: string; promptAsPath: boolean; prompt: string; index: number; k: number; numSample: number }): string {
  const suffix = o.promptAsPath ? o.prompt : `_${o.index}`;
  return `${o.sampleName}${suffix}${o.numSample !== 1 ? `-${o.k}` : ''}`;
}

/** Runs the whole inference flow and writes the samples. */
export async function generate(opts: GenerateOptions): Promise<GenerateResult> {
  const {
    model,
    vae,
    textEncoder,
    scheduler,
    imageSize,
    numFrames,
    saveDir,
  } = opts;
  const fps = opts.fps ?? 24;
  const frameInterval = opts.frameInterval ?? 1;
  const loop = opts.loop ?? 1;
  const numSample = opts.numSample ?? 1;
  const batchSize = opts.batchSize ?? 1;
  const dtype = opts.dtype ?? 'fp32';
  const promptAsPath = opts.promptAsPath ?? false;
  const sampleName = opts.sampleName ?? (promptAsPath ? '' : 'sample');
  const loadRef = opts.loadReference ?? defaultLoadReference;
  const clean = opts.cleanPrompts === false ? (s: string) => s : cleanCaption; // cleanCaption runs the T5 cleaning twice, as the reference

  if (opts.prompts.length === 0) throw new InvalidArgumentError('No prompts given', { hint: 'pass --prompt or --prompt-path' });
  if (!Number.isInteger(numFrames) || numFrames < 1) throw new InvalidArgumentError(`numFrames must be a positive integer, got ${numFrames}`);
  if (!Number.isInteger(loop) || loop < 1) throw new InvalidArgumentError(`loop must be a positive integer, got ${loop}`);
  const [H, W] = imageSize;
  const spatial = vae.spatialCompression;
  if (H % spatial !== 0 || W % spatial !== 0) {
    throw new InvalidArgumentError(`image size ${H}x${W} is not divisible by the VAE's spatial compression ${spatial}`, {
      hint: `use a multiple of ${spatial}, e.g. ${Math.round(H / spatial) * spatial}x${Math.round(W / spatial) * spatial}`,
    });
  }
  const latentSize = vae.getLatentSize([numFrames, H, W]);
  const L = opts.conditionFrameLength ?? 4;
  if (loop > 1 && !(L >= 1 && L < latentSize[0])) {
    throw new InvalidArgumentError(
      `condition frame length ${L} must be between 1 and ${latentSize[0] - 1} (the clip's latent frames minus one) for --loop ${loop}`,
    );
  }

  // Per-prompt references and strategies (flows.md 2.1): strategies without references are dropped.
  const n = opts.prompts.length;
  const refPaths: Array<string | null> = opts.referencePaths ? [...opts.referencePaths] : new Array(n).fill(null);
  let strategies: Array<string | null> = opts.referencePaths ? [...(opts.maskStrategies ?? new Array(n).fill(null))] : new Array(n).fill(null);
  if (refPaths.length !== n) {
    throw new InvalidArgumentError(`${refPaths.length} reference paths for ${n} prompts`, { hint: 'give one --reference-path per prompt' });
  }
  if (strategies.length !== n) {
    throw new InvalidArgumentError(`${strategies.length} mask strategies for ${refPaths.length} reference paths`, {
      hint: 'give one --mask-strategy per --reference-path',
    });
  }

  mkdirSync(saveDir, { recursive: true });
  const cond = conditioningScalars(imageSize, numFrames, fps, dtype);
  const denoise = denoiserFor(model, dtype);
  const rng = new Rng(opts.seed ?? 42);
  const saved: GeneratedSample[] = [];
  let sampleIdx = 0;

  for (let start = 0; start < n; start += batchSize) {
    const rawBatch = opts.prompts.slice(start, start + batchSize);
    const b = rawBatch.length;
    // JSON-in-prompt options override the per-prompt lists (flows.md 2.6).
    const texts: string[] = [];
    rawBatch.forEach((p, j) => {
      const ex = extractPromptOptions(p);
      texts.push(ex.text);
      if (ex.options.referencePath !== undefined) refPaths[start + j] = ex.options.referencePath;
      if (ex.options.maskStrategy !== undefined) strategies[start + j] = ex.options.maskStrategy;
    });
    const loopTexts = texts.map((t) => splitLoopPrompts(t, loop, { preprocess: clean }));

    // References, encoded once per batch (flows.md 2.3).
    const refs: tf.Tensor[][] = [];
    for (let j = 0; j < b; j++) {
      const list: tf.Tensor[] = [];
      for (const p of parseReferencePaths(refPaths[start + j])) {
        const ref = await loadRef(p, imageSize);
        const latent = tf.tidy(() => vae.encode(tf.tensor(ref.data, [1, ...ref.shape])));
        list.push(latent);
      }
      refs.push(list);
    }
    const batchStrategies = strategies.slice(start, start + b);
    const sizeKw = () => ({
      height: tf.fill([b], cond.height),
      width: tf.fill([b], cond.width),
      numFrames: tf.fill([b], cond.numFrames),
      ar: tf.fill([b], cond.ar),
      fps: tf.fill([b], cond.fps),
    });

    const old = sampleIdx;
    for (let k = 0; k < numSample; k++) {
      sampleIdx = old;
      const clips: tf.Tensor[] = [];
      const localRefs = refs.map((r) => [...r]);
      const localStrategies = [...batchStrategies];
      for (let loopI = 0; loopI < loop; loopI++) {
        const batchTexts = loopTexts.map((t) => t[loopI]!);
        if (loopI > 0) {
          // Chain: the last L latent frames of the previous clip condition frames 0..L-1.
          const prev = tf.tidy(() => vae.encode(clips[clips.length - 1]!));
          for (let j = 0; j < b; j++) {
            const refJ = tf.tidy(() => prev.slice([j], [1]));
            localRefs[j]!.push(refJ);
            localStrategies[j] = joinMaskStrategies(localStrategies[j], `${loopI},${localRefs[j]!.length - 1},-${L},0,${L}`);
          }
          prev.dispose();
        }
        const [lt, lh, lw] = latentSize;
        const C = vae.latentChannels;
        const plans = planMaskStrategy({
          strategies: localStrategies,
          loopIndex: loopI,
          targetFrames: lt,
          referenceLengths: localRefs.map((r) => r.map((t) => t.shape[2]!)),
        });
        // z ~ N(0, I), then the clean reference latents are placed (apply_mask_strategy).
        const zData = rng.fillNormal(new Float32Array(b * C * lt * lh * lw));
        const frameSize = lh * lw;
        for (let j = 0; j < b; j++) {
          plans[j]!.placements.forEach((pl, tIdx) => {
            if (!pl) return;
            const refData = localRefs[j]![pl.ref]!.dataSync();
            const refT = localRefs[j]![pl.ref]!.shape[2]!;
            for (let c = 0; c < C; c++) {
              const src = (c * refT + pl.frame) * frameSize;
              const dst = (((j * C + c) * lt + tIdx) * frameSize);
              zData.set(refData.subarray(src, src + frameSize), dst);
            }
          });
        }
        const z = tf.tensor(zData, [b, C, lt, lh, lw]);
        const anyCondition = plans.some((p) => p.mask.some((m) => m !== 1));
        const enc = textEncoder.encode(batchTexts);
        const kw = sizeKw();
        log.info(`sampling batch ${start / batchSize + 1}, sample ${k + 1}/${numSample}, loop ${loopI + 1}/${loop}: ${batchTexts[0]}`);
        const latents = scheduler.sample({
          model: denoise,
          z,
          text: { y: enc.embeddings, mask: enc.mask, nullY: model.nullCaption },
          modelKwargs: kw,
          mask: anyCondition ? plans.map((p) => p.mask) : undefined,
          rng,
          progress: opts.progress ?? false,
        });
        const video = tf.tidy(() => vae.decode(latents));
        clips.push(video);
        tf.dispose([z, latents, enc.embeddings, enc.mask, ...Object.values(kw)]);
      }
      // Concatenate clip 0 with clip_i[:, :, L:] (pixel frames, as the reference does: no temporal VAE).
      const dropPixel = Math.round((L * numFrames) / latentSize[0]);
      const full = tf.tidy(() =>
        clips.length === 1 ? clips[0]!.clone() : tf.concat([clips[0]!, ...clips.slice(1).map((c) => c.slice([0, 0, dropPixel], [-1, -1, -1]))], 2),
      );
      tf.dispose(clips);
      for (let j = 0; j < b; j++) {
        const one = tf.tidy(() => full.slice([j], [1]).squeeze([0]));
        const frames = videoToUint8(one);
        one.dispose();
        const base = sampleBaseName({ sampleName, promptAsPath, prompt: texts[j]!, index: sampleIdx, k, numSample });
        const s = await saveSample(frames, {
          basePath: path.join(saveDir, base),
          fps: Math.max(1, Math.floor(fps / frameInterval)),
          prompt: texts[j]!,
          contactSheet: opts.contactSheet ?? false,
        });
        saved.push(opts.keepFrames ? { ...s, video: frames } : s);
        opts.onSaved?.(s);
        sampleIdx++;
      }
      full.dispose();
      for (const r of localRefs) for (const t of r.slice(refs[localRefs.indexOf(r)]!.length)) t.dispose();
    }
    tf.dispose(refs.flat());
    strategies = [...strategies];
  }
  return { samples: saved };
}
