/**
 * `npm run demo`: the main job end to end on CPU, no downloads.
 *
 *   1. synthesise a dataset (coloured shapes moving in named directions; some clips with hard cuts)
 *   2. run the data pipeline over it with the `opensora data` commands: info, scene cut, motion
 *      score, filter, stats
 *   3. train a tiny STDiT2 through the stages (image pretraining, then video buckets of several
 *      sizes and lengths) with `opensora pipeline`
 *   4. sample every inference flow into samples/: text-to-image, text-to-video at two aspect
 *      ratios, image-to-video, video extension, connecting two clips
 *   5. write a contact sheet per video and samples/index.html, and print the learning check:
 *      colour and motion direction measured from the pixels, trained weights against untrained.
 *
 * Environment knobs: OPENSORA_DEMO_STEPS (total training steps, default 1100, split 60/25/10/5% over the stages),
 * OPENSORA_DEMO_DIR (work folder, default .demo/), OPENSORA_DEMO_SAMPLES (default samples/),
 * OPENSORA_DEMO_QUICK=1 (a few steps of everything: what the test suite runs).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { enableFastKernels, formatBackend, initBackend } from '@opensora/core';
import { runCli, generate, loadModelStack, type GeneratedSample, type ModelStack } from '@opensora/cli';
import { createScheduler } from '@opensora/scheduler';
import { STDiT2 } from '@opensora/stdit';
import { animateImage, connectClips, extendVideo } from '@opensora/mask';
import {
  SYNTH_DIRECTION_NAMES,
  readDatasetCsv,
  synthCaption,
  writeDatasetCsv,
  type SynthColor,
  type SynthDirection,
} from '@opensora/data';
import { checkSample, formatLearningReport, learningReport, type SampleCheck } from './learning-check.js';
import { writeGallery, type GalleryEntry } from './gallery.js';
import { formatMotionProbe, formatProbeGaps, motionProbe, type MotionProbeResult } from './motion-probe.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');

export interface DemoOptions {
  workDir?: string;
  samplesDir?: string;
  /** Total training steps over the four stages (default 1100). */
  steps?: number;
  /** A few steps of everything (for tests). */
  quick?: boolean;
  /** Samples per arm of the learning check. */
  checkSamples?: number;
  log?: (line: string) => void;
}

export interface DemoResult {
  samples: GeneratedSample[];
  gallery: string;
  report: string;
  trained: ReturnType<typeof learningReport>;
  untrained: ReturnType<typeof learningReport>;
  /** The motion probe (epsilon error on forward / reversed / static / wrongly captioned clips), trained and untrained. */
  probe: { trained: MotionProbeResult; untrained: MotionProbeResult };
  seconds: Record<string, number>;
}

async function cli(args: string[], log: (s: string) => void): Promise<void> {
  log(`$ opensora ${args.join(' ')}`);
  const code = await runCli(args, { stdout: (s) => log(s.trimEnd()), stderr: (s) => log(s.trimEnd()) });
  if (code !== 0) throw new Error(`opensora ${args[0]} ${args[1] ?? ''} failed with exit code ${code}`);
}

/**
 * The demo's vocabulary: five well-separated colours and two shapes (every direction), so that
 * a tiny model trained for minutes on 2 cores has a distribution it can learn.
 */
export const DEMO_COLORS: SynthColor[] = ['red', 'green', 'blue', 'yellow', 'white'];
export const DEMO_SHAPES = ['square', 'circle'] as const;

/** Prompts for the learning check: every direction, spread over colours and backgrounds. */
export function checkPrompts(n: number, colors: readonly SynthColor[] = DEMO_COLORS): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const color = colors[i % colors.length]!;
    const background = colors[(i + 1 + Math.floor(i / colors.length)) % colors.length]!;
    const direction = SYNTH_DIRECTION_NAMES[Math.floor(i / 2) % SYNTH_DIRECTION_NAMES.length] as SynthDirection;
    out.push(synthCaption({ shape: DEMO_SHAPES[i % DEMO_SHAPES.length]!, color, direction, background: background === color ? colors[(i + 2) % colors.length]! : background }));
  }
  return out;
}

function timer() {
  const t0 = performance.now();
  return () => (performance.now() - t0) / 1000;
}

