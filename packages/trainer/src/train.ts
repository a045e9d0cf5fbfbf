/**
 * The training loop: sampler -> reader (prefetch) -> VAE encode (no grad) -> text encoder ->
 * MaskGenerator -> scheduler.trainingLosses -> backward -> clip -> AdamW -> EMA, with logging,
 * checkpoints, exact resume, signal handling and a non-finite guard.
 *
 * Exact resume: every random draw of a step is made from a generator derived from
 * (seed, stream, global step[, sample]) — the reader's crop, the VAE posterior sample, the frame
 * masks, the timesteps, the noise and the model's caption dropout — and the batch order comes
 * from the bucket sampler's (seed, epoch) order skipped to the saved step. Weights, EMA and AdamW
 * moments are stored as float32 bits. So a run killed at any point and resumed from its last
 * checkpoint computes exactly the steps an uninterrupted run computes, bit for bit.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { tf, Rng, OpenSoraError, ConfigError, createLogger, createProgress, loadSafetensors, type Logger, type Progress } from '@opensora/core';
import { MaskGenerator } from '@opensora/mask';
import { resolveTrainConfig, type TrainConfig, type TrainConfigInput } from './config.js';
import { AdamW, Ema, globalNorm, type NamedTensors } from './optim.js';
import { saveCheckpoint, loadCheckpoint, findLatestCheckpoint, disposeCheckpoint, writeJsonAtomic, type RunningStates, type SaveCheckpointOptions } from './checkpoint.js';
import { MetricsLog, writeLossCurvePng } from './metrics.js';
import type { ModelInputs, TrainBatch, TrainComponents, TrainSample } from './types.js';
import { createComponents } from './components.js';
import { existsSync, statSync } from 'node:fs';

/** Every random stream of a step; each draw uses `Rng.derive(seed, stream, globalStep, ...)`. */
export const RNG_STREAMS = Object.freeze(['data', 'vae', 'mask', 'timestep', 'noise', 'model'] as const);
export type RngStream = (typeof RNG_STREAMS)[number];

export function stepRng(seed: number, stream: RngStream, globalStep: number, ...keys: number[]): Rng {
  return Rng.derive(seed, stream, globalStep, ...keys);
}

/** A training failure with its context (step, bucket, samples). */
export class TrainerError extends OpenSoraError {}

export type StopReason = 'maxSteps' | 'epochs' | 'signal' | 'abort';

export interface StepReport {
  globalStep: number;
  epoch: number;
  step: number;
  loss: number;
  mse: number;
  vb: number | null;
  gradNorm: number;
  skipped: boolean;
  bucket: string;
  batchSize: number;
  timings: StepTimings;
}

export interface StepTimings {
  data: number;
  vae: number;
  text: number;
  fwdBwd: number;
  optimizer: number;
}

export interface TrainOptions {
  /** Dataset CSV (overrides `dataset.dataPath`). */
  data?: string;
  outputs?: string;
  maxSteps?: number | null;
  ckptEvery?: number;
  seed?: number;
  /** Resume from a checkpoint folder, or 'latest' (the newest complete one under `outputs`; none: a fresh start). */
  load?: string | null;
  /** Initial weights only: a checkpoint folder, a model folder or a .safetensors file. */
  ckptPath?: string | null;
  /** With `load`: keep weights, EMA and optimizer state, reset epoch/step counters and the sampler. */
  startFromScratch?: boolean;
  /** Stops after the current step (and saves) when aborted. */
  signal?: AbortSignal;
  /** SIGINT/SIGTERM finish the current step, save, and return (default true). A second signal exits. */
  handleSignals?: boolean;
  /** Components to train with (default: built from the config by `createComponents`). */
  components?: TrainComponents;
  progress?: 'bar' | 'lines' | 'silent';
  logger?: Logger;
  onStep?: (report: StepReport) => void;
  onCheckpoint?: (dir: string, globalStep: number) => void;
  /** Called after each checkpoint file is written (fault injection in tests). */
  onCheckpointFile?: (relativePath: string, globalStep: number) => void | Promise<void>;
}

