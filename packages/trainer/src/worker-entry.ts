#!/usr/bin/env node
/**
 * A training process: `node dist/worker-entry.js --preset tiny --data ds.csv --outputs out --max-steps 20`.
 * Runs `train` (or `runPipeline` with `--pipeline`) and prints one JSON object per line on stdout
 * for each step, checkpoint and the end (`--events`), so that a parent can follow it, signal it or
 * kill it. Exit codes: 0 done, 1 error, 2 bad arguments, 130/143 stopped by a signal (after saving).
 *
 * `--backend wasm|cpu|auto` picks the tfjs backend; `--accel onnxruntime` routes matrix products to
 * onnxruntime-node (core's `enableFastKernels`).
 *
 * `--crash-after FILE@STEP` kills the process with SIGKILL right after it wrote FILE (a path inside a
 * checkpoint, e.g. `model/model.safetensors`) of the checkpoint at global step STEP: the
 * crash-during-save test.
 */
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { initBackend, enableFastKernels, loadConfigFile, OpenSoraError } from '@opensora/core';
import { resolveTrainConfig, type TrainConfigInput } from './config.js';
import { train, type TrainOptions } from './train.js';
import { runPipeline, type PipelineConfigInput } from './pipeline.js';

function emit(obj: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        preset: { type: 'string' },
        config: { type: 'string' },
        set: { type: 'string', multiple: true },
        data: { type: 'string' },
        outputs: { type: 'string' },
        'max-steps': { type: 'string' },
        'ckpt-every': { type: 'string' },
        seed: { type: 'string' },
        load: { type: 'string' },
        'ckpt-path': { type: 'string' },
        'start-from-scratch': { type: 'boolean' },
        pipeline: { type: 'string' },
        backend: { type: 'string' },
        accel: { type: 'string' },
        events: { type: 'boolean' },
        progress: { type: 'string' },
        'crash-after': { type: 'string' },
        'step-delay-ms': { type: 'string' },
      },
      strict: true,
    }).values;
  } catch (e) {
    process.stderr.write(`worker-entry: ${(e as Error).message}\n`);
    return 2;
  }
  const int = (v: string | undefined, name: string): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n)) throw new OpenSoraError('E_INVALID_ARGUMENT', `--${name} must be an integer, got '${v}'`);
    return n;
  };
  await initBackend(args.backend ?? process.env.OPENSORA_BACKEND ?? 'auto');
  if (args.accel && args.accel !== 'none') {
    const info = enableFastKernels({ engine: args.accel as 'onnxruntime' });
    process.stderr.write(`fast kernels: ${info.note}\n`);
  }
  const events = args.events ?? false;
  const stepDelay = int(args['step-delay-ms'], 'step-delay-ms') ?? 0;
  const opts: TrainOptions = {
    ...(args.data ? { data: args.data } : {}),
    ...(args.outputs ? { outputs: args.outputs } : {}),
    ...(args['max-steps'] ? { maxSteps: int(args['max-steps'], 'max-steps')! } : {}),
    ...(args['ckpt-every'] ? { ckptEvery: int(args['ckpt-every'], 'ckpt-every')! } : {}),
    ...(args.seed ? { seed: int(args.seed, 'seed')! } : {}),
    ...(args.load ? { load: args.load } : {}),
    ...(args['ckpt-path'] ? { ckptPath: args['ckpt-path'] } : {}),
    ...(args['start-from-scratch'] ? { startFromScratch: true } : {}),
    progress: (args.progress as 'bar' | 'lines' | 'silent' | undefined) ?? (events ? 'silent' : undefined),
    handleSignals: true,
  };
  if (events) {
    opts.onStep = (r) => {
      emit({ event: 'step', globalStep: r.globalStep, epoch: r.epoch, loss: r.loss, gradNorm: r.gradNorm, skipped: r.skipped, bucket: r.bucket });
      if (stepDelay > 0) {
        const until = Date.now() + stepDelay;
        while (Date.now() < until) {
          /* busy wait: keeps the step slow enough for a parent to signal it mid-run */
        }
      }
    };
    opts.onCheckpoint = (dir, g) => emit({ event: 'ckpt', dir, globalStep: g });
  }
  if (args['crash-after']) {
    const [file, step] = args['crash-after'].split('@');
    const at = Number(step);
    opts.onCheckpointFile = (rel, g) => {
      if (rel === file && g === at) {
        if (events) emit({ event: 'crashing', file: rel, globalStep: g });
        process.kill(process.pid, 'SIGKILL');
      }
    };
  }
  if (args.pipeline) {
    const raw = args.pipeline.endsWith('.json') || args.pipeline.endsWith('.yaml') || args.pipeline.endsWith('.ts') ? ((await loadConfigFile(args.pipeline)) as PipelineConfigInput) : args.pipeline;
    const { components: _c, ...pipeOpts } = opts;
    const res = await runPipeline(raw, {
      ...pipeOpts,
      onStage: (s) => events && emit({ event: 'stage', name: s.name, status: s.status, start: s.start, globalStep: s.globalStep, finalCheckpoint: s.finalCheckpoint }),
    });
    if (events) emit({ event: 'done', completed: res.completed, stages: res.stages.map((s) => ({ name: s.name, status: s.status, start: s.start, globalStep: s.globalStep })) });
    return res.completed ? 0 : 143;
  }
  let cfgIn: string | TrainConfigInput;
  if (args.config) cfgIn = args.config.endsWith('.json') ? (JSON.parse(readFileSync(args.config, 'utf8')) as TrainConfigInput) : ((await loadConfigFile(args.config)) as TrainConfigInput);
  else cfgIn = args.preset ?? 'tiny';
  const config = resolveTrainConfig(cfgIn, args.set ?? []);
  const res = await train(config, opts);
  if (events) emit({ event: 'done', globalStep: res.globalStep, stoppedBy: res.stoppedBy, lastCheckpoint: res.lastCheckpoint, stepsPerSec: res.stepsPerSec });
  return res.stoppedBy === 'signal' ? 143 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    const err = e as OpenSoraError;
    process.stderr.write(`error${err.code ? ` ${err.code}` : ''}: ${err.message}\n`);
    if (process.env.OPENSORA_DEBUG) process.stderr.write(`${err.stack}\n`);
    process.exit(1);
  },
);