export async function runDemo(o: DemoOptions = {}): Promise<DemoResult> {
  const log = o.log ?? ((s: string) => console.log(s));
  const quick = o.quick ?? process.env.OPENSORA_DEMO_QUICK === '1';
  const work = path.resolve(o.workDir ?? process.env.OPENSORA_DEMO_DIR ?? path.join(repo, '.demo'));
  const samplesDir = path.resolve(o.samplesDir ?? process.env.OPENSORA_DEMO_SAMPLES ?? path.join(repo, 'samples'));
  const steps = o.steps ?? (Number(process.env.OPENSORA_DEMO_STEPS) || (quick ? 4 : 1100));
  const nCheck = o.checkSamples ?? (quick ? 2 : 24);
  const seconds: Record<string, number> = {};
  rmSync(samplesDir, { recursive: true, force: true });
  mkdirSync(samplesDir, { recursive: true });
  mkdirSync(work, { recursive: true });
  const all = timer();

  const info = await initBackend();
  const accel = process.env.OPENSORA_ACCEL === 'none' ? null : enableFastKernels({ engine: 'onnxruntime' });
  log(`backend: ${formatBackend(info)}; ${accel?.enabled ? `onnxruntime-node ${accel.version} kernels` : 'tfjs kernels'}`);

  // 1-2. data
  let t = timer();
  const data = path.join(work, 'data');
  rmSync(data, { recursive: true, force: true });
  await cli(
    // 9-frame clips at 8 fps: an 8-frame window (the 8-frame bucket takes clips of 9 frames and
    // more) then spans 7/8 of the motion, half the frame, as the check's 8-frame samples do.
    ['data', 'synth', '--out', data, '--videos', String(quick ? 6 : 240), '--images', String(quick ? 6 : 120), '--seed', '7', '--colors', ...DEMO_COLORS, '--shapes', ...DEMO_SHAPES, '--lengths', '9', '--fps', '8'],
    log,
  );
  const csv = path.join(data, 'synth.csv');
  await cli(['data', 'info', csv, '-o', path.join(data, 'info.csv')], log);
  await cli(['data', 'cut', path.join(data, 'info.csv'), '--save-dir', path.join(data, 'clips'), '-o', path.join(data, 'clips.csv'), '--min-scene-len', '3', '--min-seconds', '0.3'], log);
  // Captioning: the synthetic set knows each scene's caption, so clips are captioned from the
  // source caption ("A, then B") and cut positions, the way a captioner would fill `text`.
  const infoRows = await readDatasetCsv(path.join(data, 'info.csv'));
  const byPath = new Map(infoRows.map((r) => [path.resolve(data, String(r.path)), r]));
  const clipRows = (await readDatasetCsv(path.join(data, 'clips.csv'))).map((r) => {
    const src = byPath.get(path.resolve(data, String(r.source)));
    const scenes = String(src?.text ?? '').split(', then ');
    const cuts = JSON.parse(String(src?.cuts ?? '[]')) as number[];
    const mid = (Number(r.start_frame) + Number(r.end_frame)) / 2;
    const scene = cuts.filter((c) => c <= mid).length;
    return { ...r, text: scenes[Math.min(scene, scenes.length - 1)] ?? '' };
  });
  const images = infoRows.filter((r) => Number(r.num_frames) === 1);
  await writeDatasetCsv(path.join(data, 'clips_captioned.csv'), [...clipRows, ...images]);
  log(`captioned ${clipRows.length} clip(s) from their source scenes, plus ${images.length} image(s)`);
  await cli(['data', 'score', path.join(data, 'clips_captioned.csv'), '--scorer', 'motion', '-o', path.join(data, 'scored.csv')], log);
  await cli(['data', 'filter', path.join(data, 'scored.csv'), '--fmin', '1', '--remove-empty-caption', '-o', path.join(data, 'train.csv')], log);
  await cli(['data', 'stats', path.join(data, 'train.csv'), '--png', path.join(samplesDir, 'dataset_stats.png')], log);
  seconds.data = t();

  // 3. training through the stages
  t = timer();
  const outputs = path.join(work, 'train');
  const scale = (f: number) => Math.max(2, Math.round(steps * f));
  const model = ['ckptEvery=1000000'];
  // Quick mode (a handful of clips) keeps the bucket layout with batches of 2, so every bucket fills.
  const buckets = (b: Record<string, Record<string, [number, number]>>) =>
    `bucketConfig=${JSON.stringify(quick ? Object.fromEntries(Object.entries(b).map(([res, byT]) => [res, Object.fromEntries(Object.entries(byT).map(([t, [keep, bs]]) => [t, [keep, Math.min(bs, 2)]]))])) : b)}`;
  // Min-SNR weighting (snrGamma 0.2) in every stage: with the plain epsilon loss the low-noise
  // steps dominate the gradient, and the high-noise steps, where the caption decides colours and
  // layout, hardly train (measured: background 13/40 -> 29/40 after the same 600 image steps).
  const minSnr = 'scheduler.snrGamma=0.2';
  // Stage-1 masks weighted towards conditioning on the first frames (the stage presets' ratios
  // leave 75% of clips unmasked): learning to continue a clip is where the temporal branch helps.
  const masks = 'maskRatios={"mask_no":0.3,"mask_image_head":0.3,"mask_quarter_head":0.2,"mask_image_random":0.1,"mask_image_head_tail":0.1}';
  const pipeline = {
    name: 'demo',
    outputs,
    stages: [
      // Image pretraining with larger batches than the preset (16 images of 32x32 per step): at
      // 2-4 images a step the caption signal drowns in gradient noise. Plain IDDPM here: SpeeDiT
      // samples t > 640 five times less often, and the high-noise steps are where the prompt
      // decides the colours. The temporal attention's output projection stays frozen at its zero
      // initialisation: trained on single frames it turns into a per-frame linear map that
      // averaging over 8 frames then breaks (the eps error at T = 8 was 5x that at T = 1).
      { name: 'image', preset: 'tiny-image', maxSteps: scale(0.6), overrides: ['lr=2e-3', 'scheduler.type=iddpm', minSnr, buckets({ 'tiny-32': { '1': [1.0, 16] } }), 'model.freeze=["attn_temp.proj"]', ...model] },
      // Video stages with 16 clips (or 8 of 8 frames) per step: with 2-4 captions a step, video
      // steps at 1e-3 erased the prompt dependence (background 62% -> 22%); with 16 it stays.
      { name: 'stage1', preset: 'tiny-stage1', maxSteps: scale(0.25), overrides: ['lr=1e-3', minSnr, masks, buckets({ 'tiny-32': { '1': [0.2, 16], '4': [1.0, 16], '8': [0.5, 8] } }), ...model] },
      { name: 'stage2', preset: 'tiny-stage2', maxSteps: scale(0.1), overrides: ['lr=5e-4', minSnr, buckets({ 'tiny-64': { '1': [0.5, 8] }, 'tiny-32': { '4': [1.0, 16], '8': [1.0, 8] } }), ...model] },
      { name: 'stage3', preset: 'tiny-stage3', maxSteps: scale(0.05), overrides: ['lr=2e-4', minSnr, buckets({ 'tiny-64': { '4': [1.0, 2] }, 'tiny-32': { '8': [1.0, 8] } }), ...model] },
    ],
  };
  const pipelineFile = path.join(work, 'pipeline.json');
  writeFileSync(pipelineFile, JSON.stringify(pipeline, null, 2));
  rmSync(outputs, { recursive: true, force: true });
  await cli(['pipeline', '--config', pipelineFile, '--data', path.join(data, 'train.csv'), '--seed', '42'], log);
  seconds.train = t();

  // 4. sampling every flow with the final weights
  t = timer();
  const { findLatestCheckpoint } = await import('@opensora/trainer');
  const finalCkpt = findLatestCheckpoint(path.join(outputs, '04-stage3'));
  if (!finalCkpt) throw new Error('the pipeline left no final checkpoint');
  const stack = await loadModelStack({ model: finalCkpt });
  const sampler = createScheduler({ type: 'dpm-solver', numSamplingSteps: quick ? 4 : 15, cfgScale: 7.0 });
  const common = { ...stack, scheduler: sampler, fps: 8, frameInterval: 1, saveDir: samplesDir, contactSheet: true, seed: 1 };
  const gallery: GalleryEntry[] = [];
  const saved: GeneratedSample[] = [];
  const record = (title: string, res: GeneratedSample[]) => {
    for (const s of res) {
      saved.push(s);
      gallery.push({ title, prompt: s.prompt, path: s.path, sheet: s.contactSheet, kind: s.frames === 1 ? 'image' : 'video' });
    }
  };
  const t2iPrompt = 'a red square on a blue background';
  const t2i = await generate({ ...common, prompts: [t2iPrompt], imageSize: [32, 32], numFrames: 1, sampleName: 't2i' });
  record('text to image', t2i.samples);
  const t2v = await generate({ ...common, prompts: ['a yellow circle moving right on a blue background'], imageSize: [32, 32], numFrames: 8, sampleName: 't2v_square' });
  record('text to video, 1:1', t2v.samples);
  const t2vWide = await generate({ ...common, prompts: ['a white square moving left on a green background'], imageSize: [32, 48], numFrames: 8, sampleName: 't2v_wide' });
  record('text to video, 2:3 (H:W)', t2vWide.samples);
  const i2v = await generate({
    ...common,
    prompts: ['a red square moving down on a blue background'],
    referencePaths: [t2i.samples[0]!.path],
    maskStrategies: [animateImage()],
    imageSize: [32, 32],
    numFrames: 8,
    sampleName: 'i2v',
  });
  record('image to video (first frame from the text-to-image sample)', i2v.samples);
  const latentT = stack.vae.getLatentSize([8, 32, 32])[0];
  const ext = await generate({
    ...common,
    prompts: ['a yellow circle moving right on a blue background'],
    referencePaths: [t2v.samples[0]!.path],
    maskStrategies: [extendVideo({ frames: Math.max(1, Math.floor(latentT / 2)) })],
    imageSize: [32, 32],
    numFrames: 8,
    sampleName: 'extend',
  });
  record('video extension (first half conditioned on the end of the text-to-video sample)', ext.samples);
  const connect = await generate({
    ...common,
    prompts: ['a red square moving right on a blue background'],
    referencePaths: [`${t2i.samples[0]!.path};${i2v.samples[0]!.path}`],
    maskStrategies: [connectClips()],
    imageSize: [32, 32],
    numFrames: 8,
    sampleName: 'connect',
  });
  record('connecting two clips (first and last frames given)', connect.samples);
  seconds.sample = t();

  // 5. learning check: trained vs untrained weights on the same prompts and noise
  t = timer();
  const prompts = checkPrompts(nCheck);
  const check = async (s: ModelStack, name: string): Promise<SampleCheck[]> => {
    const res = await generate({
      ...common,
      ...s,
      prompts,
      imageSize: [32, 32],
      numFrames: 8,
      saveDir: path.join(samplesDir, 'check', name),
      sampleName: name,
      contactSheet: false,
      keepFrames: true,
      batchSize: 4,
    });
    return res.samples.map((x) => checkSample(x.prompt, x.video!));
  };
  const trainedChecks = await check(stack, 'trained');
  const untrainedModel = new STDiT2(stack.model.config, { seed: 'untrained' });
  const untrainedChecks = await check({ ...stack, model: untrainedModel }, 'untrained');
  // The motion probe: whether the denoiser itself tells the captioned direction from the opposite
  // one and from reversed frames, a finer measure than the samples' direction (see motion-probe.ts).
  const probeOptions = quick ? { clips: 1, timesteps: [500] } : {};
  const probe = { trained: motionProbe(stack, probeOptions), untrained: motionProbe({ ...stack, model: untrainedModel }, probeOptions) };
  untrainedModel.dispose();
  // Chance of a colour match: one in the demo's palette (the check itself picks from all ten colours).
  const chance = { objectColor: 1 / DEMO_COLORS.length, background: 1 / DEMO_COLORS.length, direction: 1 / SYNTH_DIRECTION_NAMES.length };
  const trained = { ...learningReport(trainedChecks), chance };
  const untrained = { ...learningReport(untrainedChecks), chance };
  const report = formatLearningReport(trained, untrained);
  seconds.check = t();
  stack.dispose();

  const page = await writeGallery(path.join(samplesDir, 'index.html'), gallery, {
    title: 'OpenSora.ts demo',
    report,
    description: `tiny STDiT2 trained for ${pipeline.stages.map((s) => `${s.name} ${s.maxSteps}`).join(', ')} steps on synthetic clips; backend ${info.name}`,
  });
  seconds.total = all();
  log('');
  log(report);
  log('');
  log(formatMotionProbe(probe.trained, 'motion probe, trained weights'));
  log(`motion probe, untrained weights: ${formatProbeGaps(probe.untrained)}`);
  log('');
  log(`samples: ${saved.map((s) => path.relative(repo, s.path)).join(', ')}`);
  log(`gallery: ${path.relative(process.cwd(), page)}`);
  log(`time: ${Object.entries(seconds).map(([k, v]) => `${k} ${v.toFixed(0)} s`).join(', ')}`);
  return { samples: saved, gallery: page, report, trained, untrained, probe, seconds };
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  runDemo().catch((e: unknown) => {
    console.error(`demo failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  });
}