export interface TrainResult {
  outputs: string;
  config: TrainConfig;
  globalStep: number;
  epoch: number;
  /** Steps done within `epoch`. */
  step: number;
  startGlobalStep: number;
  stoppedBy: StopReason;
  lastCheckpoint: string | null;
  /** Per step run in this call: global step (1-based, after the step) and loss. */
  losses: Array<{ globalStep: number; loss: number; skipped: boolean }>;
  skippedSteps: number;
  /** Total milliseconds per phase over this call's steps. */
  timings: StepTimings & { total: number };
  stepsPerSec: number;
  samplesPerSec: number;
}

/** Loads initial weights for `ckptPath`: a checkpoint folder, a folder with model.safetensors, or a .safetensors file. */
export function loadWeightsFile(p: string): Record<string, tf.Tensor> {
  if (!existsSync(p)) throw new ConfigError(`ckptPath ${p} does not exist`, { hint: 'pass a checkpoint folder, a model folder or a .safetensors file' });
  if (statSync(p).isDirectory()) {
    const inCkpt = path.join(p, 'model', 'model.safetensors');
    if (existsSync(inCkpt)) return loadSafetensors(inCkpt);
  }
  return loadSafetensors(p);
}

function fmtBucket(b: TrainBatch): string {
  return `${b.bucketId[0]}/${b.bucketId[1]}/${b.bucketId[2]}`;
}

function isResolved(c: unknown): c is TrainConfig {
  return typeof c === 'object' && c !== null && 'bucketConfig' in c && 'optimizer' in c && 'dataset' in c && typeof (c as TrainConfig).dataset?.prefetch === 'number';
}

function entries(sd: Map<string, tf.Tensor> | Record<string, tf.Tensor>): Array<[string, tf.Tensor]> {
  return sd instanceof Map ? [...sd.entries()] : Object.entries(sd);
}

/** Trains per `config` (a preset name, a config object or a resolved config). */
export async function train(configIn: string | TrainConfigInput | TrainConfig, options: TrainOptions = {}): Promise<TrainResult> {
  const base = typeof configIn !== 'string' && isResolved(configIn) ? configIn : resolveTrainConfig(configIn);
  const config: TrainConfig = resolveTrainConfig(base, {
    ...(options.outputs !== undefined ? { outputs: options.outputs } : {}),
    ...(options.maxSteps !== undefined ? { maxSteps: options.maxSteps } : {}),
    ...(options.ckptEvery !== undefined ? { ckptEvery: options.ckptEvery } : {}),
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
    ...(options.load !== undefined ? { load: options.load } : {}),
    ...(options.startFromScratch !== undefined ? { startFromScratch: options.startFromScratch } : {}),
    ...(options.data !== undefined ? { 'dataset.dataPath': options.data } : {}),
    ...(options.ckptPath !== undefined ? { 'model.fromPretrained': options.ckptPath } : {}),
  });
  const outputs = path.resolve(config.outputs);
  mkdirSync(outputs, { recursive: true });
  const logger = options.logger ?? createLogger({ name: `train:${config.name}` });
  const metrics = new MetricsLog(path.join(outputs, 'log.jsonl'));

  let loadDir: string | null = null;
  if (config.load === 'latest') {
    loadDir = findLatestCheckpoint(outputs);
    if (!loadDir) logger.info(`no checkpoint under ${outputs}: starting fresh`);
  } else if (config.load) {
    loadDir = path.resolve(config.load);
  }
  const resuming = loadDir !== null && !config.startFromScratch;

  const factoryComps: TrainComponents | null = options.components ? null : await createComponents(config, logger);
  const comps = options.components ?? factoryComps!;
  const { model, vae, textEncoder, scheduler, reader } = comps;

  const removeSignals = installSignals(options.handleSignals ?? true, logger);
  let opt: AdamW | null = null;
  let ema: Ema | null = null;
  let failed = false;
  try {
    // ---- weights, optimizer, EMA, counters --------------------------------------------------
    if (config.model.fromPretrained && !loadDir) {
      const rec = loadWeightsFile(config.model.fromPretrained);
      try {
        const report = model.loadStateDict(rec, { strict: false }) as { missing?: string[]; unexpected?: string[] } | undefined;
        logger.info(`loaded weights from ${config.model.fromPretrained}`, {
          missing: report?.missing?.length ?? 0,
          unexpected: report?.unexpected?.length ?? 0,
        });
      } finally {
        tf.dispose(Object.values(rec));
      }
    }
    if (model.gradientCheckpointing !== undefined) model.gradientCheckpointing = config.gradCheckpoint;
    const params = model.parameters();
    const varNameToKey = new Map<string, string>();
    for (const [k, v] of params) varNameToKey.set(v.name, k);
    const varList = [...params.values()];
    opt = new AdamW(params, { lr: config.lr, betas: config.optimizer.betas, eps: config.optimizer.eps, weightDecay: config.optimizer.weightDecay });

    let epoch = 0;
    let stepInEpoch = 0;
    let globalStep = 0;
    let consecutiveNonFinite = 0;
    let skippedSteps = 0;
    let seed = config.seed;
    let savedSamplerState: unknown;

    if (loadDir) {
      const ck = await loadCheckpoint(loadDir);
      try {
        model.loadStateDict(ck.model, { strict: true });
        let fresh: string[] = [];
        if (ck.optimizer) fresh = opt.loadState(ck.optimizer.tensors, ck.optimizer.state);
        else logger.warn(`checkpoint ${loadDir} has no optimizer state: fresh moments`);
        if (fresh.length) logger.info(`${fresh.length} parameter(s) frozen in ${path.basename(loadDir)} are trained from here with fresh optimizer moments`, { params: fresh.slice(0, 8) });
        if (config.emaDecay !== null) {
          ema = new Ema(params, { decay: config.emaDecay, skip: config.emaSkip });
          if (ck.ema) ema.load(ck.ema, { fresh });
        }
        if (resuming) {
          const rs = ck.runningStates;
          epoch = rs.epoch;
          stepInEpoch = rs.step;
          globalStep = rs.global_step;
          consecutiveNonFinite = rs.consecutive_non_finite ?? 0;
          skippedSteps = rs.skipped_steps ?? 0;
          const savedSeed = typeof ck.rng?.seed === 'number' ? (ck.rng.seed as number) : config.seed;
          if (savedSeed !== config.seed) logger.warn(`resuming with the checkpoint's seed ${savedSeed} (the config says ${config.seed})`);
          seed = savedSeed;
          savedSamplerState = (ck.sampler as { state?: unknown } | null)?.state;
          const dropped = await metrics.truncateAfter(globalStep);
          if (dropped) logger.info(`dropped ${dropped} log lines past global step ${globalStep} (written after the last checkpoint)`);
          logger.info(`resumed from ${loadDir}`, { epoch, step: stepInEpoch, global_step: globalStep });
        } else {
          logger.info(`loaded weights, EMA and optimizer from ${loadDir}; counters and sampler start from zero`);
        }
      } finally {
        disposeCheckpoint(ck);
      }
    } else if (config.emaDecay !== null) {
      ema = new Ema(params, { decay: config.emaDecay, skip: config.emaSkip });
    }

    await writeJsonAtomic(path.join(outputs, 'config.json'), config);
    const sampler = comps.makeSampler(seed);
    if (resuming && savedSamplerState !== undefined && sampler.loadStateDict) {
      try {
        sampler.loadStateDict(savedSamplerState);
      } catch (e) {
        throw new TrainerError('E_RESUME', `cannot resume ${loadDir}: ${(e as Error).message}`, {
          cause: e,
          hint: 'resume with the dataset and bucket config the checkpoint was trained with, or pass startFromScratch to keep only weights and optimizer',
        });
      }
    }
    const maskRatios = config.maskRatios;
    const maxSteps = config.maxSteps;
    const startGlobalStep = globalStep;
    const prefetch = config.dataset.prefetch;

    const progress: Progress = createProgress({
      total: maxSteps ?? config.epochs * Math.max(1, sampler.length),
      label: config.name,
      unit: 'steps',
      ...(options.progress ? { mode: options.progress } : {}),
    });
    progress.update(globalStep);

    const losses: TrainResult['losses'] = [];
    const totals = { data: 0, vae: 0, text: 0, fwdBwd: 0, optimizer: 0, total: 0 };
    let samplesSeen = 0;
    const win = { n: 0, loss: 0, mse: 0, vb: 0, vbN: 0, norm: 0, samples: 0, t0: performance.now(), timings: { data: 0, vae: 0, text: 0, fwdBwd: 0, optimizer: 0 } };
    let lastCheckpoint: string | null = loadDir && resuming ? loadDir : null;
    let lastSavedStep = resuming ? globalStep : -1;
    let stoppedBy: StopReason | null = null;
    const runStart = performance.now();

    const save = async (): Promise<string> => {
      const sd = entries(model.stateDict());
      const emaT = ema ? ema.stateTensors() : null;
      const emaRec: Record<string, tf.Tensor> | undefined = emaT ? Object.fromEntries(sd.map(([k, t]) => [k, emaT[k] ?? t])) : undefined;
      const runningStates: RunningStates = {
        epoch,
        step: stepInEpoch,
        global_step: globalStep,
        sample_start_index: config.batchSize ? stepInEpoch * config.batchSize : null,
        consecutive_non_finite: consecutiveNonFinite,
        skipped_steps: skippedSteps,
        seed,
        config_name: config.name,
      };
      const saveOpts: SaveCheckpointOptions = { keepLast: config.keepLast };
      if (options.onCheckpointFile) saveOpts.onFileWritten = (rel) => options.onCheckpointFile!(rel, globalStep);
      const dir = await saveCheckpoint(
        outputs,
        {
          runningStates,
          model: Object.fromEntries(sd),
          modelConfig: model.config && typeof model.config === 'object' ? { type: config.model.type, ...(model.config as Record<string, unknown>) } : { type: config.model.type },
          ...(emaRec ? { ema: emaRec } : {}),
          optimizer: { tensors: opt!.stateTensors(), state: opt!.stateJson() },
          sampler: {
            seed,
            epoch,
            step: stepInEpoch,
            last_micro_batch_access_index: stepInEpoch,
            num_replicas: 1,
            steps_per_epoch: sampler.length,
            ...(sampler.stateDict ? { state: sampler.stateDict(stepInEpoch) } : {}),
          },
          rng: { scheme: 'Rng.derive(seed, stream, global_step, ...keys)', seed, streams: [...RNG_STREAMS], global_step: globalStep },
          extraJson: { 'train_config.json': config },
        },
        saveOpts,
      );
      lastCheckpoint = dir;
      lastSavedStep = globalStep;
      metrics.append({ event: 'ckpt', global_step: globalStep, epoch, step: stepInEpoch, path: dir });
      await writeLossCurvePng(metrics.file, path.join(outputs, 'loss.png'), `${config.name}: training loss`).catch((e) => logger.warn(`loss curve not drawn: ${(e as Error).message}`));
      logger.info(`saved checkpoint ${path.basename(dir)}`);
      options.onCheckpoint?.(dir, globalStep);
      return dir;
    };

    const readBatch = (batch: TrainBatch, g: number): Promise<TrainSample[]> => {
      const p = Promise.all(
        batch.indices.map((idx, j) =>
          reader.read(idx, [batch.thw[0], batch.thw[1], batch.thw[2]], stepRng(seed, 'data', g, j), fmtBucket(batch)).catch((e: unknown) => {
            throw new TrainerError('E_DATA', `reading sample ${idx}${comps.rows?.[idx]?.path ? ` (${comps.rows[idx]!.path})` : ''} for step ${g + 1}, bucket ${fmtBucket(batch)}, failed: ${(e as Error).message}`, {
              cause: e,
              details: { index: idx, bucket: batch.bucketId, globalStep: g + 1 },
            });
          }),
        ),
      );
      p.catch(() => undefined); // handled when awaited; never an unhandled rejection while queued
      return p;
    };

    const runStep = (batch: TrainBatch, samples: TrainSample[], g: number, dataMs: number): StepReport => {
      const B = samples.length;
      const [T, H, W] = batch.thw;
      const C = samples[0]!.shape[0];
      const per = C * T * H * W;
      const videoData = new Float32Array(B * per);
      samples.forEach((s, j) => {
        const [c, t, h, w] = s.shape;
        if (c !== C || t !== T || h !== H || w !== W || s.video.length !== per) {
          throw new TrainerError('E_DATA', `sample ${batch.indices[j]} of bucket ${fmtBucket(batch)} has shape [${s.shape}] (${s.video.length} values); the bucket needs [${C}, ${T}, ${H}, ${W}]`, {
            details: { index: batch.indices[j], bucket: batch.bucketId },
          });
        }
        videoData.set(s.video, j * per);
      });
      const timings: StepTimings = { data: dataMs, vae: 0, text: 0, fwdBwd: 0, optimizer: 0 };
      let t0 = performance.now();
      const x0 = tf.tidy(() => {
        const video = tf.tensor(videoData, [B, C, T, H, W], 'float32');
        return vae.encode(video, { rng: stepRng(seed, 'vae', g) });
      });
      timings.vae = performance.now() - t0;
      t0 = performance.now();
      const te = textEncoder.encode(samples.map((s) => s.text));
      timings.text = performance.now() - t0;
      const Tl = x0.shape[2]!;
      let xMask: tf.Tensor | undefined;
      if (maskRatios) {
        const gen = new MaskGenerator(maskRatios as Record<string, number>, { rng: stepRng(seed, 'mask', g) });
        const rows = gen.getMasks(B, Tl);
        xMask = tf.tensor2d(rows.flat().map((v) => (v ? 1 : 0)), [B, Tl], 'bool');
      }
      const tSteps = scheduler.sampleTimesteps(B, stepRng(seed, 'timestep', g));
      const kwargs: Record<string, unknown> = {
        y: te.embeddings,
        mask: te.mask,
        numFrames: tf.tensor1d(samples.map((s) => s.numFrames), 'float32'),
        height: tf.tensor1d(samples.map((s) => s.height), 'float32'),
        width: tf.tensor1d(samples.map((s) => s.width), 'float32'),
        ar: tf.tensor1d(samples.map((s) => s.ar), 'float32'),
        fps: tf.tensor1d(samples.map((s) => s.fps), 'float32'),
      };
      const modelRng = stepRng(seed, 'model', g);
      const denoise = (args: { x: tf.Tensor; timestep: tf.Tensor; xMask?: tf.Tensor; [k: string]: unknown }): tf.Tensor =>
        model.forward(args as unknown as ModelInputs, { training: true, rng: modelRng, gradientCheckpointing: config.gradCheckpoint });
      const noiseRng = stepRng(seed, 'noise', g);
      const terms: { mse: tf.Tensor | null; vb: tf.Tensor | null } = { mse: null, vb: null };
      t0 = performance.now();
      let loss: number;
      let grads: NamedTensors;
      try {
        const res = tf.variableGrads(() => {
          const out = scheduler.trainingLosses({ model: denoise, xStart: x0, t: tSteps, modelKwargs: kwargs, ...(xMask ? { mask: xMask } : {}), rng: noiseRng });
          terms.mse = tf.keep(tf.mean(out.mse));
          terms.vb = out.vb ? tf.keep(tf.mean(out.vb)) : null;
          return tf.mean(out.loss) as tf.Scalar;
        }, varList);
        loss = res.value.dataSync()[0]!;
        res.value.dispose();
        grads = {};
        for (const [vn, gr] of Object.entries(res.grads)) grads[varNameToKey.get(vn) ?? vn] = gr;
      } finally {
        tf.dispose([x0, te.embeddings, te.mask, ...(xMask ? [xMask] : []), ...(tSteps instanceof tf.Tensor ? [tSteps] : [])]);
        tf.dispose(Object.values(kwargs).filter((v): v is tf.Tensor => v instanceof tf.Tensor && !v.isDisposed));
      }
      const mse = terms.mse ? terms.mse.dataSync()[0]! : NaN;
      const vb = terms.vb ? terms.vb.dataSync()[0]! : null;
      tf.dispose([terms.mse, terms.vb].filter((v): v is tf.Tensor => v !== null));
      timings.fwdBwd = performance.now() - t0;
      t0 = performance.now();
      let norm: number;
      let skipped = false;
      try {
        norm = globalNorm(grads);
        if (!Number.isFinite(loss) || !Number.isFinite(norm)) {
          skipped = true;
        } else {
          let scale = 1;
          if (config.gradClip > 0) {
            const coef = config.gradClip / (norm + 1e-6);
            if (coef < 1) scale = coef;
          }
          if (scale !== 1) {
            const scaled: NamedTensors = {};
            for (const [k, gr] of Object.entries(grads)) scaled[k] = tf.mul(gr, scale);
            tf.dispose(Object.values(grads));
            grads = scaled;
          }
          opt!.applyGradients(grads);
          ema?.update(params);
        }
      } finally {
        tf.dispose(Object.values(grads));
      }
      timings.optimizer = performance.now() - t0;
      return { globalStep: g + 1, epoch, step: stepInEpoch + 1, loss, mse, vb, gradNorm: norm, skipped, bucket: fmtBucket(batch), batchSize: B, timings };
    };

    const logWindow = (rep: StepReport) => {
      const secs = (performance.now() - win.t0) / 1000;
      const n = Math.max(1, win.n);
      const rec = {
        event: 'train',
        global_step: rep.globalStep,
        epoch: rep.epoch,
        step: rep.step,
        loss: win.n ? win.loss / win.n : NaN,
        mse: win.n ? win.mse / win.n : NaN,
        ...(win.vbN ? { vb: win.vb / win.vbN } : {}),
        grad_norm: win.n ? win.norm / win.n : NaN,
        lr: opt!.lr,
        samples_per_s: secs > 0 ? win.samples / secs : 0,
        steps_per_s: secs > 0 ? win.n / secs : 0,
        bucket: rep.bucket,
        batch_size: rep.batchSize,
        ms: Object.fromEntries(Object.entries(win.timings).map(([k, v]) => [k, Number((v / n).toFixed(2))])),
      };
      metrics.append(rec);
      logger.debug(`step ${rep.globalStep}`, { loss: rec.loss, grad_norm: rec.grad_norm, bucket: rep.bucket });
      Object.assign(win, { n: 0, loss: 0, mse: 0, vb: 0, vbN: 0, norm: 0, samples: 0, t0: performance.now() });
      win.timings = { data: 0, vae: 0, text: 0, fwdBwd: 0, optimizer: 0 };
    };

    const shouldStop = (): StopReason | null => {
      if (maxSteps !== null && globalStep >= maxSteps) return 'maxSteps';
      if (signalState.requested) return 'signal';
      if (options.signal?.aborted) return 'abort';
      return null;
    };

    stoppedBy = shouldStop();
    while (!stoppedBy) {
      if (epoch >= config.epochs) {
        stoppedBy = 'epochs';
        break;
      }
      sampler.setEpoch(epoch);
      if (sampler.length === 0) {
        throw new TrainerError('E_DATA', `epoch ${epoch} has no batch: no sample of the dataset fits the bucket config of '${config.name}'`, {
          hint: 'check the dataset sizes and frame counts against bucketConfig (and customResolutions), or lower frameInterval',
        });
      }
      const nSteps = sampler.length;
      const queue: Array<{ batch: TrainBatch; g: number; promise: Promise<TrainSample[]> }> = [];
      let nextS = stepInEpoch;
      let nextG = globalStep;
      const fill = () => {
        while (nextS < nSteps && queue.length < prefetch + 1 && (maxSteps === null || nextG < maxSteps)) {
          const batch = sampler.batchAt(nextS);
          queue.push({ batch, g: nextG, promise: readBatch(batch, nextG) });
          nextS++;
          nextG++;
        }
      };
      fill();
      while (queue.length) {
        const item = queue.shift()!;
        fill();
        const tWait = performance.now();
        const samples = await item.promise;
        const dataMs = performance.now() - tWait;
        let rep: StepReport;
        try {
          rep = runStep(item.batch, samples, item.g, dataMs);
        } catch (e) {
          if (e instanceof TrainerError) throw e;
          const paths = item.batch.indices.map((i) => comps.rows?.[i]?.path).filter(Boolean);
          throw new TrainerError('E_TRAIN_STEP', `step ${item.g + 1} (epoch ${epoch}, bucket ${fmtBucket(item.batch)}, samples [${item.batch.indices.join(', ')}]${paths.length ? ` = ${paths.join(', ')}` : ''}) failed: ${(e as Error).message}`, {
            cause: e,
            details: { globalStep: item.g + 1, epoch, bucket: item.batch.bucketId, indices: item.batch.indices, paths },
            hint: /memory|alloc|OOM/i.test(String((e as Error).message)) ? `out of memory: lower the batch size of bucket ${fmtBucket(item.batch)} or enable gradCheckpoint` : undefined,
          });
        }
        globalStep = item.g + 1;
        stepInEpoch += 1;
        samplesSeen += rep.batchSize;
        losses.push({ globalStep, loss: rep.loss, skipped: rep.skipped });
        for (const k of Object.keys(totals) as Array<keyof StepTimings>) if (k in rep.timings) totals[k] += rep.timings[k];
        if (rep.skipped) {
          skippedSteps += 1;
          consecutiveNonFinite += 1;
          metrics.append({ event: 'skip', global_step: globalStep, epoch, step: stepInEpoch, loss: rep.loss, grad_norm: rep.gradNorm, bucket: rep.bucket, indices: item.batch.indices, reason: Number.isFinite(rep.loss) ? 'non-finite gradient' : 'non-finite loss' });
          logger.warn(`step ${globalStep}: non-finite ${Number.isFinite(rep.loss) ? 'gradient' : 'loss'} (bucket ${rep.bucket}, samples ${item.batch.indices.join(',')}): skipped (${consecutiveNonFinite} in a row)`);
        } else {
          consecutiveNonFinite = 0;
          win.n += 1;
          win.loss += rep.loss;
          win.mse += rep.mse;
          if (rep.vb !== null) {
            win.vb += rep.vb;
            win.vbN += 1;
          }
          win.norm += rep.gradNorm;
        }
        win.samples += rep.batchSize;
        for (const k of Object.keys(win.timings) as Array<keyof StepTimings>) win.timings[k] += rep.timings[k];
        options.onStep?.(rep);
        progress.update(globalStep, {
          loss: Number.isFinite(rep.loss) ? Number(rep.loss.toFixed(4)) : String(rep.loss),
          gnorm: Number.isFinite(rep.gradNorm) ? Number(rep.gradNorm.toFixed(3)) : String(rep.gradNorm),
          bucket: rep.bucket,
        });
        if (globalStep % config.logEvery === 0) logWindow(rep);
        if (consecutiveNonFinite >= config.nonFiniteLimit) {
          await save();
          throw new TrainerError('E_NON_FINITE', `${consecutiveNonFinite} consecutive steps had a non-finite loss or gradient (last: step ${globalStep}, bucket ${rep.bucket}); stopped and saved ${lastCheckpoint}`, {
            hint: 'lower lr, check the data of these buckets, or raise nonFiniteLimit',
            details: { globalStep, bucket: rep.bucket },
          });
        }
        if (config.ckptEvery > 0 && globalStep % config.ckptEvery === 0) await save();
        stoppedBy = shouldStop();
        if (stoppedBy) break;
      }
      if (stoppedBy) break;
      if (stepInEpoch >= nSteps) {
        epoch += 1;
        stepInEpoch = 0;
      } else {
        stoppedBy = shouldStop() ?? 'maxSteps';
      }
    }
    if (win.n) logWindow({ globalStep, epoch, step: stepInEpoch } as StepReport);
    if (lastSavedStep !== globalStep) await save();
    else await writeLossCurvePng(metrics.file, path.join(outputs, 'loss.png'), `${config.name}: training loss`).catch(() => undefined);
    progress.done();
    totals.total = performance.now() - runStart;
    const steps = losses.length;
    metrics.append({ event: 'end', global_step: globalStep, epoch, step: stepInEpoch, stopped_by: stoppedBy });
    if (signalState.requested) logger.info(`stopped by ${signalState.requested} after step ${globalStep}; saved ${lastCheckpoint}`);
    return {
      outputs,
      config,
      globalStep,
      epoch,
      step: stepInEpoch,
      startGlobalStep,
      stoppedBy: stoppedBy ?? 'maxSteps',
      lastCheckpoint,
      losses,
      skippedSteps,
      timings: totals,
      stepsPerSec: totals.total > 0 ? (steps * 1000) / totals.total : 0,
      samplesPerSec: totals.total > 0 ? (samplesSeen * 1000) / totals.total : 0,
    };
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    removeSignals();
    // Clean-up must not hide the error that got us here (a wasm abort leaves the heap unusable).
    const quietly = async (f: () => unknown) => {
      try {
        await f();
      } catch (e) {
        if (!failed) throw e;
        logger.debug(`clean-up after a failure also failed: ${(e as Error).message}`);
      }
    };
    await quietly(() => opt?.dispose());
    await quietly(() => ema?.dispose());
    if (factoryComps) await quietly(() => factoryComps.dispose());
  }
}

// ---------------------------------------------------------------------------------------------
// signals

const signalState: { requested: NodeJS.Signals | null } = { requested: null };

function installSignals(enabled: boolean, logger: Logger): () => void {
  signalState.requested = null;
  if (!enabled) return () => undefined;
  const handler = (sig: NodeJS.Signals) => {
    if (signalState.requested) {
      logger.warn(`${sig} again: exiting without saving`);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    }
    signalState.requested = sig;
    logger.warn(`${sig}: finishing the current step, then saving a checkpoint (send it again to exit at once)`);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
    signalState.requested = null;
  };
}
